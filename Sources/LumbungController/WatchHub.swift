import Foundation
import LumbungCore
import NIOConcurrencyHelpers

/// Wakes agents' long-polls when their host's desired version changes.
///
/// The ledger publishes each touched host's version after a commit; a long-poll waits until
/// the version differs from the one the agent already has, or until its timeout.
public final class WatchHub: Sendable {
    private struct Waiter {
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct HostEntry {
        var version: Int64 = 0
        var waiters: [UInt64: Waiter] = [:]
    }

    private struct State {
        var hosts: [HostID: HostEntry] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Sets a host's version and wakes its waiters.
    public func publish(_ host: HostID, version: Int64) {
        let woken: [Waiter] = state.withLockedValue { s in
            var entry = s.hosts[host, default: HostEntry()]
            entry.version = version
            let w = Array(entry.waiters.values)
            entry.waiters.removeAll()
            s.hosts[host] = entry
            return w
        }
        for w in woken { w.continuation.resume() }
    }

    /// The last published version of a host.
    public func version(of host: HostID) -> Int64 {
        state.withLockedValue { $0.hosts[host]?.version ?? 0 }
    }

    /// Returns when the host's version differs from `after`, after `timeout`, or on cancellation.
    public func wait(for host: HostID, after: Int64, timeout: Duration) async {
        let id: UInt64 = state.withLockedValue { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered: Bool = state.withLockedValue { s in
                    var entry = s.hosts[host, default: HostEntry()]
                    if entry.version != after {
                        return false
                    }
                    entry.waiters[id] = Waiter(continuation: continuation)
                    s.hosts[host] = entry
                    return true
                }
                if !registered {
                    continuation.resume()
                    return
                }
                Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    self?.cancel(host: host, id: id)
                }
            }
        } onCancel: {
            self.cancel(host: host, id: id)
        }
    }

    private func cancel(host: HostID, id: UInt64) {
        let waiter: Waiter? = state.withLockedValue { s in
            s.hosts[host]?.waiters.removeValue(forKey: id)
        }
        waiter?.continuation.resume()
    }
}
