#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore

@Suite struct ReconcileRetryTests {
    struct CeilingCase: Sendable, CustomTestStringConvertible {
        var attempt: Int
        var seconds: Int64
        var testDescription: String { "attempt \(attempt) → ≤ \(seconds) s" }
    }

    @Test(arguments: [
        CeilingCase(attempt: -3, seconds: 1), CeilingCase(attempt: 0, seconds: 1), CeilingCase(attempt: 1, seconds: 1),
        CeilingCase(attempt: 2, seconds: 2), CeilingCase(attempt: 3, seconds: 4), CeilingCase(attempt: 4, seconds: 8),
        CeilingCase(attempt: 9, seconds: 256), CeilingCase(attempt: 10, seconds: 300), CeilingCase(attempt: 64, seconds: 300),
        CeilingCase(attempt: Int.max, seconds: 300),
    ])
    func ceilingDoublesUpToTheCap(c: CeilingCase) {
        #expect(RetryPolicy.default.ceiling(attempt: c.attempt) == .seconds(c.seconds))
    }

    @Test(arguments: 1...20)
    func delaysStayWithinZeroAndTheCeiling(attempt: Int) {
        var rng = SplitMix64(seed: UInt64(attempt))
        let policy = RetryPolicy.default
        let ceiling = policy.ceiling(attempt: attempt)
        var smallest = ceiling
        var largest = Duration.zero
        for _ in 0..<2_000 {
            let d = policy.delay(attempt: attempt, using: &rng)
            #expect(d >= .zero && d <= ceiling)
            smallest = min(smallest, d)
            largest = max(largest, d)
        }
        // Full jitter spreads over the whole range.
        #expect(smallest < ceiling / 10)
        #expect(largest > ceiling * 9 / 10)
    }

    @Test func theSameSeedGivesTheSameDelays() {
        var a = SplitMix64(seed: 42)
        var b = SplitMix64(seed: 42)
        var c = SplitMix64(seed: 43)
        let policy = RetryPolicy.default
        let first = (1...10).map { policy.delay(attempt: $0, using: &a) }
        let second = (1...10).map { policy.delay(attempt: $0, using: &b) }
        let other = (1...10).map { policy.delay(attempt: $0, using: &c) }
        #expect(first == second)
        #expect(first != other)
    }

    @Test func nextAttemptIsAfterTheFailureWithinTheCeiling() {
        var rng = SplitMix64(seed: 7)
        let policy = RetryPolicy(initial: .milliseconds(500), maximum: .seconds(30))
        for attempt in 1...12 {
            let at = policy.nextAttempt(after: t0, attempt: attempt, using: &rng)
            let ceiling = ReconcilePlanner.seconds(policy.ceiling(attempt: attempt))
            #expect(at >= t0 && at <= t0 + ceiling)
        }
        #expect(policy.ceiling(attempt: 1) == .milliseconds(500))
        #expect(policy.ceiling(attempt: 7) == .seconds(30))
    }

    @Test func degeneratePoliciesDoNotLoopOrTrap() {
        var rng = SplitMix64(seed: 1)
        #expect(RetryPolicy(initial: .zero, maximum: .seconds(5)).delay(attempt: Int.max, using: &rng) == .zero)
        #expect(RetryPolicy(initial: .seconds(10), maximum: .seconds(3)).ceiling(attempt: 1) == .seconds(3))
        #expect(RetryPolicy(initial: .seconds(1), maximum: .seconds(Int64.max)).ceiling(attempt: Int.max) > .seconds(1_000_000))
    }

    struct Unclassified: Error {}

    @Test(arguments: ReconcileError.Code.allCases)
    func plannerErrorsAreClassifiedByCode(code: ReconcileError.Code) {
        let error = ReconcileError(.vm("vm-1"), code, "x")
        let expected: ErrorDisposition = code == .insufficientSpace || code == .actionFailed ? .retryable : .terminal
        #expect(ErrorDisposition.of(error) == expected)
    }

    @Test func classification() {
        #expect(ErrorDisposition.of(Unclassified()) == .retryable)
        #expect(ErrorDisposition.of(CoreError(.invalidName, "x")) == .terminal)
        #expect(ErrorDisposition.of(CoreError(.capacityExceeded, "x")) == .retryable)
    }

    @Test func decideGivesUpOnTerminalErrorsAndSchedulesTheRest() {
        var rng = SplitMix64(seed: 3)
        let policy = RetryPolicy.default
        #expect(policy.decide(ReconcileError(.vm("vm-1"), .imageMissing, "x"), attempt: 1, now: t0, using: &rng) == .giveUp)
        guard case .retry(let at) = policy.decide(Unclassified(), attempt: 3, now: t0, using: &rng) else {
            Issue.record("an unclassified error is retried")
            return
        }
        #expect(at >= t0 && at <= t0 + 4)
    }
}
