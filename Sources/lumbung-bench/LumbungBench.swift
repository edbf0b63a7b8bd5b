import ArgumentParser
import Foundation
import Logging
import LumbungCore
import Metrics
import NIOCore
import NIOPosix

/// `lumbung-bench`: benchmarks, not tests (they never run in CI). `speed` (the default): how
/// fast Lumbung decides placements in process, and how many durable allocations per second its
/// real HTTPS API takes from concurrent mutual-TLS clients, as the host count grows.
/// `footprint`: the host agent's memory and CPU next to prometheus-node-exporter's.
@main
struct LumbungBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumbung-bench",
        abstract: "Lumbung's benchmarks: controller speed (default) and the host agent's footprint.",
        subcommands: [Speed.self, Footprint.self],
        defaultSubcommand: Speed.self)
}

/// `lumbung-bench [speed]`: placement decisions per second in process and durable allocations
/// per second through the HTTPS API.
struct Speed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speed",
        abstract: "Measure placement decisions per second in process and durable allocations per second through the HTTPS API.",
        discussion: """
            For each host count: (a) builds a data center in memory (hosts of 48–96 CPUs, 256–512 GiB, \
            ssd and hdd pools, labels, ~2% cordoned, ~1% unreachable; VMs filling each host 15–70%) and \
            times DataCenter.decideVM and DataCenter.placeVM; (b) starts a controller in this process \
            (temporary state directory, real SQLite, every commit flushed before it is answered, HTTPS with mutual TLS on \
            127.0.0.1), declares the hosts and OPDs through the API, and lets concurrent clients, each \
            with its own admin certificate, allocate VMs (POST /v1/vms) as fast as they can. \
            Build and run in release: swift run -c release lumbung-bench. Progress goes to stderr.
            """)

    @Option(help: "Host counts to measure, comma-separated.")
    var hosts = CountList([100, 1000, 10000])

    @Option(help: "Host counts for the API part (default: the same as --hosts).")
    var apiHosts: CountList?

    @Option(help: "Number of OPDs (each with a large quota).")
    var opds = 50

    @Option(help: "Placement decisions timed per round, per host count.")
    var placements = 200_000

    @Option(help: "Timed rounds of in-process placement (the median round is reported).")
    var rounds = 3

    @Option(help: "Concurrent API clients, each with its own admin certificate.")
    var clients = 8

    @Option(help: "VMs allocated through the API per host count (measured).")
    var allocations = 4000

    @Option(help: "VMs allocated through the API before measuring, per host count.")
    var warmup = 200

    @Option(help: "VMs allocated through the ledger in process after the API run (diagnostic, no HTTP/TLS); 0 skips it.")
    var ledgerDirect = 2000

    @Option(help: "HTTP client of the measured API calls: raw (SwiftNIO + NIOSSL, one keep-alive mTLS connection per client) or ahc (AsyncHTTPClient, as the CLI).")
    var client: ClientKind = .raw

    @Option(help: "Placement strategy for both parts.")
    var strategy: StrategyOption = .binpack

    @Option(help: "The ledger's group-commit window in milliseconds (diagnostic; default: the controller's default, LedgerSettings.batchWindow).")
    var batchWindowMs: Double?

    @Option(help: "How the ledger waits for the WAL flush (diagnostic): pipelined (default: the next batch is decided and committed while the flush runs) or blocking (the ledger waits for each flush itself).")
    var flush: FlushMode = .pipelined

    @Option(help: "Where Swift tasks run (diagnostic): pool (default, as lumbungd: Swift's cooperative pool) or nio (SwiftNIO's event loops installed as the global executor, as some NIO servers do; measured slower here).")
    var executor: ExecutorOption = .pool

    @Option(help: "Directory under which each run's temporary state directory is made (it must be on a real disk for fsync to count).")
    var stateParent = FileManager.default.temporaryDirectory.path

    @Flag(help: "Keep the temporary state directories (default: removed).")
    var keepState = false

    @Option(help: "Seed of the generated data center and asks.")
    var seed: UInt64 = 1

    @Flag(help: "Skip the in-process placement part.")
    var skipPlacement = false

    @Flag(help: "Skip the HTTPS API part.")
    var skipAPI = false

    @OptionGroup var output: ReportOutput

    func validate() throws {
        guard !hosts.values.isEmpty, hosts.values.allSatisfy({ $0 > 0 && $0 <= 200_000 }) else {
            throw ValidationError("--hosts takes counts from 1 to 200000, e.g. 100,1000,10000")
        }
        if let apiHosts, apiHosts.values.contains(where: { $0 <= 0 || $0 > 200_000 }) {
            throw ValidationError("--api-hosts takes counts from 1 to 200000")
        }
        guard (1...999).contains(opds) else { throw ValidationError("--opds must be between 1 and 999") }
        guard placements > 0, rounds > 0 else { throw ValidationError("--placements and --rounds must be positive") }
        guard (1...256).contains(clients) else { throw ValidationError("--clients must be between 1 and 256") }
        guard allocations > 0, warmup >= 0, ledgerDirect >= 0 else {
            throw ValidationError("--allocations must be positive, --warmup and --ledger-direct not negative")
        }
    }

    func run() async throws {
        if executor == .nio { _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        MetricsSystem.bootstrap(LedgerProbe.shared)
        var logger = Logger(label: "lumbung-bench")
        logger.logLevel = .warning
        let progress: @Sendable (String) -> Void = { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        var report = Report(
            date: ISO8601DateFormatter().string(from: Date()), cores: ProcessInfo.processInfo.activeProcessorCount,
            loadAverageAtStart: loadAverage(), loadAverageAtEnd: nil,
            command: CommandLine.arguments, strategy: strategy.rawValue, opds: opds, placementsPerRound: placements, rounds: rounds,
            clients: clients, allocations: allocations, warmup: warmup, placement: [], api: [], placementGoalMet: nil,
            allocationGoalMet: nil)

        if !skipPlacement {
            progress("(a) placement in process: \(rounds) rounds of \(placements) decisions per host count")
            for count in hosts.values {
                report.placement.append(
                    InProcessBench.run(
                        hosts: count, opds: opds, placements: placements, rounds: rounds, strategy: strategy.strategy, seed: seed,
                        progress: progress))
            }
        }
        if !skipAPI {
            progress("(b) allocations through HTTPS + mTLS: \(clients) clients, \(allocations) allocations per host count")
            for count in (apiHosts ?? hosts).values {
                let options = APIBenchOptions(
                    hosts: count, opds: opds, clients: clients, allocations: allocations, warmup: warmup, ledgerDirect: ledgerDirect,
                    strategy: strategy.strategy, stateParent: stateParent, keepState: keepState, seed: seed, client: client,
                    batchWindow: batchWindowMs.map { .microseconds(Int64(($0 * 1000).rounded())) }, pipelinedFlush: flush == .pipelined)
                report.api.append(try await APIBench.run(options, logger: logger, progress: progress))
            }
        }

        report.loadAverageAtEnd = loadAverage()
        report.evaluateGoals()
        try output.emit(report, table: report.table())
    }
}

/// A comma-separated list of counts: `100,1000,10000` (underscores allowed: `10_000`).
struct CountList: ExpressibleByArgument, Sendable {
    var values: [Int]

    init(_ values: [Int]) { self.values = values }

    init?(argument: String) {
        var values: [Int] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            let text = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
            guard let n = Int(text) else { return nil }
            values.append(n)
        }
        self.values = values
    }

    var defaultValueDescription: String { values.map(String.init).joined(separator: ",") }
}

enum ExecutorOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case nio, pool
}

enum StrategyOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    case binpack, spread

    var strategy: PlacementStrategy {
        switch self {
        case .binpack: .binpack
        case .spread: .spread
        }
    }
}

extension ClientKind: ExpressibleByArgument {}
extension FlushMode: ExpressibleByArgument {}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}

/// `--output table|json` and `--json-file PATH`, shared by every benchmark.
struct ReportOutput: ParsableArguments {
    @Option(help: "Output: table or json (json on stdout; progress always on stderr).")
    var output: OutputFormat = .table

    @Option(help: "Also write the JSON report to this file.")
    var jsonFile: String?

    /// Prints the table or the JSON, and writes the JSON to `--json-file` when given.
    func emit<R: Encodable>(_ report: R, table: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(report)
        if let jsonFile { try json.write(to: URL(fileURLWithPath: jsonFile)) }
        switch output {
        case .table: print(table)
        case .json: print(String(decoding: json, as: UTF8.self))
        }
    }
}
