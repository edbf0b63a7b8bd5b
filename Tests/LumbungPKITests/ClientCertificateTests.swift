import Crypto
import Foundation
import LumbungPKI
import SwiftASN1
import Testing
import X509

@Suite("Client certificates from CSRs")
struct ClientCertificateTests {
    @Test(
        "CSR → client certificate: identity round-trips, chain verifies, clientAuth, lifetime",
        arguments: [(PKIIdentity.user("budi"), 90), (PKIIdentity.host("node-01"), 30)]
    )
    func signCSR(identity: PKIIdentity, days: Int) async throws {
        let ca = try makeCA()
        let key = ClientKey.generate()
        let csrPEM = try key.makeCSR(commonName: identity.name)
        #expect(csrPEM.hasPrefix("-----BEGIN CERTIFICATE REQUEST-----"))
        let issued = try ca.sign(csrPEM: csrPEM, identity: identity, lifetime: .seconds(days * 86400), now: t0)
        let leaf = try certificate(issued.certificatePEM)

        #expect(try PKIIdentity.of(certificate: leaf) == identity)
        #expect(await chainValidates(leaf, root: ca.certificate, at: t0))
        try await ca.verify(leaf, now: t0)

        let eku = Array(try #require(try leaf.extensions.extendedKeyUsage))
        #expect(eku == [.clientAuth])
        let usage = try #require(try leaf.extensions.keyUsage)
        #expect(usage.digitalSignature && !usage.keyCertSign)
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(Array(try #require(try leaf.extensions.subjectAlternativeNames)) == [.uniformResourceIdentifier(identity.uri)])
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(leaf.subject == (try DistinguishedName { CommonName(identity.name) }))
        #expect(leaf.issuer == ca.certificate.subject)

        #expect(leaf.notValidBefore == t0 - 300)
        #expect(leaf.notValidAfter == t0 + Double(days) * day)
        #expect(issued.notBefore == leaf.notValidBefore && issued.notAfter == leaf.notValidAfter)
        #expect(await !chainValidates(leaf, root: ca.certificate, at: t0 + Double(days) * day + 60))

        #expect(leaf.serialNumber.bytes.count == 20)
        #expect(leaf.serialNumber.bytes.first.map { $0 & 0x80 == 0 } == true, "serial is positive")
        #expect(issued.serialHex == PKIIdentity.serialHex(of: leaf))
        #expect(issued.serialHex.wholeMatch(of: /[0-9a-f]{40}/) != nil)
        #expect(key.matches(leaf))
        #expect(!ClientKey.generate().matches(leaf))
    }

    @Test("the CSR's requested subject is ignored: the identity decides")
    func requestedSubjectIgnored() throws {
        let ca = try makeCA()
        let key = ClientKey.generate()
        let issued = try ca.sign(csrPEM: key.makeCSR(commonName: "admin"), identity: .user("budi"), lifetime: .seconds(3600), now: t0)
        let leaf = try certificate(issued.certificatePEM)
        #expect(leaf.subject == (try DistinguishedName { CommonName("budi") }))
        #expect(try PKIIdentity.of(certificate: leaf) == .user("budi"))
    }

    @Test("serials are unique")
    func uniqueSerials() throws {
        let ca = try makeCA()
        let csr = try ClientKey.generate().makeCSR(commonName: "budi")
        let serials = try (0..<32).map { _ in try ca.sign(csrPEM: csr, identity: .user("budi"), lifetime: .seconds(60), now: t0).serialHex }
        #expect(Set(serials).count == 32)
    }

    enum Forgery: String, CaseIterable, Sendable {
        /// Public key of one key pair, signature made by another.
        case swappedPublicKey
        /// A valid CSR whose subject bytes were altered after signing.
        case tamperedSubject
    }

    @Test("a CSR whose self-signature does not verify is refused", arguments: Forgery.allCases)
    func brokenSignature(_ forgery: Forgery) throws {
        let ca = try makeCA()
        let csrPEM: String
        switch forgery {
        case .swappedPublicKey:
            let signed = try CertificateSigningRequest(pemEncoded: ClientKey.generate().makeCSR(commonName: "budi"))
            let forged = try CertificateSigningRequest(
                version: signed.version,
                subject: signed.subject,
                publicKey: Certificate.PublicKey(P256.Signing.PrivateKey().publicKey),
                attributes: signed.attributes,
                signatureAlgorithm: signed.signatureAlgorithm,
                signature: signed.signature
            )
            csrPEM = try forged.serializeAsPEM().pemString
        case .tamperedSubject:
            var der = try PEMDocument(pemString: ClientKey.generate().makeCSR(commonName: "budi")).derBytes
            let needle = Array("budi".utf8)
            let at = try #require(der.indices.first { der[$0...].starts(with: needle) })
            der[at + 3] = UInt8(ascii: "j")
            csrPEM = PEMDocument(type: "CERTIFICATE REQUEST", derBytes: der).pemString
            #expect(try CertificateSigningRequest(pemEncoded: csrPEM).subject == (try DistinguishedName { CommonName("budj") }))
        }
        let error = #expect(throws: PKIError.self) {
            try ca.sign(csrPEM: csrPEM, identity: .user("budi"), lifetime: .seconds(3600), now: t0)
        }
        #expect(error?.code == .badSignature)
    }

    @Test(
        "text that is not a CSR is refused",
        arguments: [
            "",
            "hello",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n",
            String(repeating: "A", count: 70_000),
        ]
    )
    func notACSR(_ text: String) throws {
        let ca = try makeCA()
        let error = #expect(throws: PKIError.self) {
            try ca.sign(csrPEM: text, identity: .user("budi"), lifetime: .seconds(3600), now: t0)
        }
        #expect(error?.code == .invalidCSR)
    }

    @Test("a certificate PEM is not a CSR")
    func certificateIsNotACSR() throws {
        let ca = try makeCA()
        let error = #expect(throws: PKIError.self) {
            try ca.sign(csrPEM: ca.certificatePEM, identity: .user("budi"), lifetime: .seconds(3600), now: t0)
        }
        #expect(error?.code == .invalidCSR)
    }

    @Test("a CSR with a non-P-256 key is refused")
    func unsupportedKey() throws {
        let ca = try makeCA()
        let csr = try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName { CommonName("budi") },
            privateKey: Certificate.PrivateKey(P384.Signing.PrivateKey()),
            attributes: CertificateSigningRequest.Attributes()
        )
        let error = #expect(throws: PKIError.self) {
            try ca.sign(csrPEM: csr.serializeAsPEM().pemString, identity: .user("budi"), lifetime: .seconds(3600), now: t0)
        }
        #expect(error?.code == .unsupportedKey)
    }

    @Test(
        "the CA refuses to sign for an invalid identity name",
        arguments: [PKIIdentity.user("Budi"), .user(""), .host("../admin"), .host("node_01"), .user(String(repeating: "a", count: 64))]
    )
    func invalidIdentity(_ identity: PKIIdentity) throws {
        let ca = try makeCA()
        let error = #expect(throws: PKIError.self) {
            try ca.sign(csrPEM: ClientKey.generate().makeCSR(commonName: "x"), identity: identity, lifetime: .seconds(3600), now: t0)
        }
        #expect(error?.code == .invalidIdentity)
    }

    @Test("client key PEM round-trips; garbage and other curves are refused")
    func clientKeyPEM() throws {
        let key = ClientKey.generate()
        #expect(key.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(try ClientKey(pem: key.privateKeyPEM).privateKeyPEM == key.privateKeyPEM)
        #expect(!key.description.contains("PRIVATE"))
        for bad in ["", "garbage", P384.Signing.PrivateKey().pemRepresentation] {
            let error = #expect(throws: PKIError.self) { try ClientKey(pem: bad) }
            #expect(error?.code == .invalidKey)
        }
        let empty = #expect(throws: PKIError.self) { try key.makeCSR(commonName: "") }
        #expect(empty?.code == .invalidName)
    }
}
