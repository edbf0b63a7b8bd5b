/// The amounts the quota and capacity models count: vCPUs, memory, storage per pool,
/// and (for quotas) the number of VMs and volumes.
///
/// The same shape serves as an OPD's quota, its usage, a request's ask, a host's
/// allocation and a quota delta (where amounts may be negative).
public struct ResourceVector: Hashable, Codable, Sendable {
    /// Virtual CPUs.
    public var vcpu: Int
    /// Memory.
    public var memory: ByteSize
    /// Storage per pool. A missing pool counts as zero.
    public var storage: [PoolName: ByteSize]
    /// Number of VMs.
    public var vms: Int
    /// Number of volumes.
    public var volumes: Int

    public init(vcpu: Int = 0, memory: ByteSize = .zero, storage: [PoolName: ByteSize] = [:], vms: Int = 0, volumes: Int = 0) {
        self.vcpu = vcpu
        self.memory = memory
        self.storage = storage
        self.vms = vms
        self.volumes = volumes
    }

    public static let zero = ResourceVector()

    private enum CodingKeys: String, CodingKey { case vcpu, memory, storage, vms, volumes }

    /// Missing fields decode as zero, so a quota delta can be written `{"vcpu": 8}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vcpu = try c.decodeIfPresent(Int.self, forKey: .vcpu) ?? 0
        memory = try c.decodeIfPresent(ByteSize.self, forKey: .memory) ?? .zero
        storage = try c.decodeIfPresent([PoolName: ByteSize].self, forKey: .storage) ?? [:]
        vms = try c.decodeIfPresent(Int.self, forKey: .vms) ?? 0
        volumes = try c.decodeIfPresent(Int.self, forKey: .volumes) ?? 0
    }

    /// Storage of one pool (zero when absent).
    public func storage(_ pool: PoolName) -> ByteSize { storage[pool] ?? .zero }

    public static func + (lhs: ResourceVector, rhs: ResourceVector) -> ResourceVector {
        var r = lhs
        r += rhs
        return r
    }

    public static func - (lhs: ResourceVector, rhs: ResourceVector) -> ResourceVector {
        var r = lhs
        r -= rhs
        return r
    }

    public static func += (lhs: inout ResourceVector, rhs: ResourceVector) {
        lhs.vcpu += rhs.vcpu
        lhs.memory += rhs.memory
        for (pool, size) in rhs.storage { lhs.storage[pool, default: .zero] += size }
        lhs.vms += rhs.vms
        lhs.volumes += rhs.volumes
    }

    public static func -= (lhs: inout ResourceVector, rhs: ResourceVector) {
        lhs.vcpu -= rhs.vcpu
        lhs.memory -= rhs.memory
        for (pool, size) in rhs.storage { lhs.storage[pool, default: .zero] -= size }
        lhs.vms -= rhs.vms
        lhs.volumes -= rhs.volumes
    }

    /// Drops pools whose amount is zero, so equal vectors compare equal.
    public var normalized: ResourceVector {
        var r = self
        r.storage = r.storage.filter { $0.value.bytes != 0 }
        return r
    }
}

/// A single countable dimension of the resource model, used to say which one ran out.
public enum Dimension: Hashable, Codable, Sendable, CustomStringConvertible {
    case vcpu
    case memory
    case storage(PoolName)
    case vms
    case volumes

    public var description: String {
        switch self {
        case .vcpu: "vCPU"
        case .memory: "memory"
        case .storage(let pool): "storage in pool \(pool)"
        case .vms: "VMs"
        case .volumes: "volumes"
        }
    }

    /// A stable key for the wire: `vcpu`, `memory`, `storage:ssd`, `vms`, `volumes`.
    public var key: String {
        switch self {
        case .vcpu: "vcpu"
        case .memory: "memory"
        case .storage(let pool): "storage:\(pool)"
        case .vms: "vms"
        case .volumes: "volumes"
        }
    }

    /// Parses ``key``.
    public init?(key: String) {
        switch key {
        case "vcpu": self = .vcpu
        case "memory": self = .memory
        case "vms": self = .vms
        case "volumes": self = .volumes
        default:
            guard key.hasPrefix("storage:") else { return nil }
            self = .storage(PoolName(rawValue: String(key.dropFirst("storage:".count))))
        }
    }

    public init(from decoder: any Decoder) throws {
        let key = try decoder.singleValueContainer().decode(String.self)
        guard let d = Dimension(key: key) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown dimension \(key)"))
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(key)
    }

    /// Reads this dimension's amount from a vector, in its natural unit (count or bytes).
    public func amount(in vector: ResourceVector) -> Int64 {
        switch self {
        case .vcpu: Int64(vector.vcpu)
        case .memory: vector.memory.bytes
        case .storage(let pool): vector.storage(pool).bytes
        case .vms: Int64(vector.vms)
        case .volumes: Int64(vector.volumes)
        }
    }

    /// Formats an amount of this dimension for people: `8 vCPU`, `6GiB`, `3 VMs`.
    public func format(_ amount: Int64) -> String {
        switch self {
        case .vcpu: "\(amount) vCPU"
        case .memory, .storage: ByteSize(bytes: amount).description
        case .vms: amount == 1 ? "1 VM" : "\(amount) VMs"
        case .volumes: amount == 1 ? "1 volume" : "\(amount) volumes"
        }
    }

    /// The dimensions a vector touches, in a stable order (vcpu, memory, pools by name, vms, volumes).
    public static func all(in vectors: ResourceVector...) -> [Dimension] {
        var pools = Set<PoolName>()
        for v in vectors { pools.formUnion(v.storage.keys) }
        return [.vcpu, .memory] + pools.sorted().map { .storage($0) } + [.vms, .volumes]
    }
}
