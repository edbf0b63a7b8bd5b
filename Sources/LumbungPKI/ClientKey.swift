import Crypto
import X509

/// A client's (CLI user's or agent's) ECDSA P-256 private key, used to make
/// the CSR sent at enrollment and renewal. The key never leaves the client.
public struct ClientKey: Sendable, CustomStringConvertible {
    let key: P256.Signing.PrivateKey

    private init(key: P256.Signing.PrivateKey) {
        self.key = key
    }

    /// Generates a new random P-256 key.
    public static func generate() -> ClientKey {
        ClientKey(key: P256.Signing.PrivateKey())
    }

    /// Loads a P-256 key from PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
    ///
    /// - Throws: `invalid_key`.
    public init(pem: String) throws {
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw PKIError(
                .invalidKey,
                "text is not a PEM ECDSA P-256 private key; expected a 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY' (SEC1) block"
            )
        }
    }

    /// The key as PKCS#8 PEM (`PRIVATE KEY`). Store it with mode 0600.
    public var privateKeyPEM: String { key.pemRepresentation }

    /// A PEM `CERTIFICATE REQUEST` with subject `CN=<commonName>`, signed by
    /// this key. (The CA decides the final subject from the enrollment token;
    /// the common name is informational.)
    ///
    /// - Throws: `invalid_name` for an empty or over-long common name;
    ///   `encoding_failed` if encoding fails.
    public func makeCSR(commonName: String) throws -> String {
        try ServerNames.validateCommonName(commonName)
        do {
            let csr = try CertificateSigningRequest(
                version: .v1,
                subject: DistinguishedName { CommonName(commonName) },
                privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes(),
                signatureAlgorithm: .ecdsaWithSHA256
            )
            return try csr.serializeAsPEM().pemString
        } catch {
            throw PKIError(.encodingFailed, "could not build the certificate signing request: \(error)")
        }
    }

    /// `true` when `certificate` certifies this key's public key (use it to
    /// pair a stored certificate with the key before presenting both in TLS).
    public func matches(_ certificate: Certificate) -> Bool {
        certificate.publicKey == Certificate.PublicKey(key.publicKey)
    }

    /// Names the key type only; never the key.
    public var description: String { "ClientKey(P-256)" }
}
