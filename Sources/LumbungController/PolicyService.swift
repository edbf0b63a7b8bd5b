import Foundation
import LumbungCore
import LumbungPolicy
import Logging
import Metrics
import NIOConcurrencyHelpers

/// Loads the policy directory at start, and again on SIGHUP or `POST /v1/policy/reload`.
///
/// A set that does not validate (every error as `file:line: message`) never replaces the
/// running one: the controller keeps the last valid set, logs the errors and shows them in
/// `GET /v1/policy` and its metrics. A valid set is installed by the ledger as one operation.
public final class PolicyService: Sendable {
    /// The outcome of the last load attempt.
    public struct Attempt: Sendable, Hashable {
        public var at: Date
        public var ok: Bool
        public var errors: [String]
        public var hash: String?
    }

    let directory: String?
    let ledger: Ledger
    let logger: Logger
    let now: @Sendable () -> Date
    private let last = NIOLockedValueBox<Attempt?>(nil)
    private let installed = NIOLockedValueBox<String?>(nil)

    /// The hash of the set in force, for audit entries written outside the ledger (users,
    /// tokens, certificates).
    public var currentHash: String? { installed.withLockedValue { $0 } }
    private let loaded = Gauge(label: "lumbung_policy_loaded_timestamp_seconds")
    private let valid = Gauge(label: "lumbung_policy_last_reload_success")
    private let reloadsOK = Counter(label: "lumbung_policy_reloads_total", dimensions: [("result", "success")])
    private let reloadsFailed = Counter(label: "lumbung_policy_reloads_total", dimensions: [("result", "failure")])

    init(directory: String?, ledger: Ledger, logger: Logger, now: @escaping @Sendable () -> Date) {
        self.directory = directory
        self.ledger = ledger
        self.logger = logger
        self.now = now
    }

    /// Reads and validates the directory at start (offline: the data center is not known yet).
    /// Throws the errors when the set is invalid: a controller does not start on a bad set.
    static func initial(directory: String?) throws -> PolicySet {
        guard let directory else { return .builtinDefault }
        switch PolicyLoader.load(directory: directory) {
        case .success(let set): return set
        case .failure(let errors):
            throw InitError("the policy set in \(directory) is invalid; fix it (lumbung policy check \(directory)):\n\(errors)")
        }
    }

    /// Records the set installed at start.
    func started(with set: PolicySet) {
        let at = now()
        last.withLockedValue { $0 = Attempt(at: at, ok: true, errors: [], hash: set.hash) }
        installed.withLockedValue { $0 = set.hash }
        loaded.record(at.timeIntervalSince1970)
        valid.record(1)
    }

    /// The last attempt (start or reload).
    public var lastAttempt: Attempt? { last.withLockedValue { $0 } }

    /// Reloads the directory: validates against the data center's current totals and installs
    /// the set, or keeps the running one and returns the errors.
    @discardableResult
    public func reload(by caller: Caller) async -> Result<PolicySet, PolicyErrors> {
        let at = now()
        guard let directory else {
            let errors = PolicyErrors([PolicyError(file: "-", line: nil, message: "the controller runs the built-in default policy set; start it with --policies DIR to load files")])
            record(Attempt(at: at, ok: false, errors: errors.errors.map(\.description), hash: nil))
            return .failure(errors)
        }
        // Classes are compared with the data center once it has hosts (a new data center has
        // none yet, and every class would be "larger than the data center").
        let totals = await ledger.read { $0.dc.hosts.isEmpty ? nil : DataCenterTotals(capacity: $0.dc.capacity()) }
        switch PolicyLoader.load(directory: directory, totals: totals) {
        case .failure(let errors):
            logger.error("policy reload refused; keeping the running set", metadata: ["policy.directory": "\(directory)", "errors": "\(errors)"])
            record(Attempt(at: at, ok: false, errors: errors.errors.map(\.description), hash: nil))
            return .failure(errors)
        case .success(let set):
            do {
                try await ledger.installPolicy(set, by: caller)
            } catch {
                let message = (error as? APIError)?.detail.message ?? "\(error)"
                let errors = PolicyErrors([PolicyError(file: directory, line: nil, message: message)])
                logger.error("policy reload refused; keeping the running set", metadata: ["policy.directory": "\(directory)", "errors": "\(errors)"])
                record(Attempt(at: at, ok: false, errors: errors.errors.map(\.description), hash: nil))
                return .failure(errors)
            }
            installed.withLockedValue { $0 = set.hash }
            logger.info("policy set loaded", metadata: ["policy.directory": "\(directory)", "policy.hash": "\(set.hash)"])
            record(Attempt(at: at, ok: true, errors: [], hash: set.hash))
            loaded.record(at.timeIntervalSince1970)
            return .success(set)
        }
    }

    private func record(_ attempt: Attempt) {
        last.withLockedValue { $0 = attempt }
        valid.record(attempt.ok ? 1 : 0)
        if attempt.ok { reloadsOK.increment() } else { reloadsFailed.increment() }
    }
}
