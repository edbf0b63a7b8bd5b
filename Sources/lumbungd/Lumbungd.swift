import ArgumentParser
import Foundation
import Logging
import LumbungAPI
import LumbungAgent
import LumbungController
import LumbungCore
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

@main
struct Lumbungd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumbungd",
        abstract: "The Lumbung controller: one data center's capacity, OPD quotas and allocations.",
        subcommands: [Init.self, Run.self, Dev.self, Backup.self, Restore.self])
}

/// `--listen ADDR:PORT`.
struct ListenAddress: ExpressibleByArgument, Sendable {
    var host: String
    var port: Int
    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }
    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    static var defaultValueDescription: String { "0.0.0.0:7443" }
}

struct CommonRunOptions: ParsableArguments {
    @Option(help: "Listen address (ADDR:PORT).")
    var listen: ListenAddress = ListenAddress(host: "0.0.0.0", port: 7443)

    @Option(help: "Seconds without a report before a host is unreachable.")
    var heartbeatTimeout: Int = 40

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Placement strategy while the built-in policy set runs: binpack (fill hosts before using the next) or spread. A policy directory sets its own (placement.yaml).")
    var strategy: String = "binpack"

    @Option(help: "Days an undecided request lives before it expires. Default: the policy set's request_expiry_days.")
    var requestTTLDays: Int?

    @Option(help: "Policy directory (see policies/README.md); reloaded on SIGHUP and 'lumbung policy reload'. Default: the built-in set.")
    var policies: String?

    @Option(help: "Plain-HTTP listener for Prometheus /metrics (ADDR:PORT, e.g. 127.0.0.1:9464), or 'off' (default).")
    var metricsListen: String = "off"

    func apply(to config: inout ControllerConfig) {
        config.policyDirectory = policies.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        config.ledger.heartbeatTimeout = .seconds(heartbeatTimeout)
        // Look for silent hosts every quarter of the timeout (at most every 5 s), so a host is
        // marked unreachable close to the configured time also when the timeout is short.
        config.sweepInterval = .milliseconds(min(5000, max(250, heartbeatTimeout * 250)))
        config.ledger.strategy = PlacementStrategy(rawValue: strategy) ?? .binpack
        config.ledger.requestTTL = requestTTLDays.map { .seconds($0 * 86400) }
    }

    func validate() throws {
        guard heartbeatTimeout >= 1 && heartbeatTimeout <= 86400 else {
            throw ValidationError("--heartbeat-timeout must be between 1 and 86400 seconds")
        }
        guard PlacementStrategy(rawValue: strategy) != nil else {
            throw ValidationError("--strategy must be binpack or spread")
        }
        if let requestTTLDays, !(1...3650).contains(requestTTLDays) {
            throw ValidationError("--request-ttl-days must be between 1 and 3650")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }
}

extension Lumbungd {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the state directory: CA, server certificate, database, first admin token.")

        @Option(help: "State directory.")
        var state: String = "/var/lib/lumbung"

        @Option(help: "Name of the data center, e.g. pemkab-wonosobo.")
        var name: String

        @Option(help: "Comma-separated DNS names and IP addresses clients use to reach the controller.")
        var address: String

        func run() async throws {
            let addresses = address.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            do {
                let result = try StateDirectory.initialize(directory: state, name: name, addresses: addresses)
                print("Initialized controller \(result.identity.name) in \(state)")
                print("CA fingerprint: \(result.caFingerprint)")
                print("")
                print("First admin login token (one use, expires \(ISO8601DateFormatter().string(from: result.adminTokenExpiresAt))):")
                print("  \(result.adminToken)")
                print("")
                print("Next:")
                print("  lumbungd run --state \(state)")
                print("  lumbung login --controller https://\(addresses.first ?? "127.0.0.1"):7443 --token \(result.adminToken)")
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the controller (HTTPS with mutual TLS).")

        @Option(help: "State directory (made by 'lumbungd init').")
        var state: String = "/var/lib/lumbung"

        @Option(help: "Configuration file (see controller/controller.yaml); flags given on the command line win.")
        var config: String?

        @OptionGroup var options: CommonRunOptions

        func run() async throws {
            var state = self.state
            var options = self.options
            var file: ControllerFile?
            if let config {
                do {
                    file = try ControllerFile.load(config)
                    try file?.apply(state: &state, options: &options)
                } catch let error as ValidationError {
                    printError(error.message)
                    throw ExitCode(2)
                }
            }
            let logger = bootstrap(options.logLevel)
            let identity: ControllerIdentity
            do {
                identity = try StateDirectory.loadIdentity(StatePaths(state))
            } catch {
                printError("cannot read \(state): \(error); create it with: lumbungd init --state \(state) --name NAME --address HOST")
                throw ExitCode(1)
            }
            var config = ControllerConfig(name: identity.name, stateDirectory: state)
            config.host = options.listen.host
            config.port = options.listen.port
            options.apply(to: &config)
            do {
                try file?.lifetimes(into: &config)
            } catch let error as ValidationError {
                printError(error.message)
                throw ExitCode(2)
            }
            try await serve(config: config, logger: logger, metricsListen: options.metricsListen, prepare: { _ in })
        }
    }

    struct Dev: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Everything on one machine for a newcomer: state in a local folder, sample OPDs and hosts, admin credentials ready.")

        @Option(help: "State directory for the dev controller.")
        var state: String = "./lumbung-dev"

        @Flag(help: "Do not start the local agent (with the simulated driver) for node-01.")
        var noAgent = false

        @OptionGroup var options: CommonRunOptions

        func run() async throws {
            let logger = bootstrap(options.logLevel)
            let paths = StatePaths(state)
            let fresh = !FileManager.default.fileExists(atPath: paths.database)
            if fresh {
                do {
                    _ = try StateDirectory.initialize(directory: state, name: "dev", addresses: ["localhost", "127.0.0.1", "::1"])
                } catch {
                    printError("\(error)")
                    throw ExitCode(1)
                }
            }
            var config = ControllerConfig(name: "dev", stateDirectory: state)
            let listen = options.listen.port == 7443 && options.listen.host == "0.0.0.0" ? ListenAddress(host: "127.0.0.1", port: 7443) : options.listen
            config.host = listen.host
            config.port = listen.port
            options.apply(to: &config)
            let stateDir = URL(fileURLWithPath: state).standardizedFileURL.path
            let hostForURL = listen.host == "0.0.0.0" || listen.host == "::" ? "127.0.0.1" : listen.host
            let url = "https://\(hostForURL.contains(":") ? "[\(hostForURL)]" : hostForURL):\(listen.port)"
            let configPath = stateDir + "/admin/config.yaml"
            var extra: [any Service] = []
            if !noAgent {
                extra.append(DevAgentService(controller: url, adminConfig: configPath, stateDirectory: stateDir + "/agent-node-01", logger: logger))
            }
            try await serve(config: config, logger: logger, metricsListen: options.metricsListen, extraServices: extra) { services in
                if fresh { try await DevSeed.seed(services) }
                if !FileManager.default.fileExists(atPath: configPath) {
                    let credentials = try await services.localCredentials(for: "admin")
                    _ = try ClientConfig.write(path: configPath, controller: url, credentials: credentials, identity: "lumbung://user/admin")
                }
                say("""
                    Lumbung dev controller on https://\(listen.host):\(listen.port) (state in \(stateDir))
                    Sample OPDs: dinkes, disdukcapil, bappeda. Sample hosts: node-01 runs a local agent with the
                    SIMULATED driver (no real VMs: it models the host, for trying Lumbung out); node-02 is declared
                    only (no agent: VMs placed there stay 'scheduled').

                    In another shell:
                      export LUMBUNG_CONFIG=\(configPath)
                      lumbung capacity
                      lumbung opd list
                      lumbung vm create --opd dinkes --name simpus-db --vcpu 4 --memory 8GiB --disk 100GiB --pool ssd --app simpus
                      lumbung user add budi --opd dinkes --role member
                    """)
            }
        }
    }
}

enum DevSeed {
    static func seed(_ services: ControllerServices) async throws {
        let system = Caller.system
        let opds: [(String, String, Int, Int64)] = [
            ("dinkes", "Dinas Kesehatan", 32, 64), ("disdukcapil", "Dinas Kependudukan dan Pencatatan Sipil", 16, 32),
            ("bappeda", "Badan Perencanaan Pembangunan Daerah", 8, 16),
        ]
        for (id, name, vcpu, memGiB) in opds {
            _ = try await services.ledger.createOPD(
                CreateOPDBody(
                    id: OPDID(rawValue: id), displayName: name,
                    quota: ResourceVector(vcpu: vcpu, memory: .gib(memGiB), storage: ["ssd": .tib(2), "hdd": .tib(4)], vms: 20, volumes: 20)),
                by: system)
        }
        for (id, rack) in [("node-01", "a"), ("node-02", "b")] {
            _ = try await services.ledger.declareHost(
                AddHostBody(
                    id: HostID(rawValue: id), capacity: HostCapacity(cpus: 32, memory: .gib(128), pools: ["ssd": .tib(4), "hdd": .tib(20)]),
                    reserved: HostCapacity(cpus: 2, memory: .gib(8)), labels: ["rack": rack]),
                by: system)
        }
    }
}

/// Writes a line to standard output at once (stdout is block-buffered when redirected).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data("error: \(text)\n".utf8))
}

/// The Prometheus registry every metric of this process goes to.
let metricsRegistry = PrometheusCollectorRegistry()

func bootstrap(_ level: String) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: level) ?? .info
        return handler
    }
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metricsRegistry))
    var logger = Logger(label: "lumbungd")
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}

func serve(
    config: ControllerConfig, logger: Logger, metricsListen: String = "off", extraServices: [any Service] = [],
    prepare: @escaping @Sendable (ControllerServices) async throws -> Void
) async throws {
    let assembly: Controller.Assembly
    var extra = extraServices
    do {
        assembly = try Controller.assemble(
            config: config, logger: logger,
            onListening: { port in Systemd.ready(status: "serving \(config.name) on port \(port) (mutual TLS)") })
        if metricsListen != "off" {
            extra.append(try ControllerMetricsServer.make(listen: metricsListen, registry: metricsRegistry, logger: logger))
        }
    } catch {
        printError("cannot start the controller: \(error)")
        throw ExitCode(1)
    }
    do {
        try await prepare(assembly.services)
    } catch {
        printError("\(error)")
        throw ExitCode(1)
    }
    let reloader = PolicyReloadOnSIGHUP(policies: assembly.services.policies, logger: logger)
    let group = ServiceGroup(
        configuration: .init(
            services: (assembly.all + extra + [reloader, SystemdNotifier()]).map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
    try await group.run()
}

/// Reloads the policy directory on SIGHUP (an invalid set is refused and the running one kept).
struct PolicyReloadOnSIGHUP: Service {
    let policies: PolicyService
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                logger.info("SIGHUP: reloading the policy set")
                _ = await policies.reload(by: .system)
            }
        }
    }
}

/// `lumbungd dev`'s local agent for node-01, with the **simulated** driver (no side effects).
/// Joins once (a host token is issued through the admin API), then runs the agent's loops.
struct DevAgentService: Service {
    let controller: String
    let adminConfig: String
    let stateDirectory: String
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            let state = AgentStateDirectory(stateDirectory)
            while !Task.isCancelled {
                do {
                    if (try? state.credentials()) == nil {
                        let config = try ClientConfig.load(path: adminConfig)
                        let admin = try LumbungClient(baseURL: controller, credentials: try config.credentials(configPath: adminConfig))
                        let token = try await admin.hostToken("node-01")
                        _ = try await Enrollment.join(controller: controller, token: token.joinToken, state: state)
                    }
                    let capacity = HostCapacity(cpus: 32, memory: .gib(128), pools: ["ssd": .tib(4), "hdd": .tib(20)])
                    let credentials = try state.credentials()
                    var agentLogger = logger
                    agentLogger[metadataKey: "host.id"] = "node-01"
                    let agent = Agent(
                        client: try LumbungClient(baseURL: controller, credentials: credentials), driver: SimulatedHostDriver(capacity: capacity, images: SimulatedHostDriver.defaultImages),
                        state: state, settings: AgentSettings(host: "node-01"), logger: agentLogger)
                    logger.info("local agent for node-01 started (simulated driver)")
                    await agent.run()
                    return
                } catch {
                    try? await Task.sleep(for: .milliseconds(300))
                }
            }
        }
    }
}
