import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import LumbungAPI
import LumbungCore
import NIOCore

/// `lumbung-bench footprint`: the host agent's resident memory and CPU, idle and with simulated
/// VMs, and its `/metrics` scrape time with many VMs — side by side, in the same run, with
/// `prometheus-node-exporter` on the same machine (issue 3, "Footprint").
struct Footprint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "footprint",
        abstract: "Agent RSS and CPU (idle, with simulated VMs) and /metrics scrape time, next to prometheus-node-exporter.",
        discussion: """
            Starts a controller in this process (temporary state directory, HTTPS with mutual TLS on 127.0.0.1), \
            declares one large host, enrolls a real lumbung-agent process for it with the simulated driver \
            (lumbung-agent join, then run, metrics on 127.0.0.1), and starts prometheus-node-exporter on a free \
            127.0.0.1 port with its default collectors. Then, sampling /proc/PID/status (VmRSS) and \
            /proc/PID/stat (utime+stime) of both processes over the same windows, with nothing scraping them: \
            (1) idle with no VMs, (2) idle with --vms VMs running on the host; then with --scrape-vms VMs it \
            times --scrapes sequential GET /metrics of each (keep-alive, after a warm-up). CPU is a percentage of \
            one core. Use release builds: swift build -c release --product lumbung-agent --product lumbung-bench.
            """)

    @Option(help: "The lumbung-agent executable (default: the one next to this executable).")
    var agent: String?

    @Option(help: "The node_exporter executable.")
    var nodeExporter = "/usr/bin/prometheus-node-exporter"

    @Option(help: "Seconds each idle window lasts.")
    var idleSeconds = 60

    @Option(help: "Seconds to let the agent settle after VMs changed, before a window starts.")
    var settleSeconds = 15

    @Option(help: "Simulated VMs on the host in the second window.")
    var vms = 100

    @Option(name: .customLong("scrape-vms"), help: "Simulated VMs on the host when /metrics is timed.")
    var scrapeVMs = 500

    @Option(help: "Timed scrapes of each exporter.")
    var scrapes = 200

    @Option(help: "The agent's heartbeat_seconds (the product's default is 10).")
    var heartbeatSeconds = 10

    @Option(help: "The agent's code_trim_seconds (default: the product's default, 600; 0 turns releasing code pages off).")
    var codeTrimSeconds: Int?

    @Option(help: "Directory under which the temporary state directory is made.")
    var stateParent = FileManager.default.temporaryDirectory.path

    @Flag(help: "Keep the temporary state directory (logs, configs).")
    var keepState = false

    @OptionGroup var output: ReportOutput

    func validate() throws {
        guard idleSeconds >= 5, settleSeconds >= 0, scrapes >= 10 else {
            throw ValidationError("--idle-seconds must be at least 5, --scrapes at least 10, --settle-seconds not negative")
        }
        guard vms >= 0, scrapeVMs >= vms, scrapeVMs <= 4000 else { throw ValidationError("need 0 ≤ --vms ≤ --scrape-vms ≤ 4000") }
        guard (1...3600).contains(heartbeatSeconds) else { throw ValidationError("--heartbeat-seconds must be between 1 and 3600") }
        if let codeTrimSeconds, codeTrimSeconds != 0 && !(60...86400).contains(codeTrimSeconds) {
            throw ValidationError("--code-trim-seconds must be 0 or between 60 and 86400")
        }
        guard FileManager.default.isExecutableFile(atPath: nodeExporter) else {
            throw ValidationError("\(nodeExporter) is not executable: apt-get install prometheus-node-exporter, or pass --node-exporter PATH")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "lumbung-bench")
        logger.logLevel = .warning
        let agentPath = agent ?? Self.siblingExecutable("lumbung-agent")
        guard FileManager.default.isExecutableFile(atPath: agentPath) else {
            throw ValidationError("\(agentPath) is not executable: build it (swift build -c release --product lumbung-agent) or pass --agent PATH")
        }
        let directory = stateParent + "/lumbung-footprint-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let progress: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        let options = FootprintOptions(
            nodeExporter: nodeExporter, idleSeconds: idleSeconds, settleSeconds: settleSeconds, vms: vms, scrapeVMs: scrapeVMs, scrapes: scrapes,
            heartbeatSeconds: heartbeatSeconds, codeTrimSeconds: codeTrimSeconds)
        let run = FootprintRun(
            options: options, agentPath: agentPath, directory: directory, progress: progress,
            controller: try await BenchController.start(directory: directory + "/controller", strategy: .binpack, logger: logger))
        let report: FootprintReport
        do {
            report = try await run.measure()
            await run.stop()
        } catch {
            await run.stop()
            progress("state kept in \(directory)")
            throw error
        }
        if !keepState { try? FileManager.default.removeItem(atPath: directory) }
        try output.emit(report, table: report.table())
    }

    /// `name` in the directory of this executable.
    static func siblingExecutable(_ name: String) -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent(name).path
    }
}

// MARK: - Measurements

/// One process over one window: resident memory (sampled every second) and CPU time.
struct ProcessWindow: Codable, Sendable {
    var seconds: Double
    /// (utime + stime) over the window ÷ wall time, in % of one core.
    var cpuPercent: Double
    /// VmRSS at the end of the window.
    var rssMiB: Double
    /// The largest VmRSS sampled during the window.
    var rssMaxMiB: Double
    var threads: Int
}

/// Where a process's resident memory is, from `/proc/PID/smaps` (MiB).
struct MemoryBreakdown: Codable, Sendable {
    /// Heap, stacks and other anonymous memory.
    var anonymous: Double = 0
    /// Pages of the executable file itself (code, read-only data, relocated data).
    var executable: Double = 0
    /// Pages of the Swift runtime and Foundation libraries (`…/lib/swift/linux/*.so`).
    var swiftLibraries: Double = 0
    /// Pages of other shared libraries (libc, libstdc++, libsystemd, …).
    var otherLibraries: Double = 0

    init() {}

    init?(pid: Int32) {
        guard let smaps = readProcFile("/proc/\(pid)/smaps") else { return nil }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
        var path = ""
        for line in smaps.split(separator: "\n") {
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard let first = fields.first else { continue }
            if first.contains("-") && !first.hasSuffix(":") {
                path = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
            } else if first == "Rss:", fields.count > 1, let kib = Double(fields[1]) {
                let mib = kib / 1024
                if !path.hasPrefix("/") {
                    anonymous += mib
                } else if path == exe {
                    executable += mib
                } else if path.contains("/lib/swift/") {
                    swiftLibraries += mib
                } else {
                    otherLibraries += mib
                }
            }
        }
    }
}

/// Sequential `GET /metrics` of one exporter (keep-alive), after a warm-up.
struct ScrapeRun: Codable, Sendable {
    var count: Int
    var latencyMilliseconds: Latency
    var bodyKiB: Double
    /// Sample lines (not comments) in one answer.
    var series: Int
    /// VmRSS of the exporter after the scrapes.
    var rssAfterMiB: Double
}

struct FootprintReport: Codable, Sendable {
    static let cpuGoalPercent = 0.5

    var date: String
    var cores: Int
    var loadAverageAtStart: String?
    var loadAverageAtEnd: String?
    var command: [String]
    var agentPath: String
    var nodeExporterPath: String
    var nodeExporterVersion: String
    var heartbeatSeconds: Int
    /// The agent's `code_trim_seconds` (nil: its default).
    var codeTrimSeconds: Int?
    /// The agent's VmRSS once it was ready, before its first release of code pages.
    var agentReadyRSSMiB: Double
    var idleSeconds: Int
    var vms: Int
    var scrapeVMs: Int
    /// Window 1: no VMs. Window 2: `vms` VMs. Both exporters measured over the same windows.
    var agentIdle: ProcessWindow
    var nodeExporterIdle: ProcessWindow
    var agentWithVMs: ProcessWindow
    var nodeExporterDuringVMs: ProcessWindow
    var agentScrape: ScrapeRun
    var nodeExporterScrape: ScrapeRun
    /// Where each process's resident memory was at the end of window 2.
    var agentMemory: MemoryBreakdown
    var nodeExporterMemory: MemoryBreakdown
    var rssGoalMet: Bool
    var cpuGoalMet: Bool

    mutating func evaluateGoals() {
        rssGoalMet = agentIdle.rssMiB <= nodeExporterIdle.rssMiB && agentWithVMs.rssMiB <= nodeExporterDuringVMs.rssMiB
        cpuGoalMet = agentIdle.cpuPercent < Self.cpuGoalPercent
    }

    func table() -> String {
        func mib(_ v: Double) -> String { format(ms: v) }
        func pct(_ v: Double) -> String { format(ms: v) + " %" }
        var out = "Lumbung agent footprint — \(date), \(cores) cores\n"
        out += "load average at start \(loadAverageAtStart ?? "?"), at end \(loadAverageAtEnd ?? "?")\n"
        let trim = codeTrimSeconds == 0 ? "code pages not released" : "code pages released 10 s after start, then every \(codeTrimSeconds ?? 600) s"
        out += "agent: \(agentPath) (simulated driver, heartbeat \(heartbeatSeconds) s, \(trim))\n"
        out += "node_exporter: \(nodeExporterPath) (\(nodeExporterVersion), default collectors)\n"
        out += "idle windows of \(idleSeconds) s with nothing scraping; CPU in % of one core\n\n"
        let rows: [[String]] = [
            ["RSS once ready, before releasing code pages (MiB)", mib(agentReadyRSSMiB), ""],
            ["RSS, idle, 0 VMs (MiB)", mib(agentIdle.rssMiB), mib(nodeExporterIdle.rssMiB)],
            ["  max sampled (MiB)", mib(agentIdle.rssMaxMiB), mib(nodeExporterIdle.rssMaxMiB)],
            ["CPU, idle, 0 VMs", pct(agentIdle.cpuPercent), pct(nodeExporterIdle.cpuPercent)],
            ["RSS, \(vms) VMs (MiB)", mib(agentWithVMs.rssMiB), mib(nodeExporterDuringVMs.rssMiB)],
            ["  max sampled (MiB)", mib(agentWithVMs.rssMaxMiB), mib(nodeExporterDuringVMs.rssMaxMiB)],
            ["  of it anonymous: heap, stacks", mib(agentMemory.anonymous), mib(nodeExporterMemory.anonymous)],
            ["  of it the executable's pages", mib(agentMemory.executable), mib(nodeExporterMemory.executable)],
            ["  of it Swift runtime + Foundation .so", mib(agentMemory.swiftLibraries), mib(nodeExporterMemory.swiftLibraries)],
            ["  of it other shared libraries", mib(agentMemory.otherLibraries), mib(nodeExporterMemory.otherLibraries)],
            ["CPU, idle, \(vms) VMs", pct(agentWithVMs.cpuPercent), pct(nodeExporterDuringVMs.cpuPercent)],
            ["threads", "\(agentWithVMs.threads)", "\(nodeExporterDuringVMs.threads)"],
            [
                "/metrics p50 / p99 / max (ms), \(scrapeVMs) VMs",
                "\(format(ms: agentScrape.latencyMilliseconds.p50)) / \(format(ms: agentScrape.latencyMilliseconds.p99)) / \(format(ms: agentScrape.latencyMilliseconds.max))",
                "\(format(ms: nodeExporterScrape.latencyMilliseconds.p50)) / \(format(ms: nodeExporterScrape.latencyMilliseconds.p99)) / \(format(ms: nodeExporterScrape.latencyMilliseconds.max))",
            ],
            ["/metrics size (KiB) / series", "\(format(ms: agentScrape.bodyKiB)) / \(agentScrape.series)", "\(format(ms: nodeExporterScrape.bodyKiB)) / \(nodeExporterScrape.series)"],
            ["RSS after \(agentScrape.count) scrapes, \(scrapeVMs) VMs (MiB)", mib(agentScrape.rssAfterMiB), mib(nodeExporterScrape.rssAfterMiB)],
        ]
        out += Report.grid(["", "lumbung-agent", "node_exporter"], rows)
        out += "\ngoal RSS ≤ node_exporter's (idle and with \(vms) VMs): \(rssGoalMet ? "met" : "MISSED")\n"
        out += "goal idle CPU < \(format(ms: Self.cpuGoalPercent)) %: \(cpuGoalMet ? "met" : "MISSED") (agent \(pct(agentIdle.cpuPercent)) idle, \(pct(agentWithVMs.cpuPercent)) with \(vms) VMs)\n"
        return out
    }
}

/// A whole /proc file: read to EOF (they report size 0, and a single sized read can stop at the
/// first page of e.g. smaps).
func readProcFile(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}

/// A process as /proc shows it.
struct ProcStat {
    var rssKiB: Int
    var threads: Int
    /// utime + stime in clock ticks.
    var ticks: Int

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    init?(pid: Int32) {
        guard let status = readProcFile("/proc/\(pid)/status"), let stat = readProcFile("/proc/\(pid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        func field(_ name: String) -> Int? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.flatMap { $0.split(whereSeparator: \.isWhitespace).dropFirst().first }
                .flatMap { Int($0) }
        }
        // Fields after "(comm)": state is field 3, utime 14, stime 15 (proc(5)).
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 12, let utime = Int(rest[11]), let stime = Int(rest[12]), let rss = field("VmRSS") else { return nil }
        rssKiB = rss
        threads = field("Threads") ?? 0
        ticks = utime + stime
    }
}

// MARK: - One run

/// What one run measures with.
struct FootprintOptions: Sendable {
    var nodeExporter: String
    var idleSeconds: Int
    var settleSeconds: Int
    var vms: Int
    var scrapeVMs: Int
    var scrapes: Int
    var heartbeatSeconds: Int
    var codeTrimSeconds: Int?
}

/// The controller, the agent and node_exporter of one run; ``stop()`` ends them all.
final class FootprintRun: @unchecked Sendable {
    let options: FootprintOptions
    let agentPath: String
    let directory: String
    let progress: @Sendable (String) -> Void
    let controller: BenchController
    let agentProcess = Process()
    let exporterProcess = Process()
    let hostID: HostID = "bench-node"
    let opds: [OPDID] = (1...5).map { OPDID(rawValue: "opd-\($0)") }
    let agentMetricsPort = freeLoopbackPort()
    let exporterPort = freeLoopbackPort()

    init(options: FootprintOptions, agentPath: String, directory: String, progress: @escaping @Sendable (String) -> Void, controller: BenchController) {
        self.options = options
        self.agentPath = agentPath
        self.directory = directory
        self.progress = progress
        self.controller = controller
    }

    func measure() async throws -> FootprintReport {
        let loadAtStart = loadAverage()
        let admin = try LumbungClient(baseURL: controller.baseURL, credentials: try await controller.services.localCredentials(for: "admin"))
        for opd in opds {
            _ = try await admin.createOPD(CreateOPDBody(id: opd, displayName: "OPD \(opd)", quota: Fixtures.largeQuota))
        }
        // A host large enough for every simulated VM; the agent's simulated driver models the same size.
        let added = try await admin.addHost(
            AddHostBody(id: hostID, capacity: HostCapacity(cpus: 4096, memory: .tib(16), pools: ["ssd": .tib(1024)])))
        let config = directory + "/agent.yaml"
        try """
            controller: \(controller.baseURL)
            driver: simulated
            state: \(directory)/agent-state
            heartbeat_seconds: \(options.heartbeatSeconds)
            metrics_listen: 127.0.0.1:\(agentMetricsPort)\(options.codeTrimSeconds.map { "\ncode_trim_seconds: \($0)" } ?? "")
            simulated:
              cpus: 4096
              memory: 16TiB
              pools: {ssd: 1024TiB}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let joined = try await runToExit(agentPath, ["join", "--controller", controller.baseURL, "--token", added.joinToken, "--config", config, "--state", directory + "/agent-state"])
        guard joined.code == 0 else { throw BenchError("lumbung-agent join failed: \(joined.err)") }
        try start(agentProcess, agentPath, ["run", "--config", config], log: directory + "/agent.log")
        try start(exporterProcess, options.nodeExporter, ["--web.listen-address=127.0.0.1:\(exporterPort)"], log: directory + "/node-exporter.log")
        let version = (try? await runToExit(options.nodeExporter, ["--version"])).map { ($0.out + $0.err).split(separator: "\n").first.map(String.init) ?? "" } ?? ""
        progress("agent pid \(agentProcess.processIdentifier) (metrics :\(agentMetricsPort)), node_exporter pid \(exporterProcess.processIdentifier) (:\(exporterPort))")

        try await waitFor("the agent's host to be ready", seconds: 60) { try await admin.host(self.hostID).state == .ready }
        try await waitFor("node_exporter to answer", seconds: 30) { (try? await self.scrape(self.exporterPort)) != nil }
        try await waitFor("the agent's /metrics to answer", seconds: 30) { (try? await self.scrape(self.agentMetricsPort)) != nil }
        // Before the agent's first release of code pages (10 s after its start).
        let startup = ProcStat(pid: agentProcess.processIdentifier).map { Double($0.rssKiB) / 1024 } ?? 0
        progress("agent RSS once ready: \(format(ms: startup)) MiB")

        progress("settling \(options.settleSeconds) s, then window 1: idle, no VMs, \(options.idleSeconds) s")
        try await Task.sleep(for: .seconds(options.settleSeconds))
        let idle = try await window()
        progress("  agent \(format(ms: idle[0].cpuPercent)) % CPU, \(format(ms: idle[0].rssMiB)) MiB; node_exporter \(format(ms: idle[1].cpuPercent)) %, \(format(ms: idle[1].rssMiB)) MiB")

        try await allocate(upTo: options.vms, admin: admin)
        progress("settling \(options.settleSeconds) s, then window 2: idle, \(options.vms) VMs, \(options.idleSeconds) s")
        try await Task.sleep(for: .seconds(options.settleSeconds))
        let loaded = try await window()
        let agentMemory = MemoryBreakdown(pid: agentProcess.processIdentifier) ?? MemoryBreakdown()
        let exporterMemory = MemoryBreakdown(pid: exporterProcess.processIdentifier) ?? MemoryBreakdown()
        progress("  agent \(format(ms: loaded[0].cpuPercent)) % CPU, \(format(ms: loaded[0].rssMiB)) MiB; node_exporter \(format(ms: loaded[1].cpuPercent)) %, \(format(ms: loaded[1].rssMiB)) MiB")

        try await allocate(upTo: options.scrapeVMs, admin: admin)
        try await Task.sleep(for: .seconds(min(options.settleSeconds, 5)))
        progress("timing \(options.scrapes) scrapes of each with \(options.scrapeVMs) VMs")
        let agentScrape = try await timeScrapes(port: agentMetricsPort, pid: agentProcess.processIdentifier)
        guard agentScrape.series >= options.scrapeVMs * 6 else {
            throw BenchError("the agent's /metrics holds \(agentScrape.series) series, fewer than 6 per VM for \(options.scrapeVMs) VMs")
        }
        let exporterScrape = try await timeScrapes(port: exporterPort, pid: exporterProcess.processIdentifier)

        var report = FootprintReport(
            date: ISO8601DateFormatter().string(from: Date()), cores: ProcessInfo.processInfo.activeProcessorCount,
            loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAverage(), command: CommandLine.arguments, agentPath: agentPath,
            nodeExporterPath: options.nodeExporter, nodeExporterVersion: version, heartbeatSeconds: options.heartbeatSeconds,
            codeTrimSeconds: options.codeTrimSeconds, agentReadyRSSMiB: startup,
            idleSeconds: options.idleSeconds, vms: options.vms, scrapeVMs: options.scrapeVMs, agentIdle: idle[0], nodeExporterIdle: idle[1],
            agentWithVMs: loaded[0], nodeExporterDuringVMs: loaded[1], agentScrape: agentScrape, nodeExporterScrape: exporterScrape,
            agentMemory: agentMemory, nodeExporterMemory: exporterMemory, rssGoalMet: false, cpuGoalMet: false)
        report.evaluateGoals()
        return report
    }

    /// Both processes over the same window, sampled every second.
    func window() async throws -> [ProcessWindow] {
        let pids = [agentProcess.processIdentifier, exporterProcess.processIdentifier]
        let clock = ContinuousClock()
        let start = clock.now
        let first = try pids.map { pid in
            guard let s = ProcStat(pid: pid) else { throw BenchError("process \(pid) is gone") }
            return s
        }
        var maxRSS = first.map(\.rssKiB)
        var last = first
        for k in 1...options.idleSeconds {
            try await Task.sleep(until: start + .seconds(k), clock: clock)
            for (i, pid) in pids.enumerated() {
                guard let s = ProcStat(pid: pid) else { throw BenchError("process \(pid) exited during the window") }
                maxRSS[i] = max(maxRSS[i], s.rssKiB)
                last[i] = s
            }
        }
        let seconds = (clock.now - start).seconds
        return pids.indices.map { i in
            ProcessWindow(
                seconds: seconds, cpuPercent: Double(last[i].ticks - first[i].ticks) / ProcStat.ticksPerSecond / seconds * 100,
                rssMiB: Double(last[i].rssKiB) / 1024, rssMaxMiB: Double(maxRSS[i]) / 1024, threads: last[i].threads)
        }
    }

    /// Allocates VMs (1 vCPU, 128 MiB, 1 GiB disk) on the host until it holds `count`, and waits
    /// until the agent reported every one running.
    func allocate(upTo count: Int, admin: LumbungClient) async throws {
        let have = try await admin.listVMs().count
        guard count > have else { return }
        progress("allocating \(count - have) VMs (total \(count))")
        for i in have..<count {
            _ = try await admin.createVM(
                CreateVMBody(opd: opds[i % opds.count], vm: VMBody(name: "fp-\(i)", vcpu: 1, memory: .mib(128), disk: .gib(1), pool: "ssd")))
        }
        try await waitFor("\(count) VMs running", seconds: 120) {
            try await admin.listVMs().filter { $0.state == .running }.count == count
        }
    }

    func timeScrapes(port: Int) async throws -> (latencies: [Duration], body: String) {
        for _ in 0..<5 { _ = try await scrape(port) }
        var latencies: [Duration] = []
        var body = ""
        let clock = ContinuousClock()
        for _ in 0..<options.scrapes {
            let start = clock.now
            body = try await scrape(port)
            latencies.append(clock.now - start)
        }
        return (latencies, body)
    }

    func timeScrapes(port: Int, pid: Int32) async throws -> ScrapeRun {
        let (latencies, body) = try await timeScrapes(port: port)
        let series = body.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.count
        return ScrapeRun(
            count: latencies.count, latencyMilliseconds: Latency(latencies), bodyKiB: Double(body.utf8.count) / 1024, series: series,
            rssAfterMiB: Double(ProcStat(pid: pid)?.rssKiB ?? 0) / 1024)
    }

    /// One `GET /metrics` on 127.0.0.1 (the shared client keeps the connection alive).
    func scrape(_ port: Int) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else { throw BenchError("127.0.0.1:\(port)/metrics answered \(response.status)") }
        return String(buffer: body)
    }

    func waitFor(_ what: String, seconds: Int, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw BenchError("timed out after \(seconds) s waiting for \(what); logs in \(directory)")
    }

    func start(_ process: Process, _ path: String, _ args: [String], log: String) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// SIGTERM to both processes (waiting without blocking a cooperative thread), then the controller.
    func stop() async {
        for process in [agentProcess, exporterProcess] where process.processIdentifier > 0 && process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        await controller.stop()
    }
}

/// Runs a command to completion on its own thread (never blocking the cooperative pool).
func runToExit(_ path: String, _ args: [String]) async throws -> (code: Int32, out: String, err: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: path)
                p.arguments = args
                let out = Pipe()
                let err = Pipe()
                p.standardOutput = out
                p.standardError = err
                p.standardInput = FileHandle.nullDevice
                try p.run()
                let o = out.fileHandleForReading.readDataToEndOfFile()
                let e = err.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                continuation.resume(returning: (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self)))
            } catch {
                continuation.resume(throwing: error)
            }
        }.start()
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
