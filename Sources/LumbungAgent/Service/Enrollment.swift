#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungAPI
import LumbungCore
import LumbungPKI
import X509

/// Joining the data center and keeping the host's certificate fresh.
public enum Enrollment {
    /// What `join` established.
    public struct Joined: Sendable {
        public var host: HostID
        public var identity: String
        public var notAfter: Date
    }

    /// Joins with a one-time host token: pins the controller by the CA fingerprint in the token,
    /// makes the key on this host (it never leaves), sends a CSR, stores key/cert/CA with mode 0600.
    public static func join(controller: String, token: String, state: AgentStateDirectory) async throws -> Joined {
        let parsed: EnrollmentToken
        do {
            parsed = try EnrollmentToken.parse(token)
        } catch {
            throw AgentError("the join token cannot be read: \(error)")
        }
        let insecure = try LumbungClient(baseURL: controller, caPEM: nil)
        let ca = try await insecure.fetchCA()
        let fingerprint = try CertificateAuthority.fingerprint(ofCertificatePEM: ca.caPEM)
        guard EnrollmentToken.constantTimeEquals(fingerprint, parsed.caFingerprint) else {
            throw AgentError(
                "the controller at \(controller) presents CA \(fingerprint), but the token pins \(parsed.caFingerprint): refusing to join (wrong controller or a man in the middle)")
        }
        let key = ClientKey.generate()
        let csr = try key.makeCSR(commonName: "lumbung-agent")
        let pinned = try LumbungClient(baseURL: controller, caPEM: ca.caPEM)
        let response = try await pinned.enroll(EnrollRequest(token: parsed.secret, csr: csr, kind: "host"))
        let identity = try PKIIdentity(uri: response.identity)
        guard case .host(let name) = identity else {
            throw AgentError("the controller issued \(response.identity), not a host identity")
        }
        try state.save(ClientCredentials(certificatePEM: response.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: response.ca))
        return Joined(host: HostID(rawValue: name), identity: response.identity, notAfter: response.notAfter)
    }

    /// The host named by the stored certificate.
    public static func host(of credentials: ClientCredentials) throws -> HostID {
        guard let cert = try PEM.certificates(fromPEM: credentials.certificatePEM).first else {
            throw AgentError("the stored certificate is empty")
        }
        guard case .host(let name) = try PKIIdentity.of(certificate: cert) else {
            throw AgentError("the stored certificate is not a host certificate")
        }
        return HostID(rawValue: name)
    }

    /// Renews the certificate when 2/3 of its life have passed; returns the new credentials or nil.
    public static func renewIfDue(client: LumbungClient, credentials: ClientCredentials, state: AgentStateDirectory, now: Date) async throws -> ClientCredentials? {
        guard let cert = try PEM.certificates(fromPEM: credentials.certificatePEM).first, CertificateRenewal.isDue(cert, now: now) else {
            return nil
        }
        let key = ClientKey.generate()
        let response = try await client.renew(RenewRequest(csr: try key.makeCSR(commonName: "lumbung-agent")))
        let renewed = ClientCredentials(certificatePEM: response.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: response.ca)
        try state.save(renewed)
        return renewed
    }
}
