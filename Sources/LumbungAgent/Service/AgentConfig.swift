#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import LumbungAPI
import LumbungCore
import LumbungYAML

/// The agent's configuration file (`/etc/lumbung/agent.yaml`; see `agent/agent.yaml`).
public struct AgentConfig: Codable, Sendable, Hashable {
    /// `https://dc.example.go.id:7443`.
    public var controller: String
    /// State directory: key, certificate, CA, last desired state, VM runtime files.
    public var state: String = "/var/lib/lumbung-agent"
    /// `real` (cgroups, QEMU, loop volumes) or `simulated` (no side effects; dev mode and load simulation only).
    public var driver: String = "real"
    /// Seconds between heartbeat reports.
    public var heartbeatSeconds: Int = 10
    /// Prometheus `/metrics` listen address.
    public var metricsListen: String = "0.0.0.0:9465"
    /// PEM certificate (chain) for HTTPS on `/metrics`; with ``metricsTLSKey``. Unset: plain HTTP.
    public var metricsTLSCertificate: String?
    /// PEM private key of ``metricsTLSCertificate``.
    public var metricsTLSKey: String?
    /// PEM CA that scrapers' client certificates must chain to (mutual TLS); unset: none asked.
    public var metricsTLSClientCA: String?
    /// Storage pools of this host: name → directory.
    public var pools: [String: String] = [:]
    /// Size of a simulated host (driver `simulated` only).
    public var simulated: SimulatedHost?
    /// Directory of base images VMs may name (driver `real`).
    public var images: String?
    /// QEMU accelerator: `auto` (KVM when it can really run a guest, else TCG), `kvm` or `tcg`.
    public var accel: String = "auto"
    /// Seconds a stopping VM gets for its ACPI power-off before QEMU is told to quit.
    public var stopTimeoutSeconds: Int = 60
    /// cgroup filesystem root (v1 or v2 is detected).
    public var cgroupRoot: String = "/sys/fs/cgroup"
    /// The agent's subtree under each hierarchy: `auto` (default; under systemd on cgroup v2
    /// the unit's delegated group, else `lumbung`, see ``CgroupSubtree``) or a fixed path.
    public var cgroupSubpath: String = "auto"
    /// Seconds between releases of the agent's mappings of code pages it no longer runs
    /// (``CodePages``); the first is 10 s after start. 0 turns it off.
    public var codeTrimSeconds: Int = 600

    /// A simulated host's size.
    public struct SimulatedHost: Codable, Sendable, Hashable {
        public var cpus: Int
        public var memory: String
        public var pools: [String: String]
        /// Base image names the simulated host claims to have (default `debian-12`, `ubuntu-24.04`).
        public var images: [String]?
    }

    /// The images a simulated host claims to have.
    public func simulatedImages(path: String = "config") throws -> Set<String> {
        var out = Set<String>()
        for image in simulated?.images ?? SimulatedHostDriver.defaultImages.sorted() {
            do { out.insert(try ImageName.validate(image)) } catch { throw AgentError("\(path): simulated image: \(error)") }
        }
        return out
    }

    public init(controller: String, state: String, driver: String) {
        self.controller = controller
        self.state = state
        self.driver = driver
    }

    private enum CodingKeys: String, CodingKey {
        case controller, state, driver, heartbeatSeconds = "heartbeat_seconds", metricsListen = "metrics_listen", pools, simulated, images, accel
        case cgroupRoot = "cgroup_root", cgroupSubpath = "cgroup_subpath", stopTimeoutSeconds = "stop_timeout_seconds"
        case metricsTLSCertificate = "metrics_tls_certificate", metricsTLSKey = "metrics_tls_key", metricsTLSClientCA = "metrics_tls_client_ca"
        case codeTrimSeconds = "code_trim_seconds"
    }

    /// The keys the config accepts.
    public static let knownKeys: [String] = [
        "controller", "state", "driver", "heartbeat_seconds", "metrics_listen", "pools", "simulated", "images", "accel",
        "cgroup_root", "cgroup_subpath", "stop_timeout_seconds", "metrics_tls_certificate", "metrics_tls_key", "metrics_tls_client_ca",
        "code_trim_seconds",
    ]

    public init(from decoder: any Decoder) throws {
        let unknown = try ConfigKeys.unknown(in: decoder, accepted: Self.knownKeys)
        if !unknown.isEmpty {
            throw AgentError("unknown key(s) \(unknown.joined(separator: ", ")); accepted keys: \(Self.knownKeys.joined(separator: ", "))")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        controller = try c.decode(String.self, forKey: .controller)
        state = try c.decodeIfPresent(String.self, forKey: .state) ?? "/var/lib/lumbung-agent"
        driver = try c.decodeIfPresent(String.self, forKey: .driver) ?? "real"
        heartbeatSeconds = try c.decodeIfPresent(Int.self, forKey: .heartbeatSeconds) ?? 10
        metricsListen = try c.decodeIfPresent(String.self, forKey: .metricsListen) ?? "0.0.0.0:9465"
        pools = try c.decodeIfPresent([String: String].self, forKey: .pools) ?? [:]
        simulated = try c.decodeIfPresent(SimulatedHost.self, forKey: .simulated)
        images = try c.decodeIfPresent(String.self, forKey: .images)
        accel = try c.decodeIfPresent(String.self, forKey: .accel) ?? "auto"
        cgroupRoot = try c.decodeIfPresent(String.self, forKey: .cgroupRoot) ?? "/sys/fs/cgroup"
        cgroupSubpath = try c.decodeIfPresent(String.self, forKey: .cgroupSubpath) ?? "auto"
        stopTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .stopTimeoutSeconds) ?? 60
        metricsTLSCertificate = try c.decodeIfPresent(String.self, forKey: .metricsTLSCertificate)
        metricsTLSKey = try c.decodeIfPresent(String.self, forKey: .metricsTLSKey)
        metricsTLSClientCA = try c.decodeIfPresent(String.self, forKey: .metricsTLSClientCA)
        codeTrimSeconds = try c.decodeIfPresent(Int.self, forKey: .codeTrimSeconds) ?? 600
    }

    /// Reads and checks a config file; errors name the file and the field.
    public static func load(path: String) throws -> AgentConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AgentError("cannot read \(path); write it with 'lumbung-agent join --config \(path) …' or see agent/agent.yaml")
        }
        let config: AgentConfig
        do {
            config = try YAMLDecoder().decode(AgentConfig.self, from: text)
        } catch {
            throw AgentError("\(path): \(error)")
        }
        try config.validate(path: path)
        return config
    }

    /// Checks values; errors say what would be accepted.
    public func validate(path: String) throws {
        guard driver == "real" || driver == "simulated" else { throw AgentError("\(path): driver must be real or simulated, not '\(driver)'") }
        guard (1...3600).contains(heartbeatSeconds) else { throw AgentError("\(path): heartbeat_seconds must be between 1 and 3600") }
        for (name, dir) in pools {
            guard Name.isValid(name) else { throw AgentError("\(path): pool name '\(name)' must be 1–63 of a–z, 0–9, '-'") }
            guard dir.hasPrefix("/") else { throw AgentError("\(path): pool \(name) must be an absolute directory, not '\(dir)'") }
        }
        if driver == "simulated" {
            _ = try simulatedCapacity(path: path)
        }
        guard codeTrimSeconds == 0 || (60...86400).contains(codeTrimSeconds) else {
            throw AgentError("\(path): code_trim_seconds must be 0 (off) or between 60 and 86400, not \(codeTrimSeconds)")
        }
        guard (1...3600).contains(stopTimeoutSeconds) else { throw AgentError("\(path): stop_timeout_seconds must be between 1 and 3600") }
        guard QEMUAccelSetting(rawValue: accel) != nil else { throw AgentError("\(path): accel must be auto, kvm or tcg, not '\(accel)'") }
        if (metricsTLSCertificate == nil) != (metricsTLSKey == nil) {
            throw AgentError("\(path): metrics_tls_certificate and metrics_tls_key go together: give both for HTTPS on /metrics, or neither for plain HTTP")
        }
        if metricsTLSClientCA != nil && metricsTLSCertificate == nil {
            throw AgentError("\(path): metrics_tls_client_ca needs metrics_tls_certificate and metrics_tls_key (client certificates are checked only over HTTPS)")
        }
        if driver == "real" && pools.isEmpty {
            throw AgentError("\(path): the real driver needs at least one pool (pools: {ssd: /srv/lumbung/ssd})")
        }
    }

    /// The simulated host's capacity.
    public func simulatedCapacity(path: String = "config") throws -> HostCapacity {
        let sim = simulated ?? SimulatedHost(cpus: 32, memory: "128GiB", pools: ["ssd": "4TiB", "hdd": "20TiB"])
        guard sim.cpus >= 1 && sim.cpus <= VCPU.absurd else { throw AgentError("\(path): simulated.cpus must be 1–\(VCPU.absurd)") }
        var pools: [PoolName: ByteSize] = [:]
        for (name, size) in sim.pools {
            guard Name.isValid(name) else { throw AgentError("\(path): simulated pool name '\(name)' is invalid") }
            pools[PoolName(rawValue: name)] = try ByteSize.parse(size, what: "\(path): simulated pool \(name)")
        }
        return HostCapacity(cpus: sim.cpus, memory: try ByteSize.parse(sim.memory, what: "\(path): simulated.memory"), pools: pools)
    }

    /// HTTPS settings for `/metrics`, loaded and checked now (errors name the file), or nil for plain HTTP.
    public func metricsTLS() throws -> MetricsServer.TLS? {
        guard let certificate = metricsTLSCertificate, let key = metricsTLSKey else { return nil }
        return try MetricsServer.TLS(certificateChainPEMFile: certificate, privateKeyPEMFile: key, clientCAPEMFile: metricsTLSClientCA)
    }

    /// YAML text of this config.
    public func yaml() throws -> String { try YAMLEncoder().encode(self) }
}

extension AgentConfig {
    /// Builds the real Linux host driver (cgroups, QEMU, loop volumes) from this config.
    public func linuxDriver(logger: Logger) throws -> LinuxHostDriver {
        var poolPaths: [PoolName: String] = [:]
        for (name, dir) in pools {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            poolPaths[PoolName(rawValue: name)] = dir
        }
        let imageDir = images ?? state + "/images"
        try FileManager.default.createDirectory(atPath: imageDir, withIntermediateDirectories: true)
        let layout = try CgroupDriver.detect(root: cgroupRoot)
        let subtree = CgroupSubtree.resolve(
            configured: cgroupSubpath, layout: layout, ownV2Cgroup: CgroupDriver.ownV2Cgroup(),
            underSystemd: ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil)
        let limits = try CgroupDriver(layout: layout, subPath: subtree.subPath, fs: SysCgroupFS(), logger: logger)
        if let delegated = subtree.moveProcessesOutOf {
            let moved = try limits.moveProcesses(outOf: delegated, into: "agent")
            logger.info("using the cgroup subtree systemd delegated to this unit", metadata: ["cgroup.delegated": "\(delegated)", "cgroup.moved_pids": "\(moved)"])
        }
        logger.info("cgroup layout", metadata: ["cgroup.layout": "\(layout)", "cgroup.subpath": "\(subtree.subPath)"])
        let qemu = QEMUDriver(
            config: QEMUConfig(
                stateDirectory: state, imageDirectory: imageDir, poolDirectories: poolPaths, accel: QEMUAccelSetting(rawValue: accel) ?? .auto,
                stopTimeout: .seconds(stopTimeoutSeconds)),
            limits: limits, logger: logger)
        let volumes = LoopVolumeDriver(pools: poolPaths)
        let driver = LinuxHostDriver(
            vms: qemu, volumes: volumes, limits: limits, pools: poolPaths, imageDirectory: imageDir, stopTimeout: .seconds(stopTimeoutSeconds))
        try driver.adoptAll()
        return driver
    }
}
