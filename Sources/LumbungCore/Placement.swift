/// How placement chooses among the hosts that can take a VM or volume.
public enum PlacementStrategy: String, Hashable, Codable, Sendable, CaseIterable {
    /// Prefer the host that is fullest after placement (keeps whole hosts free for big VMs). The default.
    case binpack
    /// Prefer the host that is emptiest after placement (spreads load and failure risk).
    case spread

    /// The default strategy, ``binpack``.
    public static let `default`: PlacementStrategy = .binpack
}

/// Where a VM or volume goes.
public struct PlacementDecision: Hashable, Codable, Sendable {
    /// The chosen host.
    public var host: HostID
    /// The chosen host's score, 0…1, higher is better: for ``PlacementStrategy/binpack`` the mean
    /// allocated fraction after placement (vCPU, memory and pool storage for a VM; pool storage for
    /// a volume), for ``PlacementStrategy/spread`` the mean free fraction after placement.
    public var score: Double
    /// How many hosts could have taken it.
    public var candidates: Int
    /// The hosts that could not take it and why, in host id order; filled only when placement
    /// was asked to explain, otherwise empty.
    public var excluded: [HostExclusion]

    /// Creates a decision.
    public init(host: HostID, score: Double, candidates: Int, excluded: [HostExclusion] = []) {
        self.host = host
        self.score = score
        self.candidates = candidates
        self.excluded = excluded
    }
}

/// Why one host cannot take a VM or volume, in the order the filters run: cordoned,
/// unreachable, lacks the pool, a required label missing, a forbidden label present,
/// anti-affinity, then vCPU, memory and pool storage.
///
/// Encoded as an object with a stable `code` (`cordoned`, `unreachable`, `lacks_pool`,
/// `missing_label`, `forbidden_label`, `anti_affinity`, `insufficient`) and its details.
public enum ExclusionReason: Hashable, Codable, Sendable, CustomStringConvertible {
    /// The host is cordoned: it takes no new placements.
    case cordoned
    /// The host's agent has not reported for longer than the heartbeat timeout.
    case unreachable
    /// The host has no such storage pool.
    case lacksPool(PoolName)
    /// The host lacks a label the spec requires.
    case missingLabel(key: String, value: String)
    /// The host carries a label the spec forbids.
    case forbiddenLabel(key: String, value: String)
    /// The host's agent reported its images and the VM's base image is not among them.
    case lacksImage(String)
    /// The host's agent has not reported its images yet, so a VM naming an image cannot go there.
    case imagesUnknown(String)
    /// The host already runs a VM of the same app of the same OPD.
    case antiAffinity(app: String, opd: OPDID)
    /// The host has too little of one dimension left.
    case insufficient(Shortfall)

    /// A stable code for the wire.
    public var code: String {
        switch self {
        case .cordoned: "cordoned"
        case .unreachable: "unreachable"
        case .lacksPool: "lacks_pool"
        case .missingLabel: "missing_label"
        case .forbiddenLabel: "forbidden_label"
        case .lacksImage: "lacks_image"
        case .imagesUnknown: "images_unknown"
        case .antiAffinity: "anti_affinity"
        case .insufficient: "insufficient"
        }
    }

    /// The predicate after "host node-01": `is cordoned`, `lacks pool ssd`, `has 4GiB of memory left, the VM asks for 8GiB`.
    public var description: String {
        switch self {
        case .cordoned: "is cordoned"
        case .unreachable: "is unreachable"
        case .lacksPool(let pool): "lacks pool \(pool)"
        case .missingLabel(let key, let value): "lacks label \(key)=\(value)"
        case .forbiddenLabel(let key, let value): "has forbidden label \(key)=\(value)"
        case .lacksImage(let image): "lacks image \(image)"
        case .imagesUnknown(let image): "has not reported its images yet (no agent), so it cannot take image \(image)"
        case .antiAffinity(let app, let opd): "already runs app \(app) of \(opd)"
        case .insufficient(let shortfall):
            "has \(shortfall.dimension.leftClause(shortfall.left)), \(shortfall.subject.noun) asks for \(shortfall.dimension.format(shortfall.asked))"
        }
    }

    /// The filter's position, for stable ordering of summaries.
    var rank: Int {
        switch self {
        case .cordoned: 0
        case .unreachable: 1
        case .lacksPool: 2
        case .missingLabel: 3
        case .forbiddenLabel: 4
        case .imagesUnknown: 5
        case .lacksImage: 6
        case .antiAffinity: 7
        case .insufficient(let s): 8 + s.dimension.orderRank
        }
    }

    private enum CodingKeys: String, CodingKey {
        case code, pool, key, value, app, opd, shortfall, image
    }

    /// Decodes the object written by ``encode(to:)``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let code = try c.decode(String.self, forKey: .code)
        switch code {
        case "cordoned": self = .cordoned
        case "unreachable": self = .unreachable
        case "lacks_pool": self = .lacksPool(try c.decode(PoolName.self, forKey: .pool))
        case "missing_label":
            self = .missingLabel(key: try c.decode(String.self, forKey: .key), value: try c.decode(String.self, forKey: .value))
        case "forbidden_label":
            self = .forbiddenLabel(key: try c.decode(String.self, forKey: .key), value: try c.decode(String.self, forKey: .value))
        case "lacks_image": self = .lacksImage(try c.decode(String.self, forKey: .image))
        case "images_unknown": self = .imagesUnknown(try c.decode(String.self, forKey: .image))
        case "anti_affinity":
            self = .antiAffinity(app: try c.decode(String.self, forKey: .app), opd: try c.decode(OPDID.self, forKey: .opd))
        case "insufficient": self = .insufficient(try c.decode(Shortfall.self, forKey: .shortfall))
        default:
            throw DecodingError.dataCorruptedError(forKey: .code, in: c, debugDescription: "unknown exclusion reason \(code)")
        }
    }

    /// Encodes as `{"code": …, …details}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(code, forKey: .code)
        switch self {
        case .cordoned, .unreachable: break
        case .lacksPool(let pool): try c.encode(pool, forKey: .pool)
        case .missingLabel(let key, let value), .forbiddenLabel(let key, let value):
            try c.encode(key, forKey: .key)
            try c.encode(value, forKey: .value)
        case .lacksImage(let image), .imagesUnknown(let image): try c.encode(image, forKey: .image)
        case .antiAffinity(let app, let opd):
            try c.encode(app, forKey: .app)
            try c.encode(opd, forKey: .opd)
        case .insufficient(let shortfall): try c.encode(shortfall, forKey: .shortfall)
        }
    }
}

/// One host that cannot take a VM or volume, and why.
public struct HostExclusion: Hashable, Codable, Sendable, CustomStringConvertible {
    /// The host.
    public var host: HostID
    /// Why it cannot take it.
    public var reason: ExclusionReason

    /// Creates an exclusion.
    public init(host: HostID, reason: ExclusionReason) {
        self.host = host
        self.reason = reason
    }

    /// `host node-01 is cordoned`.
    public var description: String { "host \(host) \(reason)" }
}

/// No host can take a VM or volume: every host with its reason, and a summary sentence such as
/// `no host can take this VM: 2 hosts lack memory (most free: 6GiB, asked 8GiB), 1 host is cordoned,
/// 1 host already runs app simpus of dinkes`.
public struct PlacementFailure: Error, Hashable, Codable, Sendable, CustomStringConvertible {
    /// What could not be placed.
    public enum Subject: String, Hashable, Codable, Sendable {
        /// A new VM.
        case vm
        /// A new volume.
        case volume
        /// Growing an existing volume on its host.
        case volumeGrowth = "volume_growth"
        /// Growing an existing VM (vCPU, memory, disk) on its host.
        case vmGrowth = "vm_growth"
    }

    /// What could not be placed.
    public var subject: Subject
    /// Every host considered, in host id order, with the first filter it failed.
    public var excluded: [HostExclusion]

    /// Creates a failure.
    public init(subject: Subject, excluded: [HostExclusion]) {
        self.subject = subject
        self.excluded = excluded
    }

    /// The summary sentence: reasons grouped, most common first, with the numbers of the
    /// closest miss for resource shortfalls.
    public var description: String {
        if subject == .volumeGrowth {
            return "cannot grow this volume: " + excluded.map(\.description).joined(separator: "; ")
        }
        if subject == .vmGrowth {
            return "cannot grow this VM: " + excluded.map(\.description).joined(separator: "; ")
        }
        let what = subject == .vm ? "this VM" : "this volume"
        if excluded.isEmpty { return "no host can take \(what): the data center has no hosts" }

        struct Group {
            var first: ExclusionReason
            var count: Int
            var mostFree: Int64
        }
        var groups: [String: Group] = [:]
        var order: [String] = []
        for e in excluded {
            let key: String
            var left = Int64.min
            switch e.reason {
            case .insufficient(let s):
                key = "insufficient:\(s.dimension.key)"
                left = s.left
            default:
                key = "\(e.reason.code):\(e.reason)"
            }
            if var g = groups[key] {
                g.count += 1
                g.mostFree = max(g.mostFree, left)
                groups[key] = g
            } else {
                groups[key] = Group(first: e.reason, count: 1, mostFree: left)
                order.append(key)
            }
        }
        let sorted = order.map { groups[$0]! }.enumerated().sorted { a, b in
            if a.element.count != b.element.count { return a.element.count > b.element.count }
            if a.element.first.rank != b.element.first.rank { return a.element.first.rank < b.element.first.rank }
            return a.offset < b.offset
        }.map(\.element)
        let parts = sorted.map { g -> String in
            let one = g.count == 1
            let hosts = one ? "1 host" : "\(g.count) hosts"
            switch g.first {
            case .cordoned: return "\(hosts) \(one ? "is" : "are") cordoned"
            case .unreachable: return "\(hosts) \(one ? "is" : "are") unreachable"
            case .lacksPool(let pool): return "\(hosts) \(one ? "lacks" : "lack") pool \(pool)"
            case .missingLabel(let key, let value): return "\(hosts) \(one ? "lacks" : "lack") label \(key)=\(value)"
            case .forbiddenLabel(let key, let value):
                return "\(hosts) \(one ? "has" : "have") forbidden label \(key)=\(value)"
            case .lacksImage(let image): return "\(hosts) \(one ? "lacks" : "lack") image \(image)"
            case .imagesUnknown(let image):
                return "\(hosts) \(one ? "has" : "have") not reported \(one ? "its" : "their") images yet (image \(image))"
            case .antiAffinity(let app, let opd): return "\(hosts) already \(one ? "runs" : "run") app \(app) of \(opd)"
            case .insufficient(let s):
                let free = g.mostFree > 0 ? s.dimension.format(g.mostFree) : "none"
                return "\(hosts) \(one ? "lacks" : "lack") \(s.dimension) (most free: \(free), asked \(s.dimension.format(s.asked)))"
            }
        }
        return "no host can take \(what): " + parts.joined(separator: ", ")
    }
}

/// A pair of host label key and value, as interned by the placement index.
struct LabelPair: Hashable, Sendable {
    var key: String
    var value: String
}

/// One app of one OPD: the anti-affinity group.
struct AppKey: Hashable, Sendable {
    var opd: OPDID
    var app: String
}

/// The dense, per-host-index view of the hosts that placement scans.
///
/// Hosts get a slot in host id order, so scanning slots in order and keeping the first best
/// score breaks ties by host id. Per slot it keeps the free vCPU and memory (allocatable minus
/// allocated) with the reciprocal of the allocatable amount, one cell per pool with the same,
/// and bitmaps (64 hosts a word) for schedulable hosts, pool presence, every label pair and
/// every app (the hosts where a VM of that app of that OPD holds capacity).
/// A decision ANDs the bitmaps into a mask and scans only its set bits: no dictionary and
/// no allocation in the inner loop. Reasons for excluded hosts are built only on failure.
struct PlacementIndex: Sendable {
    // Amounts are whole numbers (vCPUs, bytes) held in Doubles so the hot loop needs no
    // conversions; they stay exact below 2^53 (8 PiB per host and pool).
    struct Row: Sendable, Equatable {
        var vcpuFree: Double
        var memFree: Double
        var vcpuInv: Double
        var memInv: Double
    }

    struct Cell: Sendable, Equatable {
        var free: Double
        var inv: Double
    }

    /// What is being placed, in natural units.
    struct Ask {
        var isVM: Bool
        var vcpu: Int64
        var memory: Int64
        var pool: PoolName
        var storage: Int64
        var required: [String: String]
        var forbidden: [String: String]
        /// The VM's base image: only hosts that reported it qualify.
        var image: String? = nil
    }

    struct Pick {
        var slot: Int
        var score: Double
        var candidates: Int
    }

    static let cordonedFlag: UInt8 = 1
    static let unreachableFlag: UInt8 = 2

    private(set) var ids: [HostID] = []
    private(set) var slots: [HostID: Int] = [:]
    private(set) var words = 0
    private(set) var schedulable: [UInt64] = []
    private(set) var flags: [UInt8] = []
    private(set) var rows: [Row] = []
    private(set) var poolSlots: [PoolName: Int] = [:]
    private(set) var poolPresent: [[UInt64]] = []
    private(set) var poolCells: [[Cell]] = []
    private(set) var labelBits: [LabelPair: [UInt64]] = [:]
    private(set) var hostLabels: [[String: String]] = []
    private(set) var imageBits: [String: [UInt64]] = [:]
    private(set) var hostImages: [Set<String>?] = []
    private(set) var appBits: [AppKey: [UInt64]] = [:]

    init() {}

    /// Builds the index from scratch.
    init(hosts: some Collection<Host>, allocated: (HostID) -> ResourceVector, apps: [AppKey: [HostID: Int]]) {
        let sorted = hosts.sorted { $0.id < $1.id }
        let n = sorted.count
        ids = sorted.map(\.id)
        words = (n + 63) / 64
        schedulable = Array(repeating: 0, count: words)
        flags = Array(repeating: 0, count: n)
        rows = Array(repeating: Row(vcpuFree: 0, memFree: 0, vcpuInv: 0, memInv: 0), count: n)
        hostLabels = Array(repeating: [:], count: n)
        hostImages = Array(repeating: nil, count: n)
        var pools = Set<PoolName>()
        for h in sorted { pools.formUnion(h.effective.pools.keys) }
        for (i, pool) in pools.sorted().enumerated() { poolSlots[pool] = i }
        poolPresent = Array(repeating: Array(repeating: 0, count: words), count: pools.count)
        poolCells = Array(repeating: Array(repeating: Cell(free: 0, inv: 0), count: n), count: pools.count)
        for (slot, h) in sorted.enumerated() {
            slots[h.id] = slot
            write(h, slot: slot, allocated: allocated(h.id))
        }
        for (app, counts) in apps {
            for (host, count) in counts where count > 0 { setApp(app, on: host, true) }
        }
    }

    /// Marks or clears `host` as running a VM of `app` (unknown hosts are ignored).
    mutating func setApp(_ app: AppKey, on host: HostID, _ on: Bool) {
        guard let slot = slots[host] else { return }
        if on {
            Self.setBit(&appBits[app, default: Array(repeating: 0, count: words)], slot, true)
        } else if appBits[app] != nil {
            Self.setBit(&appBits[app]!, slot, false)
            if !appBits[app]!.contains(where: { $0 != 0 }) { appBits[app] = nil }
        }
    }

    /// True when `host` already has a slot and brings no pool the index lacks.
    func canUpdateInPlace(_ host: Host) -> Bool {
        guard slots[host.id] != nil else { return false }
        for pool in host.effective.pools.keys where poolSlots[pool] == nil { return false }
        return true
    }

    /// True when `host` is new and brings no pool the index lacks: it can be inserted at its
    /// place in host-id order (ties go to the smallest id) exactly as a rebuild would put it.
    func canInsert(_ host: Host) -> Bool {
        guard slots[host.id] == nil else { return false }
        for pool in host.effective.pools.keys where poolSlots[pool] == nil { return false }
        return true
    }

    /// Inserts a new host at its place in host-id order: the slots after it move up by one, and
    /// every bitmap shifts by one bit from there (growing by a word when needed). O(n) memory
    /// moves and slot renumbering, instead of a rebuild's O(n log n) sort and re-write of every
    /// host. Requires ``canInsert(_:)``.
    mutating func insert(_ host: Host, allocated: ResourceVector) {
        precondition(canInsert(host), "host \(host.id) cannot be inserted")
        var low = 0
        var high = ids.count
        while low < high {
            let mid = (low + high) / 2
            if ids[mid] < host.id { low = mid + 1 } else { high = mid }
        }
        let slot = low
        let grow = ids.count + 1 > words * 64
        if grow { words += 1 }
        func shift(_ bits: inout [UInt64]) {
            if grow { bits.append(0) }
            Self.insertZeroBit(&bits, at: slot)
        }
        shift(&schedulable)
        for p in poolPresent.indices { shift(&poolPresent[p]) }
        for key in labelBits.keys { shift(&labelBits[key]!) }
        for key in imageBits.keys { shift(&imageBits[key]!) }
        for key in appBits.keys { shift(&appBits[key]!) }
        ids.insert(host.id, at: slot)
        for later in ids.indices.dropFirst(slot + 1) { slots[ids[later]] = later }
        slots[host.id] = slot
        flags.insert(0, at: slot)
        rows.insert(Row(vcpuFree: 0, memFree: 0, vcpuInv: 0, memInv: 0), at: slot)
        hostLabels.insert([:], at: slot)
        hostImages.insert(nil, at: slot)
        for p in poolCells.indices { poolCells[p].insert(Cell(free: 0, inv: 0), at: slot) }
        write(host, slot: slot, allocated: allocated)
    }

    /// Moves bits `at...` up by one (the top bit must be free) and clears bit `at`.
    static func insertZeroBit(_ bits: inout [UInt64], at position: Int) {
        let first = position >> 6
        guard first < bits.count else { return }
        let offset = UInt64(position & 63)
        let keep: UInt64 = offset == 0 ? 0 : UInt64.max >> (64 - offset)
        var carry = bits[first] >> 63
        bits[first] = (bits[first] & keep) | ((bits[first] & ~keep) << 1)
        var w = first + 1
        while w < bits.count {
            let old = bits[w]
            bits[w] = (old << 1) | carry
            carry = old >> 63
            w += 1
        }
    }

    /// Rewrites a known host's slot (capacity, state, labels). Requires ``canUpdateInPlace(_:)``.
    mutating func update(_ host: Host, allocated: ResourceVector) {
        guard let slot = slots[host.id] else { preconditionFailure("host \(host.id) has no slot") }
        write(host, slot: slot, allocated: allocated)
    }

    /// Adds (`sign` 1) or subtracts (`sign` -1) an allocation on a host; unknown hosts are ignored.
    mutating func allocate(_ delta: ResourceVector, on host: HostID, sign: Int64) {
        guard let slot = slots[host] else { return }
        let s = Double(sign)
        rows[slot].vcpuFree -= s * Double(delta.vcpu)
        rows[slot].memFree -= s * Double(delta.memory.bytes)
        for (pool, size) in delta.storage {
            if let p = poolSlots[pool] { poolCells[p][slot].free -= s * Double(size.bytes) }
        }
    }

    /// True when at least one host has the pool.
    func hasPool(_ pool: PoolName) -> Bool {
        guard let p = poolSlots[pool] else { return false }
        return poolPresent[p].contains { $0 != 0 }
    }

    /// The names of the pools some host has, sorted.
    var knownPools: [PoolName] {
        poolSlots.keys.filter { hasPool($0) }.sorted()
    }

    private static func inverse(_ amount: Int64) -> Double {
        amount > 0 ? 1.0 / Double(amount) : 0
    }

    private static func setBit(_ bits: inout [UInt64], _ slot: Int, _ on: Bool) {
        let mask: UInt64 = 1 << UInt64(slot & 63)
        if on { bits[slot >> 6] |= mask } else { bits[slot >> 6] &= ~mask }
    }

    static func bit(_ bits: [UInt64], _ slot: Int) -> Bool {
        bits[slot >> 6] & (1 << UInt64(slot & 63)) != 0
    }

    private mutating func write(_ host: Host, slot: Int, allocated: ResourceVector) {
        let a = host.allocatable
        rows[slot] = Row(
            vcpuFree: Double(a.vcpu - allocated.vcpu),
            memFree: Double(a.memory.bytes - allocated.memory.bytes),
            vcpuInv: Self.inverse(Int64(a.vcpu)),
            memInv: Self.inverse(a.memory.bytes)
        )
        var flag: UInt8 = 0
        if host.cordoned { flag |= Self.cordonedFlag }
        if host.connectivity == .unreachable { flag |= Self.unreachableFlag }
        flags[slot] = flag
        Self.setBit(&schedulable, slot, flag == 0)
        for (pool, p) in poolSlots {
            let cap = a.storage[pool]
            Self.setBit(&poolPresent[p], slot, cap != nil)
            let bytes = cap?.bytes ?? 0
            poolCells[p][slot] = Cell(free: Double(bytes - allocated.storage(pool).bytes), inv: Self.inverse(bytes))
        }
        if hostLabels[slot] != host.labels {
            for (key, value) in hostLabels[slot] {
                Self.setBit(&labelBits[LabelPair(key: key, value: value), default: Array(repeating: 0, count: words)], slot, false)
            }
            for (key, value) in host.labels {
                Self.setBit(&labelBits[LabelPair(key: key, value: value), default: Array(repeating: 0, count: words)], slot, true)
            }
            hostLabels[slot] = host.labels
        }
        if hostImages[slot] != host.images {
            for image in hostImages[slot] ?? [] {
                Self.setBit(&imageBits[image, default: Array(repeating: 0, count: words)], slot, false)
            }
            for image in host.images ?? [] {
                Self.setBit(&imageBits[image, default: Array(repeating: 0, count: words)], slot, true)
            }
            hostImages[slot] = host.images
        }
    }

    /// True when at least one host reported `image`.
    func hasImage(_ image: String) -> Bool {
        imageBits[image]?.contains { $0 != 0 } ?? false
    }

    /// The images some host reported, sorted.
    var knownImages: [String] {
        imageBits.keys.filter { hasImage($0) }.sorted()
    }

    /// The best host for `ask`, or nil when none fits. `avoid` is the bitmap of hosts excluded by anti-affinity.
    func place(_ ask: Ask, avoid: [UInt64]?, strategy: PlacementStrategy) -> Pick? {
        guard words > 0, let p = poolSlots[ask.pool] else { return nil }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: words) { mask -> Pick? in
            schedulable.withUnsafeBufferPointer { s in
                poolPresent[p].withUnsafeBufferPointer { present in
                    for w in 0..<words { mask[w] = s[w] & present[w] }
                }
            }
            for (key, value) in ask.required {
                guard let bits = labelBits[LabelPair(key: key, value: value)] else { return nil }
                for w in 0..<words { mask[w] &= bits[w] }
            }
            for (key, value) in ask.forbidden {
                guard let bits = labelBits[LabelPair(key: key, value: value)] else { continue }
                for w in 0..<words { mask[w] &= ~bits[w] }
            }
            if let image = ask.image {
                guard let bits = imageBits[image] else { return nil }
                for w in 0..<words { mask[w] &= bits[w] }
            }
            if let avoid {
                for w in 0..<words { mask[w] &= ~avoid[w] }
            }
            // `free` (the sum of the free fractions left after placement) is never negative for a
            // host that fits, so its bit pattern orders like the value. Binpack keeps the smallest,
            // spread the largest (the smallest of the flipped pattern): one integer comparison,
            // strict, so the first (smallest host id) wins a tie.
            let flip: UInt64 = strategy == .binpack ? 0 : ~0
            var best = -1
            var bestKey = UInt64.max
            var count = 0
            let ad = Double(ask.storage)
            poolCells[p].withUnsafeBufferPointer { cells in
                if ask.isVM {
                    let av = Double(ask.vcpu)
                    let am = Double(ask.memory)
                    rows.withUnsafeBufferPointer { r in
                        for w in 0..<words {
                            var bits = mask[w]
                            while bits != 0 {
                                let h = (w &<< 6) | bits.trailingZeroBitCount
                                bits &= bits &- 1
                                let row = r[h]
                                let cell = cells[h]
                                let fv = row.vcpuFree - av
                                let fm = row.memFree - am
                                let fd = cell.free - ad
                                if fv < 0 || fm < 0 || fd < 0 { continue }
                                count &+= 1
                                let key = (fv * row.vcpuInv + fm * row.memInv + fd * cell.inv).bitPattern ^ flip
                                if key < bestKey {
                                    bestKey = key
                                    best = h
                                }
                            }
                        }
                    }
                } else {
                    for w in 0..<words {
                        var bits = mask[w]
                        while bits != 0 {
                            let h = (w &<< 6) | bits.trailingZeroBitCount
                            bits &= bits &- 1
                            let cell = cells[h]
                            let fd = cell.free - ad
                            if fd < 0 { continue }
                            count &+= 1
                            let key = (fd * cell.inv).bitPattern ^ flip
                            if key < bestKey {
                                bestKey = key
                                best = h
                            }
                        }
                    }
                }
            }
            guard best >= 0 else { return nil }
            let dims: Double = ask.isVM ? 3 : 1
            let freeFraction = Double(bitPattern: bestKey ^ flip) / dims
            let score = strategy == .binpack ? 1 - freeFraction : freeFraction
            return Pick(slot: best, score: score, candidates: count)
        }
    }

    /// Why the host in `slot` cannot take `ask` (the first failing filter), or nil when it can.
    func exclusion(slot: Int, ask: Ask, app: AppKey?, avoid: [UInt64]?) -> ExclusionReason? {
        let flag = flags[slot]
        if flag & Self.cordonedFlag != 0 { return .cordoned }
        if flag & Self.unreachableFlag != 0 { return .unreachable }
        guard let p = poolSlots[ask.pool], Self.bit(poolPresent[p], slot) else { return .lacksPool(ask.pool) }
        let labels = hostLabels[slot]
        for key in ask.required.keys.sorted() {
            let value = ask.required[key]!
            if labels[key] != value { return .missingLabel(key: key, value: value) }
        }
        for key in ask.forbidden.keys.sorted() {
            let value = ask.forbidden[key]!
            if labels[key] == value { return .forbiddenLabel(key: key, value: value) }
        }
        if let image = ask.image {
            guard let images = hostImages[slot] else { return .imagesUnknown(image) }
            if !images.contains(image) { return .lacksImage(image) }
        }
        let id = ids[slot]
        if let app, let avoid, Self.bit(avoid, slot) { return .antiAffinity(app: app.app, opd: app.opd) }
        let subject: Shortfall.Subject = ask.isVM ? .vm : .volume
        if ask.isVM {
            let row = rows[slot]
            if row.vcpuFree < Double(ask.vcpu) {
                return .insufficient(
                    Shortfall(scope: .host(id), dimension: .vcpu, asked: ask.vcpu, left: Int64(row.vcpuFree), subject: subject))
            }
            if row.memFree < Double(ask.memory) {
                return .insufficient(
                    Shortfall(scope: .host(id), dimension: .memory, asked: ask.memory, left: Int64(row.memFree), subject: subject))
            }
        }
        let cell = poolCells[p][slot]
        if cell.free < Double(ask.storage) {
            return .insufficient(
                Shortfall(
                    scope: .host(id), dimension: .storage(ask.pool), asked: ask.storage, left: Int64(cell.free), subject: subject))
        }
        return nil
    }

    /// Every host that cannot take `ask`, with its reason, in host id order.
    func exclusions(_ ask: Ask, app: AppKey?, avoid: [UInt64]?) -> [HostExclusion] {
        ids.indices.compactMap { slot in
            exclusion(slot: slot, ask: ask, app: app, avoid: avoid).map { HostExclusion(host: ids[slot], reason: $0) }
        }
    }

    /// Places `ask`, building the per-host reasons only on failure or when `explain` is set.
    func decide(
        _ ask: Ask, app: AppKey?, strategy: PlacementStrategy, explain: Bool, subject: PlacementFailure.Subject
    ) -> Result<PlacementDecision, PlacementFailure> {
        let avoid = app.flatMap { appBits[$0] }
        if let pick = place(ask, avoid: avoid, strategy: strategy) {
            let excluded = explain ? exclusions(ask, app: app, avoid: avoid) : []
            return .success(PlacementDecision(host: ids[pick.slot], score: pick.score, candidates: pick.candidates, excluded: excluded))
        }
        return .failure(PlacementFailure(subject: subject, excluded: exclusions(ask, app: app, avoid: avoid)))
    }

    /// Free amounts of one slot, for capacity growth checks.
    func free(slot: Int, pool: PoolName) -> Int64? {
        guard let p = poolSlots[pool], Self.bit(poolPresent[p], slot) else { return nil }
        return Int64(poolCells[p][slot].free)
    }

    /// Compares with a freshly built index, ignoring pools and labels no host has any more.
    /// Returns the differences (empty when equivalent); used by tests.
    func differences(from fresh: PlacementIndex) -> [String] {
        var out: [String] = []
        if ids != fresh.ids { out.append("host ids differ") ; return out }
        if schedulable != fresh.schedulable { out.append("schedulable bits differ") }
        if flags != fresh.flags { out.append("flags differ") }
        for slot in rows.indices where rows[slot] != fresh.rows[slot] {
            out.append("row \(ids[slot]): \(rows[slot]) vs \(fresh.rows[slot])")
        }
        for (pool, fp) in fresh.poolSlots {
            guard let p = poolSlots[pool] else {
                out.append("pool \(pool) missing")
                continue
            }
            if poolPresent[p] != fresh.poolPresent[fp] { out.append("pool \(pool) presence differs") }
            for slot in rows.indices where Self.bit(fresh.poolPresent[fp], slot) && poolCells[p][slot] != fresh.poolCells[fp][slot] {
                out.append("pool \(pool) cell \(ids[slot]): \(poolCells[p][slot]) vs \(fresh.poolCells[fp][slot])")
            }
        }
        for (pool, p) in poolSlots where fresh.poolSlots[pool] == nil && poolPresent[p].contains(where: { $0 != 0 }) {
            out.append("pool \(pool) still present")
        }
        let empty = Array(repeating: UInt64(0), count: words)
        for (pair, bits) in labelBits where bits != (fresh.labelBits[pair] ?? empty) {
            out.append("label \(pair.key)=\(pair.value) bits differ")
        }
        for (pair, bits) in fresh.labelBits where labelBits[pair] == nil && bits != empty {
            out.append("label \(pair.key)=\(pair.value) missing")
        }
        if appBits != fresh.appBits { out.append("app bits differ") }
        if hostImages != fresh.hostImages { out.append("host images differ") }
        for (image, bits) in imageBits where bits != (fresh.imageBits[image] ?? empty) {
            out.append("image \(image) bits differ")
        }
        return out
    }
}
