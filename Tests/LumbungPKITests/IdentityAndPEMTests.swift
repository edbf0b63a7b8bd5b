import Crypto
import Foundation
import LumbungPKI
import Testing
import X509

@Suite("Identities")
struct IdentityTests {
    @Test(
        "valid identity URIs parse and round-trip",
        arguments: [
            ("lumbung://user/budi", PKIIdentity.user("budi")),
            ("lumbung://host/node-01", .host("node-01")),
            ("lumbung://user/0", .user("0")),
            ("lumbung://host/-", .host("-")),
            ("lumbung://user/" + String(repeating: "a", count: 63), .user(String(repeating: "a", count: 63))),
        ]
    )
    func valid(uri: String, identity: PKIIdentity) throws {
        #expect(try PKIIdentity(uri: uri) == identity)
        #expect(identity.uri == uri)
        #expect(identity.description == uri)
        #expect(PKIIdentity.isValidName(identity.name))
    }

    @Test(
        "invalid identity URIs are refused with invalid_identity",
        arguments: [
            "",
            "budi",
            "https://user/budi",
            "LUMBUNG://user/budi",
            "lumbung:/user/budi",
            "lumbung://user/",
            "lumbung://user",
            "lumbung://admin/budi",
            "lumbung://User/budi",
            "lumbung://user/Budi",
            "lumbung://user/../admin",
            "lumbung://user/..",
            "lumbung://host/node-01/../../user/root",
            "lumbung://user/budi/extra",
            "lumbung://user/budi?x=1",
            "lumbung://user/budi#frag",
            "lumbung://user/bu%64i",
            "lumbung://user/budi ",
            "lumbung://host/node_01",
            "lumbung://user/bûdi",
            "lumbung://user/" + String(repeating: "a", count: 64),
            "lumbung://user@evil/budi",
        ]
    )
    func invalid(_ uri: String) {
        let error = #expect(throws: PKIError.self) { try PKIIdentity(uri: uri) }
        #expect(error?.code == .invalidIdentity)
        #expect(error.map { $0.message.contains("lumbung://") || $0.message.contains("a-z") } ?? false)
    }

    @Test("a certificate without a lumbung:// URI SAN has no identity")
    func noIdentityInServerCertificate() throws {
        let ca = try makeCA()
        let server = try ca.issueServerCertificate(commonName: "lumbungd", names: ["localhost"], now: t0, lifetime: .seconds(3600))
        let error = #expect(throws: PKIError.self) { try PKIIdentity.of(certificate: certificate(server.certificatePEM)) }
        #expect(error?.code == .invalidIdentity)
        let caError = #expect(throws: PKIError.self) { try PKIIdentity.of(certificate: ca.certificate) }
        #expect(caError?.code == .invalidIdentity)
    }

    @Test("serialHex keeps leading zero nibbles (unlike SerialNumber.description)")
    func serialHexKeepsZeros() throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("x") }
        let cert = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(bytes: [0x01, 0x02, 0x0a, 0x00]),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: t0,
            notValidAfter: t0 + day,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(),
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        #expect(PKIIdentity.serialHex(of: cert) == "01020a00")
    }
}

@Suite("PEM helpers and errors")
struct PEMTests {
    @Test("a bundle parses in order; der(ofCertificatePEM:) wants exactly one")
    func bundle() throws {
        let ca = try makeCA()
        let (_, issued, leaf) = try issueClient(ca)
        let bundle = try PEM.bundle([leaf, ca.certificate])
        #expect(try PEM.certificates(fromPEM: bundle) == [leaf, ca.certificate])
        #expect(try PEM.certificates(fromPEM: issued.certificatePEM + ca.certificatePEM) == [leaf, ca.certificate])
        #expect(try PEM.pem(of: leaf) == issued.certificatePEM)
        #expect(try PEM.der(ofCertificatePEM: issued.certificatePEM) == PEM.der(of: leaf))
        let error = #expect(throws: PKIError.self) { try PEM.der(ofCertificatePEM: bundle) }
        #expect(error?.code == .invalidPEM)
    }

    @Test(
        "bad PEM text is refused",
        arguments: [
            ("", PKIError.Code.invalidPEM),
            ("no pem here", .invalidPEM),
            ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", .invalidPEM),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", .invalidCertificate),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", .invalidPEM),
        ]
    )
    func badPEM(text: String, code: PKIError.Code) {
        let error = #expect(throws: PKIError.self) { try PEM.certificates(fromPEM: text) }
        #expect(error?.code == code)
    }

    @Test("a private key inside a certificate bundle is refused")
    func keyInBundle() throws {
        let ca = try makeCA()
        let error = #expect(throws: PKIError.self) { try PEM.certificates(fromPEM: ca.certificatePEM + ca.privateKeyPEM) }
        #expect(error?.code == .invalidPEM)
        #expect(error.map { !$0.message.contains("BEGIN") } ?? true)
    }

    @Test("error codes are stable snake_case; description is code: message", arguments: PKIError.Code.allCases)
    func errorCodes(_ code: PKIError.Code) {
        #expect(code.rawValue.wholeMatch(of: /[a-z]+(_[a-z]+)*/) != nil)
        #expect(PKIError(code, "what was wrong").description == "\(code.rawValue): what was wrong")
    }
}
