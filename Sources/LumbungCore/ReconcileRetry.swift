#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An error that knows whether retrying it can help.
public protocol RetryClassifiable: Error {
    /// True when retrying cannot help: only a change of the input (or an admin) resolves it.
    var isTerminal: Bool { get }
}

extension ReconcileError: RetryClassifiable {}

extension CoreError: RetryClassifiable {
    /// Core's errors are verdicts about their input and terminal, except `capacity_exceeded`
    /// (capacity may be freed).
    public var isTerminal: Bool { code != .capacityExceeded }
}

/// Whether a failed action is tried again.
public enum ErrorDisposition: String, Hashable, Codable, Sendable {
    /// Tried again after a backoff.
    case retryable
    /// Not retried: reported (to the controller, the log) until the input changes.
    case terminal

    /// Classifies `error`: a ``RetryClassifiable`` error says itself; anything else (I/O, a
    /// process that failed, a timeout) is retryable.
    public static func of(_ error: any Error) -> ErrorDisposition {
        if let e = error as? any RetryClassifiable { return e.isTerminal ? .terminal : .retryable }
        return .retryable
    }
}

/// What to do after a failure.
public enum RetryDecision: Hashable, Sendable {
    /// Try again at this time.
    case retry(at: Date)
    /// Do not retry; report it.
    case giveUp
}

/// Exponential backoff with full jitter, capped (default 1 s doubling up to 5 min).
///
/// After the `n`-th consecutive failure (n ≥ 1) the ceiling is
/// `min(maximum, initial × 2^(n−1))` and the delay is drawn uniformly from `[0, ceiling]`
/// (nanosecond resolution) by the injected random source, so agents that fail together do
/// not retry together.
///
/// ```
///  attempt:   1    2    3    4   …   9      10 …
///  ceiling:   1s   2s   4s   8s  …   256s   300s (capped)
///  delay:     uniform in [0, ceiling]
/// ```
public struct RetryPolicy: Hashable, Sendable {
    /// The ceiling after the first failure.
    public var initial: Duration
    /// The largest ceiling.
    public var maximum: Duration

    /// Creates a policy; `maximum` below `initial` caps every ceiling at `maximum`.
    public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(300)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// 1 s doubling up to 5 min.
    public static let `default` = RetryPolicy()

    /// The largest delay after `attempt` consecutive failures (values below 1 count as 1).
    public func ceiling(attempt: Int) -> Duration {
        .nanoseconds(ceilingNanoseconds(attempt: attempt))
    }

    /// A delay drawn uniformly from `[0, ceiling(attempt)]` with `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let top = ceilingNanoseconds(attempt: attempt)
        return .nanoseconds(top == 0 ? 0 : Int64.random(in: 0...top, using: &generator))
    }

    /// When to try again after the `attempt`-th consecutive failure at `failedAt`.
    public func nextAttempt(after failedAt: Date, attempt: Int, using generator: inout some RandomNumberGenerator) -> Date {
        let d = delay(attempt: attempt, using: &generator)
        let (s, atto) = d.components
        return failedAt.addingTimeInterval(Double(s) + Double(atto) / 1e18)
    }

    /// Gives up on terminal errors (see ``ErrorDisposition/of(_:)``); otherwise says when to retry.
    public func decide(
        _ error: any Error, attempt: Int, now: Date, using generator: inout some RandomNumberGenerator
    ) -> RetryDecision {
        guard ErrorDisposition.of(error) == .retryable else { return .giveUp }
        return .retry(at: nextAttempt(after: now, attempt: attempt, using: &generator))
    }

    private func ceilingNanoseconds(attempt: Int) -> Int64 {
        let cap = Self.nanoseconds(maximum)
        var c = min(Self.nanoseconds(initial), cap)
        guard c > 0 else { return 0 }
        var n = 1
        while n < attempt, c < cap {
            c = c > cap / 2 ? cap : c * 2
            n += 1
        }
        return c
    }

    /// Whole nanoseconds of a non-negative duration, saturating at `Int64.max`.
    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        guard s >= 0 else { return 0 }
        let (scaled, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(atto / 1_000_000_000)
        return overflow2 ? .max : sum
    }
}
