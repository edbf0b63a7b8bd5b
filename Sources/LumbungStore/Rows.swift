import Foundation
import GRDB
import LumbungCore

// One record type per table. These types mirror the columns exactly and never leave the
// module: the public API speaks Core types (`OPD`, `Host`, `VM`, …) and the identity
// value types of `Identity.swift`. Conversions live next to each row.

/// Record types of this module: Codable, with camelCase properties mapped to snake_case columns.
protocol StoreRow: Codable, FetchableRecord, PersistableRecord, Sendable {}

extension StoreRow {
    static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }
}

// MARK: - meta

struct MetaRow: StoreRow {
    static let databaseTableName = "meta"
    var name: String
    var value: String
}

// MARK: - opds, opd_quota_storage

struct OPDRow: StoreRow {
    static let databaseTableName = "opds"
    var id: String
    var displayName: String
    var quotaVcpu: Int64
    var quotaMemory: Int64
    var quotaVms: Int64
    var quotaVolumes: Int64
    var createdAt: Int64
    var quotaClass: String?

    init(_ opd: OPD) {
        id = opd.id.rawValue
        displayName = opd.displayName
        quotaVcpu = Int64(opd.quota.vcpu)
        quotaMemory = opd.quota.memory.bytes
        quotaVms = Int64(opd.quota.vms)
        quotaVolumes = Int64(opd.quota.volumes)
        createdAt = Millis.from(opd.createdAt)
        quotaClass = opd.quotaClass?.rawValue
    }

    func model(storage: [PoolName: ByteSize]) -> OPD {
        OPD(
            id: OPDID(rawValue: id), displayName: displayName,
            quota: ResourceVector(
                vcpu: Int(quotaVcpu), memory: ByteSize(bytes: quotaMemory), storage: storage,
                vms: Int(quotaVms), volumes: Int(quotaVolumes)),
            createdAt: Millis.date(createdAt), quotaClass: quotaClass.map(QuotaClassName.init(rawValue:)))
    }
}

struct QuotaStorageRow: StoreRow {
    static let databaseTableName = "opd_quota_storage"
    var opd: String
    var pool: String
    var bytes: Int64

    static func rows(_ opd: OPDID, _ storage: [PoolName: ByteSize]) -> [QuotaStorageRow] {
        storage.keys.sorted().map { QuotaStorageRow(opd: opd.rawValue, pool: $0.rawValue, bytes: storage[$0]!.bytes) }
    }

    /// Replaces the storage quota of one OPD.
    static func replace(_ opd: OPDID, _ storage: [PoolName: ByteSize], _ db: Database) throws {
        try db.execute(sql: "DELETE FROM opd_quota_storage WHERE opd = ?", arguments: [opd.rawValue])
        for row in rows(opd, storage) { try row.insert(db) }
    }
}

// MARK: - hosts, host_pools

struct HostRow: StoreRow {
    static let databaseTableName = "hosts"
    var id: String
    var declaredCpus: Int64
    var declaredMemory: Int64
    var reportedCpus: Int64?
    var reportedMemory: Int64?
    var reservedCpus: Int64
    var reservedMemory: Int64
    var overcommitCpu: Double
    var overcommitMemory: Double
    var overcommitStorage: Double
    var labels: String
    var connectivity: String
    var cordoned: Bool
    var lastReportAt: Int64?
    var driver: String?
    var desiredVersion: Int64
    var createdAt: Int64
    var images: String?
    var overcommitFromPolicy: Bool
    var reservedFromPolicy: Bool

    init(_ host: LumbungCore.Host) throws {
        overcommitFromPolicy = host.overcommitFromPolicy
        reservedFromPolicy = host.reservedFromPolicy
        id = host.id.rawValue
        declaredCpus = Int64(host.declared.cpus)
        declaredMemory = host.declared.memory.bytes
        reportedCpus = host.reported.map { Int64($0.cpus) }
        reportedMemory = host.reported?.memory.bytes
        reservedCpus = Int64(host.reserved.cpus)
        reservedMemory = host.reserved.memory.bytes
        overcommitCpu = host.overcommit.cpu
        overcommitMemory = host.overcommit.memory
        overcommitStorage = host.overcommit.storage
        labels = try JSONColumn.encode(host.labels)
        connectivity = host.connectivity.rawValue
        cordoned = host.cordoned
        lastReportAt = Millis.from(host.lastReportAt)
        driver = host.driver
        desiredVersion = host.desiredVersion
        createdAt = Millis.from(host.createdAt)
        images = try host.images.map { try JSONColumn.encode($0.sorted()) }
    }

    func model(pools: [String: [PoolName: ByteSize]]) throws -> LumbungCore.Host {
        let reported: HostCapacity? =
            if let reportedCpus, let reportedMemory {
                HostCapacity(cpus: Int(reportedCpus), memory: ByteSize(bytes: reportedMemory), pools: pools["reported"] ?? [:])
            } else {
                nil
            }
        var host = LumbungCore.Host(
            id: HostID(rawValue: id),
            declared: HostCapacity(cpus: Int(declaredCpus), memory: ByteSize(bytes: declaredMemory), pools: pools["declared"] ?? [:]),
            reported: reported,
            reserved: HostCapacity(cpus: Int(reservedCpus), memory: ByteSize(bytes: reservedMemory), pools: pools["reserved"] ?? [:]),
            overcommit: Overcommit(cpu: overcommitCpu, memory: overcommitMemory, storage: overcommitStorage),
            labels: try JSONColumn.decode([String: String].self, from: labels, what: "labels of host \(id)"),
            connectivity: try decodeEnum(HostConnectivity.self, connectivity, what: "connectivity of host \(id)"),
            cordoned: cordoned,
            lastReportAt: Millis.date(lastReportAt),
            driver: driver,
            desiredVersion: desiredVersion,
            createdAt: Millis.date(createdAt),
            images: try images.map { Set(try JSONColumn.decode([String].self, from: $0, what: "images of host \(id)")) })
        host.overcommitFromPolicy = overcommitFromPolicy
        host.reservedFromPolicy = reservedFromPolicy
        return host
    }
}

struct HostPoolRow: StoreRow {
    static let databaseTableName = "host_pools"
    var host: String
    /// `declared`, `reported` or `reserved`.
    var capacity: String
    var pool: String
    var bytes: Int64

    static func rows(_ host: LumbungCore.Host) -> [HostPoolRow] {
        var rows: [HostPoolRow] = []
        func add(_ capacity: String, _ pools: [PoolName: ByteSize]) {
            for pool in pools.keys.sorted() {
                rows.append(HostPoolRow(host: host.id.rawValue, capacity: capacity, pool: pool.rawValue, bytes: pools[pool]!.bytes))
            }
        }
        add("declared", host.declared.pools)
        if let reported = host.reported { add("reported", reported.pools) }
        add("reserved", host.reserved.pools)
        return rows
    }

    /// Replaces the pool rows of one host.
    static func replace(_ host: LumbungCore.Host, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM host_pools WHERE host = ?", arguments: [host.id.rawValue])
        for row in rows(host) { try row.insert(db) }
    }
}

// MARK: - vms

struct VMRow: StoreRow {
    static let databaseTableName = "vms"
    var id: String
    var opd: String
    var name: String
    var vcpu: Int64
    var memory: Int64
    var disk: Int64
    var pool: String
    var app: String?
    var image: String?
    var requiredLabels: String
    var forbiddenLabels: String
    var host: String?
    var state: String
    var desiredPower: String
    var createdAt: Int64
    var observed: String?
    var tags: String

    static let insertSQL = """
        INSERT INTO vms (id, opd, name, vcpu, memory, disk, pool, app, image, required_labels, forbidden_labels, host, state,
                         desired_power, created_at, observed, tags)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    static let updateSQL = """
        UPDATE vms SET opd = ?, name = ?, vcpu = ?, memory = ?, disk = ?, pool = ?, app = ?, image = ?, required_labels = ?,
                       forbidden_labels = ?, host = ?, state = ?, desired_power = ?, created_at = ?, observed = ?, tags = ?
        WHERE id = ?
        """

    /// The values of ``insertSQL``, in its column order.
    var arguments: StatementArguments {
        [id, opd, name, vcpu, memory, disk, pool, app, image, requiredLabels, forbiddenLabels, host, state, desiredPower, createdAt, observed, tags]
    }

    /// The values of ``updateSQL``, in its order (the id last).
    var updateArguments: StatementArguments {
        [opd, name, vcpu, memory, disk, pool, app, image, requiredLabels, forbiddenLabels, host, state, desiredPower, createdAt, observed, tags, id]
    }

    init(_ vm: VM) throws {
        tags = try JSONColumn.encode(vm.spec.tags)
        id = vm.id.rawValue
        opd = vm.opd.rawValue
        name = vm.spec.name
        vcpu = Int64(vm.spec.vcpu)
        memory = vm.spec.memory.bytes
        disk = vm.spec.disk.bytes
        pool = vm.spec.pool.rawValue
        app = vm.spec.app
        image = vm.spec.image
        requiredLabels = try JSONColumn.encode(vm.spec.requiredLabels)
        forbiddenLabels = try JSONColumn.encode(vm.spec.forbiddenLabels)
        host = vm.host?.rawValue
        state = vm.state.rawValue
        desiredPower = vm.desiredPower.rawValue
        createdAt = Millis.from(vm.createdAt)
        observed = try vm.observed.map { try JSONColumn.encode($0) }
    }

    func model() throws -> VM {
        let spec = VMSpec(
            name: name, vcpu: Int(vcpu), memory: ByteSize(bytes: memory), disk: ByteSize(bytes: disk),
            pool: PoolName(rawValue: pool), app: app, image: image,
            requiredLabels: try JSONColumn.decode([String: String].self, from: requiredLabels, what: "required labels of VM \(id)"),
            forbiddenLabels: try JSONColumn.decode([String: String].self, from: forbiddenLabels, what: "forbidden labels of VM \(id)"),
            tags: try JSONColumn.decode([String: String].self, from: tags, what: "tags of VM \(id)"))
        return VM(
            id: VMID(rawValue: id), opd: OPDID(rawValue: opd), spec: spec, host: host.map(HostID.init(rawValue:)),
            state: try decodeEnum(VMState.self, state, what: "state of VM \(id)"),
            desiredPower: try decodeEnum(PowerState.self, desiredPower, what: "desired power of VM \(id)"),
            createdAt: Millis.date(createdAt),
            observed: try observed.map { try JSONColumn.decode(Observation.self, from: $0, what: "observation of VM \(id)") })
    }
}

// MARK: - volumes

struct VolumeRow: StoreRow {
    static let databaseTableName = "volumes"
    var id: String
    var opd: String
    var name: String
    var size: Int64
    var pool: String
    var host: String?
    var state: String
    var createdAt: Int64
    var observed: String?
    var tags: String

    init(_ volume: Volume) throws {
        id = volume.id.rawValue
        opd = volume.opd.rawValue
        name = volume.spec.name
        size = volume.spec.size.bytes
        pool = volume.spec.pool.rawValue
        host = volume.host?.rawValue
        state = volume.state.rawValue
        createdAt = Millis.from(volume.createdAt)
        observed = try volume.observed.map { try JSONColumn.encode($0) }
        tags = try JSONColumn.encode(volume.spec.tags)
    }

    func model() throws -> Volume {
        Volume(
            id: VolumeID(rawValue: id), opd: OPDID(rawValue: opd),
            spec: VolumeSpec(
                name: name, size: ByteSize(bytes: size), pool: PoolName(rawValue: pool),
                tags: try JSONColumn.decode([String: String].self, from: tags, what: "tags of volume \(id)")),
            host: host.map(HostID.init(rawValue:)),
            state: try decodeEnum(VolumeState.self, state, what: "state of volume \(id)"),
            createdAt: Millis.date(createdAt),
            observed: try observed.map { try JSONColumn.decode(Observation.self, from: $0, what: "observation of volume \(id)") })
    }
}

// MARK: - requests

struct RequestRow: StoreRow {
    static let databaseTableName = "requests"
    var id: Int64
    var opd: String
    var kind: String
    var payload: String
    var reason: String
    var requestedBy: String
    var state: String
    var createdAt: Int64
    var expiresAt: Int64
    var decidedBy: String?
    var decidedAt: Int64?
    var decisionReason: String?
    var result: String?
    var rule: String?
    var letter: String?
    var levels: String?
    var approvals: String?

    init(_ request: ResourceRequest) throws {
        id = request.id.rawValue
        opd = request.opd.rawValue
        kind = request.payload.kind
        payload = try JSONColumn.encode(request.payload)
        reason = request.reason
        requestedBy = request.requestedBy.rawValue
        state = request.state.rawValue
        createdAt = Millis.from(request.createdAt)
        expiresAt = Millis.from(request.expiresAt)
        decidedBy = request.decidedBy
        decidedAt = Millis.from(request.decidedAt)
        decisionReason = request.decisionReason
        result = request.result
        rule = request.rule
        letter = request.letter
        levels = try request.levels.map { try JSONColumn.encode($0) }
        approvals = try request.approvals.map { try JSONColumn.encode($0) }
    }

    func model() throws -> ResourceRequest {
        ResourceRequest(
            id: RequestID(rawValue: id), opd: OPDID(rawValue: opd),
            payload: try JSONColumn.decode(RequestPayload.self, from: payload, what: "payload of request \(id)"),
            reason: reason, requestedBy: UserID(rawValue: requestedBy),
            state: try decodeEnum(RequestState.self, state, what: "state of request \(id)"),
            createdAt: Millis.date(createdAt), expiresAt: Millis.date(expiresAt),
            decidedBy: decidedBy, decidedAt: Millis.date(decidedAt), decisionReason: decisionReason, result: result,
            rule: rule, letter: letter,
            levels: try levels.map { try JSONColumn.decode([ApprovalLevel].self, from: $0, what: "approval levels of request \(id)") },
            approvals: try approvals.map { try JSONColumn.decode([RequestApproval].self, from: $0, what: "approvals of request \(id)") })
    }
}

// MARK: - audit

struct AuditRow: StoreRow {
    static let databaseTableName = "audit"
    var seq: Int64
    var at: Int64
    var actor: String
    var role: String
    var action: String
    var target: String
    var opd: String?
    var before: String?
    var after: String?
    var requestId: String?
    var policyHash: String?
    var prevHash: String
    var hash: String

    var entry: AuditEntry {
        AuditEntry(
            seq: seq, at: Millis.date(at), actor: actor, role: role, action: action, target: target,
            opd: opd.map(OPDID.init(rawValue:)), before: before, after: after, requestID: requestId, policyHash: policyHash,
            prevHash: prevHash, hash: hash)
    }
}

// MARK: - users, tokens, certificates

struct UserRow: StoreRow {
    static let databaseTableName = "users"
    var name: String
    var role: String
    var opd: String?
    var createdAt: Int64
    var revokedAt: Int64?

    init(_ user: UserRecord) {
        name = user.name.rawValue
        role = user.role.rawValue
        opd = user.opd?.rawValue
        createdAt = Millis.from(user.createdAt)
        revokedAt = Millis.from(user.revokedAt)
    }

    func model() throws -> UserRecord {
        UserRecord(
            name: UserID(rawValue: name), role: try decodeEnum(Role.self, role, what: "role of user \(name)"),
            opd: opd.map(OPDID.init(rawValue:)), createdAt: Millis.date(createdAt), revokedAt: Millis.date(revokedAt))
    }
}

struct TokenRow: StoreRow {
    static let databaseTableName = "tokens"
    var hash: String
    var role: String
    var subject: String
    var opd: String?
    var createdAt: Int64
    var expiresAt: Int64
    var usedAt: Int64?
    var createdBy: String

    init(_ token: TokenRecord) {
        hash = token.hash.lowercased()
        role = token.role.rawValue
        subject = token.subject
        opd = token.opd?.rawValue
        createdAt = Millis.from(token.createdAt)
        expiresAt = Millis.from(token.expiresAt)
        usedAt = Millis.from(token.usedAt)
        createdBy = token.createdBy
    }

    func model() throws -> TokenRecord {
        TokenRecord(
            hash: hash, role: try decodeEnum(Role.self, role, what: "role of a token"), subject: subject,
            opd: opd.map(OPDID.init(rawValue:)), createdAt: Millis.date(createdAt), expiresAt: Millis.date(expiresAt),
            usedAt: Millis.date(usedAt), createdBy: createdBy)
    }
}

struct CertificateRow: StoreRow {
    static let databaseTableName = "certificates"
    var serial: String
    var kind: String
    var subject: String
    var notBefore: Int64
    var notAfter: Int64
    var issuedAt: Int64
    var revokedAt: Int64?

    init(_ certificate: CertificateRecord) {
        serial = certificate.serial.lowercased()
        kind = certificate.kind.rawValue
        subject = certificate.subject
        notBefore = Millis.from(certificate.notBefore)
        notAfter = Millis.from(certificate.notAfter)
        issuedAt = Millis.from(certificate.issuedAt)
        revokedAt = Millis.from(certificate.revokedAt)
    }

    func model() throws -> CertificateRecord {
        CertificateRecord(
            serial: serial, kind: try decodeEnum(CertificateKind.self, kind, what: "kind of certificate \(serial)"),
            subject: subject, notBefore: Millis.date(notBefore), notAfter: Millis.date(notAfter),
            issuedAt: Millis.date(issuedAt), revokedAt: Millis.date(revokedAt))
    }
}
