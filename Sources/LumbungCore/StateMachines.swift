#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: Request

/// What happens to a request.
///
/// ```
///  pending ──approve──► approved ──fulfil──► fulfilled
///     │
///     ├──reject──► rejected
///     ├──cancel──► cancelled
///     └──expire──► expired
/// ```
/// Only a pending request can be approved, rejected, cancelled or expire; only an
/// approved one can be fulfilled. Every other pair is illegal.
public enum RequestEvent: String, Hashable, Codable, Sendable, CaseIterable {
    /// An approver or admin approves it.
    case approve
    /// An approver or admin rejects it.
    case reject
    /// The requester withdraws it.
    case cancel
    /// It stayed pending past its expiry.
    case expire
    /// The approved VM, volume or quota change was made.
    case fulfil
}

extension RequestState {
    /// The state after `event`, or `illegal_transition` naming both (see ``RequestEvent`` for the diagram).
    public static func transition(from state: RequestState, event: RequestEvent) throws(CoreError) -> RequestState {
        switch (state, event) {
        case (.pending, .approve): return .approved
        case (.pending, .reject): return .rejected
        case (.pending, .cancel): return .cancelled
        case (.pending, .expire): return .expired
        case (.approved, .fulfil): return .fulfilled
        default:
            throw CoreError(.illegalTransition, "a request that is \(state) cannot be \(event.pastTense); \(state.legalHint)")
        }
    }

    /// Moves to the state after `event`, or throws `illegal_transition` and stays.
    public mutating func apply(_ event: RequestEvent) throws(CoreError) {
        self = try Self.transition(from: self, event: event)
    }

    /// True for fulfilled, rejected, cancelled and expired: nothing happens to the request any more.
    public var isTerminal: Bool {
        switch self {
        case .pending, .approved: false
        case .fulfilled, .rejected, .cancelled, .expired: true
        }
    }

    fileprivate var legalHint: String {
        switch self {
        case .pending: "a pending request can be approved, rejected, cancelled or expire"
        case .approved: "an approved request can only be fulfilled"
        case .fulfilled, .rejected, .cancelled, .expired: "it is final"
        }
    }
}

extension RequestEvent {
    fileprivate var pastTense: String {
        switch self {
        case .approve: "approved"
        case .reject: "rejected"
        case .cancel: "cancelled"
        case .expire: "expired"
        case .fulfil: "fulfilled"
        }
    }
}

extension ResourceRequest {
    /// True when the request is still pending at `now` but its expiry has passed (`now ≥ expiresAt`).
    public func isExpired(now: Date) -> Bool {
        state == .pending && now >= expiresAt
    }

    /// Applies `event` and records the decision: approve, reject and cancel set ``decidedBy``,
    /// ``decidedAt`` and ``decisionReason``; expire sets ``decidedAt``; fulfil sets ``result``
    /// (the VM or volume id, if any). Throws `illegal_transition` and changes nothing when illegal.
    public mutating func apply(
        _ event: RequestEvent, by decider: String? = nil, at now: Date, reason: String? = nil, result: String? = nil
    ) throws(CoreError) {
        let next: RequestState
        do throws(CoreError) {
            next = try RequestState.transition(from: state, event: event)
        } catch {
            throw CoreError(.illegalTransition, "request \(id): \(error.message)")
        }
        state = next
        switch event {
        case .approve, .reject, .cancel:
            decidedBy = decider
            decidedAt = now
            decisionReason = reason
        case .expire:
            decidedAt = now
        case .fulfil:
            if let result { self.result = result }
        }
    }
}

// MARK: VM

/// What happens to a VM. `report…` events come from the host's agent (level based: a
/// repeated report is accepted and changes nothing).
///
/// ```
///  pending ──schedule──► scheduled ──reportRunning──► running
///     │                     │                          ▲    │
///     │                     │            reportRunning │    │ reportStopped
///     │                     │                          │    ▼
///     │                     └─────reportStopped─────► stopped
///     │
///     │   scheduled | running | stopped ──delete──► deleting ──reportDeleted──► deleted
///     │                                                                            ▲
///     └──delete (never placed: nothing to tear down)───────────────────────────────┘
/// ```
/// While deleting, running/stopped reports keep it deleting (the agent is still tearing it
/// down). A second delete, `reportDeleted` outside deleting, and anything after deleted are illegal.
public enum VMEvent: String, Hashable, Codable, Sendable, CaseIterable {
    /// Placement chose a host.
    case schedule
    /// The agent reports the VM running.
    case reportRunning = "report_running"
    /// The agent reports the VM stopped.
    case reportStopped = "report_stopped"
    /// Someone asked to delete it.
    case delete
    /// The agent confirms the VM and its disk are gone.
    case reportDeleted = "report_deleted"
}

extension VMState {
    /// The state after `event`, or `illegal_transition` naming both (see ``VMEvent`` for the diagram).
    public static func transition(from state: VMState, event: VMEvent) throws(CoreError) -> VMState {
        switch (state, event) {
        case (.pending, .schedule): return .scheduled
        case (.pending, .delete): return .deleted
        case (.scheduled, .reportRunning), (.running, .reportRunning), (.stopped, .reportRunning): return .running
        case (.scheduled, .reportStopped), (.running, .reportStopped), (.stopped, .reportStopped): return .stopped
        case (.scheduled, .delete), (.running, .delete), (.stopped, .delete): return .deleting
        case (.deleting, .reportRunning), (.deleting, .reportStopped): return .deleting
        case (.deleting, .reportDeleted): return .deleted
        default:
            throw CoreError(.illegalTransition, "a VM that is \(state) cannot take the event \(event.rawValue)")
        }
    }

    /// Moves to the state after `event`, or throws `illegal_transition` and stays.
    public mutating func apply(_ event: VMEvent) throws(CoreError) {
        self = try Self.transition(from: self, event: event)
    }
}

// MARK: Volume

/// What happens to a volume. `report…` events come from the host's agent.
///
/// ```
///  pending ──schedule──► scheduled ──reportReady──► ready ◄─┐ reportReady
///     │                      │                        │  ───┘
///     │                      └────────delete──────────┤
///     │                                               ▼
///     │                                           deleting ──reportDeleted──► deleted
///     └──delete (never placed)──────────────────────────────────────────────► deleted
/// ```
/// While deleting, ready reports keep it deleting. Anything after deleted is illegal.
public enum VolumeEvent: String, Hashable, Codable, Sendable, CaseIterable {
    /// Placement chose a host.
    case schedule
    /// The agent reports the volume made and mounted.
    case reportReady = "report_ready"
    /// Someone asked to delete it.
    case delete
    /// The agent confirms the volume is gone.
    case reportDeleted = "report_deleted"
}

extension VolumeState {
    /// The state after `event`, or `illegal_transition` naming both (see ``VolumeEvent`` for the diagram).
    public static func transition(from state: VolumeState, event: VolumeEvent) throws(CoreError) -> VolumeState {
        switch (state, event) {
        case (.pending, .schedule): return .scheduled
        case (.pending, .delete): return .deleted
        case (.scheduled, .reportReady), (.ready, .reportReady): return .ready
        case (.scheduled, .delete), (.ready, .delete): return .deleting
        case (.deleting, .reportReady): return .deleting
        case (.deleting, .reportDeleted): return .deleted
        default:
            throw CoreError(.illegalTransition, "a volume that is \(state) cannot take the event \(event.rawValue)")
        }
    }

    /// Moves to the state after `event`, or throws `illegal_transition` and stays.
    public mutating func apply(_ event: VolumeEvent) throws(CoreError) {
        self = try Self.transition(from: self, event: event)
    }
}

// MARK: Host

/// What happens to a host.
///
/// ```
///  connectivity:
///   enrolled ──report──► ready ──timeout (no report for the heartbeat timeout)──► unreachable
///                         ▲ └─┐report                                                │
///                         └───┴──────────────────────────report◄────────────────────┘
///  cordon (orthogonal):
///   uncordoned ──cordon──► cordoned ──uncordon──► uncordoned
/// ```
/// A report is accepted in every connectivity state. `timeout` is legal only from ready
/// (see ``Host/heartbeatCheck(now:timeout:)``). Cordoning a cordoned host or uncordoning
/// an uncordoned one is illegal.
public enum HostEvent: Hashable, Codable, Sendable {
    /// The agent reported at this time.
    case report(at: Date)
    /// No report arrived within the heartbeat timeout.
    case timeout
    /// An admin cordons the host: it takes no new placements.
    case cordon
    /// An admin uncordons the host.
    case uncordon

    var name: String {
        switch self {
        case .report: "report"
        case .timeout: "timeout"
        case .cordon: "cordon"
        case .uncordon: "uncordon"
        }
    }
}

extension HostConnectivity {
    /// The connectivity after `event` (cordon events leave it unchanged), or `illegal_transition`.
    public static func transition(from state: HostConnectivity, event: HostEvent) throws(CoreError) -> HostConnectivity {
        switch (state, event) {
        case (_, .report): return .ready
        case (.ready, .timeout): return .unreachable
        case (_, .cordon), (_, .uncordon): return state
        default:
            throw CoreError(.illegalTransition, "a host that is \(state) cannot take the event \(event.name)")
        }
    }
}

extension Host {
    /// The heartbeat timeout of the design: 40 s without a report.
    public static let defaultHeartbeatTimeout: Duration = .seconds(40)

    /// Applies `event`: a report sets ``connectivity`` to ready and ``lastReportAt``; timeout
    /// makes a ready host unreachable; cordon/uncordon toggle ``cordoned``. Throws
    /// `illegal_transition` naming the host, its state and the event, and changes nothing.
    public mutating func apply(_ event: HostEvent) throws(CoreError) {
        switch event {
        case .cordon where cordoned:
            throw CoreError(.illegalTransition, "host \(id) is already cordoned")
        case .uncordon where !cordoned:
            throw CoreError(.illegalTransition, "host \(id) is not cordoned")
        default:
            break
        }
        do throws(CoreError) {
            connectivity = try HostConnectivity.transition(from: connectivity, event: event)
        } catch {
            throw CoreError(.illegalTransition, "host \(id): \(error.message)")
        }
        switch event {
        case .report(let at): lastReportAt = at
        case .cordon: cordoned = true
        case .uncordon: cordoned = false
        case .timeout: break
        }
    }

    /// Marks a ready host unreachable when its last report (or its creation, if it never
    /// reported) is more than `timeout` before `now`. Returns true when it changed.
    /// Enrolled hosts (never reported) and unreachable ones are left as they are.
    @discardableResult
    public mutating func heartbeatCheck(now: Date, timeout: Duration = Host.defaultHeartbeatTimeout) -> Bool {
        guard connectivity == .ready else { return false }
        let last = lastReportAt ?? createdAt
        let (seconds, attoseconds) = timeout.components
        let limit = Double(seconds) + Double(attoseconds) / 1e18
        guard now.timeIntervalSince(last) > limit else { return false }
        connectivity = .unreachable
        return true
    }
}
