#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungCore

// Wire types of the Lumbung HTTP API (`/v1/…`). Responses reuse the Core model types
// (`VM`, `Volume`, `ResourceRequest`, …) where they are already the right shape; request
// bodies are their own structs so that optional fields stay optional and unknown fields
// can be refused (see ``StrictJSON``). `openapi.yaml` at the repository root describes
// the same routes, and a test keeps the two in sync.

/// The body of every error response: `{"error": {"code": …, "message": …}}`.
public struct APIErrorBody: Codable, Sendable, Hashable {
    public var error: APIErrorDetail
    public init(error: APIErrorDetail) { self.error = error }
}

/// A stable `code`, a sentence for people, and for refusals the numbers.
public struct APIErrorDetail: Codable, Sendable, Hashable {
    public var code: String
    public var message: String
    /// For quota/capacity refusals: the exhausted dimension (`vcpu`, `memory`, `storage:ssd`, `vms`, `volumes`).
    public var dimension: String?
    /// For quota/capacity refusals: what was asked, in the dimension's unit (count or bytes).
    public var asked: Int64?
    /// For quota/capacity refusals: what is left, in the dimension's unit (count or bytes).
    public var left: Int64?

    public init(code: String, message: String, dimension: String? = nil, asked: Int64? = nil, left: Int64? = nil) {
        self.code = code
        self.message = message
        self.dimension = dimension
        self.asked = asked
        self.left = left
    }
}

// MARK: - Enrollment and identity

/// `GET /v1/enroll/ca`: the controller's CA, fetched before trust exists and pinned by the token's fingerprint.
public struct CAInfo: Codable, Sendable, Hashable {
    public var name: String
    public var caPEM: String
    public var fingerprint: String
    public init(name: String, caPEM: String, fingerprint: String) {
        self.name = name
        self.caPEM = caPEM
        self.fingerprint = fingerprint
    }
}

/// `POST /v1/enroll`: a one-time token's secret and a CSR made from a key that never leaves the client.
public struct EnrollRequest: Codable, Sendable, Hashable {
    public var token: String
    public var csr: String
    /// What the client expects to become: `user` (the CLI) or `host` (an agent). A token of the
    /// other kind is refused with `token_wrong_role` and stays unused.
    public var kind: String?
    public init(token: String, csr: String, kind: String? = nil) {
        self.token = token
        self.csr = csr
        self.kind = kind
    }
}

/// `POST /v1/renew`: a CSR, authenticated by the current (still valid) certificate.
public struct RenewRequest: Codable, Sendable, Hashable {
    public var csr: String
    public init(csr: String) { self.csr = csr }
}

/// The answer to enrollment and renewal.
public struct EnrollResponse: Codable, Sendable, Hashable {
    public var certificate: String
    public var ca: String
    /// `lumbung://user/budi` or `lumbung://host/node-01`.
    public var identity: String
    public var role: Role
    public var opd: OPDID?
    public var notAfter: Date
    public var controllerName: String
    public init(certificate: String, ca: String, identity: String, role: Role, opd: OPDID?, notAfter: Date, controllerName: String) {
        self.certificate = certificate
        self.ca = ca
        self.identity = identity
        self.role = role
        self.opd = opd
        self.notAfter = notAfter
        self.controllerName = controllerName
    }
}

/// `GET /v1/whoami`.
public struct WhoAmI: Codable, Sendable, Hashable {
    public var principal: String
    public var role: Role
    public var opd: OPDID?
    public var certificateNotAfter: Date?
    public init(principal: String, role: Role, opd: OPDID?, certificateNotAfter: Date?) {
        self.principal = principal
        self.role = role
        self.opd = opd
        self.certificateNotAfter = certificateNotAfter
    }
}

// MARK: - OPDs and quota

/// `POST /v1/opds`.
public struct CreateOPDBody: Codable, Sendable, Hashable {
    public var id: OPDID
    public var displayName: String
    /// The quota; give this or ``quotaClass``, not both.
    public var quota: ResourceVector?
    /// A quota class of the policy set (`kecil`, `sedang`, `besar`, …): the OPD gets the class's quota.
    public var quotaClass: QuotaClassName?
    public init(id: OPDID, displayName: String, quota: ResourceVector? = nil, quotaClass: QuotaClassName? = nil) {
        self.id = id
        self.displayName = displayName
        self.quota = quota
        self.quotaClass = quotaClass
    }
}

/// `PUT /v1/opds/{opd}/quota`: the new quota (whole, not a delta), some of its amounts
/// (`change`: the others stay as they are when the ledger applies it, so two admins changing
/// different amounts at once both win), or a quota class whose quota the OPD takes (and follows
/// when the class changes). `force` lowers below current use (audited). Amounts give the OPD a
/// quota of its own: it leaves its class.
public struct SetQuotaBody: Codable, Sendable, Hashable {
    public var quota: ResourceVector?
    public var change: QuotaChange?
    public var quotaClass: QuotaClassName?
    public var force: Bool?
    public init(quota: ResourceVector? = nil, change: QuotaChange? = nil, quotaClass: QuotaClassName? = nil, force: Bool? = nil) {
        self.quota = quota
        self.change = change
        self.quotaClass = quotaClass
        self.force = force
    }
}

/// New values for some amounts of a quota (absolute values, not deltas); nil keeps an amount.
/// Storage names only the pools that change.
public struct QuotaChange: Codable, Sendable, Hashable {
    public var vcpu: Int?
    public var memory: ByteSize?
    public var storage: [String: ByteSize]?
    public var vms: Int?
    public var volumes: Int?

    public init(vcpu: Int? = nil, memory: ByteSize? = nil, storage: [String: ByteSize]? = nil, vms: Int? = nil, volumes: Int? = nil) {
        self.vcpu = vcpu
        self.memory = memory
        self.storage = storage
        self.vms = vms
        self.volumes = volumes
    }

    /// True when it changes nothing.
    public var isEmpty: Bool { vcpu == nil && memory == nil && (storage ?? [:]).isEmpty && vms == nil && volumes == nil }

    /// `quota` with these amounts in place of its own.
    public func applied(to quota: ResourceVector) -> ResourceVector {
        var q = quota
        if let vcpu { q.vcpu = vcpu }
        if let memory { q.memory = memory }
        for (pool, size) in storage ?? [:] { q.storage[PoolName(rawValue: pool)] = size }
        if let vms { q.vms = vms }
        if let volumes { q.volumes = volumes }
        return q
    }
}

/// `POST /v1/hosts/{host}/labels`: labels to set (or overwrite) and label keys to remove, like
/// `kubectl label`. Placement, constraints and overcommit by label follow at once; what already
/// runs on the host stays where it is.
public struct SetHostLabelsBody: Codable, Sendable, Hashable {
    public var set: [String: String]?
    public var remove: [String]?
    public init(set: [String: String]? = nil, remove: [String]? = nil) {
        self.set = set
        self.remove = remove
    }
}

/// An OPD with its quota, what it uses and what is left.
public struct OPDView: Codable, Sendable, Hashable {
    public var id: OPDID
    public var displayName: String
    public var quota: ResourceVector
    public var usage: ResourceVector
    public var left: ResourceVector
    public var createdAt: Date
    /// The OPD's quota class, nil when it has a quota of its own.
    public var quotaClass: QuotaClassName?
    public init(
        id: OPDID, displayName: String, quota: ResourceVector, usage: ResourceVector, left: ResourceVector, createdAt: Date,
        quotaClass: QuotaClassName? = nil
    ) {
        self.quotaClass = quotaClass
        self.id = id
        self.displayName = displayName
        self.quota = quota
        self.usage = usage
        self.left = left
        self.createdAt = createdAt
    }
}

// MARK: - Hosts

/// `POST /v1/hosts`: declares a host; the answer carries a one-time join token for its agent.
public struct AddHostBody: Codable, Sendable, Hashable {
    public var id: HostID
    public var capacity: HostCapacity
    public var reserved: HostCapacity?
    public var overcommit: Overcommit?
    public var labels: [String: String]?
    public init(id: HostID, capacity: HostCapacity, reserved: HostCapacity? = nil, overcommit: Overcommit? = nil, labels: [String: String]? = nil) {
        self.id = id
        self.capacity = capacity
        self.reserved = reserved
        self.overcommit = overcommit
        self.labels = labels
    }
}

/// A host as shown to admins: declaration, reported facts, what is allocatable, allocated and free.
public struct HostView: Codable, Sendable, Hashable {
    public var id: HostID
    public var state: HostState
    /// `real` or `simulated` (the agent's driver as reported; `simulated` hosts run nothing for real); nil before the first report.
    public var driver: String?
    public var declared: HostCapacity
    public var reported: HostCapacity?
    public var reserved: HostCapacity
    public var overcommit: Overcommit
    public var labels: [String: String]
    public var allocatable: ResourceVector
    public var allocated: ResourceVector
    public var free: ResourceVector
    public var vms: Int
    public var volumes: Int
    public var lastReportAt: Date?
    public var desiredVersion: Int64
    /// Sentences naming where the agent's reported facts differ from the declaration (the reported facts win).
    public var differences: [String]
    /// The base images the agent reported (sorted); nil before its first report of them.
    public var images: [String]?
    public init(
        id: HostID, state: HostState, driver: String?, declared: HostCapacity, reported: HostCapacity?, reserved: HostCapacity,
        overcommit: Overcommit, labels: [String: String], allocatable: ResourceVector, allocated: ResourceVector,
        free: ResourceVector, vms: Int, volumes: Int, lastReportAt: Date?, desiredVersion: Int64, differences: [String],
        images: [String]? = nil
    ) {
        self.id = id
        self.state = state
        self.driver = driver
        self.declared = declared
        self.reported = reported
        self.reserved = reserved
        self.overcommit = overcommit
        self.labels = labels
        self.allocatable = allocatable
        self.allocated = allocated
        self.free = free
        self.vms = vms
        self.volumes = volumes
        self.lastReportAt = lastReportAt
        self.desiredVersion = desiredVersion
        self.differences = differences
        self.images = images
    }
}

/// The answer to `POST /v1/hosts` and `POST /v1/hosts/{host}/token`.
public struct AddHostResponse: Codable, Sendable, Hashable {
    public var host: HostView
    public var joinToken: String
    public var tokenExpiresAt: Date
    public init(host: HostView, joinToken: String, tokenExpiresAt: Date) {
        self.host = host
        self.joinToken = joinToken
        self.tokenExpiresAt = tokenExpiresAt
    }
}

// MARK: - Users

/// `POST /v1/users`: adds a person; the answer carries a one-time login token.
public struct AddUserBody: Codable, Sendable, Hashable {
    public var name: UserID
    public var role: Role
    public var opd: OPDID?
    public init(name: UserID, role: Role, opd: OPDID?) {
        self.name = name
        self.role = role
        self.opd = opd
    }
}

/// A user as listed.
public struct UserView: Codable, Sendable, Hashable {
    public var name: UserID
    public var role: Role
    public var opd: OPDID?
    public var createdAt: Date
    public var revokedAt: Date?
    public init(name: UserID, role: Role, opd: OPDID?, createdAt: Date, revokedAt: Date?) {
        self.name = name
        self.role = role
        self.opd = opd
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// The answer to `POST /v1/users` and `POST /v1/users/{name}/token`.
public struct AddUserResponse: Codable, Sendable, Hashable {
    public var user: UserView
    public var token: String
    public var tokenExpiresAt: Date
    public init(user: UserView, token: String, tokenExpiresAt: Date) {
        self.user = user
        self.token = token
        self.tokenExpiresAt = tokenExpiresAt
    }
}

// MARK: - VMs, volumes, requests

/// A VM as asked for in `POST /v1/vms` (admin allocates directly) and in a request.
public struct VMBody: Codable, Sendable, Hashable {
    public var name: String
    public var vcpu: Int
    public var memory: ByteSize
    public var disk: ByteSize
    /// The disk's pool; when omitted the controller uses its default pool (`ssd` if any host has it,
    /// else the only pool there is).
    public var pool: PoolName?
    public var app: String?
    public var image: String?
    public var requireLabels: [String: String]?
    public var forbidLabels: [String: String]?
    /// Tags describing the VM, e.g. `data: pribadi`; placement constraints of the policy turn
    /// them into host labels (a `data=pribadi` VM only on `certified=pdp` hosts).
    public var tags: [String: String]?
    public init(
        name: String, vcpu: Int, memory: ByteSize, disk: ByteSize, pool: PoolName?, app: String? = nil, image: String? = nil,
        requireLabels: [String: String]? = nil, forbidLabels: [String: String]? = nil, tags: [String: String]? = nil
    ) {
        self.tags = tags
        self.name = name
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
        self.pool = pool
        self.app = app
        self.image = image
        self.requireLabels = requireLabels
        self.forbidLabels = forbidLabels
    }

    /// The Core spec this body asks for, with `defaultPool` when the body names none.
    public func spec(defaultPool: PoolName) -> VMSpec {
        VMSpec(
            name: name, vcpu: vcpu, memory: memory, disk: disk, pool: pool ?? defaultPool, app: app, image: image,
            requiredLabels: requireLabels ?? [:], forbiddenLabels: forbidLabels ?? [:], tags: tags ?? [:])
    }
}

/// `POST /v1/vms`: an admin allocates a VM to an OPD at once.
public struct CreateVMBody: Codable, Sendable, Hashable {
    public var opd: OPDID
    public var vm: VMBody
    /// Allocate even though it breaks the N+1 headroom rule (admin; audited as `policy.override`).
    public var force: Bool?
    public init(opd: OPDID, vm: VMBody, force: Bool? = nil) {
        self.opd = opd
        self.vm = vm
        self.force = force
    }
}

/// `POST /v1/vms/place`: where a VM of `opd` would go, explained; nothing is allocated.
public struct PlaceVMBody: Codable, Sendable, Hashable {
    /// The OPD the VM would belong to; admins must name one, members and approvers may omit it (their own).
    public var opd: OPDID?
    /// The VM.
    public var vm: VMBody
    /// Creates a body.
    public init(opd: OPDID?, vm: VMBody) {
        self.opd = opd
        self.vm = vm
    }
}

/// The answer of `POST /v1/vms/place` (dry run): which rules applied, which hosts were filtered
/// out and why, and the chosen host with its score.
public struct PlacementExplanation: Codable, Sendable, Hashable {
    /// True when the VM could be allocated now (limits, constraints, quota, a host, headroom).
    public var placeable: Bool
    /// The strategy in force (`binpack` or `spread`).
    public var strategy: String
    /// The host placement would choose, if any.
    public var host: HostID?
    /// Its score, 0…1 (higher is better).
    public var score: Double?
    /// How many hosts could take it.
    public var candidates: Int?
    /// Every rule that applied, in the order checked, each as `rule` and `sentence`.
    public var reasons: [PolicyReason]
    /// The hosts filtered out, each with the first filter it failed.
    public var excluded: [HostExclusion]
    /// Everything above as sentences for people.
    public var sentences: [String]
    /// Creates an explanation.
    public init(
        placeable: Bool, strategy: String, host: HostID? = nil, score: Double? = nil, candidates: Int? = nil, reasons: [PolicyReason],
        excluded: [HostExclusion], sentences: [String] = []
    ) {
        self.placeable = placeable
        self.strategy = strategy
        self.host = host
        self.score = score
        self.candidates = candidates
        self.reasons = reasons
        self.excluded = excluded
        self.sentences = sentences
    }
}

/// A volume as asked for.
public struct VolumeBody: Codable, Sendable, Hashable {
    public var name: String
    public var size: ByteSize
    public var pool: PoolName
    /// Tags describing the volume's data (e.g. `data=pribadi`); placement constraints use them.
    public var tags: [String: String]?
    public init(name: String, size: ByteSize, pool: PoolName, tags: [String: String]? = nil) {
        self.name = name
        self.size = size
        self.pool = pool
        self.tags = tags
    }

    public var spec: VolumeSpec { VolumeSpec(name: name, size: size, pool: pool, tags: tags ?? [:]) }
}

/// `POST /v1/volumes`: an admin allocates a volume to an OPD at once.
public struct CreateVolumeBody: Codable, Sendable, Hashable {
    public var opd: OPDID
    public var volume: VolumeBody
    /// Allocate even though it breaks the N+1 headroom rule (admin; audited). Volumes add no
    /// vCPU or memory, so the rule never refuses them today; accepted for symmetry with VMs.
    public var force: Bool?
    public init(opd: OPDID, volume: VolumeBody, force: Bool? = nil) {
        self.opd = opd
        self.volume = volume
        self.force = force
    }
}

/// `POST /v1/volumes/{ref}/resize`: the new size (grow only).
/// `GET /v1/policy` and the answer of `POST /v1/policy/reload`: the policy set in force.
public struct PolicyView: Codable, Sendable, Hashable {
    /// SHA-256 of the set's files; every audited decision carries it.
    public var hash: String
    public var loadedAt: Date
    /// The policy directory, or nil for the built-in default set.
    public var directory: String?
    public var sources: [String]
    public var classes: [String]
    public var strategy: String
    public var requestExpiryDays: Int
    public var headroomNPlusOne: Bool
    public var volumeRetentionDays: Int
    public var auditRetentionDays: Int
    /// The last load attempt: when, whether it was installed, and its errors (`file:line: message`).
    public var lastAttemptAt: Date?
    public var lastAttemptOK: Bool?
    public var lastErrors: [String]
    public init(
        hash: String, loadedAt: Date, directory: String?, sources: [String], classes: [String], strategy: String,
        requestExpiryDays: Int, headroomNPlusOne: Bool, volumeRetentionDays: Int, auditRetentionDays: Int,
        lastAttemptAt: Date?, lastAttemptOK: Bool?, lastErrors: [String]
    ) {
        self.hash = hash
        self.loadedAt = loadedAt
        self.directory = directory
        self.sources = sources
        self.classes = classes
        self.strategy = strategy
        self.requestExpiryDays = requestExpiryDays
        self.headroomNPlusOne = headroomNPlusOne
        self.volumeRetentionDays = volumeRetentionDays
        self.auditRetentionDays = auditRetentionDays
        self.lastAttemptAt = lastAttemptAt
        self.lastAttemptOK = lastAttemptOK
        self.lastErrors = lastErrors
    }
}

/// `POST /v1/vms/{ref}/resize`: the new vCPU count, memory and/or disk size (at least one;
/// the disk only grows). The host applies new CPU and memory limits at once and QEMU's own
/// size at the VM's next start; the disk grows online.
public struct ResizeVMBody: Codable, Sendable, Hashable {
    public var vcpu: Int?
    public var memory: ByteSize?
    public var disk: ByteSize?
    public init(vcpu: Int? = nil, memory: ByteSize? = nil, disk: ByteSize? = nil) {
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
    }
}

public struct ResizeVolumeBody: Codable, Sendable, Hashable {
    public var size: ByteSize
    public init(size: ByteSize) { self.size = size }
}

/// `POST /v1/requests`: exactly one of `vm`, `volume`, `quota` (a delta, e.g. `{"vcpu": 8}`).
/// `opd` may be omitted by OPD staff (their own OPD is used); admins must give it.
public struct FileRequestBody: Codable, Sendable, Hashable {
    public var opd: OPDID?
    public var reason: String
    public var vm: VMBody?
    public var volume: VolumeBody?
    public var quota: ResourceVector?
    /// The official letter number (*nomor surat*) the request refers to, e.g. `800/123/Diskominfo/2026`.
    public var letter: String?
    public init(
        opd: OPDID? = nil, reason: String, vm: VMBody? = nil, volume: VolumeBody? = nil, quota: ResourceVector? = nil, letter: String? = nil
    ) {
        self.letter = letter
        self.opd = opd
        self.reason = reason
        self.vm = vm
        self.volume = volume
        self.quota = quota
    }
}

/// `POST /v1/requests/{id}/approve|reject|cancel`. A reason is required to reject.
public struct DecisionBody: Codable, Sendable, Hashable {
    public var reason: String?
    /// Approve: an admin decides a level that belongs to the OPD's approver (audited as
    /// `request.approve.override`). Without it an admin may not skip the approver of a two-level request.
    public var override: Bool?
    public init(reason: String? = nil, override: Bool? = nil) {
        self.reason = reason
        self.override = override
    }
}

/// `GET /v1/requests/{id}/explain`: why a request is decided as it is, in sentences: every
/// approval rule tried and the one that decides (against the OPD's quota and the data center as
/// they are now), the quota fit with its numbers, and for VMs and volumes the placement: every
/// host filtered out and why, and the host that would be chosen with its score.
public struct RequestExplanation: Codable, Sendable, Hashable {
    public var id: RequestID
    public var state: RequestState
    /// The rule the request was filed under (nil for requests filed before approval rules).
    public var rule: String?
    /// The decision the rules give now, e.g. `needs the OPD's approver, then an admin`.
    public var decision: String
    /// The rule that decides now.
    public var decidingRule: String
    /// Every approval rule tried, in order, ending with the deciding one.
    public var approval: [PolicyReason]
    /// The levels still to approve and the approvals given.
    public var levels: [String]
    /// The quota fit, with the numbers.
    public var quota: [String]
    /// Placement (VMs and volumes): hosts filtered out and why, the chosen host and its score.
    public var placement: [String]
    /// The host placement would choose now, if any.
    public var host: HostID?
    /// Its score (0…1, higher is better).
    public var score: Double?
    public init(
        id: RequestID, state: RequestState, rule: String?, decision: String, decidingRule: String, approval: [PolicyReason],
        levels: [String], quota: [String], placement: [String], host: HostID?, score: Double?
    ) {
        self.id = id
        self.state = state
        self.rule = rule
        self.decision = decision
        self.decidingRule = decidingRule
        self.approval = approval
        self.levels = levels
        self.quota = quota
        self.placement = placement
        self.host = host
        self.score = score
    }
}

// MARK: - Capacity and audit

/// One host's line in the capacity report.
public struct CapacityHostRow: Codable, Sendable, Hashable {
    public var id: HostID
    public var state: HostState
    public var driver: String?
    public var allocatable: ResourceVector
    public var allocated: ResourceVector
    public var free: ResourceVector
    public init(id: HostID, state: HostState, driver: String?, allocatable: ResourceVector, allocated: ResourceVector, free: ResourceVector) {
        self.id = id
        self.state = state
        self.driver = driver
        self.allocatable = allocatable
        self.allocated = allocated
        self.free = free
    }
}

/// `GET /v1/capacity`: the whole data center at a glance.
public struct CapacityView: Codable, Sendable, Hashable {
    public var hosts: [CapacityHostRow]
    /// Totals over hosts that take placements (not cordoned, not unreachable).
    public var schedulable: CapacityHostRow?
    /// Totals over all hosts.
    public var allocatable: ResourceVector
    public var allocated: ResourceVector
    public var free: ResourceVector
    /// Sum of all OPD quotas (what was promised) next to what is allocatable.
    public var quotaPromised: ResourceVector
    public var opds: [OPDView]
    public init(
        hosts: [CapacityHostRow], schedulable: CapacityHostRow? = nil, allocatable: ResourceVector, allocated: ResourceVector,
        free: ResourceVector, quotaPromised: ResourceVector, opds: [OPDView]
    ) {
        self.hosts = hosts
        self.schedulable = schedulable
        self.allocatable = allocatable
        self.allocated = allocated
        self.free = free
        self.quotaPromised = quotaPromised
        self.opds = opds
    }
}

/// One audit log entry.
public struct AuditEntryView: Codable, Sendable, Hashable {
    public var seq: Int64
    public var at: Date
    public var actor: String
    public var role: String
    public var action: String
    public var target: String
    public var before: String?
    public var after: String?
    public var requestID: String?
    /// The hash of the policy set the decision was made under.
    public var policyHash: String?
    public var hash: String
    public init(
        seq: Int64, at: Date, actor: String, role: String, action: String, target: String, before: String?, after: String?,
        requestID: String?, policyHash: String? = nil, hash: String
    ) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.role = role
        self.action = action
        self.target = target
        self.before = before
        self.after = after
        self.requestID = requestID
        self.policyHash = policyHash
        self.hash = hash
    }
}

/// `GET /v1/audit/verify`.
public struct AuditVerifyView: Codable, Sendable, Hashable {
    public var ok: Bool
    public var checked: Int
    public var problem: String?
    public var firstBadSeq: Int64?
    public init(ok: Bool, checked: Int, problem: String?, firstBadSeq: Int64?) {
        self.ok = ok
        self.checked = checked
        self.problem = problem
        self.firstBadSeq = firstBadSeq
    }
}

// MARK: - Agent protocol

/// A VM as its host's agent should run it.
public struct DesiredVM: Codable, Sendable, Hashable {
    public var id: VMID
    public var opd: OPDID
    public var name: String
    public var vcpu: Int
    public var memory: ByteSize
    public var disk: ByteSize
    public var pool: PoolName
    public var image: String?
    public var power: PowerState
    public init(id: VMID, opd: OPDID, name: String, vcpu: Int, memory: ByteSize, disk: ByteSize, pool: PoolName, image: String?, power: PowerState) {
        self.id = id
        self.opd = opd
        self.name = name
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
        self.pool = pool
        self.image = image
        self.power = power
    }
}

/// A volume as its host's agent should hold it.
public struct DesiredVolume: Codable, Sendable, Hashable {
    public var id: VolumeID
    public var opd: OPDID
    public var name: String
    public var size: ByteSize
    public var pool: PoolName
    public init(id: VolumeID, opd: OPDID, name: String, size: ByteSize, pool: PoolName) {
        self.id = id
        self.opd = opd
        self.name = name
        self.size = size
        self.pool = pool
    }
}

/// `GET /v1/agent/desired?after=N`: everything the host should run, at a version.
/// Anything the agent holds that is not listed should be removed (volumes: retained, then purged).
public struct DesiredState: Codable, Sendable, Hashable {
    public var host: HostID
    public var version: Int64
    public var vms: [DesiredVM]
    public var volumes: [DesiredVolume]
    /// How long a deleted volume's data is kept before it is purged, in seconds
    /// (`retention.yaml`: `volume_retention_days`); absent from older controllers, when the
    /// agent uses its own setting.
    public var volumeRetentionSeconds: Int64?
    public init(host: HostID, version: Int64, vms: [DesiredVM], volumes: [DesiredVolume], volumeRetentionSeconds: Int64? = nil) {
        self.volumeRetentionSeconds = volumeRetentionSeconds
        self.host = host
        self.version = version
        self.vms = vms
        self.volumes = volumes
    }
}

/// One VM in an agent report.
public struct VMReport: Codable, Sendable, Hashable {
    public var id: VMID
    /// `running`, `stopped`, `absent` (deleted on the host), `error`.
    public var state: String
    public var cpuSeconds: Double?
    public var memoryUsed: ByteSize?
    public var memoryLimit: ByteSize?
    public var diskUsed: ByteSize?
    public var message: String?
    public init(
        id: VMID, state: String, cpuSeconds: Double? = nil, memoryUsed: ByteSize? = nil, memoryLimit: ByteSize? = nil,
        diskUsed: ByteSize? = nil, message: String? = nil
    ) {
        self.id = id
        self.state = state
        self.cpuSeconds = cpuSeconds
        self.memoryUsed = memoryUsed
        self.memoryLimit = memoryLimit
        self.diskUsed = diskUsed
        self.message = message
    }
}

/// One volume in an agent report.
public struct VolumeReport: Codable, Sendable, Hashable {
    public var id: VolumeID
    /// `ready` (mounted), `absent` (deleted on the host), `error`.
    public var state: String
    public var size: ByteSize?
    public var used: ByteSize?
    public var message: String?
    public init(id: VolumeID, state: String, size: ByteSize? = nil, used: ByteSize? = nil, message: String? = nil) {
        self.id = id
        self.state = state
        self.size = size
        self.used = used
        self.message = message
    }
}

/// `POST /v1/agent/report`: the heartbeat with the host's facts and what actually runs.
public struct AgentReport: Codable, Sendable, Hashable {
    public var host: HostID
    /// `real` or `simulated`.
    public var driver: String
    /// The desired version the agent has converged to (or is working on).
    public var appliedVersion: Int64?
    public var facts: HostCapacity?
    public var vms: [VMReport]
    public var volumes: [VolumeReport]
    /// True when `vms` and `volumes` list everything on the host: a VM or volume being deleted
    /// that is not listed is then gone, and its host capacity is released.
    public var complete: Bool?
    /// The base images in the host's image directory; sent when they changed (nil: unchanged).
    public var images: [String]?
    public init(
        host: HostID, driver: String, appliedVersion: Int64? = nil, facts: HostCapacity? = nil, vms: [VMReport] = [],
        volumes: [VolumeReport] = [], complete: Bool? = nil, images: [String]? = nil
    ) {
        self.host = host
        self.driver = driver
        self.appliedVersion = appliedVersion
        self.facts = facts
        self.vms = vms
        self.volumes = volumes
        self.complete = complete
        self.images = images
    }
}

/// The answer to a report: the host's current desired version (the agent long-polls when it differs).
public struct ReportAck: Codable, Sendable, Hashable {
    public var desiredVersion: Int64
    public init(desiredVersion: Int64) { self.desiredVersion = desiredVersion }
}
