import Foundation
import Logging
import LumbungAPI
import LumbungController
import LumbungCore
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Latency percentiles of a set of calls, in milliseconds (nearest rank).
struct Latency: Codable, Sendable {
    var count: Int
    var mean: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double

    init(_ samples: [Duration]) {
        let ms = samples.map { $0.seconds * 1000 }.sorted()
        count = ms.count
        func rank(_ q: Double) -> Double {
            guard !ms.isEmpty else { return 0 }
            let r = Int((q * Double(ms.count)).rounded(.up)) - 1
            return ms[Swift.max(0, Swift.min(ms.count - 1, r))]
        }
        mean = ms.isEmpty ? 0 : ms.reduce(0, +) / Double(ms.count)
        p50 = rank(0.50)
        p90 = rank(0.90)
        p99 = rank(0.99)
        p999 = rank(0.999)
        self.max = ms.last ?? 0
    }
}

/// Concurrent durable allocations: their rate, latency and failures.
struct AllocationRun: Codable, Sendable {
    var concurrency: Int
    var attempted: Int
    var succeeded: Int
    var seconds: Double
    /// Succeeded allocations per second of wall time (first call started → last answer received).
    var perSecond: Double
    /// Every call, successful or not.
    var latencyMilliseconds: Latency
    /// Refused or failed calls by error code.
    var errors: [String: Int]
    /// The ledger's group commits during this phase.
    var ledger: LedgerStats?
    /// CPU time (user + system) of the whole process — clients and controller — during this
    /// phase (`getrusage`), and per succeeded allocation.
    var cpuSeconds: Double?
    var cpuMillisecondsPerAllocation: Double?
}

/// (b) Durable allocations through the real HTTPS API (mutual TLS), plus the same through the ledger directly.
struct APIResult: Codable, Sendable {
    var hosts: Int
    var cordonedHosts: Int
    var opds: Int
    var strategy: String
    /// The HTTP client of the measured calls (`raw`: SwiftNIO + NIOSSL; `ahc`: AsyncHTTPClient).
    var client: String?
    /// Declaring every host through the API (`POST /v1/hosts`, each also issues a join token), with `clients` concurrent clients.
    var hostSetupSeconds: Double
    var hostsDeclaredPerSecond: Double
    var warmupAllocations: Int
    /// `POST /v1/vms` by `clients` concurrent clients, each with its own admin certificate.
    var api: AllocationRun
    /// `Ledger.allocateVM` called in process by as many concurrent tasks: the same decision,
    /// group commit and fsync without HTTP, TLS and JSON (diagnostic; nil when skipped).
    var ledgerDirect: AllocationRun?
    /// Non-deleted VMs in the ledger after the run equal the acknowledged allocations.
    var verified: Bool
    /// VMs in the ledger after the run.
    var vmsInLedger: Int
    /// Resident memory of the whole process (benchmark clients + controller) after the run.
    var processRSSMiB: Double?
}

struct APIBenchOptions: Sendable {
    var hosts: Int
    var opds: Int
    var clients: Int
    var allocations: Int
    var warmup: Int
    var ledgerDirect: Int
    var strategy: PlacementStrategy
    var stateParent: String
    var keepState: Bool
    var seed: UInt64
    var client: ClientKind
    /// The ledger's group-commit window; nil keeps the controller's default.
    var batchWindow: Duration?
    /// ``LedgerSettings/pipelinedFlush``.
    var pipelinedFlush = true
}

/// `--flush`: how the ledger waits for the WAL flush.
enum FlushMode: String, Codable, Sendable, CaseIterable {
    case pipelined, blocking
}

/// The load generator's HTTP client for the measured allocations.
enum ClientKind: String, Codable, Sendable, CaseIterable {
    /// ``RawHTTPSClient``: SwiftNIO + NIOSSL, one keep-alive connection per client (default).
    case raw
    /// `LumbungClient` (AsyncHTTPClient), as the CLI uses it.
    case ahc
}

/// A controller running in this process: a fresh state directory, a real SQLite file, HTTPS with mutual TLS on 127.0.0.1.
final class BenchController: Sendable {
    let directory: String
    let assembly: Controller.Assembly
    let port: Int
    let group: ServiceGroup
    let runTask: Task<Void, any Error>
    var services: ControllerServices { assembly.services }
    var baseURL: String { "https://127.0.0.1:\(port)" }

    private init(directory: String, assembly: Controller.Assembly, port: Int, group: ServiceGroup, runTask: Task<Void, any Error>) {
        self.directory = directory
        self.assembly = assembly
        self.port = port
        self.group = group
        self.runTask = runTask
    }

    static func start(
        directory: String, strategy: PlacementStrategy, batchWindow: Duration? = nil, pipelinedFlush: Bool = true, logger: Logger
    ) async throws -> BenchController {
        _ = try StateDirectory.initialize(directory: directory, name: "bench-dc", addresses: ["localhost", "127.0.0.1"])
        var config = ControllerConfig(name: "bench-dc", stateDirectory: directory)
        config.host = "127.0.0.1"
        config.port = 0
        config.ledger.strategy = strategy
        if let batchWindow { config.ledger.batchWindow = batchWindow }
        config.ledger.pipelinedFlush = pipelinedFlush
        // Declared hosts stay `enrolled` (no agents here); keep the sweeper out of the measurement.
        config.ledger.heartbeatTimeout = .seconds(3600)
        config.sweepInterval = .seconds(3600)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let assembly = try Controller.assemble(config: config, logger: logger, onListening: { port in continuation.yield(port) })
        let group = ServiceGroup(services: assembly.all, logger: logger)
        let task = Task { try await group.run() }
        var port = 0
        for await p in stream {
            port = p
            break
        }
        guard port > 0 else { throw BenchError("the controller did not start listening") }
        return BenchController(directory: directory, assembly: assembly, port: port, group: group, runTask: task)
    }

    /// Graceful shutdown of the service group (the store closes last, checkpointing the WAL).
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await runTask.value
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum APIBench {
    static func run(_ o: APIBenchOptions, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws -> APIResult {
        let directory = o.stateParent + "/lumbung-bench-\(o.hosts)-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer {
            if !o.keepState { try? FileManager.default.removeItem(atPath: directory) }
        }
        let controller = try await BenchController.start(directory: directory, strategy: o.strategy, batchWindow: o.batchWindow, pipelinedFlush: o.pipelinedFlush, logger: logger)
        do {
            let result = try await measure(o, controller, progress: progress)
            await controller.stop()
            return result
        } catch {
            await controller.stop()
            throw error
        }
    }

    private static func measure(_ o: APIBenchOptions, _ controller: BenchController, progress: @escaping @Sendable (String) -> Void) async throws
        -> APIResult
    {
        let clock = ContinuousClock()
        let services = controller.services
        progress("  \(o.hosts) hosts: controller on \(controller.baseURL), state in \(controller.directory)")

        // Identities: the first admin, and one more admin user per further client, each with its own certificate
        // (AsyncHTTPClient pools connections per TLS configuration, so each client has its own connection).
        let adminCredentials = try await services.localCredentials(for: "admin")
        let admin = try LumbungClient(baseURL: controller.baseURL, credentials: adminCredentials)
        var clients = [admin]
        var credentialsList = [adminCredentials]
        for i in 1..<max(1, o.clients) {
            let name = UserID(rawValue: "bench-admin-\(i)")
            _ = try await admin.addUser(AddUserBody(name: name, role: .admin, opd: nil))
            let credentials = try await services.localCredentials(for: name.rawValue)
            credentialsList.append(credentials)
            clients.append(try LumbungClient(baseURL: controller.baseURL, credentials: credentials))
        }
        let pool = clients

        // OPDs with large quotas, through the API.
        let opdIDs = (0..<o.opds).map(Fixtures.opdID)
        try await concurrently(opdIDs, clients: pool) { client, _, id in
            _ = try await client.createOPD(CreateOPDBody(id: id, displayName: "OPD \(id)", quota: Fixtures.largeQuota))
        }

        // Hosts, through the API, by every client concurrently; then cordon the fixture's cordoned ones.
        let shapes = Fixtures.hostShapes(count: o.hosts, seed: o.seed)
        let setupStart = clock.now
        try await concurrently(shapes, clients: pool) { client, index, shape in
            _ = try await client.addHost(AddHostBody(id: shape.id, capacity: shape.capacity, reserved: shape.reserved, labels: shape.labels))
            if index > 0 && index % 1000 == 0 { progress("  \(o.hosts) hosts: \(index) hosts declared") }
        }
        let setupSeconds = (clock.now - setupStart).seconds
        let cordoned = shapes.filter(\.cordoned)
        try await concurrently(cordoned, clients: pool) { client, _, shape in
            _ = try await client.cordon(shape.id)
        }
        progress(
            "  \(o.hosts) hosts: declared through the API in \(format(seconds: setupSeconds)) s (\(format(rate: Double(o.hosts) / setupSeconds)) hosts/s), \(cordoned.count) cordoned"
        )

        // The measured calls' clients: one connection each, with the same certificates.
        let call: VMCall
        var raw: [RawHTTPSClient] = []
        switch o.client {
        case .ahc:
            call = { worker, body in
                do {
                    _ = try await pool[worker].createVM(body)
                    return nil
                } catch {
                    return (error as? APIClientError)?.code ?? "other"
                }
            }
        case .raw:
            for credentials in credentialsList {
                raw.append(try await RawHTTPSClient.connect(port: controller.port, credentials: credentials, group: MultiThreadedEventLoopGroup.singleton))
            }
            let connections = raw
            call = { worker, body in
                do {
                    let reply = try await connections[worker].post("/v1/vms", json: ByteBuffer(string: RawHTTPSClient.json(body)))
                    if reply.status == 201 { return nil }
                    let error = try? StrictJSON.decoder().decode(APIErrorBody.self, from: Data(reply.body.readableBytesView))
                    return error?.error.code ?? "http_\(reply.status)"
                } catch {
                    return "transport"
                }
            }
        }
        defer { for connection in raw { Task { await connection.close() } } }

        // Warm-up, then the measured run.
        let warm = try await allocate(
            call: call, workers: pool.count, total: o.warmup, opds: opdIDs, prefix: "w", seed: o.seed ^ 0x7761_726D, clock: clock)
        progress("  \(o.hosts) hosts: warm-up \(warm.succeeded)/\(warm.attempted) allocated")
        let api = try await allocate(
            call: call, workers: pool.count, total: o.allocations, opds: opdIDs, prefix: "a", seed: o.seed ^ 0x6170_6921, clock: clock)
        progress(
            "  \(o.hosts) hosts: API \(format(rate: api.perSecond)) allocations/s, p50 \(format(ms: api.latencyMilliseconds.p50)) ms, p99 \(format(ms: api.latencyMilliseconds.p99)) ms, \(api.attempted - api.succeeded) errors"
        )

        var direct: AllocationRun?
        if o.ledgerDirect > 0 {
            let run = try await allocateInLedger(
                services.ledger, concurrency: pool.count, total: o.ledgerDirect, opds: opdIDs, seed: o.seed ^ 0x6C65_6467, clock: clock)
            direct = run
            progress(
                "  \(o.hosts) hosts: ledger in process \(format(rate: run.perSecond)) allocations/s, p50 \(format(ms: run.latencyMilliseconds.p50)) ms, p99 \(format(ms: run.latencyMilliseconds.p99)) ms"
            )
        }

        let vmsInLedger = await services.ledger.read { s in s.dc.vms.values.reduce(0) { $0 + ($1.state == .deleted ? 0 : 1) } }
        let acknowledged = warm.succeeded + api.succeeded + (direct?.succeeded ?? 0)
        return APIResult(
            hosts: o.hosts, cordonedHosts: cordoned.count, opds: o.opds, strategy: o.strategy.rawValue, client: o.client.rawValue,
            hostSetupSeconds: setupSeconds, hostsDeclaredPerSecond: Double(o.hosts) / setupSeconds,
            warmupAllocations: warm.succeeded, api: api, ledgerDirect: direct,
            verified: vmsInLedger == acknowledged, vmsInLedger: vmsInLedger, processRSSMiB: residentMiB())
    }

    /// Runs `body` for every item, spreading the items over the clients (one sequential worker per client).
    private static func concurrently<T: Sendable>(
        _ items: [T], clients: [LumbungClient], _ body: @escaping @Sendable (LumbungClient, Int, T) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (c, client) in clients.enumerated() {
                group.addTask {
                    var i = c
                    while i < items.count {
                        try await body(client, i, items[i])
                        i += clients.count
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    struct WorkerRun: Sendable {
        var latencies: [Duration] = []
        var errors: [String: Int] = [:]
        var succeeded = 0
        var end: ContinuousClock.Instant
    }

    /// One `POST /v1/vms` by client `worker`: nil when it succeeded, else the error code.
    typealias VMCall = @Sendable (_ worker: Int, _ body: CreateVMBody) async -> String?

    /// Every client allocates its share of `total` VMs back to back (`POST /v1/vms`), timing each call.
    static func allocate(
        call: @escaping VMCall, workers: Int, total: Int, opds: [OPDID], prefix: String, seed: UInt64, clock: ContinuousClock
    ) async throws -> AllocationRun {
        try await timed(workers: workers, total: total, clock: clock) { worker, share in
            var rng = SplitMix64(seed: seed &+ UInt64(worker))
            var run = WorkerRun(end: clock.now)
            run.latencies.reserveCapacity(share)
            for i in 0..<share {
                let spec = Fixtures.vmSpec(name: "\(prefix)-c\(worker)-\(i)", rng: &rng)
                let opd = opds[(worker + i * workers) % opds.count]
                let body = CreateVMBody(
                    opd: opd,
                    vm: VMBody(
                        name: spec.name, vcpu: spec.vcpu, memory: spec.memory, disk: spec.disk, pool: spec.pool, app: spec.app,
                        requireLabels: spec.requiredLabels.isEmpty ? nil : spec.requiredLabels,
                        forbidLabels: spec.forbiddenLabels.isEmpty ? nil : spec.forbiddenLabels))
                let start = clock.now
                if let code = await call(worker, body) {
                    run.errors[code, default: 0] += 1
                } else {
                    run.succeeded += 1
                }
                run.latencies.append(clock.now - start)
            }
            run.end = clock.now
            return run
        }
    }

    /// The same allocations through `Ledger.allocateVM` in process: decision, group commit and fsync, no HTTP.
    static func allocateInLedger(
        _ ledger: Ledger, concurrency: Int, total: Int, opds: [OPDID], seed: UInt64, clock: ContinuousClock
    ) async throws -> AllocationRun {
        let caller = Caller(.user(UserID(rawValue: "admin"), role: .admin, opd: nil))
        return try await timed(workers: concurrency, total: total, clock: clock) { worker, share in
            var rng = SplitMix64(seed: seed &+ UInt64(worker))
            var run = WorkerRun(end: clock.now)
            run.latencies.reserveCapacity(share)
            for i in 0..<share {
                let spec = Fixtures.vmSpec(name: "l-c\(worker)-\(i)", rng: &rng)
                let opd = opds[(worker + i * concurrency) % opds.count]
                let start = clock.now
                do {
                    _ = try await ledger.allocateVM(opd: opd, spec: spec, by: caller)
                    run.succeeded += 1
                } catch let error as APIError {
                    run.errors[error.detail.code, default: 0] += 1
                } catch {
                    run.errors["other", default: 0] += 1
                }
                run.latencies.append(clock.now - start)
            }
            run.end = clock.now
            return run
        }
    }

    private static func timed(
        workers: Int, total: Int, clock: ContinuousClock, _ body: @escaping @Sendable (Int, Int) async throws -> WorkerRun
    ) async throws -> AllocationRun {
        LedgerProbe.shared.reset()
        let cpuStart = processCPUSeconds()
        let start = clock.now
        let runs = try await withThrowingTaskGroup(of: WorkerRun.self) { group in
            for w in 0..<workers {
                let share = total / workers + (w < total % workers ? 1 : 0)
                group.addTask { try await body(w, share) }
            }
            var all: [WorkerRun] = []
            for try await r in group { all.append(r) }
            return all
        }
        let end = runs.map(\.end).max() ?? start
        let cpu = processCPUSeconds() - cpuStart
        let seconds = (end - start).seconds
        let ledger = LedgerProbe.shared.stats(wallSeconds: seconds)
        let succeeded = runs.reduce(0) { $0 + $1.succeeded }
        var errors: [String: Int] = [:]
        for r in runs { errors.merge(r.errors, uniquingKeysWith: +) }
        return AllocationRun(
            concurrency: workers, attempted: total, succeeded: succeeded, seconds: seconds,
            perSecond: seconds > 0 ? Double(succeeded) / seconds : 0,
            latencyMilliseconds: Latency(runs.flatMap(\.latencies)), errors: errors, ledger: ledger.batches > 0 ? ledger : nil,
            cpuSeconds: cpu, cpuMillisecondsPerAllocation: succeeded > 0 ? cpu * 1000 / Double(succeeded) : nil)
    }

    /// User + system CPU seconds of this process so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// VmRSS of this process from /proc (nil elsewhere).
    static func residentMiB() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Double($0) }
            return kb.map { $0 / 1024 }
        }
        return nil
    }
}
