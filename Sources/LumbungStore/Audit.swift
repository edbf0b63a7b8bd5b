import Crypto
import Foundation
import GRDB
import LumbungCore

/// One audit entry to append: who did what to which target, when, with before and after.
///
/// Appended by the store in the same transaction as the change it describes; the store
/// assigns `seq` and the chain hashes.
public struct AuditInput: Hashable, Sendable {
    /// When it happened (stored with millisecond precision).
    public var at: Date
    /// Who: `user:budi`, `host:node-01`, `system`.
    public var actor: String
    /// The actor's role: `admin`, `member`, `approver`, `agent`, `system`.
    public var role: String
    /// What, e.g. `vm.allocate`, `quota.change`, `token.consume`.
    public var action: String
    /// On what, e.g. `vm:vm-3f9a0c21`, `opd:dinkes`, `host:node-01`.
    public var target: String
    /// The OPD the entry concerns, if any: OPD staff may read the entries of their own OPD.
    public var opd: OPDID?
    /// The target before the change (JSON or text), if any.
    public var before: String?
    /// The target after the change (JSON or text), if any.
    public var after: String?
    /// The request that caused the change, if any.
    public var requestID: String?
    /// The hash of the policy files that decided it, if any.
    public var policyHash: String?

    /// Creates an audit entry to append.
    public init(
        at: Date, actor: String, role: String, action: String, target: String, opd: OPDID? = nil,
        before: String? = nil, after: String? = nil, requestID: String? = nil, policyHash: String? = nil
    ) {
        self.at = at
        self.actor = actor
        self.role = role
        self.action = action
        self.target = target
        self.opd = opd
        self.before = before
        self.after = after
        self.requestID = requestID
        self.policyHash = policyHash
    }
}

/// An entry of the audit log as stored, with its place in the hash chain.
public struct AuditEntry: Hashable, Sendable, Codable {
    /// Position in the log: 1, 2, 3, … without gaps.
    public var seq: Int64
    /// When it happened (millisecond precision).
    public var at: Date
    /// Who (see ``AuditInput/actor``).
    public var actor: String
    /// The actor's role.
    public var role: String
    /// What was done.
    public var action: String
    /// On what.
    public var target: String
    /// The OPD concerned, if any.
    public var opd: OPDID?
    /// The target before the change, if recorded.
    public var before: String?
    /// The target after the change, if recorded.
    public var after: String?
    /// The request that caused it, if any.
    public var requestID: String?
    /// The hash of the policy files that decided it, if any.
    public var policyHash: String?
    /// The hash of the previous entry (64 zeros for the first).
    public var prevHash: String
    /// `SHA-256(prevHash ‖ canonical form of this entry)`, lowercase hex (see ``AuditChain``).
    public var hash: String

    /// Creates an entry (the store builds these; public for tests and API mapping).
    public init(
        seq: Int64, at: Date, actor: String, role: String, action: String, target: String, opd: OPDID?,
        before: String?, after: String?, requestID: String?, policyHash: String?, prevHash: String, hash: String
    ) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.role = role
        self.action = action
        self.target = target
        self.opd = opd
        self.before = before
        self.after = after
        self.requestID = requestID
        self.policyHash = policyHash
        self.prevHash = prevHash
        self.hash = hash
    }
}

/// The result of ``Store/verifyAudit()``.
public struct AuditVerification: Hashable, Sendable, Codable {
    /// True when every entry hashes correctly, follows its predecessor, and the last one is the recorded head.
    public var ok: Bool
    /// How many entries were verified before a problem (all of them when `ok`).
    public var checked: Int
    /// What is wrong, in a sentence; nil when `ok`.
    public var problem: String?
    /// The first sequence number found bad (modified, missing, or not linked); nil when `ok`
    /// or when the problem is not tied to one entry.
    public var firstBadSeq: Int64?

    /// Creates a verification result.
    public init(ok: Bool, checked: Int, problem: String? = nil, firstBadSeq: Int64? = nil) {
        self.ok = ok
        self.checked = checked
        self.problem = problem
        self.firstBadSeq = firstBadSeq
    }
}

/// The last entry of the audit log, recorded in the `meta` table in the same transaction as
/// every append. Publishing it elsewhere (a log line, a backup) anchors the chain.
public struct AuditHead: Hashable, Sendable, Codable {
    /// The sequence number of the last entry (0 when the log is empty).
    public var seq: Int64
    /// The hash of the last entry (64 zeros when the log is empty).
    public var hash: String

    /// Creates a head.
    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }
}

/// What one pruning of the audit log removed (the `after` of its `audit.prune` entry).
public struct AuditPrune: Hashable, Sendable, Codable {
    /// The audit action of the entry recording a pruning.
    public static let action = "audit.prune"
    /// The first and last sequence numbers removed.
    public var from: Int64
    public var to: Int64
    /// How many entries were removed.
    public var count: Int64
    /// The hash of entry `to`: the chain continues from it (the new base).
    public var baseHash: String
    /// Entries from this time on were kept.
    public var keepSince: Date
    /// The retention in force (days).
    public var retentionDays: Int

    /// Creates a record.
    public init(from: Int64, to: Int64, count: Int64, baseHash: String, keepSince: Date, retentionDays: Int) {
        self.from = from
        self.to = to
        self.count = count
        self.baseHash = baseHash
        self.keepSince = keepSince
        self.retentionDays = retentionDays
    }
}

/// The hash chain of the audit log.
///
/// Each entry's `hash` is the lowercase hex SHA-256 of the bytes
///
///     prev_hash ‖ "lumbung-audit-v1;" ‖ F(seq) ‖ F(at) ‖ F(actor) ‖ F(role) ‖ F(action) ‖ F(target)
///               ‖ F(opd) ‖ F(before) ‖ F(after) ‖ F(request_id) ‖ F(policy_hash)
///
/// where `prev_hash` is the previous entry's hash as 64 ASCII hex characters (64 × `0` for the
/// first entry), and for each field `F(NULL) = "~;"` and `F(v) = n ":" v ";"` with `v` the
/// field's UTF-8 text (`seq` and `at` as decimal integers, `at` in Unix milliseconds) and `n`
/// the decimal count of its UTF-8 bytes. The length prefix makes the encoding unambiguous
/// whatever the fields contain.
///
/// The `meta` table keeps the head (`audit_head_seq`, `audit_head_hash`), updated in the same
/// transaction as each append, so deleting the last entries is detected too.
///
/// **Pruning.** Entries older than the policy's audit retention (never less than 10 years) are
/// deleted from the start of the log by ``Store/pruneAudit(keepSince:record:retentionDays:)``:
/// the `meta` rows `audit_base_seq` / `audit_base_hash` move to the last deleted entry, the chain
/// is verified from there, and an `audit.prune` entry (appended in the same transaction) records
/// the range, the count and the base hash; verification fails when the base has moved without
/// such a record. Triggers refuse
/// `UPDATE` and `DELETE` on `audit`; someone who drops them and rewrites both the log and the
/// head from some entry onwards is only caught by comparing with a head published elsewhere.
public enum AuditChain {
    /// The `prev_hash` of the first entry.
    public static let genesis = String(repeating: "0", count: 64)

    /// The canonical bytes of an entry's fields (without `prev_hash`).
    public static func canonical(
        seq: Int64, atMillis: Int64, actor: String, role: String, action: String, target: String, opd: String?,
        before: String?, after: String?, requestID: String?, policyHash: String?
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(
            160 + actor.utf8.count + action.utf8.count + target.utf8.count + (before?.utf8.count ?? 0) + (after?.utf8.count ?? 0)
                + (policyHash?.utf8.count ?? 0))
        out.append(contentsOf: "lumbung-audit-v1;".utf8)
        func field(_ value: String?) {
            guard let value else {
                out.append(UInt8(ascii: "~"))
                out.append(UInt8(ascii: ";"))
                return
            }
            out.append(contentsOf: String(value.utf8.count).utf8)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: value.utf8)
            out.append(UInt8(ascii: ";"))
        }
        field(String(seq))
        field(String(atMillis))
        field(actor)
        field(role)
        field(action)
        field(target)
        field(opd)
        field(before)
        field(after)
        field(requestID)
        field(policyHash)
        return out
    }

    /// `SHA-256(prevHash ‖ canonical)` as lowercase hex.
    public static func hash(prevHash: String, canonical: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(prevHash.utf8))
        hasher.update(data: canonical)
        return hex(hasher.finalize())
    }

    static func hash(of row: AuditRow) -> String {
        hash(
            prevHash: row.prevHash,
            canonical: canonical(
                seq: row.seq, atMillis: row.at, actor: row.actor, role: row.role, action: row.action, target: row.target,
                opd: row.opd, before: row.before, after: row.after, requestID: row.requestId, policyHash: row.policyHash))
    }

    // MARK: - Inside a transaction

    static func head(_ db: Database) throws -> AuditHead? { try position("audit_head", db) }

    /// A chain position kept in `meta` as `<prefix>_seq` and `<prefix>_hash` (the head, the base);
    /// nil when either row is missing.
    private static func position(_ prefix: String, _ db: Database) throws -> AuditHead? {
        let statement = try db.cachedStatement(sql: "SELECT name, value FROM meta WHERE name IN (?, ?)")
        statement.setUncheckedArguments([prefix + "_seq", prefix + "_hash"])
        var seq: Int64?
        var hash: String?
        let rows = try Row.fetchCursor(statement)
        while let row = try rows.next() {
            let name: String = row[0]
            let value: String = row[1]
            if name == prefix + "_seq" { seq = Int64(value) } else { hash = value }
        }
        guard let seq, let hash else { return nil }
        return AuditHead(seq: seq, hash: hash)
    }

    /// Appends entries after the current head and moves the head, in the caller's transaction
    /// (cached statements: this runs in every commit).
    static func append(_ inputs: [AuditInput], _ db: Database) throws {
        guard !inputs.isEmpty else { return }
        guard var head = try head(db) else {
            throw StoreError.corrupt("no audit head in the meta table")
        }
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO audit (seq, at, actor, role, action, target, opd, before, after, request_id, policy_hash, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for input in inputs {
            var row = AuditRow(
                seq: head.seq + 1, at: Millis.from(input.at), actor: input.actor, role: input.role, action: input.action,
                target: input.target, opd: input.opd?.rawValue, before: input.before, after: input.after,
                requestId: input.requestID, policyHash: input.policyHash, prevHash: head.hash, hash: "")
            row.hash = hash(of: row)
            try insert.execute(arguments: [
                row.seq, row.at, row.actor, row.role, row.action, row.target, row.opd, row.before, row.after, row.requestId, row.policyHash,
                row.prevHash, row.hash,
            ])
            head = AuditHead(seq: row.seq, hash: row.hash)
        }
        let setHead = try db.cachedStatement(
            sql: "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        try setHead.execute(arguments: ["audit_head_seq", String(head.seq)])
        try setHead.execute(arguments: ["audit_head_hash", head.hash])
    }

    /// The last pruned entry (seq 0 and ``genesis`` while nothing was pruned).
    static func base(_ db: Database) throws -> AuditHead {
        try position("audit_base", db) ?? AuditHead(seq: 0, hash: genesis)
    }

    /// Deletes the entries older than `keepSince` at the start of the log (a prefix: the first
    /// entry that must be kept ends it), moves the base to the last deleted one and appends an
    /// `audit.prune` entry naming the range, the count and the new base. Returns nil when
    /// nothing is old enough.
    static func prune(keepSince: Date, record: AuditInput, retentionDays: Int, _ db: Database) throws -> AuditPrune? {
        let base = try base(db)
        guard let head = try head(db), head.seq > base.seq else { return nil }
        let cutoff = Millis.from(keepSince)
        let firstKept = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit WHERE seq > ? AND at >= ?", arguments: [base.seq, cutoff])
        let last = (firstKept ?? head.seq + 1) - 1
        guard last > base.seq else { return nil }
        guard let lastRow = try AuditRow.fetchOne(db, key: last) else {
            throw StoreError.corrupt("audit entry \(last) is missing; run `lumbung audit verify`")
        }
        let pruned = AuditPrune(
            from: base.seq + 1, to: last, count: last - base.seq, baseHash: lastRow.hash, keepSince: keepSince,
            retentionDays: retentionDays)
        try MetaRow(name: "audit_base_seq", value: String(last)).upsert(db)
        try MetaRow(name: "audit_base_hash", value: lastRow.hash).upsert(db)
        try db.execute(sql: "DELETE FROM audit WHERE seq <= ?", arguments: [last])
        var entry = record
        entry.after = try JSONColumn.encode(pruned)
        try append([entry], db)
        return pruned
    }

    static func verify(_ db: Database) throws -> AuditVerification {
        let base = try base(db)
        var expectedSeq: Int64 = base.seq + 1
        var prevHash = base.hash
        var checked = 0
        if base.seq > 0 {
            // A pruned prefix must be recorded by the controller's own `audit.prune` entry.
            let record = try AuditRow.filter(Column("action") == AuditPrune.action).order(Column("seq").desc).fetchOne(db)
            let recorded = try record.flatMap { $0.after }.map { try JSONColumn.decode(AuditPrune.self, from: $0, what: "audit.prune entry") }
            guard let recorded, recorded.to == base.seq, recorded.baseHash == base.hash else {
                return AuditVerification(
                    ok: false, checked: 0,
                    problem: "the audit log starts after entry \(base.seq), but no audit.prune entry records pruning up to it (entries were deleted outside the controller)",
                    firstBadSeq: 1)
            }
        }
        let cursor = try AuditRow.order(Column("seq")).fetchCursor(db)
        while let row = try cursor.next() {
            if row.seq != expectedSeq {
                let problem =
                    row.seq > expectedSeq
                    ? (row.seq - expectedSeq == 1
                        ? "audit entry \(expectedSeq) is missing (entry \(row.seq) follows entry \(expectedSeq - 1))"
                        : "audit entries \(expectedSeq)–\(row.seq - 1) are missing (entry \(row.seq) follows entry \(expectedSeq - 1))")
                    : "audit entry \(row.seq) is out of order (expected \(expectedSeq))"
                return AuditVerification(ok: false, checked: checked, problem: problem, firstBadSeq: expectedSeq)
            }
            if row.prevHash != prevHash {
                return AuditVerification(
                    ok: false, checked: checked,
                    problem: "audit entry \(row.seq) does not follow entry \(row.seq - 1): its prev_hash differs from that entry's hash (an entry was removed, replaced or rewritten)",
                    firstBadSeq: row.seq)
            }
            if hash(of: row) != row.hash {
                return AuditVerification(
                    ok: false, checked: checked,
                    problem: "audit entry \(row.seq) was modified: its content does not match its hash",
                    firstBadSeq: row.seq)
            }
            prevHash = row.hash
            expectedSeq += 1
            checked += 1
        }
        let lastSeq = expectedSeq - 1
        guard let head = try head(db) else {
            return AuditVerification(
                ok: false, checked: checked, problem: "the audit head is missing from the meta table", firstBadSeq: nil)
        }
        if head.seq > lastSeq {
            let missing = head.seq == lastSeq + 1 ? "entry \(head.seq) was" : "entries \(lastSeq + 1)–\(head.seq) were"
            return AuditVerification(
                ok: false, checked: checked,
                problem: "the audit log ends at entry \(lastSeq) but the recorded head is entry \(head.seq): \(missing) deleted",
                firstBadSeq: lastSeq + 1)
        }
        if head.seq < lastSeq {
            return AuditVerification(
                ok: false, checked: checked,
                problem: "the audit log has entries after the recorded head (entry \(head.seq)): entries \(head.seq + 1)–\(lastSeq) were added outside the store",
                firstBadSeq: head.seq + 1)
        }
        if head.hash != prevHash {
            return AuditVerification(
                ok: false, checked: checked,
                problem: "the last audit entry \(lastSeq) does not match the recorded head hash (it was replaced)",
                firstBadSeq: lastSeq == 0 ? nil : lastSeq)
        }
        return AuditVerification(ok: true, checked: checked)
    }
}

extension Store {
    /// Audit entries in log order with `seq > after`, at most `limit` of them, optionally only
    /// those of one OPD and/or one target.
    public func auditEntries(after: Int64? = nil, limit: Int = 100, opd: OPDID? = nil, target: String? = nil) throws -> [AuditEntry] {
        try read("reading the audit log") { db in
            var query = AuditRow.order(Column("seq"))
            if let after { query = query.filter(Column("seq") > after) }
            if let opd { query = query.filter(Column("opd") == opd.rawValue) }
            if let target { query = query.filter(Column("target") == target) }
            return try query.limit(max(0, limit)).fetchAll(db).map(\.entry)
        }
    }

    /// The last entry's sequence number and hash, as recorded in `meta`.
    public func auditHead() throws -> AuditHead {
        try read("reading the audit head") { db in
            guard let head = try AuditChain.head(db) else {
                throw StoreError.corrupt("no audit head in the meta table")
            }
            return head
        }
    }

    /// Recomputes the whole chain: detects a modified field in any entry, a deleted entry in
    /// the middle (gap or broken link), and deleted last entries (head mismatch).
    public func verifyAudit() throws -> AuditVerification {
        try read("verifying the audit log") { db in try AuditChain.verify(db) }
    }

    /// Prunes the entries older than `keepSince` at the start of the log (see ``AuditChain``) and
    /// appends `record` (action ``AuditPrune/action``; its `after` is set to the ``AuditPrune``)
    /// in the same transaction. Returns nil, and writes nothing, when no entry is old enough.
    @discardableResult
    public func pruneAudit(keepSince: Date, record: AuditInput, retentionDays: Int) async throws -> AuditPrune? {
        // A read first: the controller asks at every sweep, and almost always nothing is due.
        let cutoff = Millis.from(keepSince)
        let due = try read("reading the oldest audit entry") { db in
            let base = try AuditChain.base(db)
            let oldest = try Int64.fetchOne(db, sql: "SELECT at FROM audit WHERE seq > ? ORDER BY seq LIMIT 1", arguments: [base.seq])
            return oldest.map { $0 < cutoff } ?? false
        }
        guard due else { return nil }
        return try await writeAsync("pruning the audit log", identity: false) { db in
            try AuditChain.prune(keepSince: keepSince, record: record, retentionDays: retentionDays, db)
        }
    }

    /// The last pruned entry (seq 0 while nothing was pruned).
    public func auditBase() throws -> AuditHead {
        try read("reading the audit base") { db in try AuditChain.base(db) }
    }

    /// Appends audit entries on their own, for events that change nothing else
    /// (e.g. a refused request worth recording).
    public func appendAudit(_ audit: [AuditInput]) async throws {
        try await writeAsync("appending to the audit log") { db in try AuditChain.append(audit, db) }
    }
}
