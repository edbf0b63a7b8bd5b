import Foundation
import LumbungPKI
@_spi(FixedExpiryValidationTime) import X509

/// A fixed, whole-second "now" for deterministic validity checks.
let t0 = Date(timeIntervalSince1970: 1_800_000_000)

let day: TimeInterval = 86400

func makeCA(_ commonName: String = "Lumbung Test CA", now: Date = t0, lifetime: Duration = .seconds(10 * 365 * 86400)) throws -> CertificateAuthority {
    try CertificateAuthority.create(commonName: commonName, now: now, lifetime: lifetime)
}

func certificate(_ pem: String) throws -> Certificate {
    try Certificate(pemEncoded: pem)
}

/// Validates `leaf` against `root` with swift-certificates' RFC 5280 policy at `time`.
func chainValidates(_ leaf: Certificate, root: Certificate, at time: Date) async -> Bool {
    var verifier = Verifier(rootCertificates: CertificateStore([root])) {
        RFC5280Policy(fixedExpiryValidationTime: time)
    }
    let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
    if case .validCertificate(let chain) = result {
        return chain.first == leaf && chain.last == root
    }
    return false
}

/// Issues a client certificate for `identity` from a fresh key; returns the key and the certificate.
func issueClient(
    _ ca: CertificateAuthority,
    _ identity: PKIIdentity = .user("budi"),
    lifetime: Duration = .seconds(90 * 86400),
    now: Date = t0
) throws -> (ClientKey, IssuedCertificate, Certificate) {
    let key = ClientKey.generate()
    let issued = try ca.sign(csrPEM: key.makeCSR(commonName: identity.name), identity: identity, lifetime: lifetime, now: now)
    return (key, issued, try certificate(issued.certificatePEM))
}
