import Foundation
import GRDB
import LumbungCore

/// A change decided by the controller's ledger, named after its intent.
///
/// The ledger decides in memory (Core) and then hands a batch of changes to
/// ``Store/commit(_:audit:)``, which applies them in order in one transaction.
public enum LedgerChange: Hashable, Sendable {
    /// A new OPD with its quota. Refused when the id exists.
    case opdCreated(OPD)
    /// The OPD's quota becomes this vector (the new quota, not a delta).
    case quotaChanged(OPDID, ResourceVector)
    /// The OPD's quota class becomes this (nil: a quota of its own).
    case opdClassChanged(OPDID, QuotaClassName?)
    /// A host declared by an admin. Refused when the id exists.
    case hostDeclared(LumbungCore.Host)
    /// Replaces everything about a host except its id: facts, labels, cordon, connectivity, desired version, ….
    case hostUpdated(LumbungCore.Host)
    /// Only the host's desired version changes (what its agent should run changed).
    case desiredVersionBumped(HostID, Int64)
    /// Removes a host: refused while it holds VMs or volumes that are not deleted. Deleted VMs and
    /// volumes on it lose their host reference; its certificates are revoked and its unused
    /// agent tokens expire (at the `at` of the batch's first audit entry, else now).
    case hostRemoved(HostID)
    /// A new VM. Refused when the id exists or a live VM of the OPD has the same name.
    case vmAllocated(VM)
    /// Replaces a VM's row (state, host, desired power, observation, …).
    case vmUpdated(VM)
    /// A new volume. Refused when the id exists or a live volume of the OPD has the same name.
    case volumeAllocated(Volume)
    /// Replaces a volume's row.
    case volumeUpdated(Volume)
    /// A new request. Refused when the id exists.
    case requestFiled(ResourceRequest)
    /// Replaces a request's row (state, decision, result).
    case requestUpdated(ResourceRequest)
    /// Records the policy set now in force (kept in `meta`), so a controller restarted with other
    /// policy files knows what the previous set said.
    case policyInstalled(InstalledPolicy)
}

/// What the store remembers of the policy set last installed: enough to apply a changed set at
/// the next start as a reload would (which OPDs followed their class, whether agents must hear
/// of a new volume retention).
public struct InstalledPolicy: Hashable, Sendable, Codable {
    /// The set's hash.
    public var hash: String
    /// Each quota class's quota, by class name.
    public var classes: [String: ResourceVector]
    /// Days a deleted volume is kept.
    public var volumeRetentionDays: Int

    /// Creates a record.
    public init(hash: String, classes: [String: ResourceVector], volumeRetentionDays: Int) {
        self.hash = hash
        self.classes = classes
        self.volumeRetentionDays = volumeRetentionDays
    }
}

/// Everything the ledger needs to rebuild its memory at start.
public struct StoredState: Hashable, Sendable {
    /// All hosts (removed hosts are gone), ordered by id.
    public var hosts: [LumbungCore.Host]
    /// All OPDs, ordered by id.
    public var opds: [OPD]
    /// All VMs **including deleted ones** (state `deleted`), ordered by id.
    public var vms: [VM]
    /// All volumes **including deleted ones**, ordered by id.
    public var volumes: [Volume]
    /// All requests in every state, ordered by id.
    public var requests: [ResourceRequest]

    /// Creates a state.
    public init(hosts: [LumbungCore.Host] = [], opds: [OPD] = [], vms: [VM] = [], volumes: [Volume] = [], requests: [ResourceRequest] = []) {
        self.hosts = hosts
        self.opds = opds
        self.vms = vms
        self.volumes = volumes
        self.requests = requests
    }
}

extension Store {
    /// Applies a batch of changes in order and appends the audit entries, all in ONE write
    /// transaction (group commit): either all of it is durable when this returns, or none
    /// of it is (the error names the change that was refused and why).
    ///
    /// - Throws: ``StoreError`` `constraint` (duplicate id or live name, unknown OPD or host,
    ///   negative amount, host still in use), `not_found` (an update of a row that does not exist).
    public func commit(_ changes: [LedgerChange], audit: [AuditInput]) async throws {
        let identity = changes.contains { if case .hostRemoved = $0 { true } else { false } }
        try await writeAsync("committing \(changes.count) ledger change(s)", identity: identity) { db in
            for change in changes {
                try Ledger.apply(change, firstAuditAt: audit.first?.at, db)
            }
            try AuditChain.append(audit, db)
        }
    }

    /// ``commit(_:audit:)`` on the calling thread: no hop to the writer's queue and back, which
    /// the ledger actor would otherwise pay twice per batch (it has nothing else to do while its
    /// batch commits). Same transaction, same durability.
    @discardableResult
    public func commitBlocking(_ changes: [LedgerChange], audit: [AuditInput]) throws -> DurabilityTicket {
        let ticket = try commitStaged(changes, audit: audit)
        try flusher.syncNow()
        return ticket
    }

    /// ``commitBlocking(_:audit:)`` without waiting for the flush: the transaction is committed
    /// (visible to readers, in the WAL file) when this returns, and durable once the returned
    /// ticket is (``whenDurable(_:_:)``). The ledger answers its callers only then; meanwhile it
    /// decides and commits the next batch, so one flush can cover several batches.
    public func commitStaged(_ changes: [LedgerChange], audit: [AuditInput]) throws -> DurabilityTicket {
        let identity = changes.contains { if case .hostRemoved = $0 { true } else { false } }
        let (_, ticket) = try writeStaged("committing \(changes.count) ledger change(s)", identity: identity) { db in
            for change in changes {
                try Ledger.apply(change, firstAuditAt: audit.first?.at, db)
            }
            try AuditChain.append(audit, db)
        }
        return ticket
    }

    /// The policy set recorded by the last ``LedgerChange/policyInstalled(_:)``; nil when none was
    /// recorded (a new state directory, or one from before policy sets were recorded).
    public func installedPolicy() throws -> InstalledPolicy? {
        try read("reading the installed policy set") { db in
            guard let row = try MetaRow.fetchOne(db, key: "policy_installed") else { return nil }
            return try JSONColumn.decode(InstalledPolicy.self, from: row.value, what: "the installed policy set")
        }
    }

    /// Reads hosts, OPDs, VMs, volumes (including deleted ones) and requests from one snapshot.
    public func loadState() throws -> StoredState {
        try read("loading the state") { db in
            var quotaStorage: [String: [PoolName: ByteSize]] = [:]
            for row in try QuotaStorageRow.fetchAll(db) {
                quotaStorage[row.opd, default: [:]][PoolName(rawValue: row.pool)] = ByteSize(bytes: row.bytes)
            }
            var hostPools: [String: [String: [PoolName: ByteSize]]] = [:]
            for row in try HostPoolRow.fetchAll(db) {
                hostPools[row.host, default: [:]][row.capacity, default: [:]][PoolName(rawValue: row.pool)] = ByteSize(bytes: row.bytes)
            }
            let opds = try OPDRow.order(Column("id")).fetchAll(db).map { $0.model(storage: quotaStorage[$0.id] ?? [:]) }
            let hosts = try HostRow.order(Column("id")).fetchAll(db).map { try $0.model(pools: hostPools[$0.id] ?? [:]) }
            let vms = try VMRow.order(Column("id")).fetchAll(db).map { try $0.model() }
            let volumes = try VolumeRow.order(Column("id")).fetchAll(db).map { try $0.model() }
            let requests = try RequestRow.order(Column("id")).fetchAll(db).map { try $0.model() }
            return StoredState(hosts: hosts, opds: opds, vms: vms, volumes: volumes, requests: requests)
        }
    }

    /// `MAX(id) + 1` over the requests (1 when there are none). A read only: the ledger keeps
    /// its own counter after loading and assigns ids itself.
    public func nextRequestID() throws -> RequestID {
        try read("reading the next request id") { db in
            RequestID(rawValue: try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) + 1 FROM requests") ?? 1)
        }
    }

    /// Requests ordered by id, optionally only those of one OPD and/or in one state.
    public func requests(opd: OPDID? = nil, state: RequestState? = nil) throws -> [ResourceRequest] {
        try read("reading requests") { db in
            var query = RequestRow.order(Column("id"))
            if let opd { query = query.filter(Column("opd") == opd.rawValue) }
            if let state { query = query.filter(Column("state") == state.rawValue) }
            return try query.fetchAll(db).map { try $0.model() }
        }
    }

    /// One request, or nil when no request has this id.
    public func request(id: RequestID) throws -> ResourceRequest? {
        try read("reading request \(id)") { db in
            try RequestRow.fetchOne(db, key: id.rawValue)?.model()
        }
    }
}

/// Applies ledger changes inside a transaction and explains refusals.
enum Ledger {
    static func apply(_ change: LedgerChange, firstAuditAt: Date?, _ db: Database) throws {
        do {
            switch change {
            case .opdCreated(let opd):
                try OPDRow(opd).insert(db)
                for row in QuotaStorageRow.rows(opd.id, opd.quota.storage) { try row.insert(db) }

            case .quotaChanged(let id, let quota):
                try db.execute(
                    sql: "UPDATE opds SET quota_vcpu = ?, quota_memory = ?, quota_vms = ?, quota_volumes = ? WHERE id = ?",
                    arguments: [Int64(quota.vcpu), quota.memory.bytes, Int64(quota.vms), Int64(quota.volumes), id.rawValue])
                guard db.changesCount == 1 else {
                    throw StoreError(.notFound, "cannot change the quota of OPD '\(id)': no such OPD")
                }
                try QuotaStorageRow.replace(id, quota.storage, db)

            case .opdClassChanged(let id, let quotaClass):
                try db.execute(sql: "UPDATE opds SET quota_class = ? WHERE id = ?", arguments: [quotaClass?.rawValue, id.rawValue])
                guard db.changesCount == 1 else {
                    throw StoreError(.notFound, "cannot change the quota class of OPD '\(id)': no such OPD")
                }

            case .hostDeclared(let host):
                try HostRow(host).insert(db)
                for row in HostPoolRow.rows(host) { try row.insert(db) }

            case .hostUpdated(let host):
                try update(HostRow(host), what: "host '\(host.id)'", db)
                try HostPoolRow.replace(host, db)

            case .hostRemoved(let id):
                try removeHost(id, at: firstAuditAt ?? Date(), db)

            case .desiredVersionBumped(let id, let version):
                try db.cachedStatement(sql: "UPDATE hosts SET desired_version = ? WHERE id = ?").execute(arguments: [version, id.rawValue])
                guard db.changesCount == 1 else {
                    throw StoreError(.notFound, "cannot bump the desired version of host '\(id)': it does not exist")
                }

            case .vmAllocated(let vm):
                // The hot path of every allocation: a cached statement with explicit columns
                // instead of a Codable record (same columns and values as `VMRow`).
                let row = try VMRow(vm)
                try db.cachedStatement(sql: VMRow.insertSQL).execute(arguments: row.arguments)

            case .vmUpdated(let vm):
                let row = try VMRow(vm)
                try db.cachedStatement(sql: VMRow.updateSQL).execute(arguments: row.updateArguments)
                guard db.changesCount == 1 else {
                    throw StoreError(.notFound, "cannot update VM \(vm.id): it does not exist")
                }

            case .volumeAllocated(let volume):
                try VolumeRow(volume).insert(db)

            case .volumeUpdated(let volume):
                try update(VolumeRow(volume), what: "volume \(volume.id)", db)

            case .requestFiled(let request):
                try RequestRow(request).insert(db)

            case .requestUpdated(let request):
                try update(RequestRow(request), what: "request \(request.id)", db)

            case .policyInstalled(let installed):
                try MetaRow(name: "policy_installed", value: JSONColumn.encode(installed)).upsert(db)
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw explain(error, change, db)
        }
    }

    private static func update<R: StoreRow>(_ row: R, what: String, _ db: Database) throws {
        do {
            try row.update(db)
        } catch RecordError.recordNotFound {
            throw StoreError(.notFound, "cannot update \(what): it does not exist")
        }
    }

    private static func removeHost(_ id: HostID, at: Date, _ db: Database) throws {
        guard try HostRow.exists(db, key: id.rawValue) else {
            throw StoreError(.notFound, "cannot remove host '\(id)': it does not exist")
        }
        let liveVMs = try String.fetchAll(
            db, sql: "SELECT id FROM vms WHERE host = ? AND state <> 'deleted' ORDER BY id", arguments: [id.rawValue])
        let liveVolumes = try String.fetchAll(
            db, sql: "SELECT id FROM volumes WHERE host = ? AND state <> 'deleted' ORDER BY id", arguments: [id.rawValue])
        if !liveVMs.isEmpty || !liveVolumes.isEmpty {
            var held: [String] = []
            if !liveVMs.isEmpty { held.append("\(liveVMs.count) VM(s) (\(liveVMs.prefix(5).joined(separator: ", ")))") }
            if !liveVolumes.isEmpty { held.append("\(liveVolumes.count) volume(s) (\(liveVolumes.prefix(5).joined(separator: ", ")))") }
            throw StoreError(
                .constraint, "cannot remove host '\(id)': it still holds \(held.joined(separator: " and ")); move or delete them first")
        }
        let ms = Millis.from(at)
        try db.execute(sql: "UPDATE vms SET host = NULL WHERE host = ?", arguments: [id.rawValue])
        try db.execute(sql: "UPDATE volumes SET host = NULL WHERE host = ?", arguments: [id.rawValue])
        try db.execute(sql: "DELETE FROM hosts WHERE id = ?", arguments: [id.rawValue])
        try Identity.revokeCertificates(kind: .host, subject: id.rawValue, atMillis: ms, db)
        try Identity.expireUnusedTokens(roles: [.agent], subject: id.rawValue, atMillis: ms, db)
    }

    // MARK: - Explaining refusals

    private static func describe(_ change: LedgerChange) -> String {
        switch change {
        case .opdCreated(let opd): "creating OPD '\(opd.id)'"
        case .quotaChanged(let id, _): "changing the quota of OPD '\(id)'"
        case .opdClassChanged(let id, _): "changing the quota class of OPD '\(id)'"
        case .hostDeclared(let host): "declaring host '\(host.id)'"
        case .hostUpdated(let host): "updating host '\(host.id)'"
        case .hostRemoved(let id): "removing host '\(id)'"
        case .desiredVersionBumped(let id, _): "bumping the desired version of host '\(id)'"
        case .vmAllocated(let vm): "allocating VM '\(vm.spec.name)' (\(vm.id)) of OPD '\(vm.opd)'"
        case .vmUpdated(let vm): "updating VM '\(vm.spec.name)' (\(vm.id)) of OPD '\(vm.opd)'"
        case .volumeAllocated(let v): "allocating volume '\(v.spec.name)' (\(v.id)) of OPD '\(v.opd)'"
        case .volumeUpdated(let v): "updating volume '\(v.spec.name)' (\(v.id)) of OPD '\(v.opd)'"
        case .requestFiled(let r): "filing request \(r.id) of OPD '\(r.opd)'"
        case .requestUpdated(let r): "updating request \(r.id) of OPD '\(r.opd)'"
        case .policyInstalled(let p): "recording policy set \(p.hash.prefix(12))"
        }
    }

    /// Turns a constraint violation into a sentence that names what clashed or what is missing.
    static func explain(_ error: DatabaseError, _ change: LedgerChange, _ db: Database) -> StoreError {
        let doing = describe(change)
        let detail = error.message ?? error.description
        func refused(_ why: String) -> StoreError {
            StoreError(.constraint, "\(doing) was refused: \(why)", detail: detail)
        }
        switch error.extendedResultCode {
        case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY:
            switch change {
            case .vmAllocated(let vm), .vmUpdated(let vm):
                if detail.contains("vms.opd, vms.name") {
                    let other = try? String.fetchOne(
                        db, sql: "SELECT id FROM vms WHERE opd = ? AND name = ? AND state <> 'deleted' AND id <> ?",
                        arguments: [vm.opd.rawValue, vm.spec.name, vm.id.rawValue])
                    return refused("OPD '\(vm.opd)' already has a VM named '\(vm.spec.name)'\(other.map { " (\($0))" } ?? "")")
                }
                return refused("a VM with id \(vm.id) already exists")
            case .volumeAllocated(let v), .volumeUpdated(let v):
                if detail.contains("volumes.opd, volumes.name") {
                    let other = try? String.fetchOne(
                        db, sql: "SELECT id FROM volumes WHERE opd = ? AND name = ? AND state <> 'deleted' AND id <> ?",
                        arguments: [v.opd.rawValue, v.spec.name, v.id.rawValue])
                    return refused("OPD '\(v.opd)' already has a volume named '\(v.spec.name)'\(other.map { " (\($0))" } ?? "")")
                }
                return refused("a volume with id \(v.id) already exists")
            case .opdCreated(let opd):
                return refused("an OPD with id '\(opd.id)' already exists")
            case .hostDeclared(let host):
                return refused("a host with id '\(host.id)' already exists")
            case .requestFiled(let r):
                return refused("a request with id \(r.id) already exists")
            case .quotaChanged(_, let quota):
                return refused("a pool appears twice in the quota \(quota.storage.keys.sorted())")
            default:
                return refused("a unique value clashes (\(detail))")
            }
        case .SQLITE_CONSTRAINT_FOREIGNKEY:
            var missing: [String] = []
            func checkOPD(_ id: OPDID) {
                if (try? OPDRow.exists(db, key: id.rawValue)) == false { missing.append("OPD '\(id)' does not exist") }
            }
            func checkHost(_ id: HostID?) {
                if let id, (try? HostRow.exists(db, key: id.rawValue)) == false { missing.append("host '\(id)' does not exist") }
            }
            switch change {
            case .vmAllocated(let vm), .vmUpdated(let vm):
                checkOPD(vm.opd)
                checkHost(vm.host)
            case .volumeAllocated(let v), .volumeUpdated(let v):
                checkOPD(v.opd)
                checkHost(v.host)
            case .requestFiled(let r), .requestUpdated(let r):
                checkOPD(r.opd)
            case .quotaChanged(let id, _):
                checkOPD(id)
            default:
                break
            }
            return refused(missing.isEmpty ? "it refers to a row that does not exist (\(detail))" : missing.joined(separator: "; "))
        case .SQLITE_CONSTRAINT_CHECK:
            let rule = detail.replacingOccurrences(of: "CHECK constraint failed: ", with: "")
            return refused("a value breaks the rule `\(rule)` (negative amount, unknown state, or missing host)")
        case .SQLITE_CONSTRAINT_NOTNULL:
            return refused("a required value is missing (\(detail))")
        default:
            return refused(detail)
        }
    }
}
