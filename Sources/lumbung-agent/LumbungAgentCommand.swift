import ArgumentParser
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
import Logging
import LumbungAPI
import LumbungAgent
import LumbungCore
import Metrics
import Prometheus
import ServiceLifecycle

@main
struct LumbungAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumbung-agent",
        abstract: "The Lumbung host agent: enroll once, then report usage and enforce what the controller allocated.",
        subcommands: [Join.self, Run.self])
}

extension LumbungAgentCommand {
    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enroll this host with a one-time join token (from 'lumbung host add').")

        @Option(help: "The controller, e.g. https://dc.example.go.id:7443.")
        var controller: String

        @Option(help: "The one-time join token.")
        var token: String

        @Option(help: "Config file to write.")
        var config: String = "/etc/lumbung/agent.yaml"

        @Option(help: "State directory (key, certificate, desired state).")
        var state: String = "/var/lib/lumbung-agent"

        @Option(help: "Driver: real (cgroups, QEMU, loop volumes) or simulated (no side effects; dev and load simulation only). Default: the config file's, else real.")
        var driver: String?

        func validate() throws {
            guard controller.hasPrefix("https://") else { throw ValidationError("--controller must be an https:// URL") }
            if let driver, driver != "real" && driver != "simulated" { throw ValidationError("--driver must be real or simulated") }
        }

        func run() async throws {
            do {
                let joined = try await Enrollment.join(controller: controller, token: token, state: AgentStateDirectory(state))
                // An existing config keeps everything it says; join sets the controller and state directory.
                var cfg = (try? AgentConfig.load(path: config)) ?? AgentConfig(controller: controller, state: state, driver: driver ?? "real")
                cfg.controller = controller
                cfg.state = state
                if let driver { cfg.driver = driver }
                let dir = URL(fileURLWithPath: config).deletingLastPathComponent().path
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try cfg.yaml().write(toFile: config, atomically: true, encoding: .utf8)
                print("Joined as \(joined.identity); certificate valid until \(joined.notAfter.formatted(.iso8601)) (renewed automatically).")
                print("Configuration: \(config). Start the agent: lumbung-agent run --config \(config)  (or systemctl enable --now lumbung-agent)")
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the agent: watch the desired state, reconcile, report, serve /metrics.")

        @Option(help: "Config file.")
        var config: String = "/etc/lumbung/agent.yaml"

        @Option(help: "Log level.")
        var logLevel: String = "info"

        func run() async throws {
            // Two malloc arenas instead of up to 8 per core: the agent's threads mostly wait, and
            // every arena keeps its own free pages resident.
            CodePages.limitHeapArenas(2)
            let cfg: AgentConfig
            do {
                cfg = try AgentConfig.load(path: config)
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            let level = Logger.Level(rawValue: logLevel) ?? .info
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            var logger = Logger(label: "lumbung-agent")
            logger.logLevel = level

            let stateDir = AgentStateDirectory(cfg.state)
            let driver: any HostDriver
            switch cfg.driver {
            case "simulated":
                driver = SimulatedHostDriver(capacity: try cfg.simulatedCapacity(path: config), images: try cfg.simulatedImages(path: config))
            default:
                do {
                    driver = try cfg.linuxDriver(logger: logger)
                } catch {
                    printError("error: cannot set up the host driver: \(error)")
                    throw ExitCode(1)
                }
            }
            let credentials = try stateDir.credentials()
            let host = try Enrollment.host(of: credentials)
            var settings = AgentSettings(host: host)
            settings.heartbeat = .seconds(cfg.heartbeatSeconds)
            let agent = Agent(
                client: try LumbungClient(baseURL: cfg.controller, credentials: credentials), driver: driver, state: stateDir, settings: settings,
                logger: logger)
            let metrics: MetricsServer
            do {
                metrics = try AgentMetrics.server(listen: cfg.metricsListen, tls: try cfg.metricsTLS(), registry: registry, driver: driver.kind, logger: logger)
            } catch {
                printError("error: \(config): \(error)")
                throw ExitCode(1)
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: AgentService(agent: agent, codeTrim: cfg.codeTrimSeconds, logger: logger)), .init(service: metrics)], gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            try await group.run()
        }
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Runs the agent's loops until graceful shutdown; tells systemd when ready and pings its watchdog.
struct AgentService: Service {
    let agent: Agent
    /// Seconds between releases of code pages (``CodePages``); 0: never.
    let codeTrim: Int
    let logger: Logger
    func run() async throws {
        Systemd.ready(status: "enforcing the desired state of \(agent.host)")
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await agent.run() }
                group.addTask { await Systemd.watchdogLoop() }
                if codeTrim > 0 { group.addTask { await releaseCodePages(first: .seconds(10), every: .seconds(codeTrim)) } }
                await group.waitForAll()
            }
        }
        Systemd.stopping()
    }

    /// Releases the mappings of code pages start-up ran and the steady state does not (see
    /// ``CodePages``): once a little after start, then periodically.
    func releaseCodePages(first: Duration, every: Duration) async {
        // Created before the first release, so scrapers see 0 rather than nothing.
        let releases = Counter(label: "lumbung_agent_code_page_releases_total")
        let releasedBytes = Gauge(label: "lumbung_agent_code_page_released_bytes")
        var wait = first
        while !Task.isCancelled {
            do { try await Task.sleep(for: wait) } catch { return }
            wait = every
            let before = CodePages.residentKiB()
            guard let done = CodePages.release() else { continue }
            CodePages.trimHeap()  // and the heap's free pages
            releases.increment()
            releasedBytes.record(done.releasedKiB * 1024)
            logger.debug(
                "released code page mappings",
                metadata: [
                    "mappings": "\(done.mappings)", "released_kib": "\(done.releasedKiB)", "failed": "\(done.failed)",
                    "rss_before_kib": "\(before ?? -1)", "rss_after_kib": "\(CodePages.residentKiB() ?? -1)",
                ])
        }
    }
}

/// The agent's `/metrics` endpoint: the Prometheus registry's text with HELP lines, over HTTP
/// or HTTPS (``MetricsServer``, SwiftNIO; no web framework, no Foundation).
enum AgentMetrics {
    static func server(
        listen: String, tls: MetricsServer.TLS?, registry: PrometheusCollectorRegistry, driver: String, logger: Logger
    ) throws -> MetricsServer {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw AgentError("metrics_listen '\(listen)' is not ADDR:PORT")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        Gauge(label: "lumbung_agent_build_info", dimensions: [("version", LumbungAgentModule.version), ("driver", driver)]).record(1)
        return MetricsServer(host: host, port: port, tls: tls, logger: logger) {
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return MetricHelp.annotate(utf8: buffer)
        }
    }
}
