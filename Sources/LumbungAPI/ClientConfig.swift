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
import LumbungYAML

/// The CLI's configuration file (`~/.config/lumbung/config.yaml`, or `$LUMBUNG_CONFIG`):
/// the controller's URL and where the client's key, certificate and the controller's CA are.
///
/// Relative paths are relative to the folder of the config file. `lumbung login` writes it;
/// `lumbungd dev` writes one for the admin.
public struct ClientConfig: Codable, Sendable, Hashable {
    /// `https://host:7443`.
    public var controller: String
    /// PEM file of the client's certificate.
    public var certificate: String
    /// PEM file of the client's private key (mode 0600).
    public var key: String
    /// PEM file of the controller's CA.
    public var ca: String
    /// `lumbung://user/budi`, for display.
    public var identity: String?

    public init(controller: String, certificate: String, key: String, ca: String, identity: String? = nil) {
        self.controller = controller
        self.certificate = certificate
        self.key = key
        self.ca = ca
        self.identity = identity
    }

    /// The config path: `$LUMBUNG_CONFIG` when set, else `~/.config/lumbung/config.yaml`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let path = environment["LUMBUNG_CONFIG"], !path.isEmpty { return path }
        let home = environment["HOME"] ?? getpwuid(getuid()).map { String(cString: $0.pointee.pw_dir) } ?? "/root"
        return home + "/.config/lumbung/config.yaml"
    }

    /// Reads a config file.
    public static func load(path: String) throws(APIClientError) -> ClientConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .invalid("no configuration at \(path); log in first with: lumbung login --controller URL --token TOKEN")
        }
        do {
            return try YAMLDecoder().decode(ClientConfig.self, from: text)
        } catch {
            throw .invalid("the configuration at \(path) cannot be read: \(error)")
        }
    }

    /// Writes the config file and the three PEM files beside it (key with mode 0600).
    public static func write(
        path: String, controller: String, credentials: ClientCredentials, identity: String?
    ) throws(APIClientError) -> ClientConfig {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let fm = FileManager.default
        let config = ClientConfig(controller: controller, certificate: "client.crt", key: "client.key", ca: "ca.crt", identity: identity)
        do {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try writeFile(dir + "/client.key", credentials.privateKeyPEM, mode: 0o600)
            try writeFile(dir + "/client.crt", credentials.certificatePEM, mode: 0o644)
            try writeFile(dir + "/ca.crt", credentials.caPEM, mode: 0o644)
            try writeFile(path, try YAMLEncoder().encode(config), mode: 0o600)
        } catch {
            throw .invalid("cannot write the configuration at \(path): \(error)")
        }
        return config
    }

    private static func writeFile(_ path: String, _ text: String, mode: Int) throws {
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw APIClientError.invalid("cannot write \(tmp)")
        }
        if rename(tmp, path) != 0 {
            throw APIClientError.invalid("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Resolves a path of this config relative to the config file's folder.
    public func resolve(_ file: String, configPath: String) -> String {
        if file.hasPrefix("/") { return file }
        return URL(fileURLWithPath: configPath).deletingLastPathComponent().appendingPathComponent(file).path
    }

    /// Reads the three PEM files.
    public func credentials(configPath: String) throws(APIClientError) -> ClientCredentials {
        func read(_ file: String, _ what: String) throws(APIClientError) -> String {
            let p = resolve(file, configPath: configPath)
            guard let text = try? String(contentsOfFile: p, encoding: .utf8) else {
                throw .invalid("cannot read the \(what) at \(p) (named in \(configPath))")
            }
            return text
        }
        return ClientCredentials(
            certificatePEM: try read(certificate, "certificate"), privateKeyPEM: try read(key, "private key"), caPEM: try read(ca, "CA"))
    }
}
