#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Roles a principal can hold.
public enum Role: String, Hashable, Codable, Sendable, CaseIterable {
    /// A Kominfo sysadmin: everything, every OPD.
    case admin
    /// Staff of one OPD: requests resources and sees only that OPD.
    case member
    /// Staff of one OPD who may also approve that OPD's requests.
    case approver
    /// A host's agent: reaches only its own host's agent routes.
    case agent
}

/// Who is calling, as established from a verified client certificate.
public enum Principal: Hashable, Codable, Sendable, CustomStringConvertible {
    /// A person. `opd` is nil for admins and set for members and approvers.
    case user(UserID, role: Role, opd: OPDID?)
    /// A host's agent.
    case host(HostID)

    public var role: Role {
        switch self {
        case .user(_, let role, _): role
        case .host: .agent
        }
    }

    /// The OPD the principal is confined to (nil for admins and agents).
    public var opd: OPDID? {
        switch self {
        case .user(_, _, let opd): opd
        case .host: nil
        }
    }

    /// `user:budi` or `host:node-01`, as written in the audit log.
    public var description: String {
        switch self {
        case .user(let id, _, _): "user:\(id)"
        case .host(let id): "host:\(id)"
        }
    }
}

/// An agency (Organisasi Perangkat Daerah) and its quota.
public struct OPD: Hashable, Codable, Sendable {
    public var id: OPDID
    /// Human name, e.g. "Dinas Kesehatan".
    public var displayName: String
    /// What the OPD may hold at most: vCPU, memory, storage per pool, VM and volume counts.
    public var quota: ResourceVector
    public var createdAt: Date
    /// The quota class the OPD was given (`lumbung opd create … --class sedang`), nil for an OPD
    /// with a quota of its own. While its quota equals its class's, a policy reload that changes
    /// the class changes the OPD's quota too.
    public var quotaClass: QuotaClassName?

    public init(id: OPDID, displayName: String, quota: ResourceVector, createdAt: Date, quotaClass: QuotaClassName? = nil) {
        self.id = id
        self.displayName = displayName
        self.quota = quota
        self.createdAt = createdAt
        self.quotaClass = quotaClass
    }
}

/// What a host has: CPUs, memory and storage pools.
public struct HostCapacity: Hashable, Codable, Sendable {
    public var cpus: Int
    public var memory: ByteSize
    public var pools: [PoolName: ByteSize]

    public init(cpus: Int = 0, memory: ByteSize = .zero, pools: [PoolName: ByteSize] = [:]) {
        self.cpus = cpus
        self.memory = memory
        self.pools = pools
    }
}

/// How far allocations may exceed physical capacity, per resource. Defaults: cpu 4.0, memory 1.0, storage 1.0.
public struct Overcommit: Hashable, Codable, Sendable {
    public var cpu: Double
    public var memory: Double
    public var storage: Double

    public init(cpu: Double = 4.0, memory: Double = 1.0, storage: Double = 1.0) {
        self.cpu = cpu
        self.memory = memory
        self.storage = storage
    }

    public static let `default` = Overcommit()
}

/// Whether the controller hears from a host's agent.
///
/// ```
///  enrolled ──first report──► ready ──no report for the timeout──► unreachable
///                               ▲                                      │
///                               └───────────── report ◄────────────────┘
/// ```
/// Cordoning is orthogonal (``Host/cordoned``): a cordoned host keeps its
/// connectivity but takes no new placements.
public enum HostConnectivity: String, Hashable, Codable, Sendable {
    /// Declared by an admin; its agent has not reported yet. Counts in capacity planning.
    case enrolled
    /// Its agent reports.
    case ready
    /// Its agent missed reports for longer than the timeout. Excluded from placement.
    case unreachable
}

/// The state shown to people, combining connectivity and cordon:
/// `enrolled → ready ⇄ cordoned`, `ready → unreachable → ready`.
public enum HostState: String, Hashable, Codable, Sendable, CaseIterable {
    case enrolled, ready, cordoned, unreachable
}

/// A host of the data center.
public struct Host: Hashable, Codable, Sendable {
    public var id: HostID
    /// What the admin declared with `lumbung host add`.
    public var declared: HostCapacity
    /// What the agent reported; when present it wins over ``declared``.
    public var reported: HostCapacity?
    /// Kept for the host itself (never allocated).
    public var reserved: HostCapacity
    public var overcommit: Overcommit
    public var labels: [String: String]
    /// True when ``overcommit`` was not given at `lumbung host add` and follows the policy set
    /// (`overcommit` and `overcommit_by_label` of `placement.yaml`); re-derived whenever a new set
    /// is installed.
    public var overcommitFromPolicy: Bool = false
    /// True when ``reserved`` was not given at `lumbung host add` and follows the policy set's
    /// `host_reserve`; re-derived whenever a new set is installed.
    public var reservedFromPolicy: Bool = false
    public var connectivity: HostConnectivity
    public var cordoned: Bool
    public var lastReportAt: Date?
    /// `real` or `simulated` (the agent's driver kind, as reported); nil before the first report.
    public var driver: String?
    /// Bumped whenever what this host should run changes; the agent long-polls on it.
    public var desiredVersion: Int64
    public var createdAt: Date
    /// The base images in the host's image directory, as its agent reported them; nil before
    /// the agent first reported them (the host then takes no VM that names an image).
    public var images: Set<String>?

    public init(
        id: HostID, declared: HostCapacity, reported: HostCapacity? = nil, reserved: HostCapacity = HostCapacity(),
        overcommit: Overcommit = .default, labels: [String: String] = [:], connectivity: HostConnectivity = .enrolled,
        cordoned: Bool = false, lastReportAt: Date? = nil, driver: String? = nil, desiredVersion: Int64 = 1, createdAt: Date,
        images: Set<String>? = nil
    ) {
        self.id = id
        self.declared = declared
        self.reported = reported
        self.reserved = reserved
        self.overcommit = overcommit
        self.labels = labels
        self.connectivity = connectivity
        self.cordoned = cordoned
        self.lastReportAt = lastReportAt
        self.driver = driver
        self.desiredVersion = desiredVersion
        self.createdAt = createdAt
        self.images = images
    }

    /// Reported facts when the agent has reported, else the declaration.
    public var effective: HostCapacity { reported ?? declared }

    /// The combined state for people.
    public var state: HostState {
        if cordoned { return .cordoned }
        switch connectivity {
        case .enrolled: return .enrolled
        case .ready: return .ready
        case .unreachable: return .unreachable
        }
    }

    /// What may be allocated on this host: (effective − reserved) × overcommit, rounded down
    /// (vCPUs to whole CPUs, bytes to whole MiB), never negative.
    public var allocatable: ResourceVector {
        let e = effective
        let cpus = max(0, e.cpus - reserved.cpus)
        let mem = max(0, e.memory.bytes - reserved.memory.bytes)
        var pools: [PoolName: ByteSize] = [:]
        for (pool, size) in e.pools {
            let free = max(0, size.bytes - (reserved.pools[pool]?.bytes ?? 0))
            pools[pool] = ByteSize(bytes: Self.scale(free, overcommit.storage))
        }
        return ResourceVector(
            vcpu: Int((Double(cpus) * overcommit.cpu).rounded(.down)),
            memory: ByteSize(bytes: Self.scale(mem, overcommit.memory)),
            storage: pools
        )
    }

    private static func scale(_ bytes: Int64, _ ratio: Double) -> Int64 {
        let mib = Double(bytes / ByteSize.mib) * ratio
        return Int64(mib.rounded(.down)) * ByteSize.mib
    }
}

/// What an OPD asks for when it wants a VM.
public struct VMSpec: Hashable, Codable, Sendable {
    public var name: String
    public var vcpu: Int
    public var memory: ByteSize
    /// Size of the VM's disk, taken from ``pool``.
    public var disk: ByteSize
    public var pool: PoolName
    /// Anti-affinity group: two VMs of one app of one OPD never share a host.
    public var app: String?
    /// Base image name on the host's image directory; nil for a blank disk.
    public var image: String?
    /// Host labels the VM needs (`key=value` all present).
    public var requiredLabels: [String: String]
    /// Host labels the VM must avoid (any one present excludes the host).
    public var forbiddenLabels: [String: String]
    /// Tags describing the VM (e.g. `data=pribadi`: it holds personal data under UU PDP); the
    /// policy's placement constraints turn them into host labels required or forbidden.
    public var tags: [String: String]

    public init(
        name: String, vcpu: Int, memory: ByteSize, disk: ByteSize, pool: PoolName, app: String? = nil, image: String? = nil,
        requiredLabels: [String: String] = [:], forbiddenLabels: [String: String] = [:], tags: [String: String] = [:]
    ) {
        self.tags = tags
        self.name = name
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
        self.pool = pool
        self.app = app
        self.image = image
        self.requiredLabels = requiredLabels
        self.forbiddenLabels = forbiddenLabels
    }

    /// What the VM costs against quota and host capacity.
    public var resources: ResourceVector {
        ResourceVector(vcpu: vcpu, memory: memory, storage: [pool: disk], vms: 1)
    }

    private enum CodingKeys: String, CodingKey {
        case name, vcpu, memory, disk, pool, app, image, requiredLabels, forbiddenLabels, tags
    }

    /// Decodes a spec; `tags` may be missing (specs stored before tags existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        vcpu = try c.decode(Int.self, forKey: .vcpu)
        memory = try c.decode(ByteSize.self, forKey: .memory)
        disk = try c.decode(ByteSize.self, forKey: .disk)
        pool = try c.decode(PoolName.self, forKey: .pool)
        app = try c.decodeIfPresent(String.self, forKey: .app)
        image = try c.decodeIfPresent(String.self, forKey: .image)
        requiredLabels = try c.decode([String: String].self, forKey: .requiredLabels)
        forbiddenLabels = try c.decode([String: String].self, forKey: .forbiddenLabels)
        tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
    }

    /// Encodes a spec; `tags` only when there are some, so untagged specs read as before.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(vcpu, forKey: .vcpu)
        try c.encode(memory, forKey: .memory)
        try c.encode(disk, forKey: .disk)
        try c.encode(pool, forKey: .pool)
        try c.encodeIfPresent(app, forKey: .app)
        try c.encodeIfPresent(image, forKey: .image)
        try c.encode(requiredLabels, forKey: .requiredLabels)
        try c.encode(forbiddenLabels, forKey: .forbiddenLabels)
        if !tags.isEmpty { try c.encode(tags, forKey: .tags) }
    }
}

/// A VM's lifecycle.
///
/// ```
///  pending ─► scheduled ─► running ⇄ stopped
///                │            │         │
///                └────────────┴────┬────┘
///                                  ▼
///                              deleting ─► deleted
/// ```
public enum VMState: String, Hashable, Codable, Sendable, CaseIterable {
    case pending, scheduled, running, stopped, deleting, deleted
}

/// Whether a VM should run.
public enum PowerState: String, Hashable, Codable, Sendable {
    case running, stopped
}

/// What the agent last reported about a VM or volume.
public struct Observation: Hashable, Codable, Sendable {
    /// The agent's word: `running`, `stopped`, `absent`, `error`, `mounted`, …
    public var state: String
    public var cpuSeconds: Double?
    public var memoryUsed: ByteSize?
    public var memoryLimit: ByteSize?
    public var diskUsed: ByteSize?
    /// An error the agent could not resolve (e.g. a missing image).
    public var message: String?
    public var at: Date

    public init(
        state: String, cpuSeconds: Double? = nil, memoryUsed: ByteSize? = nil, memoryLimit: ByteSize? = nil,
        diskUsed: ByteSize? = nil, message: String? = nil, at: Date
    ) {
        self.state = state
        self.cpuSeconds = cpuSeconds
        self.memoryUsed = memoryUsed
        self.memoryLimit = memoryLimit
        self.diskUsed = diskUsed
        self.message = message
        self.at = at
    }
}

/// A VM allocated to an OPD.
public struct VM: Hashable, Codable, Sendable {
    public var id: VMID
    public var opd: OPDID
    public var spec: VMSpec
    /// The host it is placed on (nil only while pending).
    public var host: HostID?
    public var state: VMState
    public var desiredPower: PowerState
    public var createdAt: Date
    public var observed: Observation?

    public init(
        id: VMID, opd: OPDID, spec: VMSpec, host: HostID?, state: VMState, desiredPower: PowerState = .running,
        createdAt: Date, observed: Observation? = nil
    ) {
        self.id = id
        self.opd = opd
        self.spec = spec
        self.host = host
        self.state = state
        self.desiredPower = desiredPower
        self.createdAt = createdAt
        self.observed = observed
    }
}

/// What an OPD asks for when it wants a volume.
public struct VolumeSpec: Hashable, Codable, Sendable {
    public var name: String
    public var size: ByteSize
    public var pool: PoolName
    /// Tags describing the volume's data (e.g. `data=pribadi`: personal data under UU PDP); the
    /// policy's placement constraints turn them into host labels required or forbidden.
    public var tags: [String: String]

    public init(name: String, size: ByteSize, pool: PoolName, tags: [String: String] = [:]) {
        self.name = name
        self.size = size
        self.pool = pool
        self.tags = tags
    }

    private enum CodingKeys: String, CodingKey {
        case name, size, pool, tags
    }

    /// Decodes a spec; `tags` may be missing (specs stored before volumes had tags).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        size = try c.decode(ByteSize.self, forKey: .size)
        pool = try c.decode(PoolName.self, forKey: .pool)
        tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
    }

    /// Encodes a spec; `tags` only when there are some, so untagged specs read as before.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(size, forKey: .size)
        try c.encode(pool, forKey: .pool)
        if !tags.isEmpty { try c.encode(tags, forKey: .tags) }
    }

    public var resources: ResourceVector {
        ResourceVector(storage: [pool: size], volumes: 1)
    }
}

/// A volume's lifecycle: `pending → scheduled → ready → deleting → deleted`
/// (`scheduled → deleting` when deleted before its host made it).
public enum VolumeState: String, Hashable, Codable, Sendable, CaseIterable {
    case pending, scheduled, ready, deleting, deleted
}

/// A fixed-size volume allocated to an OPD on one host's pool.
public struct Volume: Hashable, Codable, Sendable {
    public var id: VolumeID
    public var opd: OPDID
    public var spec: VolumeSpec
    public var host: HostID?
    public var state: VolumeState
    public var createdAt: Date
    public var observed: Observation?

    public init(
        id: VolumeID, opd: OPDID, spec: VolumeSpec, host: HostID?, state: VolumeState, createdAt: Date,
        observed: Observation? = nil
    ) {
        self.id = id
        self.opd = opd
        self.spec = spec
        self.host = host
        self.state = state
        self.createdAt = createdAt
        self.observed = observed
    }
}

/// What a request asks for.
public enum RequestPayload: Hashable, Codable, Sendable {
    case vm(VMSpec)
    case volume(VolumeSpec)
    /// A change of the OPD's quota: amounts are deltas (`+8` vCPU), possibly negative.
    case quota(ResourceVector)

    /// `vm`, `volume` or `quota`.
    public var kind: String {
        switch self {
        case .vm: "vm"
        case .volume: "volume"
        case .quota: "quota"
        }
    }
}

/// A request's lifecycle.
///
/// ```
///  pending ─► approved ─► fulfilled
///     │
///     ├─► rejected
///     ├─► cancelled
///     └─► expired
/// ```
public enum RequestState: String, Hashable, Codable, Sendable, CaseIterable {
    case pending, approved, fulfilled, rejected, cancelled, expired
}

/// A request by OPD staff for a VM, a volume or a quota change.
public struct ResourceRequest: Hashable, Codable, Sendable {
    public var id: RequestID
    public var opd: OPDID
    public var payload: RequestPayload
    public var reason: String
    public var requestedBy: UserID
    public var state: RequestState
    public var createdAt: Date
    public var expiresAt: Date
    public var decidedBy: String?
    public var decidedAt: Date?
    public var decisionReason: String?
    /// The VM or volume id that fulfilled it.
    public var result: String?
    /// The approval rule that decided how the request is approved (set at filing; nil for
    /// requests filed before approval rules existed).
    public var rule: String?
    /// The official letter number (*nomor surat*) the request refers to, e.g. `800/123/Diskominfo/2026`.
    public var letter: String?
    /// The levels that must approve, in order (empty: approved automatically); nil for requests
    /// filed before approval rules existed, which are treated as ``ApprovalLevel/approver`` for
    /// VMs and volumes and ``ApprovalLevel/admin`` for quota.
    public var levels: [ApprovalLevel]?
    /// The approvals given so far, in order (a two-level request shows the approver's here while
    /// it waits for an admin).
    public var approvals: [RequestApproval]?

    public init(
        id: RequestID, opd: OPDID, payload: RequestPayload, reason: String, requestedBy: UserID, state: RequestState,
        createdAt: Date, expiresAt: Date, decidedBy: String? = nil, decidedAt: Date? = nil, decisionReason: String? = nil,
        result: String? = nil, rule: String? = nil, letter: String? = nil, levels: [ApprovalLevel]? = nil,
        approvals: [RequestApproval]? = nil
    ) {
        self.rule = rule
        self.letter = letter
        self.levels = levels
        self.approvals = approvals
        self.id = id
        self.opd = opd
        self.payload = payload
        self.reason = reason
        self.requestedBy = requestedBy
        self.state = state
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
        self.decisionReason = decisionReason
        self.result = result
    }
}

/// One approval given to a request at one level.
public struct RequestApproval: Hashable, Codable, Sendable {
    /// The level approved.
    public var level: ApprovalLevel
    /// Who approved, e.g. `user:siti`.
    public var by: String
    /// When.
    public var at: Date
    /// True when an admin approved a level that belongs to the OPD's approver (audited as an override).
    public var override: Bool?
    /// A note for the record.
    public var reason: String?

    /// Creates an approval record.
    public init(level: ApprovalLevel, by: String, at: Date, override: Bool? = nil, reason: String? = nil) {
        self.level = level
        self.by = by
        self.at = at
        self.override = override
        self.reason = reason
    }
}

extension ResourceRequest {
    /// The levels that must approve: ``levels``, or for requests filed before approval rules the
    /// levels of that time (the OPD's approver for VMs and volumes, an admin for quota).
    public var requiredLevels: [ApprovalLevel] {
        if let levels { return levels }
        if case .quota = payload { return [.admin] }
        return [.approver]
    }

    /// The levels still to approve, in order.
    public var remainingLevels: [ApprovalLevel] {
        Array(requiredLevels.dropFirst(min(approvals?.count ?? 0, requiredLevels.count)))
    }
}
