import Foundation
import Metrics

/// What the ledger reported through swift-metrics during one phase: how many operations each
/// group commit carried, how long the commits (SQLite transaction) took, and how long an
/// operation took from queueing to its answer (including the WAL flush).
struct LedgerStats: Codable, Sendable {
    var batches: Int
    var meanBatchSize: Double
    var maxBatchSize: Int
    var commitMilliseconds: Latency
    /// Operations from queueing to answer (deciding, committing, waiting for the flush).
    var operationMilliseconds: Latency
    /// The store's WAL flushes (`fdatasync`).
    var flushMilliseconds: Latency
    /// Fraction of the phase's wall time spent inside commits (the rest: decisions, copying state, HTTP, clients).
    var commitShareOfWallTime: Double
}

/// A metrics backend that keeps only the ledger's batch sizes (`lumbung_ledger_batch_size`),
/// commit durations (`lumbung_ledger_commit_duration_seconds`), operation durations
/// (`lumbung_ledger_operation_duration_seconds`) and the store's WAL flushes
/// (`lumbung_store_flush_duration_seconds`); every other metric is dropped.
final class LedgerProbe: MetricsFactory, @unchecked Sendable {
    static let shared = LedgerProbe()

    private let lock = NSLock()
    private var batchSizes: [Int64] = []
    private var commitNanoseconds: [Int64] = []
    private var operationNanoseconds: [Int64] = []
    private var flushNanoseconds: [Int64] = []

    final class Handler: RecorderHandler, TimerHandler, @unchecked Sendable {
        enum Kind { case batch, commit, operation, flush }
        let probe: LedgerProbe
        let kind: Kind
        init(probe: LedgerProbe, kind: Kind) {
            self.probe = probe
            self.kind = kind
        }
        func record(_ value: Int64) { probe.add(value, kind) }
        func record(_ value: Double) { probe.add(Int64(value), kind) }
        func recordNanoseconds(_ duration: Int64) { probe.add(duration, kind) }
    }

    fileprivate func add(_ value: Int64, _ kind: Handler.Kind) {
        lock.lock()
        defer { lock.unlock() }
        switch kind {
        case .batch: batchSizes.append(value)
        case .commit: commitNanoseconds.append(value)
        case .operation: operationNanoseconds.append(value)
        case .flush: flushNanoseconds.append(value)
        }
    }

    /// Forgets what was recorded so far (call before a phase).
    func reset() {
        lock.lock()
        defer { lock.unlock() }
        batchSizes.removeAll(keepingCapacity: true)
        commitNanoseconds.removeAll(keepingCapacity: true)
        operationNanoseconds.removeAll(keepingCapacity: true)
        flushNanoseconds.removeAll(keepingCapacity: true)
    }

    /// What was recorded since the last reset, over a phase of `wallSeconds`.
    func stats(wallSeconds: Double) -> LedgerStats {
        lock.lock()
        let batches = batchSizes
        let commits = commitNanoseconds
        let operations = operationNanoseconds
        let flushes = flushNanoseconds
        lock.unlock()
        let total = batches.reduce(0, +)
        let commitSeconds = Double(commits.reduce(0, +)) / 1e9
        return LedgerStats(
            batches: batches.count,
            meanBatchSize: batches.isEmpty ? 0 : Double(total) / Double(batches.count),
            maxBatchSize: Int(batches.max() ?? 0),
            commitMilliseconds: Latency(commits.map { Duration.nanoseconds($0) }),
            operationMilliseconds: Latency(operations.map { Duration.nanoseconds($0) }),
            flushMilliseconds: Latency(flushes.map { Duration.nanoseconds($0) }),
            commitShareOfWallTime: wallSeconds > 0 ? commitSeconds / wallSeconds : 0)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { NOOPMetricsHandler.instance }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        label == "lumbung_ledger_batch_size" ? Handler(probe: self, kind: .batch) : NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        switch label {
        case "lumbung_ledger_commit_duration_seconds": Handler(probe: self, kind: .commit)
        case "lumbung_ledger_operation_duration_seconds": Handler(probe: self, kind: .operation)
        case "lumbung_store_flush_duration_seconds": Handler(probe: self, kind: .flush)
        default: NOOPMetricsHandler.instance
        }
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
