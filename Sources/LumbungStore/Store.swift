import Foundation
import GRDB
import Synchronization
import LumbungCore

/// The controller's persistent state: one SQLite file in WAL mode.
///
/// - Every write is one transaction, and every write appends its audit entries to the
///   hash-chained log in that same transaction (see ``commit(_:audit:)`` and `Audit.swift`).
/// - Durable writes: when a write returns, the transaction is on disk and survives a power
///   cut or `SIGKILL`. The writer runs `synchronous = NORMAL` and each write is followed by an
///   `fdatasync` of the WAL (``WALFlusher``), which is what `synchronous = FULL` would do inside
///   `COMMIT`; the ledger's ``commitStaged(_:audit:)`` lets that flush overlap the next
///   transaction and answers its callers only once it is done (``whenDurable(_:_:)``).
/// - Writes are serialized on one connection; reads run on a pool of read-only
///   connections and see a consistent snapshot.
/// - The synchronous methods block the calling thread for one SQLite transaction; call
///   them from a context where that is acceptable (the ledger actor, a request handler).
///
/// Open it with ``init(path:)``; ``close()`` checkpoints the WAL into the main file and
/// closes every connection (the `-wal` and `-shm` files are removed).
public final class Store: Sendable {
    /// The path of the SQLite file.
    public let path: String
    let pool: DatabasePool
    let flusher: WALFlusher
    private let closedFlag = ClosedFlag()
    private let identityCounter = Atomic<UInt64>(0)

    /// How long a write waits for a lock held by another process before failing with `busy`.
    public static let busyTimeout: TimeInterval = 10

    /// Opens the database at `path`, creating the file and its parent folder when
    /// missing, and brings the schema up to date with the numbered migrations.
    ///
    /// - Throws: ``StoreError`` with code `incompatible` when the file was written by a
    ///   newer version, `corrupt` when it is not a database, `database` for I/O failures.
    public init(path: String) throws {
        self.path = path
        self.flusher = WALFlusher(databasePath: path)
        do {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.database, "cannot create the folder of the database \(path): \(error)")
        }
        var config = Configuration()
        config.label = "lumbung.store"
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(Self.busyTimeout)
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // WAL with `synchronous = NORMAL` (what DatabasePool sets when it turns WAL on, said
            // here so it cannot change unnoticed): SQLite syncs around checkpoints, the flusher
            // after every commit.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            let migrator = Schema.migrator
            let superseded = try pool.read { db in try migrator.hasBeenSuperseded(db) }
            if superseded {
                try? pool.close()
                throw StoreError(
                    .incompatible, "the database \(path) was written by a newer version of Lumbung; upgrade lumbungd before opening it")
            }
            try migrator.migrate(pool)
            try flusher.syncNow()
        } catch {
            throw StoreError.wrap(error, doing: "opening the database \(path)")
        }
    }

    /// Checkpoints the WAL into the main file (`checkpoint(.truncate)`), then closes every
    /// connection. Calling it again does nothing. Any later use throws `closed`.
    public func close() throws {
        guard closedFlag.close() else { return }
        // Everything committed is flushed (and every waiter answered) before the files go.
        flusher.stop()
        var checkpointError: (any Error)?
        do {
            try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        } catch {
            checkpointError = error
        }
        // Close the read-only connections first: the last connection to close removes the
        // `-wal` and `-shm` files only when it can write, i.e. when it is the writer.
        pool.releaseMemory()
        do {
            try pool.close()
        } catch {
            throw StoreError.wrap(error, doing: "closing the database")
        }
        if let checkpointError {
            throw StoreError.wrap(checkpointError, doing: "checkpointing the database before closing")
        }
    }

    // MARK: - Transactions

    private func ensureOpen(_ what: String) throws {
        if closedFlag.isClosed {
            throw StoreError(.closed, "\(what) failed: the store is closed")
        }
    }

    /// ``ensureOpen(_:)``, and no flush has failed (reads stay possible after one, writes do not).
    private func ensureWritable(_ what: String) throws {
        try ensureOpen(what)
        if let failed = flusher.failed {
            throw StoreError(.database, "\(what) refused: an earlier flush to disk failed (\(failed.message))")
        }
    }

    /// Changes whenever a committed write may have changed what ``principal(forSerial:now:)``
    /// answers (certificates, users, tokens, removed hosts). A cache of lookups is valid only
    /// while this is unchanged: read it **before** the lookup and keep it with the answer.
    public var identityGeneration: UInt64 { identityCounter.load(ordering: .acquiring) }

    private func identityChanged() { identityCounter.add(1, ordering: .releasing) }

    /// One durable write transaction (blocking: the commit, then the flush). Errors become
    /// `StoreError`s. `identity: false` only for writes that cannot change a principal lookup.
    func write<T: Sendable>(_ what: String, identity: Bool = true, _ body: (Database) throws -> T) throws -> T {
        let (value, _) = try writeStaged(what, identity: identity, body)
        do {
            try flusher.syncNow()
        } catch {
            throw StoreError.wrap(error, doing: what)
        }
        return value
    }

    /// One write transaction, committed but not yet flushed: durable once its ticket is
    /// (``whenDurable(_:_:)``).
    func writeStaged<T: Sendable>(
        _ what: String, identity: Bool = true, _ body: (Database) throws -> T
    ) throws -> (T, DurabilityTicket) {
        try ensureWritable(what)
        defer { if identity { identityChanged() } }
        do {
            let value = try pool.write(body)
            return (value, flusher.committedTransaction())
        } catch {
            throw StoreError.wrap(error, doing: what)
        }
    }

    /// One durable write transaction (suspending, the thread is not blocked while the writer
    /// commits or the WAL is flushed). Errors become `StoreError`s.
    func writeAsync<T: Sendable>(
        _ what: String, identity: Bool = true, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try ensureWritable(what)
        defer { if identity { identityChanged() } }
        let value: T
        let ticket: DurabilityTicket
        do {
            value = try await pool.write(body)
            ticket = flusher.committedTransaction()
        } catch {
            throw StoreError.wrap(error, doing: what)
        }
        try await waitDurable(ticket)
        return value
    }

    /// Calls `callback` once the transaction of `ticket` is on disk, or with the error of the
    /// flush that failed (then nothing committed since the last good flush counts as durable).
    /// Callbacks run on the flusher's thread, in ticket order; they must be quick and must not
    /// block.
    public func whenDurable(_ ticket: DurabilityTicket, _ callback: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        flusher.whenDurable(ticket, callback)
    }

    /// Replaces the WAL flush's system call (`fdatasync(fd) -> 0 or -1 with errno`): tests use
    /// it to make a flush fail or wait. Never used by Lumbung itself.
    @_spi(Testing) public func replaceFlushCallForTesting(_ call: @escaping @Sendable (Int32) -> Int32) {
        flusher.replaceSyncCall(call)
    }

    /// Flushes of the WAL done so far (tests, diagnostics).
    @_spi(Testing) public var flushCountForTesting: Int { flusher.flushCount }

    /// True when the transaction of `ticket` is on disk.
    public func isDurable(_ ticket: DurabilityTicket) -> Bool { flusher.isDurable(ticket) }

    /// Returns once the transaction of `ticket` is on disk; throws when its flush failed.
    public func waitDurable(_ ticket: DurabilityTicket) async throws {
        let result: Result<Void, StoreError> = await withCheckedContinuation { continuation in
            flusher.whenDurable(ticket) { continuation.resume(returning: $0) }
        }
        try result.get()
    }

    /// One read transaction on a snapshot. Errors become `StoreError`s.
    func read<T: Sendable>(_ what: String, _ body: (Database) throws -> T) throws -> T {
        try ensureOpen(what)
        do {
            return try pool.read(body)
        } catch {
            throw StoreError.wrap(error, doing: what)
        }
    }
}

/// Set once by `close()`.
private final class ClosedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var closed = false

    var isClosed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return closed
    }

    /// Marks closed; true the first time.
    func close() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if closed { return false }
        closed = true
        return true
    }
}
