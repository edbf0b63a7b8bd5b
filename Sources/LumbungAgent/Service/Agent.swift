#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import LumbungAPI
import LumbungCore
import Metrics
import LumbungPKI
import NIOConcurrencyHelpers

/// Settings of one agent.
public struct AgentSettings: Sendable {
    /// The host this agent speaks for (from its certificate).
    public var host: HostID
    /// Heartbeat report interval (default 10 s).
    public var heartbeat: Duration = .seconds(10)
    /// Long-poll timeout of `GET /v1/agent/desired`.
    public var longPollTimeout: Duration = .seconds(30)
    /// A reconcile pass runs at least this often even without a new desired state.
    public var reconcileInterval: Duration = .seconds(10)
    /// How long a deleted volume's data is kept before purge.
    public var retention: Duration = ReconcilePlanner.defaultRetention
    /// How long one report may take (plus 5 s of grace) before it is abandoned and retried: a
    /// report stuck on a dead connection (a cut link drops packets, it sends no reset) must not
    /// hold back the newer ones. Default: the heartbeat interval, within 1–25 s.
    public var reportTimeout: Duration {
        get { reportTimeoutOverride ?? min(max(heartbeat, .seconds(1)), .seconds(25)) }
        set { reportTimeoutOverride = newValue }
    }
    private var reportTimeoutOverride: Duration?
    /// Backoff for failed reports and long-polls.
    public var retry: RetryPolicy = RetryPolicy(initial: .milliseconds(500), maximum: .seconds(30))
    /// Backoff for a VM's or volume's failed reconcile actions (1 s doubling to 5 min, jittered);
    /// terminal failures wait the maximum before the next try.
    public var actionRetry: RetryPolicy = .default
    /// How often the agent checks whether its certificate is due for renewal (at 2/3 of its life).
    public var renewalCheck: Duration = .seconds(3600)
    /// The clock used for the renewal decision (tests move it).
    public var now: @Sendable () -> Date = { Date() }

    public init(host: HostID) { self.host = host }
}

/// The agent: watches its host's desired state (long-poll), converges the host to it
/// (level-based reconcile with Core's planner, carried out by a ``HostDriver``), and reports
/// actual state and measured use (heartbeat). It keeps enforcing the last desired state it
/// persisted while the controller is unreachable, and after a restart it adopts what runs.
public final class Agent: Sendable {
    let settings: AgentSettings
    let driver: any HostDriver
    let stateDirectory: AgentStateDirectory
    let logger: Logger
    private let clientBox: NIOLockedValueBox<LumbungClient>
    private let core = NIOLockedValueBox(Core())
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>

    struct Core {
        var desired: DesiredState?
        var errors: [ReconcileSubject: ReconcileError] = [:]
        var lastFacts: HostCapacity?
        var lastImages: [String]?
        var connected = false
        var reconciles = 0
        /// Failed actions per VM/volume: when to try again (exponential backoff with jitter).
        var backoff: [ReconcileSubject: Backoff] = [:]
        var reportInFlight = false
    }

    /// Sends a report now without waiting for it (one at a time; an unreachable controller must
    /// not hold up reconciling).
    func reportSoon() {
        let start = core.withLockedValue { c -> Bool in
            if c.reportInFlight { return false }
            c.reportInFlight = true
            return true
        }
        guard start else { return }
        Task {
            try? await self.reportOnce()
            self.core.withLockedValue { $0.reportInFlight = false }
        }
    }

    /// The consecutive failures of one VM's or volume's actions.
    struct Backoff {
        var attempt: Int
        var retryAt: Date
        var error: ReconcileError
    }

    // Metrics (Prometheus names; the executable bootstraps the backend).
    private let reconcileOK = Counter(label: "lumbung_agent_reconcile_total", dimensions: [("result", "success")])
    private let reconcileError = Counter(label: "lumbung_agent_reconcile_total", dimensions: [("result", "error")])
    private let reconcileTime = Timer(label: "lumbung_agent_reconcile_duration_seconds", preferredDisplayUnit: .seconds)
    private let heartbeatOK = Counter(label: "lumbung_agent_heartbeats_total", dimensions: [("result", "success")])
    private let heartbeatFailed = Counter(label: "lumbung_agent_heartbeats_total", dimensions: [("result", "failure")])
    private let lastHeartbeat = Gauge(label: "lumbung_agent_last_heartbeat_success_timestamp_seconds")
    private let connectedGauge = Gauge(label: "lumbung_agent_controller_connected")
    private let revokedGauge = Gauge(label: "lumbung_agent_certificate_revoked")
    private let certificateExpiry = Gauge(label: "lumbung_agent_certificate_expiry_timestamp_seconds")
    private let renewedOK = Counter(label: "lumbung_agent_certificate_renewals_total", dimensions: [("result", "success")])
    private let renewFailed = Counter(label: "lumbung_agent_certificate_renewals_total", dimensions: [("result", "failure")])
    private let metrics = HostMetrics()

    public init(client: LumbungClient, driver: any HostDriver, state: AgentStateDirectory, settings: AgentSettings, logger: Logger) {
        self.clientBox = NIOLockedValueBox(client)
        self.driver = driver
        self.stateDirectory = state
        self.settings = settings
        self.logger = logger
        (self.wakes, self.wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let persisted = state.loadDesired()
        core.withLockedValue { $0.desired = persisted?.host == settings.host ? persisted : nil }
    }

    var client: LumbungClient { clientBox.withLockedValue { $0 } }

    /// The host this agent speaks for.
    public var host: HostID { settings.host }

    /// Replaces the client (after certificate renewal).
    public func replaceClient(_ client: LumbungClient) { clientBox.withLockedValue { $0 = client } }

    /// The desired state the agent enforces (persisted or received).
    public var desired: DesiredState? { core.withLockedValue { $0.desired } }

    /// Runs watch, reconcile and report loops until the task is cancelled.
    public func run() async {
        wake.yield()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchLoop() }
            group.addTask { await self.reconcileLoop() }
            group.addTask { await self.reportLoop() }
            group.addTask { await self.tickLoop() }
            group.addTask { await self.renewalLoop() }
            await group.waitForAll()
        }
    }

    // MARK: Watch

    func watchLoop() async {
        var attempt = 0
        var rng = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            let after = desired?.version
            do {
                let state = try await client.desired(host: settings.host, after: after, timeout: settings.longPollTimeout)
                attempt = 0
                if state.version != after || desired == nil {
                    try? stateDirectory.saveDesired(state)
                    core.withLockedValue { $0.desired = state }
                    logger.info("desired state received", metadata: ["host.id": "\(settings.host)", "version": "\(state.version)", "vms": "\(state.vms.count)", "volumes": "\(state.volumes.count)"])
                    wake.yield()
                }
            } catch {
                attempt += 1
                noteFailure(error, what: "long-poll")
                try? await Task.sleep(for: settings.retry.delay(attempt: attempt, using: &rng))
            }
        }
    }

    // MARK: Certificate renewal

    /// Checks at start and every ``AgentSettings/renewalCheck`` whether the certificate has
    /// passed 2/3 of its life; if so, makes a new key on the host, renews over mTLS with the
    /// current certificate, saves the credentials (mode 0600) and switches the client to them.
    /// A failed renewal is retried at the next check (well before expiry: a third of the life
    /// remains). A revoked certificate cannot be renewed; the log and metrics say so.
    func renewalLoop() async {
        while !Task.isCancelled {
            await renewIfDue()
            try? await Task.sleep(for: settings.renewalCheck)
        }
    }

    /// One renewal check; returns true when the certificate was renewed.
    @discardableResult
    public func renewIfDue() async -> Bool {
        do {
            let credentials = try stateDirectory.credentials()
            if let cert = try PEM.certificates(fromPEM: credentials.certificatePEM).first {
                certificateExpiry.record(cert.notValidAfter.timeIntervalSince1970)
            }
            let current = client
            guard
                let renewed = try await Enrollment.renewIfDue(
                    client: current, credentials: credentials, state: stateDirectory, now: settings.now())
            else { return false }
            replaceClient(try LumbungClient(baseURL: current.baseURL, credentials: renewed))
            if let cert = try PEM.certificates(fromPEM: renewed.certificatePEM).first {
                certificateExpiry.record(cert.notValidAfter.timeIntervalSince1970)
                logger.info("certificate renewed", metadata: ["host.id": "\(settings.host)", "not_after": "\(cert.notValidAfter)"])
            }
            renewedOK.increment()
            return true
        } catch {
            renewFailed.increment()
            logger.warning("certificate renewal failed; retrying at the next check", metadata: ["host.id": "\(settings.host)", "error": "\(error)"])
            noteFailure(error, what: "renewal")
            return false
        }
    }

    // MARK: Reconcile

    func tickLoop() async {
        while !Task.isCancelled {
            // Wake for the periodic pass, or earlier when a failed action's backoff ends.
            var sleep = settings.reconcileInterval
            if let next = core.withLockedValue({ $0.backoff.values.map(\.retryAt).min() }) {
                let wait = max(0.05, next.timeIntervalSinceNow)
                if wait < Double(sleep.components.seconds) + Double(sleep.components.attoseconds) / 1e18 {
                    sleep = .milliseconds(Int64(wait * 1000))
                }
            }
            try? await Task.sleep(for: sleep)
            wake.yield()
        }
    }

    func reconcileLoop() async {
        for await _ in wakes {
            if Task.isCancelled { return }
            _ = await reconcileOnce()
        }
    }

    /// One level-based pass: observe, plan, act. Never plans without a desired state that was
    /// actually received or persisted (an empty default would delete everything).
    @discardableResult
    public func reconcileOnce() async -> ReconcilePlan? {
        guard let desired else { return nil }
        let started = ContinuousClock.now
        do {
            let snapshot = try await driver.snapshot()
            // The controller's policy (`retention.yaml`) wins over the local setting when it sends one.
            let retention = desired.volumeRetentionSeconds.map { Duration.seconds($0) } ?? settings.retention
            let planner = ReconcilePlanner(retention: retention)
            let plan = planner.plan(desired: desired.intent, actual: snapshot.observation, now: Date())
            var errors: [ReconcileSubject: ReconcileError] = [:]
            for e in plan.errors { errors[e.subject] = e }
            // Only subjects that still need actions keep their backoff; the rest converged or went away.
            let subjects = Set(plan.actions.map(\.subject))
            var backoff = core.withLockedValue { $0.backoff }.filter { subjects.contains($0.key) }
            let now = Date()
            var failedNow = Set<ReconcileSubject>()
            var rng = SystemRandomNumberGenerator()
            for action in plan.actions {
                let subject = action.subject
                if failedNow.contains(subject) { continue }  // a later step of a failed item waits too
                if let waiting = backoff[subject], waiting.retryAt > now {
                    errors[subject] = waiting.error
                    continue
                }
                do {
                    try await driver.perform(action)
                    backoff[subject] = nil
                    logger.info("reconcile action", metadata: ["action": "\(action.kind)", "subject": "\(subject)"])
                } catch {
                    let attempt = (backoff[subject]?.attempt ?? 0) + 1
                    let failure = ReconcileError(subject, Self.code(for: error), "\(action.kind) failed (attempt \(attempt)): \(error)")
                    let retryAt: Date
                    switch settings.actionRetry.decide(failure, attempt: attempt, now: now, using: &rng) {
                    case .retry(let at): retryAt = at
                    case .giveUp: retryAt = now.addingTimeInterval(Double(settings.actionRetry.maximum.components.seconds))
                    }
                    backoff[subject] = Backoff(attempt: attempt, retryAt: retryAt, error: failure)
                    errors[subject] = failure
                    failedNow.insert(subject)
                    logger.warning(
                        "reconcile action failed",
                        metadata: [
                            "action": "\(action.kind)", "subject": "\(subject)", "error": "\(error)", "attempt": "\(attempt)",
                            "retry_at": "\(retryAt)",
                        ])
                }
            }
            core.withLockedValue {
                $0.errors = errors
                $0.backoff = backoff
                $0.reconciles += 1
            }
            if errors.isEmpty { reconcileOK.increment() } else { reconcileError.increment() }
            reconcileTime.recordNanoseconds(Self.nanoseconds(ContinuousClock.now - started))
            if !plan.actions.isEmpty || !plan.errors.isEmpty {
                // Tell the controller at once instead of at the next heartbeat.
                reportSoon()
            }
            return plan
        } catch {
            reconcileError.increment()
            logger.warning("reconcile failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The reported code of a driver's failure: the driver's own verdict where it has one.
    static func code(for error: any Error) -> ReconcileError.Code {
        if let e = error as? ReconcileError { return e.code }
        if let e = error as? VMRuntimeError {
            switch e.code {
            case .imageMissing: return .imageMissing
            case .invalidName: return .invalidName
            case .poolMissing: return .unknownPool
            default: return .actionFailed
            }
        }
        return .actionFailed
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }

    // MARK: Report

    func reportLoop() async {
        var attempt = 0
        var rng = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            do {
                try await reportOnce()
                attempt = 0
                try? await Task.sleep(for: settings.heartbeat)
            } catch {
                attempt += 1
                noteFailure(error, what: "report")
                let delay = min(settings.retry.delay(attempt: attempt, using: &rng), settings.heartbeat)
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// Sends one report: facts when they changed, every VM and volume on the host (a complete
    /// inventory), measured use, and reconcile errors.
    public func reportOnce() async throws {
        let report = try await buildReport()
        let ack = try await client.report(report, timeout: settings.reportTimeout)
        heartbeatOK.increment()
        lastHeartbeat.record(Date().timeIntervalSince1970)
        let wasConnected = core.withLockedValue { c -> Bool in
            let was = c.connected
            c.connected = true
            if let facts = report.facts { c.lastFacts = facts }
            if let images = report.images { c.lastImages = images }
            return was
        }
        connectedGauge.record(1)
        revokedGauge.record(0)
        if !wasConnected { logger.info("controller reachable", metadata: ["host.id": "\(settings.host)"]) }
        if ack.desiredVersion != desired?.version { wake.yield() }
    }

    func buildReport() async throws -> AgentReport {
        let facts = try await driver.facts()
        let snapshot = try await driver.snapshot()
        metrics.update(facts: facts, snapshot: snapshot, desired: desired)
        let (errors, lastFacts, lastImages) = core.withLockedValue { ($0.errors, $0.lastFacts, $0.lastImages) }
        let images = snapshot.observation.images.sorted()
        // Errors travel as "<code>: <sentence>": on the item's own report when it exists on the
        // host, else as an item in state "error".
        func text(_ e: ReconcileError) -> String { "\(e.code.rawValue): \(e.message)" }
        var vms: [VMReport] = snapshot.observation.vms.values.sorted { $0.id < $1.id }.map { vm in
            let u = snapshot.vmUsage[vm.id]
            return VMReport(
                id: vm.id, state: vm.running ? "running" : "stopped", cpuSeconds: u?.cpuSeconds, memoryUsed: u?.memoryUsed,
                memoryLimit: u?.memoryLimit, diskUsed: u?.diskUsed, message: errors[.vm(vm.id)].map(text))
        }
        var volumes: [VolumeReport] = snapshot.observation.volumes.values.sorted { $0.id < $1.id }.map { v in
            let state = v.deletedAt != nil ? "retained" : (v.mounted ? "ready" : "unmounted")
            return VolumeReport(id: v.id, state: state, size: v.size, used: snapshot.volumeUsed[v.id], message: errors[.volume(v.id)].map(text))
        }
        for (subject, error) in errors.sorted(by: { $0.key < $1.key }) {
            switch subject {
            case .vm(let id) where snapshot.observation.vms[id] == nil:
                vms.append(VMReport(id: id, state: "error", message: text(error)))
            case .volume(let id) where snapshot.observation.volumes[id] == nil:
                volumes.append(VolumeReport(id: id, state: "error", message: text(error)))
            default:
                break
            }
        }
        return AgentReport(
            host: settings.host, driver: driver.kind, appliedVersion: desired?.version, facts: facts == lastFacts ? nil : facts,
            vms: vms, volumes: volumes, complete: true, images: images == lastImages ? nil : images)
    }

    private func noteFailure(_ error: any Error, what: String) {
        let was = core.withLockedValue { c -> Bool in
            let was = c.connected
            c.connected = false
            return was
        }
        if what == "report" { heartbeatFailed.increment() }
        connectedGauge.record(0)
        if let api = error as? APIClientError, api.code == "certificate_revoked" || api.code == "unknown_certificate" {
            revokedGauge.record(1)
            logger.error("this host's certificate was revoked or is unknown; the controller no longer serves it. Keeping the last desired state.", metadata: ["host.id": "\(settings.host)"])
            return
        }
        if was {
            logger.warning("controller unreachable; keeping the last desired state", metadata: ["what": "\(what)", "error": "\(error)"])
        }
    }
}
