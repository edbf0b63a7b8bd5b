/// Why something does not fit: which dimension ran out, where (an OPD's quota or a host),
/// how much was asked and how much was left.
///
/// The same value is the body of an HTTP 409 and the CLI's message, e.g.
/// `quota: dinkes has 6 vCPU left, the request asks for 8 vCPU` or
/// `host node-01 has 4GiB of memory left, the VM asks for 8GiB`.
public struct Shortfall: Error, Hashable, Codable, Sendable, CustomStringConvertible {
    /// Where the limit lies.
    ///
    /// Encoded as one string: `quota:dinkes` or `host:node-01`.
    public enum Scope: Hashable, Codable, Sendable, CustomStringConvertible {
        /// An OPD's quota.
        case quota(OPDID)
        /// A host's allocatable capacity.
        case host(HostID)

        /// `quota:dinkes` or `host:node-01`.
        public var description: String {
            switch self {
            case .quota(let opd): "quota:\(opd)"
            case .host(let host): "host:\(host)"
            }
        }

        /// Decodes `quota:<opd>` or `host:<host>`.
        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            if text.hasPrefix("quota:") {
                self = .quota(OPDID(rawValue: String(text.dropFirst("quota:".count))))
            } else if text.hasPrefix("host:") {
                self = .host(HostID(rawValue: String(text.dropFirst("host:".count))))
            } else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "unknown shortfall scope \(text)"))
            }
        }

        /// Encodes as `quota:<opd>` or `host:<host>`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(description)
        }
    }

    /// Who asks, for the sentence: "the request asks for…", "the VM asks for…".
    public enum Subject: String, Hashable, Codable, Sendable {
        /// A request (the default, used for quota checks).
        case request
        /// A VM being placed.
        case vm
        /// A volume being placed or grown.
        case volume

        var noun: String {
            switch self {
            case .request: "the request"
            case .vm: "the VM"
            case .volume: "the volume"
            }
        }
    }

    /// Where the limit lies.
    public var scope: Scope
    /// The dimension that ran out.
    public var dimension: Dimension
    /// The amount asked, in the dimension's natural unit (a count or bytes).
    public var asked: Int64
    /// The amount left before the ask, in the same unit; zero or negative when already exhausted or over.
    public var left: Int64
    /// Who asks (only changes the sentence).
    public var subject: Subject

    /// Creates a shortfall.
    public init(scope: Scope, dimension: Dimension, asked: Int64, left: Int64, subject: Subject = .request) {
        self.scope = scope
        self.dimension = dimension
        self.asked = asked
        self.left = left
        self.subject = subject
    }

    /// A sentence with the numbers, e.g. `quota: dinkes has 200GiB of storage in pool ssd left, the request asks for 500GiB`.
    public var description: String {
        let whereText: String
        switch scope {
        case .quota(let opd): whereText = "quota: \(opd)"
        case .host(let host): whereText = "host \(host)"
        }
        return "\(whereText) has \(dimension.leftClause(left)), \(subject.noun) asks for \(dimension.format(asked))"
    }
}

extension Dimension {
    /// `6 vCPU left`, `4GiB of memory left`, `200GiB of storage in pool ssd left`, `2 VMs left`;
    /// `no memory left`, `no memory left (already 2GiB over)`.
    func leftClause(_ left: Int64) -> String {
        if left > 0 {
            switch self {
            case .memory, .storage: return "\(format(left)) of \(self) left"
            case .vcpu, .vms, .volumes: return "\(format(left)) left"
            }
        }
        let over = left < 0 ? " (already \(format(-left)) over)" : ""
        return "no \(self) left\(over)"
    }

    /// A bare amount for "quota to 10 is below its use of 14": counts without a unit, sizes with one.
    func bareAmount(_ amount: Int64) -> String {
        switch self {
        case .vcpu, .vms, .volumes: String(amount)
        case .memory, .storage: ByteSize(bytes: amount).description
        }
    }

    /// The noun used in "dinkes's vCPU quota", "dinkes's storage quota in pool ssd".
    var quotaNoun: String {
        switch self {
        case .vcpu: "vCPU quota"
        case .memory: "memory quota"
        case .storage(let pool): "storage quota in pool \(pool)"
        case .vms: "VM quota"
        case .volumes: "volume quota"
        }
    }

    /// The filter order of placement and quota checks: vcpu, memory, storage, vms, volumes.
    var orderRank: Int {
        switch self {
        case .vcpu: 0
        case .memory: 1
        case .storage: 2
        case .vms: 3
        case .volumes: 4
        }
    }
}

/// Quota arithmetic: does an ask fit in what an OPD has left?
///
/// An ask fits a dimension when `usage + adding ≤ quota`. Only the dimensions the ask
/// adds to (a positive amount) are checked, so an OPD already over in one dimension
/// (after a forced quota lowering) can still take what does not touch it. Storage in
/// a pool absent from the quota has a quota of zero.
public enum QuotaFit {
    /// The first exhausted dimension, in a stable order: vcpu, memory, storage pools sorted by
    /// name, vms, volumes; nil when the ask fits.
    public static func shortfall(
        quota: ResourceVector, usage: ResourceVector, adding: ResourceVector, opd: OPDID
    ) -> Shortfall? {
        // Fast path without allocating: vcpu and memory first, then pools, then counts.
        if let s = check(.vcpu, quota: quota, usage: usage, adding: adding, opd: opd) { return s }
        if let s = check(.memory, quota: quota, usage: usage, adding: adding, opd: opd) { return s }
        if adding.storage.count == 1, let pool = adding.storage.first?.key {
            if let s = check(.storage(pool), quota: quota, usage: usage, adding: adding, opd: opd) { return s }
        } else if !adding.storage.isEmpty {
            for pool in adding.storage.keys.sorted() {
                if let s = check(.storage(pool), quota: quota, usage: usage, adding: adding, opd: opd) { return s }
            }
        }
        if let s = check(.vms, quota: quota, usage: usage, adding: adding, opd: opd) { return s }
        return check(.volumes, quota: quota, usage: usage, adding: adding, opd: opd)
    }

    /// Every exhausted dimension, in the same stable order as ``shortfall(quota:usage:adding:opd:)``.
    public static func shortfalls(
        quota: ResourceVector, usage: ResourceVector, adding: ResourceVector, opd: OPDID
    ) -> [Shortfall] {
        Dimension.all(in: adding).compactMap { check($0, quota: quota, usage: usage, adding: adding, opd: opd) }
    }

    /// The dimensions where `usage` exceeds `newQuota`, for refusing a quota lowering: in each
    /// shortfall `asked` is the current use and `left` the new quota (see ``Refusal/quotaBelowUse(_:)``).
    public static func belowUse(newQuota: ResourceVector, usage: ResourceVector, opd: OPDID) -> [Shortfall] {
        shortfalls(quota: newQuota, usage: .zero, adding: usage, opd: opd)
    }

    /// The same verdict as ``shortfall(quota:usage:adding:opd:)`` for an ask with a single pool,
    /// without building a vector (the per-decision fast path).
    static func shortfall(
        quota: ResourceVector, usage: ResourceVector, vcpu: Int, memory: Int64, pool: PoolName, storage: Int64, vms: Int,
        volumes: Int, opd: OPDID
    ) -> Shortfall? {
        func check(_ dimension: Dimension, _ ask: Int64, _ quota: Int64, _ usage: Int64) -> Shortfall? {
            guard ask > 0, ask > quota - usage else { return nil }
            return Shortfall(scope: .quota(opd), dimension: dimension, asked: ask, left: quota - usage)
        }
        if let s = check(.vcpu, Int64(vcpu), Int64(quota.vcpu), Int64(usage.vcpu)) { return s }
        if let s = check(.memory, memory, quota.memory.bytes, usage.memory.bytes) { return s }
        if storage > 0, let s = check(.storage(pool), storage, quota.storage(pool).bytes, usage.storage(pool).bytes) { return s }
        if let s = check(.vms, Int64(vms), Int64(quota.vms), Int64(usage.vms)) { return s }
        return check(.volumes, Int64(volumes), Int64(quota.volumes), Int64(usage.volumes))
    }

    private static func check(
        _ dimension: Dimension, quota: ResourceVector, usage: ResourceVector, adding: ResourceVector, opd: OPDID
    ) -> Shortfall? {
        let ask = dimension.amount(in: adding)
        guard ask > 0 else { return nil }
        let left = dimension.amount(in: quota) - dimension.amount(in: usage)
        guard ask > left else { return nil }
        return Shortfall(scope: .quota(opd), dimension: dimension, asked: ask, left: left)
    }
}

/// The first exhausted quota dimension for `adding` on top of `usage`, or nil when it fits.
/// Same as ``QuotaFit/shortfall(quota:usage:adding:opd:)``.
public func quotaShortfall(quota: ResourceVector, usage: ResourceVector, adding: ResourceVector, opd: OPDID) -> Shortfall? {
    QuotaFit.shortfall(quota: quota, usage: usage, adding: adding, opd: opd)
}

/// Every exhausted quota dimension for `adding` on top of `usage`, in a stable order.
/// Same as ``QuotaFit/shortfalls(quota:usage:adding:opd:)``.
public func quotaShortfalls(quota: ResourceVector, usage: ResourceVector, adding: ResourceVector, opd: OPDID) -> [Shortfall] {
    QuotaFit.shortfalls(quota: quota, usage: usage, adding: adding, opd: opd)
}
