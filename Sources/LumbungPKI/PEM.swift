import SwiftASN1
import X509

/// Small helpers to move certificates between PEM text, DER bytes and
/// `Certificate` values (e.g. to hand NIOSSL what it needs).
public enum PEM {
    /// The PEM label of an X.509 certificate.
    public static let certificateLabel = "CERTIFICATE"

    /// Parses a PEM bundle (one or more `CERTIFICATE` blocks, in order).
    ///
    /// - Throws: `invalid_pem` if the text holds no PEM block, holds a block
    ///   that is not a certificate (e.g. a private key), or a block is corrupt;
    ///   `invalid_certificate` if a block does not decode as an X.509 certificate.
    public static func certificates(fromPEM pem: String) throws -> [Certificate] {
        try documents(fromPEM: pem).map { try certificate(fromDER: $0.derBytes) }
    }

    /// The DER bytes of a PEM text holding exactly one certificate.
    ///
    /// - Throws: `invalid_pem` if the text is not exactly one `CERTIFICATE`
    ///   block; `invalid_certificate` if it does not decode.
    public static func der(ofCertificatePEM pem: String) throws -> [UInt8] {
        let documents = try documents(fromPEM: pem)
        guard documents.count == 1 else {
            throw PKIError(
                .invalidPEM,
                "expected exactly one CERTIFICATE block, found \(documents.count); pass a single certificate, not a bundle"
            )
        }
        _ = try certificate(fromDER: documents[0].derBytes)
        return documents[0].derBytes
    }

    /// The DER bytes of a certificate.
    ///
    /// - Throws: `encoding_failed` if serialisation fails (not expected for
    ///   certificates produced or parsed by swift-certificates).
    public static func der(of certificate: Certificate) throws -> [UInt8] {
        do {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        } catch {
            throw PKIError(.encodingFailed, "could not DER-encode certificate: \(error)")
        }
    }

    /// One `-----BEGIN CERTIFICATE-----` block for a certificate.
    ///
    /// - Throws: `encoding_failed` if serialisation fails.
    public static func pem(of certificate: Certificate) throws -> String {
        PEMDocument(type: certificateLabel, derBytes: try der(of: certificate)).pemString
    }

    /// Concatenates certificates into a PEM bundle (newline-separated blocks),
    /// e.g. a leaf followed by the CA for a TLS certificate chain.
    ///
    /// - Throws: `encoding_failed` if serialisation fails.
    public static func bundle(_ certificates: [Certificate]) throws -> String {
        try certificates.map { try pem(of: $0) }.joined(separator: "\n") + "\n"
    }

    // MARK: internal

    static func documents(fromPEM pem: String) throws -> [PEMDocument] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw PKIError(
                .invalidPEM,
                "text is not valid PEM (\(error)); expected one or more -----BEGIN CERTIFICATE----- blocks"
            )
        }
        guard !documents.isEmpty else {
            throw PKIError(.invalidPEM, "no PEM block found; expected one or more -----BEGIN CERTIFICATE----- blocks")
        }
        for document in documents where document.discriminator != certificateLabel {
            throw PKIError(
                .invalidPEM,
                "found a '\(document.discriminator)' PEM block; only CERTIFICATE blocks are accepted here"
            )
        }
        return documents
    }

    static func certificate(fromDER der: [UInt8]) throws -> Certificate {
        do {
            return try Certificate(derEncoded: der)
        } catch {
            throw PKIError(.invalidCertificate, "PEM block does not decode as an X.509 certificate: \(error)")
        }
    }
}
