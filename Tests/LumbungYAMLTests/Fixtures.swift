import LumbungYAML

enum Fixtures {
    /// The real agent configuration, verbatim.
    static let agentYAML = """
        # /etc/lumbung/agent.yaml — configuration of lumbung-agent
        controller: https://dc.example.go.id:7443
        state: /var/lib/lumbung-agent
        driver: real
        heartbeat_seconds: 10
        metrics_listen: 0.0.0.0:9465
        pools:
          ssd: /srv/lumbung/ssd
          hdd: /srv/lumbung/hdd
        # images: /var/lib/lumbung-agent/images
        accel: auto
        cgroup_root: /sys/fs/cgroup
        cgroup_subpath: auto
        stop_timeout_seconds: 60
        simulated:
          cpus: 32
          memory: 128GiB
          pools: {ssd: 4TiB, hdd: 20TiB}
          images: [debian-12, ubuntu-24.04]   # base images it claims to have

        """

    /// What Yams' YAMLEncoder writes for the CLI config.
    static let yamsCLIConfig = """
        controller: https://127.0.0.1:7443
        certificate: client.crt
        key: client.key
        ca: ca.crt
        identity: lumbung://user/admin

        """
}

struct AgentConfig: Codable, Equatable {
    struct Simulated: Codable, Equatable {
        var cpus: Int
        var memory: String
        var pools: [String: String]
        var images: [String]
    }

    var controller: String
    var state: String
    var driver: String
    var heartbeat_seconds: Int
    var metrics_listen: String
    var pools: [String: String]
    var images: String?
    var accel: String
    var cgroup_root: String
    var cgroup_subpath: String
    var stop_timeout_seconds: Int
    var simulated: Simulated?
}

struct CLIConfig: Codable, Equatable {
    var controller: String
    var certificate: String
    var key: String
    var ca: String
    var identity: String
}

/// Parses and returns the root, failing the test on error or an empty document.
func parse(_ text: String) throws -> YAMLNode {
    guard let node = try YAMLNode.parse(text) else { throw TestFailure("document is empty") }
    return node
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The `debugDescription` of a `DecodingError`, or the error's description.
func decodingMessage(_ error: any Error) -> String {
    switch error as? DecodingError {
    case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .keyNotFound(_, let c)?, .dataCorrupted(let c)?:
        return c.debugDescription
    default:
        return "\(error)"
    }
}

