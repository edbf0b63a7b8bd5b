import Foundation
import GRDB
import LumbungCore
@testable import LumbungStore
import Testing

@Suite("Files, durability, lifecycle")
struct DurabilityTests {
    @Test("the writer runs WAL with synchronous = NORMAL (the flusher syncs each commit) and foreign keys on")
    func pragmas() async throws {
        try await withStore { store, _ in
            let (journal, sync, fk, timeout) = try store.pool.write { db in
                (
                    try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                    try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                    try Int.fetchOne(db, sql: "PRAGMA foreign_keys"),
                    try Int.fetchOne(db, sql: "PRAGMA busy_timeout")
                )
            }
            #expect(journal == "wal")
            #expect(sync == 1)  // NORMAL: SQLite syncs around checkpoints, WALFlusher after each commit
            #expect(fk == 1)
            #expect(timeout == 10_000)
            let readerFK = try store.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA foreign_keys") }
            #expect(readerFK == 1)
        }
    }

    @Test("written, closed, reopened: the same state; the WAL files are gone after close")
    func reopen() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = dir.dbPath
        let store = try Store(path: path)
        try await store.commit(
            [.opdCreated(makeOPD()), .hostDeclared(makeHost()), .vmAllocated(makeVM()), .volumeAllocated(makeVolume()), .requestFiled(makeRequest(1))],
            audit: [audit("bootstrap", target: "opd:dinkes", opd: "dinkes")])
        try store.addUser(UserRecord(name: "root", role: .admin, opd: nil, createdAt: t0), audit: audit("user.add", target: "user:root"))
        let state = try store.loadState()
        let entries = try store.auditEntries()
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        try store.close()
        try store.close()  // idempotent

        #expect(FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))

        let readAfterClose = await storeError { _ = try store.loadState() }
        #expect(readAfterClose?.code == .closed)
        let writeAfterClose = await storeError { try await store.commit([], audit: []) }
        #expect(writeAfterClose?.code == .closed)

        let reopened = try Store(path: path)
        defer { try? reopened.close() }
        #expect(try reopened.loadState() == state)
        #expect(try reopened.auditEntries() == entries)
        #expect(try reopened.user("root")?.role == .admin)
        #expect(try reopened.verifyAudit() == AuditVerification(ok: true, checked: 2))
        #expect(try reopened.nextRequestID() == RequestID(rawValue: 2))
    }

    @Test("a committed transaction is readable by another connection without close (it is in the file, not in memory)")
    func committedIsOnDisk() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try Store(path: dir.dbPath)
        defer { try? store.close() }
        try await store.commit([.opdCreated(makeOPD())], audit: [audit("opd.create", target: "opd:dinkes")])
        let other = try DatabaseQueue(path: dir.dbPath)
        defer { try? other.close() }
        let count = try await other.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM opds") }
        #expect(count == 1)
    }

    @Test("the files as a SIGKILL leaves them (store never closed) hold every committed transaction")
    func crashCopy() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try Store(path: dir.dbPath)
        defer { try? store.close() }
        try await store.commit([.opdCreated(makeOPD()), .hostDeclared(makeHost())], audit: [audit("opd.create", target: "opd:dinkes")])
        try await store.commit([.vmAllocated(makeVM())], audit: [audit("vm.allocate", target: "vm:vm-3f9a0c21")])
        let expected = try store.loadState()

        // Copy the main file and its WAL while the store is still open, as a crash would leave them.
        let crashed = dir.url.appendingPathComponent("crashed")
        try FileManager.default.createDirectory(at: crashed, withIntermediateDirectories: true)
        let copy = crashed.appendingPathComponent("lumbung.sqlite").path
        try FileManager.default.copyItem(atPath: dir.dbPath, toPath: copy)
        try FileManager.default.copyItem(atPath: dir.dbPath + "-wal", toPath: copy + "-wal")

        let recovered = try Store(path: copy)
        defer { try? recovered.close() }
        #expect(try recovered.loadState() == expected)
        #expect(try recovered.verifyAudit() == AuditVerification(ok: true, checked: 2))
    }

    @Test("a file that is not a database is refused as corrupt; a newer schema as incompatible")
    func refusesForeignFiles() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let junk = dir.url.appendingPathComponent("junk.sqlite").path
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: junk))
        let junkError = await storeError { _ = try Store(path: junk) }
        #expect(junkError?.code == .corrupt)

        let path = dir.dbPath
        try Store(path: path).close()
        let raw = try DatabaseQueue(path: path)
        try await raw.write { db in try db.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v999')") }
        try raw.close()
        let error = await storeError { _ = try Store(path: path) }
        #expect(error?.code == .incompatible)
    }

    @Test("reopening runs no migration twice")
    func migrationsAreIdempotent() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        for _ in 0..<3 { try Store(path: dir.dbPath).close() }
        let store = try Store(path: dir.dbPath)
        defer { try? store.close() }
        let applied = try await store.pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(applied == ["v1", "v2", "v3", "v4", "v5"])
        #expect(try store.auditHead() == AuditHead(seq: 0, hash: AuditChain.genesis))
    }

    @Test("a v1 database is upgraded in place: its hosts keep their data and gain images (not reported yet)")
    func upgradeFromV1() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        do {
            try FileManager.default.createDirectory(atPath: (dir.dbPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let queue = try DatabaseQueue(path: dir.dbPath)
            try Schema.migrator.migrate(queue, upTo: "v1")
            let host = makeHost("node-01")
            try await queue.write { db in try HostRow(host).insertV1(db, pools: HostPoolRow.rows(host)) }
        }
        let store = try Store(path: dir.dbPath)
        defer { try? store.close() }
        let hosts = try store.loadState().hosts
        #expect(hosts.map(\.id) == ["node-01"])
        #expect(hosts.first?.images == nil)
        #expect(hosts.first?.declared == makeHost("node-01").declared)
        var host = try #require(hosts.first)
        host.images = ["debian-12"]
        try await store.commit([.hostUpdated(host)], audit: [])
        #expect(try store.loadState().hosts.first?.images == ["debian-12"])
    }
}

extension HostRow {
    /// The row as the v1 schema stored it (no `images` column).
    func insertV1(_ db: Database, pools: [HostPoolRow]) throws {
        try db.execute(
            sql: """
                INSERT INTO hosts (id, declared_cpus, declared_memory, reserved_cpus, reserved_memory, overcommit_cpu, overcommit_memory,
                    overcommit_storage, labels, connectivity, cordoned, desired_version, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [id, declaredCpus, declaredMemory, reservedCpus, reservedMemory, overcommitCpu, overcommitMemory, overcommitStorage,
                labels, connectivity, cordoned, desiredVersion, createdAt])
        for row in pools { try row.insert(db) }
    }
}
