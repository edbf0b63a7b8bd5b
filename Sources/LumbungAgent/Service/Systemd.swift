import CSystemd
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// sd_notify through libsystemd: READY, STATUS and WATCHDOG for `Type=notify` units.
/// Every call is a silent no-op when `NOTIFY_SOCKET` is not set (not under systemd).
public enum Systemd {
    /// Sends `READY=1` with a status line.
    public static func ready(status: String) {
        _ = sd_notify(0, "READY=1\nSTATUS=\(sanitize(status))")
    }

    /// Sends a status line (shown by `systemctl status`).
    public static func status(_ text: String) {
        _ = sd_notify(0, "STATUS=\(sanitize(text))")
    }

    /// Sends `STOPPING=1`.
    public static func stopping() {
        _ = sd_notify(0, "STOPPING=1")
    }

    /// The watchdog interval systemd expects (`WatchdogSec=`), or nil when none is set.
    public static var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }

    /// Pings the watchdog every half interval until cancelled; returns at once without a watchdog.
    public static func watchdogLoop() async {
        guard let interval = watchdogInterval else { return }
        while !Task.isCancelled {
            _ = sd_notify(0, "WATCHDOG=1")
            try? await Task.sleep(for: interval / 2)
        }
    }

    private static func sanitize(_ s: String) -> String {
        s.replacing("\n", with: " ")
    }
}
