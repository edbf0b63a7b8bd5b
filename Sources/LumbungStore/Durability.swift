import Foundation
import Metrics

#if canImport(Glibc)
import Glibc
#endif

/// A committed write transaction's place in the store's commit order. It is durable once
/// ``Store/whenDurable(_:_:)`` says so; see ``Store/commitStaged(_:audit:)``.
public struct DurabilityTicket: Sendable, Hashable, Comparable {
    let seq: UInt64

    /// The ticket before any commit (already durable).
    public static let none = DurabilityTicket(seq: 0)

    public static func < (a: DurabilityTicket, b: DurabilityTicket) -> Bool { a.seq < b.seq }
}

/// Makes committed transactions durable by flushing the WAL file, off the writer's path.
///
/// The writing connection runs WAL with `synchronous = NORMAL`: SQLite syncs the WAL before
/// each checkpoint and the main file after it (so the file is never corrupt and a checkpointed
/// transaction is on disk), but it does not sync at each commit. That one sync is done here:
/// `fdatasync` of the `-wal` file, which makes every frame written before it started durable
/// — exactly what `synchronous = FULL` does inside `COMMIT`. Doing it here lets the next
/// transaction run while the previous one's flush is under way (group commit with a pipelined
/// flush); callers are answered only once their ticket is flushed.
///
/// Rules that make a ticket safe to call durable:
/// - a ticket is handed out only after its transaction committed (its frames are written);
/// - a flush covers the tickets handed out **before** it started;
/// - the WAL's directory is synced whenever a new WAL file is opened here, so its name is durable.
///
/// A failed flush is not retried: the pages it could not write may already be marked clean by
/// the kernel, so nothing written since the last good flush can be called durable. Every waiter
/// fails, and so does every later write (the controller must be restarted; SQLite's recovery then
/// keeps what reached the disk).
final class WALFlusher: @unchecked Sendable {
    typealias Callback = @Sendable (Result<Void, StoreError>) -> Void

    private let walPath: String
    private let databasePath: String
    /// Guards the counters, the waiters and the thread's state.
    private let condition = NSCondition()
    private var committed: UInt64 = 0
    private var flushed: UInt64 = 0
    private var failure: StoreError?
    private var waiters: [(seq: UInt64, callback: Callback)] = []
    private var threadStarted = false
    private var stopping = false
    private var threadExited = false
    /// Serializes flushes and the callbacks they resolve (in ticket order); guards `fd`.
    private let flushLock = NSLock()
    private var fd: Int32 = -1
    /// The flush system call (`fdatasync`); tests put a failing or blocking one in its place.
    private var syncCall: @Sendable (Int32) -> Int32 = { fdatasync($0) }
    private var fdInode: UInt64 = 0
    private var fdDevice: UInt64 = 0
    /// How long each `fdatasync` of the WAL took.
    private let flushTimer = Timer(label: "lumbung_store_flush_duration_seconds", preferredDisplayUnit: .seconds)
    /// How many committed transactions each flush made durable.
    private let flushCovers = Recorder(label: "lumbung_store_flush_transactions")
    /// Flushes done (`fdatasync` calls, guarded by `flushLock`).
    private var flushes = 0

    /// Replaces the flush system call (tests: a failing or a blocking `fdatasync`).
    func replaceSyncCall(_ call: @escaping @Sendable (Int32) -> Int32) {
        flushLock.lock()
        defer { flushLock.unlock() }
        syncCall = call
    }

    /// Flushes done so far; for tests and diagnostics.
    var flushCount: Int {
        flushLock.lock()
        defer { flushLock.unlock() }
        return flushes
    }

    init(databasePath: String) {
        self.databasePath = databasePath
        self.walPath = databasePath + "-wal"
    }

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// The error of a failed flush, if one failed.
    var failed: StoreError? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// True when `ticket`'s transaction is on disk.
    func isDurable(_ ticket: DurabilityTicket) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return flushed >= ticket.seq
    }

    /// Records a transaction that has just committed; returns its ticket.
    func committedTransaction() -> DurabilityTicket {
        condition.lock()
        defer { condition.unlock() }
        committed += 1
        return DurabilityTicket(seq: committed)
    }

    /// Blocks until every transaction committed so far is durable.
    func syncNow() throws(StoreError) {
        condition.lock()
        let target = committed
        condition.unlock()
        try flush(upTo: target)
    }

    /// Calls `callback` (on the flusher's thread, in ticket order) once `ticket` is durable, or
    /// with the error of the flush that failed. The callback must be quick and must not block.
    func whenDurable(_ ticket: DurabilityTicket, _ callback: @escaping Callback) {
        condition.lock()
        if let failure {
            condition.unlock()
            callback(.failure(failure))
            return
        }
        if stopping {
            // Closed: `stop()` flushed everything committed before it.
            let durable = flushed >= ticket.seq
            condition.unlock()
            callback(durable ? .success(()) : .failure(StoreError(.closed, "the store closed before the change was flushed to disk")))
            return
        }
        waiters.append((ticket.seq, callback))
        if !threadStarted {
            threadStarted = true
            Thread { [self] in run() }.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Flushes what is committed, resolves every waiter, and ends the flusher's thread.
    func stop() {
        try? syncNow()
        condition.lock()
        stopping = true
        condition.broadcast()
        while threadStarted && !threadExited { condition.wait() }
        let left = waiters
        waiters.removeAll()
        condition.unlock()
        // Only when the flush above failed (or a commit raced with closing): never call them durable.
        let error = failed ?? StoreError(.closed, "the store closed before the change was flushed to disk")
        for w in left { w.callback(.failure(error)) }
        flushLock.lock()
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
        flushLock.unlock()
    }

    private func run() {
        // Named for `top -H` and `perf` (a new thread otherwise keeps its creator's name).
        // (`pthread_setname_np` is not visible from Swift's Glibc module; the kernel's file is.)
        let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        if comm >= 0 {
            _ = "lumbung-flush".withCString { write(comm, $0, strlen($0)) }
            _ = Glibc.close(comm)
        }
        while true {
            condition.lock()
            while !stopping && (waiters.isEmpty || failure != nil) { condition.wait() }
            if stopping {
                threadExited = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let target = waiters.map(\.seq).max() ?? 0
            condition.unlock()
            try? flush(upTo: target)
        }
    }

    /// Makes `target` durable (one `fdatasync` unless an earlier flush already covered it), then
    /// resolves the waiters it covers.
    private func flush(upTo target: UInt64) throws(StoreError) {
        flushLock.lock()
        defer { flushLock.unlock() }
        condition.lock()
        if let failure {
            condition.unlock()
            throw failure
        }
        var covered = flushed
        if flushed < target {
            // Everything committed before this point is in the WAL file: the flush covers it.
            let snapshot = committed
            condition.unlock()
            do {
                try syncFile()
            } catch {
                condition.lock()
                failure = error
                let all = waiters
                waiters.removeAll()
                condition.unlock()
                for w in all { w.callback(.failure(error)) }
                throw error
            }
            condition.lock()
            flushCovers.record(Int64(snapshot &- min(flushed, snapshot)))
            flushed = max(flushed, snapshot)
            covered = flushed
        }
        var ready: [(seq: UInt64, callback: Callback)] = []
        waiters.removeAll { w in
            if w.seq <= covered {
                ready.append(w)
                return true
            }
            return false
        }
        condition.unlock()
        ready.sort { $0.seq < $1.seq }
        for w in ready { w.callback(.success(())) }
    }

    /// `fdatasync` of the WAL file (opened once, reopened if SQLite made a new one).
    private func syncFile() throws(StoreError) {
        flushes += 1
        var st = stat()
        if stat(walPath, &st) != 0 {
            let code = errno
            guard code == ENOENT else { throw Self.error("cannot inspect \(walPath)", code) }
            // No WAL file (not in WAL mode): the transaction is in the main file.
            try Self.syncPath(databasePath, data: true)
            return
        }
        if fd < 0 || UInt64(st.st_ino) != fdInode || UInt64(st.st_dev) != fdDevice {
            if fd >= 0 {
                // The old file was replaced: flush it too, then let it go.
                _ = fdatasync(fd)
                _ = Glibc.close(fd)
                fd = -1
            }
            let opened = open(walPath, O_RDONLY | O_CLOEXEC)
            guard opened >= 0 else { throw Self.error("cannot open \(walPath) to flush it", errno) }
            var own = stat()
            guard fstat(opened, &own) == 0 else {
                let code = errno
                _ = Glibc.close(opened)
                throw Self.error("cannot inspect \(walPath)", code)
            }
            fd = opened
            fdInode = UInt64(own.st_ino)
            fdDevice = UInt64(own.st_dev)
            // A new file's name is durable only once its directory is.
            try Self.syncPath((walPath as NSString).deletingLastPathComponent, data: false)
        }
        let started = ContinuousClock.now
        let result = syncCall(fd)
        let code = errno
        let took = started.duration(to: .now).components
        flushTimer.recordNanoseconds(took.seconds * 1_000_000_000 + took.attoseconds / 1_000_000_000)
        if result != 0 { throw Self.error("fdatasync of \(walPath) failed", code) }
    }

    private static func syncPath(_ path: String, data: Bool) throws(StoreError) {
        let handle = open(path.isEmpty ? "." : path, O_RDONLY | O_CLOEXEC)
        guard handle >= 0 else { throw error("cannot open \(path) to flush it", errno) }
        defer { _ = Glibc.close(handle) }
        let result = data ? fdatasync(handle) : fsync(handle)
        if result != 0 { throw error("flushing \(path) failed", errno) }
    }

    private static func error(_ what: String, _ code: Int32) -> StoreError {
        StoreError(
            .database,
            "\(what): \(String(cString: strerror(code))); changes since the last successful flush may not be on disk, restart lumbungd")
    }
}
