#if canImport(Glibc)
import Glibc
#endif

/// Releases the agent's mappings of code and read-only data it no longer runs.
///
/// Starting up (argument parsing, configuration, TLS set-up, enrollment checks, the first
/// reconcile) runs code the agent then never runs again, and the kernel maps executable pages
/// in blocks of 64 KiB around each fault, so after start-up most of the executable and of the
/// Swift runtime stays mapped (in RSS) although little of it runs. ``release()`` asks the
/// kernel to drop this process's mappings of pages that are identical to their file: private,
/// non-writable, file-backed mappings without a single private copy (`Anonymous: 0 kB`,
/// `Swap: 0 kB` in `/proc/self/smaps`). Nothing is lost: the pages stay in the page cache
/// and the next instruction that needs one maps it again (a minor fault). Relocated data
/// (RELRO), writable data, the heap and stacks are never touched.
///
/// The agent runs it a little after start and then periodically (`code_trim_seconds`), so
/// its resident code converges to what its steady state (heartbeats, long-poll, `/metrics`)
/// runs. The executable's functions are laid out in that order at link time
/// (`agent/lumbung-agent.order`), so that code sits in few pages.
public enum CodePages {
    /// One mapping of `/proc/self/smaps` that can be released.
    public struct Mapping: Equatable, Sendable {
        public var start: UInt
        public var end: UInt
        public var path: String
        /// Resident KiB before release.
        public var residentKiB: Int
    }

    /// What one release did.
    public struct Release: Sendable {
        /// Mappings advised.
        public var mappings: Int
        /// Resident KiB of those mappings before (from smaps).
        public var releasedKiB: Int
        /// Mappings that could not be advised (madvise failed).
        public var failed: Int
    }

    /// The mappings of an smaps text whose pages are all identical to their file: a path
    /// (not `[vdso]`, not anonymous), private, not writable, no anonymous or swapped page,
    /// not locked.
    public static func releasable(smaps: String) -> [Mapping] {
        var result: [Mapping] = []
        var current: Mapping?
        var eligible = false
        func finish() {
            if let m = current, eligible, m.residentKiB > 0 { result.append(m) }
            current = nil
            eligible = false
        }
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if !first.hasSuffix(":"), first.contains("-") {
                finish()
                let range = first.split(separator: "-")
                guard fields.count >= 5, range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start
                else { continue }
                let perms = fields[1]
                let path = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
                current = Mapping(start: start, end: end, path: path, residentKiB: 0)
                eligible = path.hasPrefix("/") && !path.hasSuffix(" (deleted)") && perms.count == 4
                    && perms.hasPrefix("r") && !perms.contains("w") && perms.hasSuffix("p")
                continue
            }
            guard current != nil, fields.count >= 2 else { continue }
            switch first {
            case "Rss:":
                current?.residentKiB = Int(fields[1]) ?? 0
            case "Anonymous:", "Swap:", "Locked:", "AnonHugePages:":
                if fields[1] != "0" { eligible = false }
            case "VmFlags:":
                // Locked (lo), I/O (io) or pure-PFN (pf) mappings are left alone.
                if fields.dropFirst().contains(where: { $0 == "lo" || $0 == "io" || $0 == "pf" }) { eligible = false }
            default:
                break
            }
        }
        finish()
        return result
    }

    /// Drops this process's mappings of the ``releasable(smaps:)`` pages (`MADV_DONTNEED`).
    /// Returns nil when `/proc/self/smaps` cannot be read.
    @discardableResult
    public static func release() -> Release? {
        guard let smaps = readAll("/proc/self/smaps") else { return nil }
        var done = Release(mappings: 0, releasedKiB: 0, failed: 0)
        for m in releasable(smaps: smaps) {
            if madvise(UnsafeMutableRawPointer(bitPattern: m.start), Int(m.end - m.start), MADV_DONTNEED) == 0 {
                done.mappings += 1
                done.releasedKiB += m.residentKiB
            } else {
                done.failed += 1
            }
        }
        return done
    }

    /// Caps glibc's malloc arenas (`mallopt(M_ARENA_MAX, n)`): by default glibc makes up to
    /// 8 per core as threads allocate, and each keeps its own free pages resident. Call before
    /// threads start.
    public static func limitHeapArenas(_ count: Int32) {
        _ = glibc_mallopt(-8 /* M_ARENA_MAX */, count)
    }

    /// Returns the heap's free pages to the kernel (`malloc_trim(0)`).
    public static func trimHeap() {
        _ = glibc_malloc_trim(0)
    }

    /// This process's resident set in KiB (`VmRSS` of `/proc/self/status`), or nil.
    public static func residentKiB() -> Int? {
        guard let status = readAll("/proc/self/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// A whole /proc file (they report size 0), or nil.
    static func readAll(_ path: String) -> String? { try? CgroupPosixFiles.read(path) }
}

// <malloc.h> is not part of Swift's Glibc module.
@_silgen_name("mallopt") private func glibc_mallopt(_ parameter: Int32, _ value: Int32) -> Int32
@_silgen_name("malloc_trim") private func glibc_malloc_trim(_ pad: Int) -> Int32
