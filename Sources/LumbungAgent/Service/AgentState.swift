#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LumbungAPI

/// The agent's files under its state directory (default `/var/lib/lumbung-agent`):
/// key and certificate (mode 0600), the controller's CA, and the last desired state, written
/// atomically so the agent keeps enforcing it while the controller is unreachable and after
/// a restart.
public struct AgentStateDirectory: Sendable {
    public var path: String
    public init(_ path: String) { self.path = path }

    public var key: String { path + "/agent.key" }
    public var certificate: String { path + "/agent.crt" }
    public var ca: String { path + "/ca.crt" }
    public var desired: String { path + "/desired.json" }

    /// Reads the credentials written by `lumbung-agent join`.
    public func credentials() throws -> ClientCredentials {
        func read(_ p: String) throws -> String {
            guard let text = try? String(contentsOfFile: p, encoding: .utf8) else {
                throw AgentError("cannot read \(p); has this host joined? (lumbung-agent join --controller URL --token TOKEN)")
            }
            return text
        }
        return ClientCredentials(certificatePEM: try read(certificate), privateKeyPEM: try read(key), caPEM: try read(ca))
    }

    /// Writes credentials atomically (key and certificate 0600).
    public func save(_ credentials: ClientCredentials) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Self.atomicWrite(key, Data(credentials.privateKeyPEM.utf8), mode: 0o600)
        try Self.atomicWrite(certificate, Data(credentials.certificatePEM.utf8), mode: 0o600)
        try Self.atomicWrite(ca, Data(credentials.caPEM.utf8), mode: 0o600)
    }

    /// The last desired state received, if any.
    public func loadDesired() -> DesiredState? {
        guard let data = FileManager.default.contents(atPath: desired) else { return nil }
        return try? StrictJSON.decoder().decode(DesiredState.self, from: data)
    }

    /// Persists a desired state atomically (write to a temporary file, fsync, rename).
    public func saveDesired(_ state: DesiredState) throws {
        try Self.atomicWrite(desired, try StrictJSON.encode(state), mode: 0o600)
    }

    static func atomicWrite(_ path: String, _ data: Data, mode: Int) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode_t(mode))
        guard fd >= 0 else { throw AgentError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { buf -> Bool in
            var offset = 0
            while offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        fchmod(fd, mode_t(mode))
        let synced = fsync(fd) == 0
        close(fd)
        guard ok, synced, rename(tmp, path) == 0 else {
            throw AgentError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// An agent-side problem, said in a sentence.
public struct AgentError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
