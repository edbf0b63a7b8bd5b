import Foundation
import Logging
import LumbungAPI
import LumbungCore
import Metrics
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
        var connected = false
        var reconciles = 0
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

    // MARK: Reconcile

    func tickLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.reconcileInterval)
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
            let planner = ReconcilePlanner(retention: settings.retention)
            let plan = planner.plan(desired: desired.intent, actual: snapshot.observation, now: Date())
            var errors: [ReconcileSubject: ReconcileError] = [:]
            for e in plan.errors { errors[e.subject] = e }
            for action in plan.actions {
                do {
                    try await driver.perform(action)
                    logger.info("reconcile action", metadata: ["action": "\(action.kind)", "subject": "\(action.subject)"])
                } catch {
                    let code: ReconcileError.Code = .insufficientSpace
                    errors[action.subject] = ReconcileError(action.subject, code, "\(action.kind) failed: \(error)")
                    logger.warning("reconcile action failed", metadata: ["action": "\(action.kind)", "subject": "\(action.subject)", "error": "\(error)"])
                }
            }
            core.withLockedValue {
                $0.errors = errors
                $0.reconciles += 1
            }
            if errors.isEmpty { reconcileOK.increment() } else { reconcileError.increment() }
            reconcileTime.recordNanoseconds(Self.nanoseconds(ContinuousClock.now - started))
            if !plan.actions.isEmpty || !plan.errors.isEmpty {
                // Tell the controller at once instead of at the next heartbeat.
                try? await reportOnce()
            }
            return plan
        } catch {
            reconcileError.increment()
            logger.warning("reconcile failed", metadata: ["error": "\(error)"])
            return nil
        }
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
        let (errors, lastFacts) = core.withLockedValue { ($0.errors, $0.lastFacts) }
        var vms: [VMReport] = snapshot.observation.vms.values.sorted { $0.id < $1.id }.map { vm in
            let u = snapshot.vmUsage[vm.id]
            return VMReport(
                id: vm.id, state: vm.running ? "running" : "stopped", cpuSeconds: u?.cpuSeconds, memoryUsed: u?.memoryUsed,
                memoryLimit: u?.memoryLimit, diskUsed: u?.diskUsed)
        }
        var volumes: [VolumeReport] = snapshot.observation.volumes.values.sorted { $0.id < $1.id }.map { v in
            let state = v.deletedAt != nil ? "retained" : (v.mounted ? "ready" : "unmounted")
            return VolumeReport(id: v.id, state: state, size: v.size, used: snapshot.volumeUsed[v.id])
        }
        for (subject, error) in errors.sorted(by: { $0.key < $1.key }) {
            switch subject {
            case .vm(let id) where snapshot.observation.vms[id] == nil:
                vms.append(VMReport(id: id, state: "error", message: error.message))
            case .volume(let id) where snapshot.observation.volumes[id] == nil:
                volumes.append(VolumeReport(id: id, state: "error", message: error.message))
            default:
                break
            }
        }
        return AgentReport(
            host: settings.host, driver: driver.kind, appliedVersion: desired?.version, facts: facts == lastFacts ? nil : facts,
            vms: vms, volumes: volumes, complete: true)
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
