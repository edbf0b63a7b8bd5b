import Crypto
import Foundation
import LumbungPKI
import SwiftASN1
import Testing
import X509

@Suite("Certificate authority")
struct CertificateAuthorityTests {
    @Test("create: self-signed P-256 CA with the required extensions")
    func createdCAHasRequiredShape() throws {
        let ca = try makeCA()
        let cert = ca.certificate
        #expect(cert.subject == cert.issuer)
        #expect(cert.publicKey.isValidSignature(cert.signature, for: cert))
        #expect(P256.Signing.PublicKey(cert.publicKey) != nil)
        #expect(try cert.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(cert.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let usage = try #require(try cert.extensions.keyUsage)
        #expect(usage.keyCertSign && usage.cRLSign && !usage.digitalSignature)
        #expect(try cert.extensions.subjectKeyIdentifier != nil)
        #expect(cert.notValidBefore == t0 - 300)
        #expect(cert.notValidAfter == t0 + 10 * 365 * day)
        #expect(String(describing: cert.subject).contains("Lumbung Test CA"))
        #expect(!ca.description.contains("PRIVATE"))
    }

    @Test("reload from PEM keeps the certificate and the fingerprint")
    func reloadFromPEM() async throws {
        let ca = try makeCA()
        #expect(ca.fingerprint.wholeMatch(of: /sha256:[0-9a-f]{64}/) != nil)

        let reloaded = try CertificateAuthority(certificatePEM: ca.certificatePEM, privateKeyPEM: ca.privateKeyPEM)
        #expect(reloaded.fingerprint == ca.fingerprint)
        #expect(reloaded.certificate == ca.certificate)
        #expect(reloaded.certificatePEM == ca.certificatePEM)
        #expect(try CertificateAuthority.fingerprint(ofCertificatePEM: ca.certificatePEM) == ca.fingerprint)
        let der = try PEM.der(ofCertificatePEM: ca.certificatePEM)
        #expect(CertificateAuthority.fingerprint(ofDER: der) == ca.fingerprint)
        #expect(CertificateAuthority.fingerprint(ofDER: der) == "sha256:" + SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined())

        // The reloaded CA signs with the same key: its leaves validate against the original.
        let (_, _, leaf) = try issueClient(reloaded)
        #expect(await chainValidates(leaf, root: ca.certificate, at: t0))
    }

    @Test("two CAs have different keys and fingerprints")
    func distinctCAs() throws {
        let a = try makeCA(), b = try makeCA()
        #expect(a.fingerprint != b.fingerprint)
        #expect(a.certificate.publicKey != b.certificate.publicKey)
    }

    enum ReloadCase: String, CaseIterable, Sendable {
        case keyOfAnotherCA, garbageKey, p384Key, garbageCertificate, keyInsteadOfCertificate, leafAsCA
    }

    @Test("reload refuses mismatched or unusable input", arguments: ReloadCase.allCases)
    func reloadRefusals(_ input: ReloadCase) throws {
        let ca = try makeCA()
        let other = try makeCA()
        let certificatePEM: String, keyPEM: String, expected: PKIError.Code
        switch input {
        case .keyOfAnotherCA:
            (certificatePEM, keyPEM, expected) = (ca.certificatePEM, other.privateKeyPEM, .keyMismatch)
        case .garbageKey:
            (certificatePEM, keyPEM, expected) = (ca.certificatePEM, "not a key", .invalidKey)
        case .p384Key:
            (certificatePEM, keyPEM, expected) = (ca.certificatePEM, P384.Signing.PrivateKey().pemRepresentation, .invalidKey)
        case .garbageCertificate:
            (certificatePEM, keyPEM, expected) = ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ca.privateKeyPEM, .invalidCertificate)
        case .keyInsteadOfCertificate:
            (certificatePEM, keyPEM, expected) = (ca.privateKeyPEM, ca.privateKeyPEM, .invalidPEM)
        case .leafAsCA:
            let server = try ca.issueServerCertificate(commonName: "lumbungd", names: ["localhost"], now: t0, lifetime: .seconds(86400))
            (certificatePEM, keyPEM, expected) = (server.certificatePEM, server.privateKeyPEM, .invalidCA)
        }
        let error = #expect(throws: PKIError.self) {
            try CertificateAuthority(certificatePEM: certificatePEM, privateKeyPEM: keyPEM)
        }
        #expect(error?.code == expected)
        #expect(error.map { !$0.message.contains("BEGIN") } ?? true, "messages never echo key material")
    }

    @Test("server certificate: chain validates, SANs, EKU, AKI")
    func serverCertificate() async throws {
        let ca = try makeCA()
        let issued = try ca.issueServerCertificate(
            commonName: "lumbungd",
            names: ["Controller.Lumbung.Local", "controller.lumbung.local", "localhost", "10.20.0.5", "::1", "*.dc.example.go.id"],
            now: t0,
            lifetime: .seconds(365 * 86400)
        )
        let leaf = try certificate(issued.certificatePEM)
        #expect(await chainValidates(leaf, root: ca.certificate, at: t0))
        #expect(await chainValidates(leaf, root: ca.certificate, at: t0 + 364 * day))

        let sans = Array(try #require(try leaf.extensions.subjectAlternativeNames))
        #expect(sans == [
            .dnsName("controller.lumbung.local"),
            .dnsName("localhost"),
            .ipAddress(ASN1OctetString(contentBytes: [10, 20, 0, 5])),
            .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
            .dnsName("*.dc.example.go.id"),
        ])
        let eku = Array(try #require(try leaf.extensions.extendedKeyUsage))
        #expect(eku.contains(.serverAuth) && eku.contains(.clientAuth))
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try leaf.extensions.keyUsage?.digitalSignature == true)
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(issued.serialHex.wholeMatch(of: /[0-9a-f]{40}/) != nil)
        #expect(issued.serialHex == PKIIdentity.serialHex(of: leaf))
        #expect(issued.notBefore == leaf.notValidBefore && issued.notAfter == leaf.notValidAfter)
        #expect(!issued.description.contains("PRIVATE"))

        // The returned key belongs to the certificate.
        let key = try P256.Signing.PrivateKey(pemRepresentation: issued.privateKeyPEM)
        #expect(Certificate.PublicKey(key.publicKey) == leaf.publicKey)
        #expect(try ClientKey(pem: issued.privateKeyPEM).matches(leaf))
    }

    @Test(
        "server certificate refuses bad names",
        arguments: [[], [""], ["bad name"], ["-lead.example"], ["trail-.example"], ["a..b"], ["exa_mple.com"],
                    ["fe80::1%eth0"], ["host.example."], [String(repeating: "a", count: 64) + ".example"], ["ok.example", "http://x"]]
    )
    func serverCertificateBadNames(_ names: [String]) throws {
        let ca = try makeCA()
        let error = #expect(throws: PKIError.self) {
            try ca.issueServerCertificate(commonName: "lumbungd", names: names, now: t0, lifetime: .seconds(86400))
        }
        #expect(error?.code == .invalidName)
    }

    @Test("a certificate from a different CA (even with the same name) does not verify")
    func differentCA() async throws {
        let ours = try makeCA("Lumbung CA")
        let theirs = try makeCA("Lumbung CA")
        let (_, _, foreignLeaf) = try issueClient(theirs)
        #expect(foreignLeaf.issuer == ours.certificate.subject)
        #expect(await !chainValidates(foreignLeaf, root: ours.certificate, at: t0))
        #expect(await chainValidates(foreignLeaf, root: theirs.certificate, at: t0))
        let error = await #expect(throws: PKIError.self) { try await ours.verify(foreignLeaf, now: t0) }
        #expect(error?.code == .untrustedCertificate)
    }

    @Test("an expired certificate fails validation later; a not-yet-valid one fails earlier")
    func expiry() async throws {
        let ca = try makeCA()
        let (_, issued, leaf) = try issueClient(ca, lifetime: .seconds(3600))
        #expect(issued.notAfter == t0 + 3600)
        #expect(await chainValidates(leaf, root: ca.certificate, at: t0 + 1800))
        #expect(await chainValidates(leaf, root: ca.certificate, at: t0 - 240), "5 minutes of clock skew allowed")
        #expect(await !chainValidates(leaf, root: ca.certificate, at: t0 + 7200))
        #expect(await !chainValidates(leaf, root: ca.certificate, at: t0 - 600))
        try await ca.verify(leaf, now: t0 + 1800)
        let error = await #expect(throws: PKIError.self) { try await ca.verify(leaf, now: t0 + 7200) }
        #expect(error?.code == .untrustedCertificate)
    }

    @Test("leaf lifetime is cut at the CA's expiry; bad lifetimes and an expired CA are refused")
    func lifetimeLimits() throws {
        let ca = try makeCA(lifetime: .seconds(86400))
        let (_, issued, _) = try issueClient(ca, lifetime: .seconds(30 * 86400))
        #expect(issued.notAfter == ca.certificate.notValidAfter)

        for lifetime: Duration in [.zero, .seconds(-5), .milliseconds(500)] {
            let error = #expect(throws: PKIError.self) { try issueClient(ca, lifetime: lifetime) }
            #expect(error?.code == .invalidLifetime)
        }
        let caError = #expect(throws: PKIError.self) { try makeCA(lifetime: .zero) }
        #expect(caError?.code == .invalidLifetime)
        let expired = #expect(throws: PKIError.self) { try issueClient(ca, now: t0 + 2 * day) }
        #expect(expired?.code == .caExpired)
    }

    @Test("renewal is due at two thirds of the lifetime")
    func renewal() throws {
        let ca = try makeCA()
        let (_, _, leaf) = try issueClient(ca, .host("node-01"), lifetime: .seconds(30 * 86400))
        let expected = leaf.notValidBefore + (leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore)) * 2 / 3
        #expect(CertificateRenewal.renewalDate(of: leaf) == expected)
        #expect(!CertificateRenewal.isDue(leaf, now: t0 + 19 * day))
        #expect(CertificateRenewal.isDue(leaf, now: t0 + 21 * day))
    }
}
