import Foundation
import GRDB
import LumbungCore
import LumbungStore
import Testing

@Suite("Audit log")
struct AuditTests {
    /// A store file with five audit entries, closed. Returns its path (inside `dir`).
    private func logWithFiveEntries(in dir: TempDir) async throws -> String {
        let store = try Store(path: dir.dbPath)
        try await store.commit(
            [.opdCreated(makeOPD()), .hostDeclared(makeHost())],
            audit: [audit("opd.create", target: "opd:dinkes", opd: "dinkes"), audit("host.declare", target: "host:node-01")])
        try await store.commit(
            [.vmAllocated(makeVM())],
            audit: [
                AuditInput(
                    at: at(5), actor: "user:budi", role: "member", action: "vm.allocate", target: "vm:vm-3f9a0c21", opd: "dinkes",
                    before: nil, after: #"{"name":"web"}"#, requestID: "1", policyHash: String(repeating: "b", count: 64))
            ])
        try store.addUser(
            UserRecord(name: "siti", role: .approver, opd: "dinkes", createdAt: t0),
            audit: audit("user.add", target: "user:siti", opd: "dinkes"))
        try await store.appendAudit([audit("request.refuse", target: "request:2", opd: "dinkes", at: at(7))])
        #expect(try store.verifyAudit() == AuditVerification(ok: true, checked: 5))
        try store.close()
        return dir.dbPath
    }

    /// Runs SQL on the file through a raw connection of its own (no Store), as a tamperer would.
    private func tamper(_ path: String, _ sql: String) throws {
        let raw = try DatabaseQueue(path: path)
        try raw.writeWithoutTransaction { db in try db.execute(sql: sql) }
        try raw.close()
    }

    private func verify(_ path: String) throws -> AuditVerification {
        let store = try Store(path: path)
        defer { try? store.close() }
        return try store.verifyAudit()
    }

    @Test("a fresh log verifies; entries chain from 64 zeros; filters work")
    func freshLog() async throws {
        try await withStore { store, _ in
            #expect(try store.verifyAudit() == AuditVerification(ok: true, checked: 0))
            #expect(try store.auditHead() == AuditHead(seq: 0, hash: AuditChain.genesis))

            try await store.commit(
                [.opdCreated(makeOPD()), .opdCreated(makeOPD("bappeda"))],
                audit: [
                    audit("opd.create", target: "opd:dinkes", opd: "dinkes"),
                    audit("opd.create", target: "opd:bappeda", opd: "bappeda"),
                    audit("quota.change", target: "opd:dinkes", opd: "dinkes", at: at(1)),
                ])
            let entries = try store.auditEntries()
            #expect(entries.map(\.seq) == [1, 2, 3])
            #expect(entries[0].prevHash == AuditChain.genesis)
            #expect(entries[1].prevHash == entries[0].hash)
            #expect(entries[2].prevHash == entries[1].hash)
            #expect(entries[2].at == at(1))
            #expect(try store.auditHead() == AuditHead(seq: 3, hash: entries[2].hash))
            #expect(try store.verifyAudit() == AuditVerification(ok: true, checked: 3))

            #expect(try store.auditEntries(opd: "dinkes").map(\.seq) == [1, 3])
            #expect(try store.auditEntries(target: "opd:bappeda").map(\.seq) == [2])
            #expect(try store.auditEntries(after: 1, limit: 1).map(\.seq) == [2])
            #expect(try store.auditEntries(after: 3).isEmpty)
        }
    }

    @Test("the canonical form is length-prefixed and documented")
    func canonicalForm() {
        let bytes = AuditChain.canonical(
            seq: 12, atMillis: 1_764_400_000_123, actor: "user:budi", role: "member", action: "vm.allocate", target: "vm:x;y",
            opd: "dinkes", before: nil, after: "é", requestID: nil, policyHash: "")
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == "lumbung-audit-v1;2:12;13:1764400000123;9:user:budi;6:member;11:vm.allocate;6:vm:x;y;6:dinkes;~;2:é;~;0:;")
        #expect(AuditChain.hash(prevHash: AuditChain.genesis, canonical: bytes).count == 64)
    }

    @Test("UPDATE and DELETE on the audit table are refused by triggers")
    func appendOnly() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        #expect(throws: DatabaseError.self) { try tamper(path, "UPDATE audit SET actor = 'x' WHERE seq = 3") }
        #expect(throws: DatabaseError.self) { try tamper(path, "DELETE FROM audit WHERE seq = 5") }
        #expect(try verify(path).ok)
    }

    @Test("(a) a modified field in a middle entry is detected at that entry")
    func modifiedMiddleEntry() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        try tamper(path, "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'user:mallory' WHERE seq = 3")
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 3)
        #expect(result.checked == 2)
        #expect(result.problem == "audit entry 3 was modified: its content does not match its hash")
    }

    @Test("a modified entry whose hash was recomputed breaks the link of the next one")
    func rehashedEntry() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        // Recompute entry 2's hash after changing its target, as a careful tamperer would.
        let raw = try DatabaseQueue(path: path)
        try await raw.write { db in
            try db.execute(sql: "DROP TRIGGER audit_no_update")
            let row = try Row.fetchOne(db, sql: "SELECT * FROM audit WHERE seq = 2")!
            let bytes = AuditChain.canonical(
                seq: row["seq"], atMillis: row["at"], actor: row["actor"], role: row["role"], action: row["action"],
                target: "host:node-66", opd: row["opd"], before: row["before"], after: row["after"],
                requestID: row["request_id"], policyHash: row["policy_hash"])
            let hash = AuditChain.hash(prevHash: row["prev_hash"], canonical: bytes)
            try db.execute(sql: "UPDATE audit SET target = 'host:node-66', hash = ? WHERE seq = 2", arguments: [hash])
        }
        try raw.close()
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 3)
        #expect(result.problem?.contains("does not follow entry 2") == true)
    }

    @Test("(b) a deleted middle entry is detected")
    func deletedMiddleEntry() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        try tamper(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3")
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 3)
        #expect(result.problem == "audit entry 3 is missing (entry 4 follows entry 2)")
    }

    @Test("a deleted middle entry with the later ones renumbered is detected by the broken link")
    func deletedAndRenumbered() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        try tamper(
            path,
            """
            DROP TRIGGER audit_no_delete; DROP TRIGGER audit_no_update;
            DELETE FROM audit WHERE seq = 3; UPDATE audit SET seq = seq - 1 WHERE seq > 3;
            """)
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 3)
    }

    @Test("(c) a deleted last entry is detected through the head in meta")
    func deletedLastEntry() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        try tamper(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 5")
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.checked == 4)
        #expect(result.firstBadSeq == 5)
        #expect(result.problem == "the audit log ends at entry 4 but the recorded head is entry 5: entry 5 was deleted")

        // Appending after tampering does not hide it: the chain continues from the recorded head.
        let store = try Store(path: path)
        defer { try? store.close() }
        try await store.appendAudit([audit("later", target: "opd:dinkes")])
        #expect(try store.verifyAudit().ok == false)
    }

    @Test("an emptied log is detected")
    func emptiedLog() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        try tamper(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit")
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.firstBadSeq == 1)
    }

    // MARK: - Pruning past the retention

    private func pruneRecord(_ when: Date) -> AuditInput {
        AuditInput(at: when, actor: "user:lumbungd", role: "admin", action: AuditPrune.action, target: "audit", policyHash: String(repeating: "c", count: 64))
    }

    @Test("pruning removes the old prefix, records audit.prune with the range and base, and the rest still verifies")
    func pruneOldPrefix() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        let store = try Store(path: path)
        defer { try? store.close() }
        let hashOfTwo = try #require(store.auditEntries().first { $0.seq == 2 }).hash

        // Entries 1 and 2 (at t0) are older than at(5); entry 3 (at(5)) is kept, and with it
        // everything after it (entry 4 at t0 too: only a prefix of the log is ever pruned).
        let pruned = try #require(try await store.pruneAudit(keepSince: at(5), record: pruneRecord(at(100)), retentionDays: 3650))
        #expect(pruned.from == 1 && pruned.to == 2 && pruned.count == 2)
        #expect(pruned.baseHash == hashOfTwo)
        #expect(try store.auditBase() == AuditHead(seq: 2, hash: hashOfTwo))
        let entries = try store.auditEntries()
        #expect(entries.map(\.seq) == [3, 4, 5, 6])
        #expect(entries[0].prevHash == hashOfTwo)
        let record = try #require(entries.last)
        #expect(record.action == "audit.prune")
        let decoded = try JSONDecoder().decode(PruneAfter.self, from: Data(try #require(record.after).utf8))
        #expect(decoded.from == 1 && decoded.to == 2 && decoded.count == 2 && decoded.baseHash == hashOfTwo && decoded.retentionDays == 3650)
        #expect(try store.verifyAudit() == AuditVerification(ok: true, checked: 4))

        // Nothing more is old enough: nothing is written.
        #expect(try await store.pruneAudit(keepSince: at(5), record: pruneRecord(at(101)), retentionDays: 3650) == nil)
        #expect(try store.auditHead().seq == 6)

        // Later appends chain on; a later pruning moves the base again and still verifies.
        try await store.appendAudit([audit("later", target: "opd:dinkes", at: at(200))])
        let second = try #require(try await store.pruneAudit(keepSince: at(150), record: pruneRecord(at(300)), retentionDays: 3650))
        #expect(second.from == 3 && second.to == 6)
        #expect(try store.auditEntries().map(\.seq) == [7, 8])
        #expect(try store.verifyAudit().ok)
    }

    @Test("deleting entries the store did not prune is still refused, and a moved base without its audit.prune record is detected")
    func pruneTampering() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        // The trigger still refuses deleting entries past the base.
        #expect(throws: (any Error).self) { try tamper(path, "DELETE FROM audit WHERE seq = 1") }
        #expect(try verify(path).ok)

        // A tamperer who moves the base in meta and deletes the prefix, without a prune record.
        let store = try Store(path: path)
        let hashOfTwo = try #require(store.auditEntries().first { $0.seq == 2 }).hash
        try store.close()
        try tamper(
            path,
            "UPDATE meta SET value = '2' WHERE name = 'audit_base_seq'; UPDATE meta SET value = '\(hashOfTwo)' WHERE name = 'audit_base_hash'; DELETE FROM audit WHERE seq <= 2")
        let result = try verify(path)
        #expect(!result.ok)
        #expect(result.problem?.contains("no audit.prune entry records pruning up to it") == true)
    }

    @Test("a backup of a pruned log restores with a verifying chain")
    func prunedBackup() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = try await logWithFiveEntries(in: dir)
        let store = try Store(path: path)
        defer { try? store.close() }
        _ = try await store.pruneAudit(keepSince: at(5), record: pruneRecord(at(100)), retentionDays: 3650)
        let copy = dir.url.appendingPathComponent("copy.sqlite").path
        let raw = try DatabaseQueue(path: path)
        try raw.backup(to: try DatabaseQueue(path: copy))
        try raw.close()
        #expect(try verify(copy) == AuditVerification(ok: true, checked: 4))
    }
}

/// The fields of an `audit.prune` entry's `after` the tests read.
private struct PruneAfter: Decodable {
    var from: Int64
    var to: Int64
    var count: Int64
    var baseHash: String
    var retentionDays: Int
}
