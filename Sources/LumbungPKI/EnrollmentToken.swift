import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A one-time enrollment/login token: `lmb1.<secret>.<CA fingerprint hex>`.
///
/// The secret (32 random bytes, base64url without padding) proves the right
/// to one enrollment; the controller stores only ``secretHash`` (with its
/// expiry and the identity it is for). The CA fingerprint lets the client pin
/// the controller's CA before it trusts anything the controller says (see
/// ``verifyCA(certificatePEM:)``).
public struct EnrollmentToken: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The format version prefix.
    public static let prefix = "lmb1"

    /// 32 random bytes, base64url without padding (43 characters).
    public let secret: String
    /// The pinned CA fingerprint, `sha256:<64 lowercase hex>`.
    public let caFingerprint: String

    private init(secret: String, caFingerprint: String) {
        self.secret = secret
        self.caFingerprint = caFingerprint
    }

    /// A new token with a fresh random secret.
    ///
    /// - Parameter caFingerprint: ``CertificateAuthority/fingerprint``
    ///   (`sha256:<hex>`; a bare hex value is accepted and prefixed).
    public static func generate(caFingerprint: String) -> EnrollmentToken {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let fingerprint = caFingerprint.hasPrefix("sha256:") ? caFingerprint : "sha256:" + caFingerprint
        return EnrollmentToken(secret: base64URL(bytes), caFingerprint: fingerprint.lowercased())
    }

    /// `lmb1.<secret>.<fingerprint hex without "sha256:">`; what the admin hands over.
    public var encoded: String {
        "\(Self.prefix).\(secret).\(caFingerprint.dropFirst("sha256:".count))"
    }

    /// Parses an encoded token. Surrounding whitespace is ignored.
    ///
    /// - Throws: `invalid_token` for any other shape (the message never
    ///   repeats the secret).
    public static func parse(_ text: String) throws -> EnrollmentToken {
        let shape = "expected lmb1.<43-character base64url secret>.<64 lowercase hex CA fingerprint>"
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        let trimmed = String(text.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
        guard !trimmed.isEmpty else {
            throw PKIError(.invalidToken, "token is empty; \(shape)")
        }
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw PKIError(.invalidToken, "token has \(parts.count) dot-separated part(s), not 3; \(shape)")
        }
        guard parts[0] == prefix else {
            throw PKIError(.invalidToken, "token does not start with '\(prefix).' (unknown token version); \(shape)")
        }
        let secret = String(parts[1])
        guard let bytes = decodeBase64URL(secret), bytes.count == 32, base64URL(bytes) == secret else {
            throw PKIError(.invalidToken, "token secret is not 32 bytes of unpadded base64url (43 characters of A-Z a-z 0-9 - _); \(shape)")
        }
        guard isLowercaseHex(parts[2], count: 64) else {
            throw PKIError(.invalidToken, "token CA fingerprint is not 64 lowercase hex characters (a SHA-256); \(shape)")
        }
        return EnrollmentToken(secret: secret, caFingerprint: "sha256:" + parts[2])
    }

    /// Lowercase hex SHA-256 of the secret's UTF-8 bytes: what the controller stores.
    public static func hash(secret: String) -> String {
        sha256Hex(Array(secret.utf8))
    }

    /// ``hash(secret:)`` of this token's secret.
    public var secretHash: String { Self.hash(secret: secret) }

    /// Compares two strings in time that depends only on their lengths (use it
    /// to compare secret hashes). Strings of different lengths are unequal.
    @inline(never)
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices {
            difference |= x[index] ^ y[index]
        }
        return difference == 0
    }

    /// Checks that a CA certificate (e.g. fetched from the controller before
    /// TLS trust exists) is the one this token pinned.
    ///
    /// - Throws: `invalid_pem` / `invalid_certificate` for a bad PEM;
    ///   `fingerprint_mismatch` if it is another certificate.
    public func verifyCA(certificatePEM: String) throws {
        let actual = try CertificateAuthority.fingerprint(ofCertificatePEM: certificatePEM)
        guard actual == caFingerprint else {
            throw PKIError(
                .fingerprintMismatch,
                "the controller's CA certificate has fingerprint \(actual) but the token pins \(caFingerprint); do not trust this controller, or get a new token"
            )
        }
    }

    /// Redacted: `lmb1.<redacted>.<fingerprint>`; never the secret.
    public var description: String {
        "\(Self.prefix).<redacted>.\(caFingerprint.dropFirst("sha256:".count))"
    }

    /// Same as ``description``.
    public var debugDescription: String { description }

    // MARK: base64url

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacing("+", with: "-")
            .replacing("/", with: "_")
            .replacing("=", with: "")
    }

    static func decodeBase64URL(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ byte in
            (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) || (0x30...0x39).contains(byte)
                || byte == 0x2d || byte == 0x5f
        }) else { return nil }
        var standard = text.replacing("-", with: "+").replacing("_", with: "/")
        while standard.utf8.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard).map { Array($0) }
    }
}
