import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// A certificate issued together with a freshly generated private key
/// (the controller's own TLS server certificate).
public struct IssuedCredential: Hashable, Sendable, CustomStringConvertible {
    /// The leaf certificate, one PEM block.
    public let certificatePEM: String
    /// The leaf's ECDSA P-256 private key, PKCS#8 PEM (`PRIVATE KEY`).
    public let privateKeyPEM: String
    /// The serial number as lowercase hex, leading zeros kept.
    public let serialHex: String
    /// Start of validity as written in the certificate (whole seconds).
    public let notBefore: Date
    /// End of validity as written in the certificate (whole seconds).
    public let notAfter: Date

    /// Serial and validity; never the private key.
    public var description: String {
        "IssuedCredential(serial: \(serialHex), notBefore: \(notBefore), notAfter: \(notAfter))"
    }
}

/// A client certificate issued from a certificate signing request.
public struct IssuedCertificate: Hashable, Sendable {
    /// The leaf certificate, one PEM block.
    public let certificatePEM: String
    /// The serial number as lowercase hex, leading zeros kept.
    public let serialHex: String
    /// Start of validity as written in the certificate (whole seconds).
    public let notBefore: Date
    /// End of validity as written in the certificate (whole seconds).
    public let notAfter: Date
}

/// The controller's certificate authority: an ECDSA P-256 key and its
/// self-signed CA certificate.
///
/// It issues the controller's TLS server certificate and the client
/// certificates of users and hosts (from their CSRs). It performs no I/O and
/// never reads the clock: persisting ``certificatePEM`` / ``privateKeyPEM`` is
/// the caller's job, and every time-dependent call takes `now`.
public struct CertificateAuthority: Sendable, CustomStringConvertible {
    /// How far before `now` issued certificates start being valid, to
    /// tolerate clocks that run behind the controller's (5 minutes).
    public static let clockSkewAllowance: Duration = .seconds(300)

    /// The CA certificate.
    public let certificate: Certificate
    /// The CA certificate, one PEM block (what clients and NIOSSL trust).
    public let certificatePEM: String
    /// The CA private key, PKCS#8 PEM (`PRIVATE KEY`). Keep it secret.
    public let privateKeyPEM: String
    /// `sha256:` + lowercase hex SHA-256 of the CA certificate's DER.
    public let fingerprint: String

    let privateKey: P256.Signing.PrivateKey
    let keyIdentifier: ArraySlice<UInt8>

    /// Subject and fingerprint; never the private key.
    public var description: String {
        "CertificateAuthority(subject: \(certificate.subject), fingerprint: \(fingerprint))"
    }

    // MARK: creating and loading

    /// Creates a new CA: a fresh ECDSA P-256 key and a self-signed certificate
    /// with `CN=<commonName>`, critical BasicConstraints CA (path length 0),
    /// critical KeyUsage keyCertSign + cRLSign and a SubjectKeyIdentifier,
    /// valid from `now − 5 min` to `now + lifetime`.
    ///
    /// - Throws: `invalid_name` for an empty or over-long common name;
    ///   `invalid_lifetime` if `lifetime` is under one second.
    public static func create(
        commonName: String,
        now: Date,
        lifetime: Duration = .seconds(10 * 365 * 86400)
    ) throws -> CertificateAuthority {
        try ServerNames.validateCommonName(commonName)
        let seconds = try lifetimeSeconds(lifetime)
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate: Certificate
        do {
            let name = try DistinguishedName { CommonName(commonName) }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            }
            certificate = try Certificate(
                version: .v3,
                serialNumber: randomSerialNumber(),
                publicKey: publicKey,
                notValidBefore: now - skewSeconds,
                notValidAfter: now + seconds,
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key)
            )
        } catch {
            throw PKIError(.encodingFailed, "could not build the CA certificate: \(error)")
        }
        return try CertificateAuthority(certificateDER: PEM.der(of: certificate), certificate: certificate, key: key)
    }

    /// Loads a CA from its PEM certificate and PEM private key (PKCS#8
    /// `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, ECDSA P-256).
    ///
    /// - Throws: `invalid_pem` / `invalid_certificate` for a bad certificate,
    ///   `invalid_key` for a bad or non-P-256 key, `key_mismatch` if the key
    ///   does not belong to the certificate, `invalid_ca` if the certificate
    ///   is not a CA (BasicConstraints CA and, if present, KeyUsage keyCertSign).
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        let der = try PEM.der(ofCertificatePEM: certificatePEM)
        let certificate = try PEM.certificate(fromDER: der)
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        } catch {
            throw PKIError(
                .invalidKey,
                "CA private key is not a PEM ECDSA P-256 key; expected a 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY' (SEC1) block"
            )
        }
        try self.init(certificateDER: der, certificate: certificate, key: key)
    }

    private init(certificateDER: [UInt8], certificate: Certificate, key: P256.Signing.PrivateKey) throws {
        guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
            throw PKIError(.keyMismatch, "the private key does not belong to the CA certificate; pass the key the certificate was created with")
        }
        let constraints: BasicConstraints?
        let usage: KeyUsage?
        let ski: SubjectKeyIdentifier?
        do {
            constraints = try certificate.extensions.basicConstraints
            usage = try certificate.extensions.keyUsage
            ski = try certificate.extensions.subjectKeyIdentifier
        } catch {
            throw PKIError(.invalidCertificate, "CA certificate has a corrupt extension: \(error)")
        }
        guard case .isCertificateAuthority = constraints else {
            throw PKIError(.invalidCA, "certificate is not a CA (BasicConstraints cA=true is required); pass the CA certificate, not a leaf")
        }
        if let usage, !usage.keyCertSign {
            throw PKIError(.invalidCA, "CA certificate's KeyUsage lacks keyCertSign, so it may not sign certificates")
        }
        self.certificate = certificate
        self.certificatePEM = PEMDocument(type: PEM.certificateLabel, derBytes: certificateDER).pemString
        self.privateKeyPEM = key.pemRepresentation
        self.fingerprint = Self.fingerprint(ofDER: certificateDER)
        self.privateKey = key
        self.keyIdentifier = ski?.keyIdentifier ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
    }

    // MARK: fingerprints

    /// `sha256:` + lowercase hex SHA-256 of the given DER bytes.
    public static func fingerprint(ofDER der: [UInt8]) -> String {
        "sha256:" + sha256Hex(der)
    }

    /// The fingerprint of the single certificate in `pem` (same format as ``fingerprint``).
    ///
    /// - Throws: `invalid_pem` / `invalid_certificate`.
    public static func fingerprint(ofCertificatePEM pem: String) throws -> String {
        fingerprint(ofDER: try PEM.der(ofCertificatePEM: pem))
    }

    // MARK: issuing

    /// Issues a TLS server certificate (for the controller) with a new P-256 key.
    ///
    /// `names` are DNS names or IP literals: an IPv4/IPv6 literal becomes an
    /// IP SAN, anything else must be a DNS name (lowercased; `*.` wildcard
    /// allowed) and becomes a DNS SAN. The certificate has EKU serverAuth and
    /// clientAuth, KeyUsage digitalSignature, and an AuthorityKeyIdentifier.
    /// Validity is `now − 5 min` to `now + lifetime`, cut at the CA's own expiry.
    ///
    /// - Throws: `invalid_name`, `invalid_lifetime`, `ca_expired`.
    public func issueServerCertificate(
        commonName: String,
        names: [String],
        now: Date,
        lifetime: Duration
    ) throws -> IssuedCredential {
        try ServerNames.validateCommonName(commonName)
        let generalNames = try ServerNames.generalNames(names)
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate = try issueLeaf(
            publicKey: publicKey,
            commonName: commonName,
            subjectAlternativeNames: generalNames,
            usages: [.serverAuth, .clientAuth],
            now: now,
            lifetime: lifetime
        )
        return IssuedCredential(
            certificatePEM: try PEM.pem(of: certificate),
            privateKeyPEM: key.pemRepresentation,
            serialHex: PKIIdentity.serialHex(of: certificate),
            notBefore: certificate.notValidBefore,
            notAfter: certificate.notValidAfter
        )
    }

    /// Signs a client's CSR into a client certificate for `identity`.
    ///
    /// The CSR's self-signature must verify (proof that the requester holds
    /// the key) and its key must be ECDSA P-256. Everything else the CSR asks
    /// for (subject, extensions) is ignored: the subject is `CN=<identity
    /// name>`, the only SAN is the identity URI, EKU clientAuth, KeyUsage
    /// digitalSignature, with an AuthorityKeyIdentifier and a random 20-byte
    /// serial. Validity is `now − 5 min` to `now + lifetime`, cut at the CA's
    /// own expiry.
    ///
    /// - Throws: `invalid_identity`, `invalid_lifetime`, `ca_expired`,
    ///   `invalid_csr` (not a PEM CSR), `bad_signature`, `unsupported_key`.
    public func sign(csrPEM: String, identity: PKIIdentity, lifetime: Duration, now: Date) throws -> IssuedCertificate {
        let identity = try identity.validated()
        guard csrPEM.utf8.count <= 64 * 1024 else {
            throw PKIError(.invalidCSR, "CSR is larger than 64 KiB; send one PEM 'CERTIFICATE REQUEST' block")
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw PKIError(.invalidCSR, "text is not a PEM certificate signing request (\(error)); send one 'CERTIFICATE REQUEST' block")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw PKIError(.badSignature, "the CSR's signature does not verify with its own public key; create the CSR with the private key it names")
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil else {
            throw PKIError(.unsupportedKey, "the CSR's key is \(csr.publicKey); only ECDSA P-256 keys are accepted")
        }
        let certificate = try issueLeaf(
            publicKey: csr.publicKey,
            commonName: identity.name,
            subjectAlternativeNames: [.uniformResourceIdentifier(identity.uri)],
            usages: [.clientAuth],
            now: now,
            lifetime: lifetime
        )
        return IssuedCertificate(
            certificatePEM: try PEM.pem(of: certificate),
            serialHex: PKIIdentity.serialHex(of: certificate),
            notBefore: certificate.notValidBefore,
            notAfter: certificate.notValidAfter
        )
    }

    // MARK: verifying

    /// Checks that `certificate` was issued by this CA and is within its
    /// validity period (and the CA's) at `now`, per RFC 5280 path validation.
    /// It does not check key usages or the identity.
    ///
    /// - Throws: `untrusted_certificate` saying why the chain failed.
    public func verify(_ certificate: Certificate, now: Date) async throws {
        var verifier = Verifier(rootCertificates: CertificateStore([self.certificate])) {
            RFC5280Policy(fixedExpiryValidationTime: now)
        }
        switch await verifier.validate(leaf: certificate, intermediates: CertificateStore()) {
        case .validCertificate:
            return
        case .couldNotValidate(let failures):
            let reasons = failures.map { "\($0.policyFailureReason)" }
            throw PKIError(
                .untrustedCertificate,
                reasons.isEmpty
                    ? "certificate was not issued by this CA (\(fingerprint)) or carries an unsupported critical extension"
                    : "certificate does not validate against this CA at \(now): " + reasons.joined(separator: "; ")
            )
        }
    }

    // MARK: internal

    static let skewSeconds = TimeInterval(clockSkewAllowance.components.seconds)

    func issueLeaf(
        publicKey: Certificate.PublicKey,
        commonName: String,
        subjectAlternativeNames: [GeneralName],
        usages: [ExtendedKeyUsage.Usage],
        now: Date,
        lifetime: Duration
    ) throws -> Certificate {
        let seconds = try Self.lifetimeSeconds(lifetime)
        guard now < certificate.notValidAfter else {
            throw PKIError(.caExpired, "the CA certificate expired at \(certificate.notValidAfter); create or load a current CA before issuing")
        }
        let notAfter = min(now + seconds, certificate.notValidAfter)
        do {
            let subject = try DistinguishedName { CommonName(commonName) }
            let eku = try ExtendedKeyUsage(usages)
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                eku
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: keyIdentifier)
                SubjectAlternativeNames(subjectAlternativeNames)
            }
            return try Certificate(
                version: .v3,
                serialNumber: Self.randomSerialNumber(),
                publicKey: publicKey,
                notValidBefore: now - Self.skewSeconds,
                notValidAfter: notAfter,
                issuer: certificate.subject,
                subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(privateKey)
            )
        } catch {
            throw PKIError(.encodingFailed, "could not build the certificate: \(error)")
        }
    }

    /// A random positive 20-byte serial (first byte 0x01...0x7f, so the DER
    /// integer is exactly 20 bytes and never needs a sign byte).
    static func randomSerialNumber() -> Certificate.SerialNumber {
        var rng = SystemRandomNumberGenerator()
        var bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[0] = UInt8.random(in: 1...0x7f, using: &rng)
        return Certificate.SerialNumber(bytes: bytes)
    }

    static func lifetimeSeconds(_ lifetime: Duration) throws -> TimeInterval {
        let (seconds, attoseconds) = lifetime.components
        let total = Double(seconds) + Double(attoseconds) * 1e-18
        guard total >= 1 else {
            throw PKIError(.invalidLifetime, "certificate lifetime must be at least 1 second, got \(lifetime)")
        }
        return total
    }
}
