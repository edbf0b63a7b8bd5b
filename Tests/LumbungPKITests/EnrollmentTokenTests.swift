import Foundation
import LumbungPKI
import Testing

/// A canonical 32-byte base64url secret (all zero bytes) and a fingerprint hex.
private let secret = String(repeating: "A", count: 43)
private let hex = String(repeating: "ab", count: 32)

@Suite("Enrollment tokens")
struct EnrollmentTokenTests {

    @Test("encode/parse round trip and CA pinning")
    func roundTrip() throws {
        let ca = try makeCA()
        let token = EnrollmentToken.generate(caFingerprint: ca.fingerprint)
        #expect(token.caFingerprint == ca.fingerprint)
        #expect(token.secret.wholeMatch(of: /[A-Za-z0-9_-]{43}/) != nil)
        #expect(token.encoded.wholeMatch(of: /lmb1\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}/) != nil)
        #expect(token.encoded.hasSuffix("." + ca.fingerprint.dropFirst("sha256:".count)))
        #expect(try EnrollmentToken.parse(token.encoded) == token)
        #expect(try EnrollmentToken.parse("  \(token.encoded)\n") == token, "pasted whitespace is ignored")
        #expect(!String(describing: token).contains(token.secret))
        #expect(!String(reflecting: token).contains(token.secret))

        try token.verifyCA(certificatePEM: ca.certificatePEM)
        let other = try makeCA()
        let error = #expect(throws: PKIError.self) { try token.verifyCA(certificatePEM: other.certificatePEM) }
        #expect(error?.code == .fingerprintMismatch)
    }

    @Test("generate accepts a bare hex fingerprint")
    func bareFingerprint() throws {
        let token = EnrollmentToken.generate(caFingerprint: hex)
        #expect(token.caFingerprint == "sha256:" + hex)
        #expect(try EnrollmentToken.parse(token.encoded) == token)
    }

    @Test("fresh tokens have fresh secrets")
    func freshSecrets() {
        let secrets = (0..<100).map { _ in EnrollmentToken.generate(caFingerprint: "sha256:" + hex).secret }
        #expect(Set(secrets).count == 100)
    }

    @Test("a well-formed hand-written token parses")
    func wellFormed() throws {
        let token = try EnrollmentToken.parse("lmb1.\(secret).\(hex)")
        #expect(token.secret == secret)
        #expect(token.caFingerprint == "sha256:" + hex)
    }

    @Test(
        "malformed tokens are refused with invalid_token",
        arguments: [
            "",
            "   ",
            "lmb1",
            "lmb1.\(secret)",
            "lmb1.\(secret).",
            "lmb2.\(secret).\(hex)",
            "LMB1.\(secret).\(hex)",
            ".\(secret).\(hex)",
            "lmb1.\(secret).\(hex).extra",
            "lmb1..\(hex)",
            "lmb1.\(secret.dropLast()).\(hex)",
            "lmb1.\(secret)A.\(hex)",
            "lmb1.\(secret.dropLast())B.\(hex)",
            "lmb1.\(secret.dropLast())=.\(hex)",
            "lmb1.\(secret.dropLast())+.\(hex)",
            "lmb1.\(secret).\(hex.dropLast())",
            "lmb1.\(secret).\(hex)0",
            "lmb1.\(secret).\(hex.uppercased())",
            "lmb1.\(secret).sha256:\(hex)",
            "lmb1.\(secret).\(hex.dropLast())g",
            "lmb1 \(secret) \(hex)",
        ]
    )
    func malformed(_ text: String) {
        let error = #expect(throws: PKIError.self) { try EnrollmentToken.parse(text) }
        #expect(error?.code == .invalidToken)
        #expect(error.map { !$0.message.contains(secret) } ?? true, "messages never echo the secret")
        #expect(error.map { $0.message.contains("lmb1.") } ?? false, "messages show the accepted shape")
    }

    @Test("secret hash: SHA-256 hex, stable, differs per secret")
    func hash() {
        #expect(EnrollmentToken.hash(secret: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let a = EnrollmentToken.generate(caFingerprint: hex)
        let b = EnrollmentToken.generate(caFingerprint: hex)
        #expect(a.secretHash == EnrollmentToken.hash(secret: a.secret))
        #expect(a.secretHash == EnrollmentToken.hash(secret: a.secret), "stable")
        #expect(a.secretHash != b.secretHash)
        #expect(a.secretHash.wholeMatch(of: /[0-9a-f]{64}/) != nil)
    }

    @Test(
        "constant-time comparison",
        arguments: [("", "", true), ("abc", "abc", true), ("abc", "abd", false), ("abc", "ab", false), ("", "a", false), ("é", "e", false)]
    )
    func constantTimeEquals(a: String, b: String, equal: Bool) {
        #expect(EnrollmentToken.constantTimeEquals(a, b) == equal)
        #expect(EnrollmentToken.constantTimeEquals(b, a) == equal)
    }
}
