#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore

struct Transition<State: Sendable & Hashable, Event: Sendable & Hashable>: Sendable, Hashable, CustomTestStringConvertible {
    var from: State
    var event: Event
    var to: State
    var testDescription: String { "\(from) --\(event)--> \(to)" }
}

struct Pair<State: Sendable & Hashable, Event: Sendable & Hashable>: Sendable, Hashable, CustomTestStringConvertible {
    var from: State
    var event: Event
    var testDescription: String { "\(from) --\(event)--> ✗" }
}

/// Every (state, event) pair that is not in `legal`.
func illegalPairs<S: CaseIterable & Sendable & Hashable, E: CaseIterable & Sendable & Hashable>(
    _ legal: [Transition<S, E>]
) -> [Pair<S, E>] {
    let allowed = Set(legal.map { Pair(from: $0.from, event: $0.event) })
    return S.allCases.flatMap { s in E.allCases.map { Pair(from: s, event: $0) } }.filter { !allowed.contains($0) }
}

func isIllegalTransition(_ error: any Error, naming words: [String]) -> Bool {
    guard let e = error as? CoreError, e.code == .illegalTransition else { return false }
    return words.allSatisfy { e.message.contains($0) }
}

@Suite struct RequestStateMachineTests {
    static let legal: [Transition<RequestState, RequestEvent>] = [
        .init(from: .pending, event: .approve, to: .approved),
        .init(from: .pending, event: .reject, to: .rejected),
        .init(from: .pending, event: .cancel, to: .cancelled),
        .init(from: .pending, event: .expire, to: .expired),
        .init(from: .approved, event: .fulfil, to: .fulfilled),
    ]

    @Test(arguments: legal)
    func legalTransitions(t: Transition<RequestState, RequestEvent>) throws {
        #expect(try RequestState.transition(from: t.from, event: t.event) == t.to)
        var s = t.from
        try s.apply(t.event)
        #expect(s == t.to)
    }

    @Test(arguments: illegalPairs(legal))
    func illegalTransitions(p: Pair<RequestState, RequestEvent>) {
        var s = p.from
        #expect {
            try s.apply(p.event)
        } throws: { isIllegalTransition($0, naming: [p.from.rawValue]) }
        #expect(s == p.from)
    }

    @Test func terminalStates() {
        #expect(RequestState.allCases.filter(\.isTerminal) == [.fulfilled, .rejected, .cancelled, .expired])
    }

    func request(state: RequestState = .pending) -> ResourceRequest {
        ResourceRequest(
            id: RequestID(rawValue: 7), opd: "dinkes", payload: .vm(vmSpec()), reason: "simpus", requestedBy: "budi", state: state,
            createdAt: t0, expiresAt: t0.addingTimeInterval(3600))
    }

    @Test func expiry() {
        #expect(!request().isExpired(now: t0.addingTimeInterval(3599)))
        #expect(request().isExpired(now: t0.addingTimeInterval(3600)))
        #expect(!request(state: .approved).isExpired(now: t0.addingTimeInterval(7200)))
    }

    @Test func applyRecordsTheDecision() throws {
        var r = request()
        try r.apply(.approve, by: "user:sari", at: t0.addingTimeInterval(60), reason: "ok")
        #expect(r.state == .approved && r.decidedBy == "user:sari" && r.decisionReason == "ok")
        #expect(r.decidedAt == t0.addingTimeInterval(60))
        try r.apply(.fulfil, at: t0.addingTimeInterval(61), result: "vm-3f9a0c21")
        #expect(r.state == .fulfilled && r.result == "vm-3f9a0c21")
        #expect {
            try r.apply(.cancel, by: "user:budi", at: t0.addingTimeInterval(62))
        } throws: { isIllegalTransition($0, naming: ["request 7", "fulfilled", "cancelled"]) }
        #expect(r.state == .fulfilled && r.decidedBy == "user:sari")
    }
}

@Suite struct VMStateMachineTests {
    static let legal: [Transition<VMState, VMEvent>] = [
        .init(from: .pending, event: .schedule, to: .scheduled),
        .init(from: .pending, event: .delete, to: .deleted),
        .init(from: .scheduled, event: .reportRunning, to: .running),
        .init(from: .scheduled, event: .reportStopped, to: .stopped),
        .init(from: .scheduled, event: .delete, to: .deleting),
        .init(from: .running, event: .reportRunning, to: .running),
        .init(from: .running, event: .reportStopped, to: .stopped),
        .init(from: .running, event: .delete, to: .deleting),
        .init(from: .stopped, event: .reportRunning, to: .running),
        .init(from: .stopped, event: .reportStopped, to: .stopped),
        .init(from: .stopped, event: .delete, to: .deleting),
        .init(from: .deleting, event: .reportRunning, to: .deleting),
        .init(from: .deleting, event: .reportStopped, to: .deleting),
        .init(from: .deleting, event: .reportDeleted, to: .deleted),
    ]

    @Test(arguments: legal)
    func legalTransitions(t: Transition<VMState, VMEvent>) throws {
        var s = t.from
        try s.apply(t.event)
        #expect(s == t.to)
    }

    @Test(arguments: illegalPairs(legal))
    func illegalTransitions(p: Pair<VMState, VMEvent>) {
        #expect {
            _ = try VMState.transition(from: p.from, event: p.event)
        } throws: { isIllegalTransition($0, naming: [p.from.rawValue, p.event.rawValue]) }
    }
}

@Suite struct VolumeStateMachineTests {
    static let legal: [Transition<VolumeState, VolumeEvent>] = [
        .init(from: .pending, event: .schedule, to: .scheduled),
        .init(from: .pending, event: .delete, to: .deleted),
        .init(from: .scheduled, event: .reportReady, to: .ready),
        .init(from: .scheduled, event: .delete, to: .deleting),
        .init(from: .ready, event: .reportReady, to: .ready),
        .init(from: .ready, event: .delete, to: .deleting),
        .init(from: .deleting, event: .reportReady, to: .deleting),
        .init(from: .deleting, event: .reportDeleted, to: .deleted),
    ]

    @Test(arguments: legal)
    func legalTransitions(t: Transition<VolumeState, VolumeEvent>) throws {
        var s = t.from
        try s.apply(t.event)
        #expect(s == t.to)
    }

    @Test(arguments: illegalPairs(legal))
    func illegalTransitions(p: Pair<VolumeState, VolumeEvent>) {
        #expect {
            _ = try VolumeState.transition(from: p.from, event: p.event)
        } throws: { isIllegalTransition($0, naming: [p.from.rawValue, p.event.rawValue]) }
    }
}

@Suite struct HostStateMachineTests {
    @Test func firstReportMakesAnEnrolledHostReady() throws {
        var h = makeHost("node-01", connectivity: .enrolled)
        #expect(h.state == .enrolled)
        try h.apply(.report(at: t0.addingTimeInterval(5)))
        #expect(h.connectivity == .ready && h.state == .ready)
        #expect(h.lastReportAt == t0.addingTimeInterval(5))
    }

    @Test(arguments: [(39.0, false), (40.0, false), (40.5, true), (3600.0, true)])
    func heartbeatTimeout(after: Double, unreachable: Bool) throws {
        var h = makeHost("node-01", connectivity: .enrolled)
        try h.apply(.report(at: t0))
        let changed = h.heartbeatCheck(now: t0.addingTimeInterval(after), timeout: .seconds(40))
        #expect(changed == unreachable)
        #expect(h.connectivity == (unreachable ? .unreachable : .ready))
        if unreachable {
            #expect(h.state == .unreachable)
            let changedAgain = h.heartbeatCheck(now: t0.addingTimeInterval(after + 100))
            #expect(!changedAgain)
            try h.apply(.report(at: t0.addingTimeInterval(after + 1)))
            #expect(h.connectivity == .ready)
        }
    }

    @Test func enrolledHostsNeverTimeOut() {
        var h = makeHost("node-01", connectivity: .enrolled)
        let changed = h.heartbeatCheck(now: t0.addingTimeInterval(86_400))
        #expect(!changed)
        #expect(h.connectivity == .enrolled)
    }

    @Test func cordonToggles() throws {
        var h = makeHost("node-01")
        try h.apply(.cordon)
        #expect(h.cordoned && h.state == .cordoned && h.connectivity == .ready)
        #expect {
            try h.apply(.cordon)
        } throws: { isIllegalTransition($0, naming: ["node-01", "already cordoned"]) }
        try h.apply(.uncordon)
        #expect(!h.cordoned && h.state == .ready)
        #expect {
            try h.apply(.uncordon)
        } throws: { isIllegalTransition($0, naming: ["node-01", "not cordoned"]) }
    }

    @Test(arguments: [HostConnectivity.enrolled, .unreachable])
    func timeoutOnlyFromReady(c: HostConnectivity) {
        var h = makeHost("node-01", connectivity: c)
        #expect {
            try h.apply(.timeout)
        } throws: { isIllegalTransition($0, naming: ["node-01", c.rawValue, "timeout"]) }
        #expect(h.connectivity == c)
    }
}
