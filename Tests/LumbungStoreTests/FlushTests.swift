import Foundation
import LumbungCore
@_spi(Testing) @testable import LumbungStore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The WAL flush that makes commits durable (`WALFlusher`): what it covers, in which order it
/// answers, and what a failed flush does. The flush system call is the only thing faked.
@Suite("Flushing commits to disk")
struct FlushTests {
    @Test("a staged commit is durable only after a flush; one flush covers every commit before it; answers come in commit order")
    func stagedAndGrouped() async throws {
        try await withStore { store, _ in
            let before = store.flushCountForTesting
            let first = try store.commitStaged([.opdCreated(makeOPD("dinkes"))], audit: [audit("opd.create", target: "opd:dinkes")])
            let second = try store.commitStaged([.opdCreated(makeOPD("bappeda"))], audit: [audit("opd.create", target: "opd:bappeda")])
            let third = try store.commitStaged([.opdCreated(makeOPD("dukcapil"))], audit: [audit("opd.create", target: "opd:dukcapil")])
            #expect(first < second && second < third)
            // Nothing asked for a flush yet: committed (readable) but not called durable.
            #expect(!store.isDurable(first) && !store.isDurable(third))
            #expect(try store.loadState().opds.count == 3)
            #expect(store.flushCountForTesting == before)

            let order = Mutex<[DurabilityTicket]>([])
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                for ticket in [first, second, third] {
                    store.whenDurable(ticket) { result in
                        #expect((try? result.get()) != nil)
                        let count = order.withLock { $0.append(ticket); return $0.count }
                        if count == 3 { done.resume() }
                    }
                }
            }
            #expect(order.withLock { $0 } == [first, second, third])
            #expect(store.isDurable(first) && store.isDurable(second) && store.isDurable(third))
            // One fdatasync for the three (they were all committed when it started) — at most two
            // if the flusher woke between the registrations.
            let flushes = store.flushCountForTesting - before
            #expect(flushes >= 1 && flushes <= 2)
            // Already durable: no new flush.
            try await store.waitDurable(second)
            #expect(store.flushCountForTesting - before == flushes)
        }
    }

    @Test("a blocking write returns only after its flush, and the flush is a real fdatasync of the WAL file")
    func blockingWriteFlushes() async throws {
        try await withStore { store, path in
            let calls = Mutex<[Int32]>([])
            store.replaceFlushCallForTesting { fd in
                calls.withLock { $0.append(fd) }
                return fdatasync(fd)
            }
            try store.addUser(UserRecord(name: "root", role: .admin, opd: nil, createdAt: t0), audit: audit("user.add", target: "user:root"))
            let fds = calls.withLock { $0 }
            #expect(fds.count == 1)
            // The descriptor flushed is the WAL file's.
            var flushed = stat()
            var wal = stat()
            #expect(fstat(fds[0], &flushed) == 0)
            #expect(stat(path + "-wal", &wal) == 0)
            #expect(flushed.st_ino == wal.st_ino && flushed.st_dev == wal.st_dev)
            // And the async write path flushes too.
            try await store.commit([.opdCreated(makeOPD())], audit: [audit("opd.create", target: "opd:dinkes")])
            #expect(calls.withLock { $0.count } == 2)
        }
    }

    @Test("a failed flush fails its waiters and every later write, naming the error; nothing is called durable")
    func failedFlush() async throws {
        try await withStore { store, _ in
            try store.commitBlocking([.opdCreated(makeOPD("dinkes"))], audit: [audit("opd.create", target: "opd:dinkes")])
            store.replaceFlushCallForTesting { _ in
                errno = EIO
                return -1
            }
            let ticket = try store.commitStaged([.opdCreated(makeOPD("bappeda"))], audit: [audit("opd.create", target: "opd:bappeda")])
            let waited = await storeError { try await store.waitDurable(ticket) }
            #expect(waited?.code == .database)
            #expect(waited?.message.contains("fdatasync") == true)
            #expect(waited?.message.contains("Input/output error") == true)
            #expect(waited?.message.contains("restart lumbungd") == true)
            #expect(!store.isDurable(ticket))

            // From then on every write is refused (even with a working disk again) until restart.
            store.replaceFlushCallForTesting { fdatasync($0) }
            let later = await storeError {
                try store.addUser(UserRecord(name: "root", role: .admin, opd: nil, createdAt: t0), audit: audit("user.add", target: "user:root"))
            }
            #expect(later?.code == .database)
            #expect(later?.message.contains("an earlier flush to disk failed") == true)
            #expect(try store.user("root") == nil)
            // A waiter that comes after the failure hears of it at once.
            let late = await storeError { try await store.waitDurable(ticket) }
            #expect(late?.code == .database)
        }
    }

    @Test("closing flushes what is committed and answers every waiter")
    func closeFlushes() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try Store(path: dir.dbPath)
        let ticket = try store.commitStaged([.opdCreated(makeOPD())], audit: [audit("opd.create", target: "opd:dinkes")])
        #expect(!store.isDurable(ticket))
        try store.close()
        #expect(store.isDurable(ticket))
        let reopened = try Store(path: dir.dbPath)
        defer { try? reopened.close() }
        #expect(try reopened.loadState().opds.map(\.id) == ["dinkes"])
    }
}
