import Foundation
import LumbungAPI
import LumbungCore
import LumbungPolicy
import LumbungStore
import Logging
import Metrics

/// Who asks the ledger for a change (for authorization already done by the routes, and for the audit log).
public struct Caller: Sendable, Hashable {
    public var principal: Principal
    public init(_ principal: Principal) { self.principal = principal }
    /// The controller itself (heartbeat monitor, expiry).
    public static let system = Caller(.user("lumbungd", role: .admin, opd: nil))
}

/// The data the ledger decides against: the data center snapshot and the requests.
public struct LedgerState: Sendable {
    public var dc: DataCenter
    public var requests: [RequestID: ResourceRequest]
    public var nextRequestID: Int64
    /// The policy set every decision is made under; replaced only by ``Ledger/installPolicy(_:by:)``,
    /// between batches, so no decision sees half of a set. Its hash goes into every audit entry.
    public var policy: PolicySet
    /// When the running set was installed.
    public var policyLoadedAt: Date

    public init(
        dc: DataCenter, requests: [RequestID: ResourceRequest], nextRequestID: Int64, policy: PolicySet = .builtinDefault,
        policyLoadedAt: Date = Date()
    ) {
        self.dc = dc
        self.requests = requests
        self.nextRequestID = nextRequestID
        self.policy = policy
        self.policyLoadedAt = policyLoadedAt
    }
}

/// Settings of the ledger.
public struct LedgerSettings: Sendable {
    /// Placement strategy while the built-in policy set runs; a loaded set's `placement.strategy` wins.
    public var strategy: PlacementStrategy = .binpack
    /// How long an undecided request lives; nil (the default): the policy set's
    /// `request_expiry_days`. Set, it overrides the policy (`lumbungd --request-ttl-days`, tests).
    public var requestTTL: Duration?
    /// A host without reports for this long becomes unreachable.
    public var heartbeatTimeout: Duration = .seconds(40)
    /// Group commit: after committing a batch, the ledger waits up to this long for more calls
    /// (as many as were in that batch plus those already queued) before deciding the next one,
    /// so concurrent callers share a transaction instead of each paying for its own: fewer,
    /// larger transactions cost less CPU per allocation and write fewer WAL pages. The previous
    /// batch's flush runs meanwhile. It never waits longer once that many are queued; zero
    /// disables it. (1 ms measured best with 8 clients, `BENCHMARKS.md`.)
    public var batchWindow: Duration = .milliseconds(1)
    /// True (the default): a batch's WAL flush runs on the store's flusher while the ledger
    /// decides and commits the next batch. False: the ledger waits for each flush itself before
    /// the next batch (the design before the pipelined flush; kept to compare the two in
    /// `lumbung-bench --flush`). Callers are answered only once durable either way.
    public var pipelinedFlush = true
    public init() {}
}

/// What one operation wants written, in the same transaction as every other operation of its batch.
struct OpOutput {
    var changes: [LedgerChange] = []
    var audit: [AuditInput] = []
    /// Hosts whose desired state changed (their agents' long-polls are woken after the commit).
    var touchedHosts: Set<HostID> = []

    mutating func append(_ other: OpOutput) {
        changes += other.changes
        audit += other.audit
        touchedHosts.formUnion(other.touchedHosts)
    }
}

/// The single writer of allocations.
///
/// Every allocation, quota change and release is decided here against the in-memory
/// ``LedgerState`` (with the pure functions of `LumbungCore`) and then committed to the store.
/// Calls that arrive while a commit is under way queue up and are decided and committed
/// together in the next transaction (group commit). The flush to disk is pipelined: a batch's
/// transaction is committed on the ledger's thread, its WAL flush runs on the store's flusher,
/// and the next batch is decided and committed meanwhile (one flush then covers every batch
/// committed before it started). A caller is answered only after its transaction is durable;
/// a refused call changes nothing and is answered once the state it was refused on is durable.
/// Reads see only durable state (``read(_:)``). There is one copy of the state; if a commit
/// fails, the state is reloaded from the store.
///
/// ```
///  batch k:   decide ─ commit ─┬─ flush ──────────── answer k
///  batch k+1:                  └ decide ─ commit ─┬─ flush ─ answer k+1
/// ```
///
/// Operations follow one rule: every check (which may throw) comes before any mutation,
/// so a refused operation leaves the state exactly as it was.
public actor Ledger {
    let store: Store
    let hub: WatchHub
    let logger: Logger
    let now: @Sendable () -> Date
    public let settings: LedgerSettings
    private var state: LedgerState
    private var queue: [PendingOp] = []
    private var draining = false
    /// The last committed batch (durable once the store says so).
    private var lastTicket = DurabilityTicket.none
    /// The batch window (see ``LedgerSettings/batchWindow``): how many queued calls end it early.
    private var gatherTarget = 0
    private var gatherWaiter: CheckedContinuation<Void, Never>?
    private var gatherRound = 0
    private let commitTimer = Timer(label: "lumbung_ledger_commit_duration_seconds", preferredDisplayUnit: .seconds)
    private let batchSize = Recorder(label: "lumbung_ledger_batch_size")
    /// From queueing an operation to answering it (deciding, committing, waiting for the flush).
    private let operationTimer = Timer(label: "lumbung_ledger_operation_duration_seconds", preferredDisplayUnit: .seconds)
    private let accepted = Counter(label: "lumbung_ledger_operations_total", dimensions: [("result", "accepted")])
    private let refused = Counter(label: "lumbung_ledger_operations_total", dimensions: [("result", "refused")])
    private let failed = Counter(label: "lumbung_ledger_operations_total", dimensions: [("result", "failed")])

    final class PendingOp: @unchecked Sendable {
        let run: (inout LedgerState, Date, inout OpOutput) throws -> any Sendable
        let resume: (Result<any Sendable, any Error>) -> Void
        init(
            run: @escaping (inout LedgerState, Date, inout OpOutput) throws -> any Sendable,
            resume: @escaping (Result<any Sendable, any Error>) -> Void
        ) {
            self.run = run
            self.resume = resume
        }
    }

    /// Loads the state from the store.
    public init(
        store: Store, hub: WatchHub, settings: LedgerSettings, logger: Logger, policy: PolicySet = .builtinDefault,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.store = store
        self.hub = hub
        self.settings = settings
        self.logger = logger
        self.now = now
        var state = try Self.load(store, policy: policy, at: now())
        try Self.installAtStart(&state, store: store, now: now())
        self.state = state
        for host in state.dc.hosts.values { hub.publish(host.id, version: host.desiredVersion) }
    }

    static func load(_ store: Store, policy: PolicySet, at: Date) throws -> LedgerState {
        let loaded = try store.loadState()
        let live = loaded.vms.filter { $0.state != .deleted }
        let liveVolumes = loaded.volumes.filter { $0.state != .deleted }
        let dc = DataCenter(hosts: loaded.hosts, opds: loaded.opds, vms: live, volumes: liveVolumes)
        var requests: [RequestID: ResourceRequest] = [:]
        for r in loaded.requests { requests[r.id] = r }
        let next = (requests.keys.map(\.rawValue).max() ?? 0) + 1
        return LedgerState(dc: dc, requests: requests, nextRequestID: next, policy: policy, policyLoadedAt: at)
    }

    /// Reads the state as the last batch left it, once that batch is durable: a read never shows
    /// a decision that a power cut could still take back. (Batches decided meanwhile do not
    /// delay it: it reads the state it found, a copy-on-write snapshot.)
    public func read<T: Sendable>(_ body: @escaping @Sendable (LedgerState) -> T) async -> T {
        let snapshot = state
        let ticket = lastTicket
        if !store.isDurable(ticket) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // A failed flush: the read shows the snapshot anyway (every write is refused from then on).
                store.whenDurable(ticket) { _ in continuation.resume() }
            }
        }
        return body(snapshot)
    }

    /// Queues an operation, and returns its result once its batch is durable.
    func perform<T: Sendable>(_ body: @escaping (inout LedgerState, Date, inout OpOutput) throws -> T) async throws -> T {
        let queued = ContinuousClock.now
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            queue.append(
                PendingOp(
                    run: { state, now, out in try body(&state, now, &out) },
                    resume: { [operationTimer] result in
                        operationTimer.recordInterval(since: queued)
                        continuation.resume(with: result.map { $0 as! T })
                    }))
            if queue.count >= gatherTarget { endGather(round: gatherRound) }
            if !draining {
                draining = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !queue.isEmpty {
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            let at = now()
            var all = OpOutput()
            var results: [Result<any Sendable, any Error>] = []
            results.reserveCapacity(batch.count)
            for op in batch {
                var out = OpOutput()
                do {
                    let value = try op.run(&state, at, &out)
                    // The decision was made under the set in force now (a new set is installed by
                    // an operation of its own, whose entry carries the new hash).
                    for i in out.audit.indices where out.audit[i].policyHash == nil { out.audit[i].policyHash = state.policy.hash }
                    all.append(out)
                    results.append(.success(value))
                } catch {
                    results.append(.failure(error))
                }
            }
            batchSize.record(batch.count)
            // A batch that writes nothing (all refused) is answered once what it read is durable.
            if !all.changes.isEmpty || !all.audit.isEmpty {
                let started = ContinuousClock.now
                do {
                    lastTicket =
                        settings.pipelinedFlush
                        ? try store.commitStaged(all.changes, audit: all.audit)
                        : try store.commitBlocking(all.changes, audit: all.audit)
                    commitTimer.recordInterval(since: started)
                } catch {
                    failed.increment(by: batch.count)
                    logger.error("ledger commit failed", metadata: ["error": "\(error)", "batch.size": "\(batch.count)"])
                    // Nothing of the batch is committed: go back to what the store holds.
                    do {
                        state = try Self.load(store, policy: state.policy, at: state.policyLoadedAt)
                    } catch {
                        logger.critical("ledger could not reload its state after a failed commit", metadata: ["error": "\(error)"])
                    }
                    let failure = APIError(.internalServerError, "commit_failed", "the change could not be saved; nothing was changed")
                    for (op, result) in zip(batch, results) {
                        if case .success = result { op.resume(.failure(failure)) } else { op.resume(result) }
                    }
                    continue
                }
            }
            answerWhenDurable(batch, results, touched: all.touchedHosts.map { ($0, state.dc.hosts[$0]?.desiredVersion ?? -1) })
            // Wait briefly for more calls, so that the next transaction carries several.
            let target = batch.count + queue.count
            if queue.count < target && settings.batchWindow > .zero {
                await gather(target: target)
            }
        }
        draining = false
    }

    /// Answers a committed batch once the flush that covers it is done (on the flusher's
    /// thread), and only then wakes the agents of the hosts it changed: nobody hears of a
    /// decision that a power cut could still take back. Meanwhile the ledger goes on with the
    /// next batch.
    private func answerWhenDurable(
        _ batch: [PendingOp], _ results: [Result<any Sendable, any Error>], touched: [(HostID, Int64)]
    ) {
        store.whenDurable(lastTicket) { [hub, logger, accepted, refused, failed] outcome in
            switch outcome {
            case .success:
                for result in results {
                    if case .success = result { accepted.increment() } else { refused.increment() }
                }
                for (host, version) in touched { hub.publish(host, version: version) }
                for (op, result) in zip(batch, results) { op.resume(result) }
            case .failure(let error):
                failed.increment(by: batch.count)
                logger.critical(
                    "ledger changes committed but not flushed to disk; refusing further changes until lumbungd restarts",
                    metadata: ["error": "\(error)", "batch.size": "\(batch.count)"])
                let failure = APIError(
                    .internalServerError, "commit_failed",
                    "the change could not be made durable (\(error.message)); restart lumbungd, which keeps what reached the disk")
                for (op, result) in zip(batch, results) {
                    if case .success = result { op.resume(.failure(failure)) } else { op.resume(result) }
                }
            }
        }
    }

    private func gather(target: Int) async {
        gatherRound &+= 1
        let round = gatherRound
        gatherTarget = target
        let window = settings.batchWindow
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            gatherWaiter = continuation
            Task { [weak self] in
                try? await Task.sleep(for: window)
                await self?.endGather(round: round)
            }
        }
        gatherTarget = 0
    }

    private func endGather(round: Int) {
        guard round == gatherRound, let waiter = gatherWaiter else { return }
        gatherWaiter = nil
        waiter.resume()
    }
}

// MARK: - Helpers used by the operations

func auditJSON<T: Encodable>(_ value: T?) -> String? {
    if let vm = value as? VM, let text = FastJSON.vm(vm) { return text }
    guard let value, let data = try? StrictJSON.encode(value) else { return nil }
    return String(decoding: data, as: UTF8.self)
}

extension OpOutput {
    mutating func record(
        _ caller: Caller, _ action: String, _ target: String, before: (some Encodable)?, after: (some Encodable)?, at: Date,
        request: RequestID? = nil
    ) {
        audit.append(
            AuditInput(
                at: at, actor: caller.principal.description, role: caller.principal.role.rawValue, action: action, target: target,
                before: auditJSON(before), after: auditJSON(after), requestID: request.map { String($0.rawValue) }, policyHash: nil))
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}

/// Random ids such as `vm-3f9a0c21`.
func newID(_ prefix: String) -> String {
    var g = SystemRandomNumberGenerator()
    let n = UInt32.random(in: 0...UInt32.max, using: &g)
    let hex = String(n, radix: 16)
    return prefix + "-" + String(repeating: "0", count: 8 - hex.count) + hex
}

extension LedgerState {
    /// Bumps a host's desired version (its agent must look again).
    mutating func bumpDesired(_ host: HostID, _ out: inout OpOutput) {
        guard let version = dc.bumpDesiredVersion(of: host) else { return }
        out.changes.append(.desiredVersionBumped(host, version))
        out.touchedHosts.insert(host)
    }

    func opd(_ id: OPDID) throws -> OPD {
        guard let o = dc.opds[id] else { throw APIError.notFound("OPD \(id)") }
        return o
    }

    func request(_ id: RequestID) throws -> ResourceRequest {
        guard let r = requests[id] else { throw APIError.notFound("request \(id)") }
        return r
    }
}

// MARK: - Policy

extension Ledger {
    /// The policy set in force and when it was installed.
    public var policy: (set: PolicySet, loadedAt: Date) {
        get async { await read { ($0.policy, $0.policyLoadedAt) } }
    }

    /// Installs a new, already validated policy set as one ledger operation: decisions queued
    /// before it use the old set, those after it the new one; none sees a mix. Audited with the
    /// old and new hash.
    ///
    /// Every OPD that follows a quota class (its quota equals the running set's class quota) gets
    /// the new set's class quota in the same operation (audited as `opd.set-quota.class`). When
    /// that would put an OPD below its use, or the new set drops a class an OPD has, nothing is
    /// installed: the error (`class_conflict`) lists every such OPD with its numbers.
    public func installPolicy(_ set: PolicySet, by caller: Caller) async throws {
        try await perform { state, now, out in
            try state.install(set, previous: InstalledPolicy(state.policy), caller: caller, now: now, out: &out)
        }
    }

    /// At start: when the policy files differ from the set the store recorded as installed (they
    /// were edited while the controller was stopped), applies them exactly as a reload would —
    /// OPDs following a changed class get its new quota, hosts following the policy are
    /// re-derived, agents hear of a new volume retention — in one audited transaction, before
    /// the controller serves anything. Throws `class_conflict` (the controller does not start)
    /// when the new classes would put an OPD below its use.
    static func installAtStart(_ state: inout LedgerState, store: Store, now: Date) throws {
        let recorded = try store.installedPolicy()
        if recorded?.hash == state.policy.hash { return }
        var out = OpOutput()
        let set = state.policy
        // Nothing recorded (a new state directory, or one from before sets were recorded): the
        // files are taken as they are, without class changes.
        let previous = recorded ?? InstalledPolicy(set)
        try state.install(set, previous: previous, caller: .system, now: now, out: &out)
        for i in out.audit.indices where out.audit[i].policyHash == nil { out.audit[i].policyHash = set.hash }
        try store.commitBlocking(out.changes, audit: out.audit)
    }
}

extension InstalledPolicy {
    /// What the store keeps of `set`.
    init(_ set: PolicySet) {
        var classes: [String: ResourceVector] = [:]
        for (name, c) in set.quotaClasses { classes[name.rawValue] = c.quota.normalized }
        self.init(hash: set.hash, classes: classes, volumeRetentionDays: set.retention.volumeRetentionDays)
    }
}

extension LedgerState {
    /// Puts `set` in force after `previous` (see ``Ledger/installPolicy(_:by:)``): class quota
    /// changes for the OPDs that followed their class, re-derived hosts, agents woken when the
    /// volume retention changed, and the set recorded in the store.
    mutating func install(_ set: PolicySet, previous: InstalledPolicy, caller: Caller, now: Date, out: inout OpOutput) throws {
        let changes = try classChanges(to: set, previous: previous.classes)
        let retentionChanged = previous.volumeRetentionDays != set.retention.volumeRetentionDays
        policy = set
        policyLoadedAt = now
        out.record(caller, "policy.install", "policy", before: previous.hash, after: set.hash, at: now)
        out.changes.append(.policyInstalled(InstalledPolicy(set)))
        for (opd, quota) in changes {
            var changed = opd
            changed.quota = quota
            dc.upsertOPD(changed)
            out.changes.append(.quotaChanged(opd.id, quota))
            out.record(caller, "opd.set-quota.class", "opd:\(opd.id)", before: opd, after: changed, at: now)
        }
        // Hosts declared without their own overcommit or reserve follow the new set.
        rederiveHosts(caller: caller, now: now, out: &out)
        // Agents receive the volume retention in their desired state: wake them when it changes.
        if retentionChanged { for id in dc.hosts.keys.sorted() { bumpDesired(id, &out) } }
    }
}
