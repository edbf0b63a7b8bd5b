/// An error raised by `LumbungPKI`.
///
/// Every error carries a stable, machine-readable ``code`` (suitable for an
/// API error body or a CLI exit message) and a human-readable ``message`` that
/// says what was wrong and what is accepted instead. Messages never contain
/// secrets (token secrets, private keys).
public struct PKIError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable snake_case error codes. Raw values never change once published.
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// Text was not a usable PEM document or bundle.
        case invalidPEM = "invalid_pem"
        /// A certificate could not be parsed or lacks a required property.
        case invalidCertificate = "invalid_certificate"
        /// A private key could not be parsed or is not ECDSA P-256.
        case invalidKey = "invalid_key"
        /// A private key does not belong to the certificate it was paired with.
        case keyMismatch = "key_mismatch"
        /// A certificate offered as the CA is not a CA certificate.
        case invalidCA = "invalid_ca"
        /// The CA certificate has expired at the given time and can no longer issue.
        case caExpired = "ca_expired"
        /// A certificate signing request could not be parsed.
        case invalidCSR = "invalid_csr"
        /// A certificate signing request's self-signature does not verify.
        case badSignature = "bad_signature"
        /// A public key uses an algorithm other than ECDSA P-256.
        case unsupportedKey = "unsupported_key"
        /// A Lumbung identity (URI or name) is malformed.
        case invalidIdentity = "invalid_identity"
        /// A certificate common name, DNS name or IP address is malformed.
        case invalidName = "invalid_name"
        /// A certificate lifetime is zero or negative.
        case invalidLifetime = "invalid_lifetime"
        /// An enrollment token does not have the `lmb1.<secret>.<fingerprint>` shape.
        case invalidToken = "invalid_token"
        /// A CA certificate's fingerprint differs from the one the token pinned.
        case fingerprintMismatch = "fingerprint_mismatch"
        /// A certificate does not chain to this CA or is not valid at the given time.
        case untrustedCertificate = "untrusted_certificate"
        /// Encoding a certificate, key or request failed (an internal error).
        case encodingFailed = "encoding_failed"
    }

    /// The stable error code.
    public let code: Code
    /// What was wrong and what is accepted instead.
    public let message: String

    /// Creates an error with a code and a readable message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `"<code>: <message>"`, e.g. `"invalid_token: token must have three parts …"`.
    public var description: String { "\(code.rawValue): \(message)" }
}
