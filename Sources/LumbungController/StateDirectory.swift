import Foundation
import LumbungAPI
import LumbungCore
import LumbungPKI
import LumbungStore

/// Creates and reads the controller's state directory.
public enum StateDirectory {
    /// The result of `lumbungd init`.
    public struct Initialized: Sendable {
        public var identity: ControllerIdentity
        public var caFingerprint: String
        /// The first admin's one-time login token (user `admin`).
        public var adminToken: String
        public var adminTokenExpiresAt: Date
    }

    /// Creates the CA (ECDSA P-256), the server certificate for `addresses` (DNS names or IPs),
    /// the database, the first admin user and its one-time token. Refuses a directory that
    /// already holds a controller.
    public static func initialize(
        directory: String, name: String, addresses: [String], tokenTTL: Duration = .seconds(24 * 3600), now: Date = Date()
    ) throws -> Initialized {
        let paths = StatePaths(directory)
        let fm = FileManager.default
        if fm.fileExists(atPath: paths.caKey) || fm.fileExists(atPath: paths.database) {
            throw InitError("\(directory) already holds a controller (found \(paths.caKey) or \(paths.database)); use another --state or remove it")
        }
        _ = try Name.validate(name, what: "data center name")
        guard !addresses.isEmpty else { throw InitError("give at least one --address (DNS name or IP address clients use to reach the controller)") }
        for address in addresses where address.isEmpty || address.contains("/") || address.contains(" ") {
            throw InitError("address '\(address)' is not a DNS name or IP address")
        }
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let ca = try CertificateAuthority.create(commonName: "Lumbung CA \(name)", now: now)
        let server = try ca.issueServerCertificate(commonName: "lumbungd \(name)", names: addresses, now: now, lifetime: .seconds(5 * 365 * 86400))
        try writeFile(paths.caCertificate, ca.certificatePEM, mode: 0o644)
        try writeFile(paths.caKey, ca.privateKeyPEM, mode: 0o600)
        try writeFile(paths.serverCertificate, server.certificatePEM, mode: 0o644)
        try writeFile(paths.serverKey, server.privateKeyPEM, mode: 0o600)
        let identity = ControllerIdentity(name: name, addresses: addresses, createdAt: now)
        try writeFile(paths.identity, String(decoding: try StrictJSON.encode(identity), as: UTF8.self), mode: 0o644)

        let store = try Store(path: paths.database)
        defer { try? store.close() }
        let system = "lumbungd"
        try store.addUser(
            UserRecord(name: UserID(rawValue: "admin"), role: .admin, opd: nil, createdAt: now, revokedAt: nil),
            audit: AuditInput(at: now, actor: system, role: "admin", action: "user.add", target: "user:admin"))
        let token = EnrollmentToken.generate(caFingerprint: ca.fingerprint)
        let expires = now.addingTimeInterval(Double(tokenTTL.components.seconds))
        try store.issueToken(
            TokenRecord(hash: token.secretHash, role: .admin, subject: "admin", opd: nil, createdAt: now, expiresAt: expires, usedAt: nil, createdBy: system),
            audit: AuditInput(at: now, actor: system, role: "admin", action: "token.issue", target: "user:admin"))
        return Initialized(identity: identity, caFingerprint: ca.fingerprint, adminToken: token.encoded, adminTokenExpiresAt: expires)
    }

    /// Loads the CA of an initialized directory.
    public static func loadCA(_ paths: StatePaths) throws -> CertificateAuthority {
        try CertificateAuthority(certificatePEM: readFile(paths.caCertificate), privateKeyPEM: readFile(paths.caKey))
    }

    /// Loads the controller's identity record.
    public static func loadIdentity(_ paths: StatePaths) throws -> ControllerIdentity {
        let data = try Data(contentsOf: URL(fileURLWithPath: paths.identity))
        return try StrictJSON.decoder().decode(ControllerIdentity.self, from: data)
    }

    static func readFile(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw InitError("cannot read \(path); was the state directory made with 'lumbungd init'?")
        }
        return text
    }

    static func writeFile(_ path: String, _ text: String, mode: Int) throws {
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw InitError("cannot write \(path)")
        }
        guard rename(tmp, path) == 0 else { throw InitError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}

/// A state-directory problem, said in a sentence.
public struct InitError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
