import GRDB

/// The database schema, as numbered migrations. A migration, once shipped, never changes:
/// add `v2`, `v3`, … instead.
///
/// Conventions:
/// - every table is `STRICT` (SQLite refuses a text in an integer column);
/// - dates are `INTEGER` Unix milliseconds, columns named `*_at`;
/// - amounts (vCPU, bytes, counts) are `INTEGER` with `CHECK (… >= 0)`;
/// - state columns carry `CHECK (state IN (…))` with the Core enum's raw values;
/// - nested values (labels, observations, request payloads) are JSON text with `CHECK (json_valid(…))`;
/// - storage-per-pool maps are child tables, so each amount has its own `CHECK`.
enum Schema {
    static let zeroHash = String(repeating: "0", count: 64)

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: v1)
            try db.execute(
                sql: "INSERT INTO meta(name, value) VALUES ('audit_head_seq', '0'), ('audit_head_hash', ?)",
                arguments: [zeroHash])
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3") { db in
            try db.execute(sql: v3)
        }
        migrator.registerMigration("v4") { db in
            try db.execute(sql: v4)
        }
        migrator.registerMigration("v5") { db in
            try db.execute(sql: v5)
            try db.execute(
                sql: "INSERT INTO meta(name, value) VALUES ('audit_base_seq', '0'), ('audit_base_hash', ?)",
                arguments: [zeroHash])
        }
        return migrator
    }

    /// v2: the base images each host's agent reported (a JSON array; NULL before the first report).
    static let v2 = """
        ALTER TABLE hosts ADD COLUMN images TEXT CHECK (images IS NULL OR json_valid(images));
        """

    /// v3: approval rules and quota classes. An OPD's quota class (NULL: a quota of its own); a
    /// request's deciding rule, letter number (*nomor surat*), the levels that must approve (a JSON
    /// array of `approver`/`admin`; NULL for requests filed before v3) and the approvals given so far
    /// (a JSON array of objects).
    static let v3 = """
        ALTER TABLE opds ADD COLUMN quota_class TEXT CHECK (quota_class IS NULL OR (quota_class <> '' AND length(quota_class) <= 63));
        ALTER TABLE requests ADD COLUMN rule TEXT CHECK (rule IS NULL OR rule <> '');
        ALTER TABLE requests ADD COLUMN letter TEXT CHECK (letter IS NULL OR (letter <> '' AND length(letter) <= 100));
        ALTER TABLE requests ADD COLUMN levels TEXT CHECK (levels IS NULL OR (json_valid(levels) AND json_type(levels) = 'array'));
        ALTER TABLE requests ADD COLUMN approvals TEXT CHECK (approvals IS NULL OR (json_valid(approvals) AND json_type(approvals) = 'array'));
        """

    /// v4: VM tags (a JSON object, e.g. `{"data":"pribadi"}`) and whether a host's overcommit
    /// ratios and reserve follow the policy set (hosts declared before keep their values).
    /// v5: volume tags (like VM tags); pruning of audit entries older than the retention. The
    /// `meta` rows `audit_base_seq` / `audit_base_hash` name the last pruned entry (0 and 64 zeros
    /// while nothing was pruned): the chain now starts after it. Deleting audit rows stays refused
    /// except for entries at or below that base, which the store moves in the same transaction
    /// as it records an `audit.prune` entry (see ``AuditChain``).
    static let v5 = """
        ALTER TABLE volumes ADD COLUMN tags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags) AND json_type(tags) = 'object');
        DROP TRIGGER audit_no_delete;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            WHEN OLD.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'audit_base_seq'), 0)
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only; only entries past the retention are pruned'); END;
        """

    static let v4 = """
        ALTER TABLE vms ADD COLUMN tags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags) AND json_type(tags) = 'object');
        ALTER TABLE hosts ADD COLUMN overcommit_from_policy INTEGER NOT NULL DEFAULT 0 CHECK (overcommit_from_policy IN (0, 1));
        ALTER TABLE hosts ADD COLUMN reserved_from_policy INTEGER NOT NULL DEFAULT 0 CHECK (reserved_from_policy IN (0, 1));
        """

    static let v1 = """
        CREATE TABLE meta (
            name  TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;

        CREATE TABLE opds (
            id            TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
            display_name  TEXT    NOT NULL,
            quota_vcpu    INTEGER NOT NULL CHECK (quota_vcpu >= 0),
            quota_memory  INTEGER NOT NULL CHECK (quota_memory >= 0),
            quota_vms     INTEGER NOT NULL CHECK (quota_vms >= 0),
            quota_volumes INTEGER NOT NULL CHECK (quota_volumes >= 0),
            created_at    INTEGER NOT NULL
        ) STRICT;

        CREATE TABLE opd_quota_storage (
            opd   TEXT    NOT NULL REFERENCES opds(id) ON DELETE CASCADE,
            pool  TEXT    NOT NULL CHECK (pool <> ''),
            bytes INTEGER NOT NULL CHECK (bytes >= 0),
            PRIMARY KEY (opd, pool)
        ) STRICT;

        CREATE TABLE hosts (
            id                 TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
            declared_cpus      INTEGER NOT NULL CHECK (declared_cpus >= 0),
            declared_memory    INTEGER NOT NULL CHECK (declared_memory >= 0),
            reported_cpus      INTEGER CHECK (reported_cpus >= 0),
            reported_memory    INTEGER CHECK (reported_memory >= 0),
            reserved_cpus      INTEGER NOT NULL CHECK (reserved_cpus >= 0),
            reserved_memory    INTEGER NOT NULL CHECK (reserved_memory >= 0),
            overcommit_cpu     REAL    NOT NULL CHECK (overcommit_cpu > 0),
            overcommit_memory  REAL    NOT NULL CHECK (overcommit_memory > 0),
            overcommit_storage REAL    NOT NULL CHECK (overcommit_storage > 0),
            labels             TEXT    NOT NULL CHECK (json_valid(labels) AND json_type(labels) = 'object'),
            connectivity       TEXT    NOT NULL CHECK (connectivity IN ('enrolled', 'ready', 'unreachable')),
            cordoned           INTEGER NOT NULL CHECK (cordoned IN (0, 1)),
            last_report_at     INTEGER,
            driver             TEXT,
            desired_version    INTEGER NOT NULL CHECK (desired_version >= 0),
            created_at         INTEGER NOT NULL,
            CHECK ((reported_cpus IS NULL) = (reported_memory IS NULL))
        ) STRICT;

        -- Storage pools of a host: what was declared, what the agent reported, what is reserved.
        CREATE TABLE host_pools (
            host     TEXT    NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
            capacity TEXT    NOT NULL CHECK (capacity IN ('declared', 'reported', 'reserved')),
            pool     TEXT    NOT NULL CHECK (pool <> ''),
            bytes    INTEGER NOT NULL CHECK (bytes >= 0),
            PRIMARY KEY (host, capacity, pool)
        ) STRICT;

        CREATE TABLE vms (
            id               TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
            opd              TEXT    NOT NULL REFERENCES opds(id),
            name             TEXT    NOT NULL CHECK (name <> ''),
            vcpu             INTEGER NOT NULL CHECK (vcpu >= 0),
            memory           INTEGER NOT NULL CHECK (memory >= 0),
            disk             INTEGER NOT NULL CHECK (disk >= 0),
            pool             TEXT    NOT NULL CHECK (pool <> ''),
            app              TEXT,
            image            TEXT,
            required_labels  TEXT    NOT NULL CHECK (json_valid(required_labels) AND json_type(required_labels) = 'object'),
            forbidden_labels TEXT    NOT NULL CHECK (json_valid(forbidden_labels) AND json_type(forbidden_labels) = 'object'),
            host             TEXT    REFERENCES hosts(id),
            state            TEXT    NOT NULL CHECK (state IN ('pending', 'scheduled', 'running', 'stopped', 'deleting', 'deleted')),
            desired_power    TEXT    NOT NULL CHECK (desired_power IN ('running', 'stopped')),
            created_at       INTEGER NOT NULL,
            observed         TEXT    CHECK (observed IS NULL OR json_valid(observed)),
            CHECK (host IS NOT NULL OR state IN ('pending', 'deleting', 'deleted'))
        ) STRICT;
        -- A name is unique among the live VMs of one OPD; it may be reused once the VM is deleted.
        CREATE UNIQUE INDEX vms_live_name ON vms(opd, name) WHERE state <> 'deleted';
        CREATE INDEX vms_host ON vms(host);

        CREATE TABLE volumes (
            id         TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
            opd        TEXT    NOT NULL REFERENCES opds(id),
            name       TEXT    NOT NULL CHECK (name <> ''),
            size       INTEGER NOT NULL CHECK (size >= 0),
            pool       TEXT    NOT NULL CHECK (pool <> ''),
            host       TEXT    REFERENCES hosts(id),
            state      TEXT    NOT NULL CHECK (state IN ('pending', 'scheduled', 'ready', 'deleting', 'deleted')),
            created_at INTEGER NOT NULL,
            observed   TEXT    CHECK (observed IS NULL OR json_valid(observed)),
            CHECK (host IS NOT NULL OR state IN ('pending', 'deleting', 'deleted'))
        ) STRICT;
        CREATE UNIQUE INDEX volumes_live_name ON volumes(opd, name) WHERE state <> 'deleted';
        CREATE INDEX volumes_host ON volumes(host);

        CREATE TABLE requests (
            id              INTEGER NOT NULL PRIMARY KEY CHECK (id >= 1),
            opd             TEXT    NOT NULL REFERENCES opds(id),
            kind            TEXT    NOT NULL CHECK (kind IN ('vm', 'volume', 'quota')),
            payload         TEXT    NOT NULL CHECK (json_valid(payload) AND json_type(payload, '$.' || kind) IS NOT NULL),
            reason          TEXT    NOT NULL,
            requested_by    TEXT    NOT NULL CHECK (requested_by <> ''),
            state           TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'fulfilled', 'rejected', 'cancelled', 'expired')),
            created_at      INTEGER NOT NULL,
            expires_at      INTEGER NOT NULL,
            decided_by      TEXT,
            decided_at      INTEGER,
            decision_reason TEXT,
            result          TEXT
        ) STRICT;
        CREATE INDEX requests_opd_state ON requests(opd, state);
        CREATE INDEX requests_state ON requests(state);

        -- Append-only, hash-chained (see Audit.swift for the canonical form).
        CREATE TABLE audit (
            seq         INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
            at          INTEGER NOT NULL,
            actor       TEXT    NOT NULL,
            role        TEXT    NOT NULL,
            action      TEXT    NOT NULL,
            target      TEXT    NOT NULL,
            opd         TEXT,
            before      TEXT,
            after       TEXT,
            request_id  TEXT,
            policy_hash TEXT,
            prev_hash   TEXT    NOT NULL CHECK (length(prev_hash) = 64),
            hash        TEXT    NOT NULL CHECK (length(hash) = 64)
        ) STRICT;
        CREATE INDEX audit_opd ON audit(opd, seq);
        CREATE INDEX audit_target ON audit(target, seq);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

        CREATE TABLE users (
            name       TEXT    NOT NULL PRIMARY KEY CHECK (name <> ''),
            role       TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'approver')),
            opd        TEXT    REFERENCES opds(id),
            created_at INTEGER NOT NULL,
            revoked_at INTEGER,
            CHECK ((role = 'admin') = (opd IS NULL))
        ) STRICT;
        CREATE INDEX users_opd ON users(opd);

        -- Enrollment tokens: only the SHA-256 of the secret is kept.
        CREATE TABLE tokens (
            hash       TEXT    NOT NULL PRIMARY KEY CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),
            role       TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'approver', 'agent')),
            subject    TEXT    NOT NULL CHECK (subject <> ''),
            opd        TEXT    REFERENCES opds(id),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at    INTEGER,
            created_by TEXT    NOT NULL,
            CHECK (expires_at >= created_at),
            CHECK ((role IN ('member', 'approver')) = (opd IS NOT NULL))
        ) STRICT;

        CREATE TABLE certificates (
            serial     TEXT    NOT NULL PRIMARY KEY CHECK (serial <> '' AND serial NOT GLOB '*[^0-9a-f]*'),
            kind       TEXT    NOT NULL CHECK (kind IN ('user', 'host')),
            subject    TEXT    NOT NULL CHECK (subject <> ''),
            not_before INTEGER NOT NULL,
            not_after  INTEGER NOT NULL,
            issued_at  INTEGER NOT NULL,
            revoked_at INTEGER,
            CHECK (not_after >= not_before)
        ) STRICT;
        CREATE INDEX certificates_subject ON certificates(kind, subject);
        """
}
