import ArgumentParser
import Foundation
import LumbungAPI
import LumbungController
import Yams

/// `controller.yaml` (see `controller/controller.yaml`): the settings of `lumbungd run`.
/// Flags given on the command line win over the file. Unknown keys are refused.
struct ControllerFile: Decodable {
    var state: String?
    var listen: String?
    var policies: String?
    var heartbeatTimeoutSeconds: Int?
    var tokenTTLHours: Int?
    var userCertificateDays: Int?
    var agentCertificateDays: Int?
    var logLevel: String?
    var metricsListen: String?

    static let keys = [
        "state", "listen", "policies", "heartbeat_timeout_seconds", "token_ttl_hours", "user_certificate_days",
        "agent_certificate_days", "log_level", "metrics_listen",
    ]

    private enum CodingKeys: String, CodingKey {
        case state, listen, policies
        case heartbeatTimeoutSeconds = "heartbeat_timeout_seconds", tokenTTLHours = "token_ttl_hours"
        case userCertificateDays = "user_certificate_days", agentCertificateDays = "agent_certificate_days"
        case logLevel = "log_level", metricsListen = "metrics_listen"
    }

    init(from decoder: any Decoder) throws {
        let unknown = try ConfigKeys.unknown(in: decoder, accepted: Self.keys)
        if !unknown.isEmpty {
            throw ValidationError("unknown key(s) \(unknown.joined(separator: ", ")); accepted keys: \(Self.keys.joined(separator: ", "))")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        state = try c.decodeIfPresent(String.self, forKey: .state)
        listen = try c.decodeIfPresent(String.self, forKey: .listen)
        policies = try c.decodeIfPresent(String.self, forKey: .policies)
        heartbeatTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .heartbeatTimeoutSeconds)
        tokenTTLHours = try c.decodeIfPresent(Int.self, forKey: .tokenTTLHours)
        userCertificateDays = try c.decodeIfPresent(Int.self, forKey: .userCertificateDays)
        agentCertificateDays = try c.decodeIfPresent(Int.self, forKey: .agentCertificateDays)
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel)
        metricsListen = try c.decodeIfPresent(String.self, forKey: .metricsListen)
    }

    static func load(_ path: String) throws -> ControllerFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read \(path); see controller/controller.yaml for an example")
        }
        do {
            return try YAMLDecoder().decode(ControllerFile.self, from: text)
        } catch let error as ValidationError {
            throw ValidationError("\(path): \(error.message)")
        } catch {
            throw ValidationError("\(path): \(error)")
        }
    }

    /// True when `--name` (or `--name=…`) is on the command line.
    static func given(_ flag: String) -> Bool {
        CommandLine.arguments.contains { $0 == "--\(flag)" || $0.hasPrefix("--\(flag)=") }
    }

    /// Applies the file to the options where no flag was given; checks ranges.
    func apply(state: inout String, options: inout CommonRunOptions) throws {
        if let s = self.state, !Self.given("state") { state = s }
        if let l = listen, !Self.given("listen") {
            guard let address = ListenAddress(argument: l) else { throw ValidationError("listen '\(l)' is not ADDR:PORT") }
            options.listen = address
        }
        if let p = policies, !Self.given("policies") { options.policies = p }
        if let h = heartbeatTimeoutSeconds, !Self.given("heartbeat-timeout") { options.heartbeatTimeout = h }
        if let l = logLevel, !Self.given("log-level") { options.logLevel = l }
        if let m = metricsListen, !Self.given("metrics-listen") { options.metricsListen = m }
        try options.validate()
    }

    /// The certificate and token lifetimes, checked.
    func lifetimes(into config: inout ControllerConfig) throws {
        if let h = tokenTTLHours {
            guard (1...720).contains(h) else { throw ValidationError("token_ttl_hours must be 1–720, not \(h)") }
            config.tokenTTL = .seconds(h * 3600)
        }
        if let d = userCertificateDays {
            guard (1...825).contains(d) else { throw ValidationError("user_certificate_days must be 1–825, not \(d)") }
            config.userCertificateLifetime = .seconds(d * 86400)
        }
        if let d = agentCertificateDays {
            guard (1...825).contains(d) else { throw ValidationError("agent_certificate_days must be 1–825, not \(d)") }
            config.agentCertificateLifetime = .seconds(d * 86400)
        }
    }
}
