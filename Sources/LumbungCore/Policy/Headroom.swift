/// One host as the N+1 headroom check sees it: vCPU and memory only (a volume lives on its
/// host's disks and cannot move elsewhere when the host fails, so storage is not counted).
public struct HeadroomHost: Hashable, Sendable {
    /// The host.
    public var id: HostID
    /// Allocatable vCPUs.
    public var vcpuAllocatable: Int64
    /// Allocated vCPUs.
    public var vcpuAllocated: Int64
    /// Allocatable memory in bytes.
    public var memoryAllocatable: Int64
    /// Allocated memory in bytes.
    public var memoryAllocated: Int64
    /// True when the host takes placements (ready or enrolled, not cordoned): its free capacity
    /// can take over another host's load.
    public var takesPlacements: Bool
    /// True when the host may still fail (not already unreachable): its load must be absorbable.
    public var canFail: Bool

    /// Creates a host from amounts and its state.
    public init(id: HostID, allocatable: ResourceVector, allocated: ResourceVector, state: HostState) {
        self.id = id
        vcpuAllocatable = Int64(allocatable.vcpu)
        vcpuAllocated = Int64(allocated.vcpu)
        memoryAllocatable = allocatable.memory.bytes
        memoryAllocated = allocated.memory.bytes
        takesPlacements = state == .ready || state == .enrolled
        canFail = state != .unreachable
    }

    /// Creates a host from a line of ``DataCenter/capacity()``.
    public init(_ line: CapacityReport.HostLine) {
        self.init(id: line.host, allocatable: line.allocatable, allocated: line.allocated, state: line.state)
    }

    func allocatable(_ d: Dimension) -> Int64 { d == .vcpu ? vcpuAllocatable : memoryAllocatable }
    func allocated(_ d: Dimension) -> Int64 { d == .vcpu ? vcpuAllocated : memoryAllocated }
}

/// The worst single-host loss in one dimension: if `host` failed, `load` would have to move to
/// the other hosts, which have `spare` free.
public struct HeadroomLoss: Hashable, Sendable, CustomStringConvertible {
    /// The host whose loss leaves the least margin.
    public var host: HostID
    /// `.vcpu` or `.memory`.
    public var dimension: Dimension
    /// What is allocated on it (after the allocation being checked).
    public var load: Int64
    /// Free on the other hosts that take placements (after the allocation).
    public var spare: Int64

    /// Creates a loss.
    public init(host: HostID, dimension: Dimension, load: Int64, spare: Int64) {
        self.host = host
        self.dimension = dimension
        self.load = load
        self.spare = spare
    }

    /// How much is missing to absorb the loss (zero when it can be absorbed).
    public var short: Int64 { max(0, load - spare) }
    /// How much would be left after absorbing it (negative when short).
    public var margin: Int64 { spare - load }

    /// `node-03 (64 vCPU allocated there, 52 vCPU free on the other hosts): 12 vCPU short`.
    public var description: String {
        let tail = short > 0 ? "\(dimension.format(short)) short" : "\(dimension.format(margin)) to spare"
        return "\(host) (\(dimension.amountText(load)) allocated there, \(dimension.format(spare)) free on the other hosts): \(tail)"
    }
}

/// The N+1 verdict for one allocation.
public struct HeadroomVerdict: Hashable, Sendable {
    /// Per dimension (vCPU, memory), the host whose loss leaves the least margin; empty when
    /// the rule is off or no host can fail.
    public var worst: [HeadroomLoss]
    /// Why, in a sentence naming the rule `placement:headroom`.
    public var reason: PolicyReason

    /// True when the data center can still absorb the loss of any one host.
    public var isOK: Bool { worst.allSatisfy { $0.short == 0 } }

    /// The refusal (code `headroom`) when not ok; an admin may force past it.
    public var refusal: PolicyRefusal? { isOK ? nil : PolicyRefusal(code: .headroom, reasons: [reason]) }
}

extension HeadroomRule {
    /// The rule's name in reasons.
    public static let ruleName = "placement:headroom"

    /// Checks that after allocating `adding` (its vCPU and memory) on `host`, the other hosts
    /// could still absorb the loss of any one host: for every host that can fail, the free
    /// capacity of the other hosts that take placements is at least what it holds. (Summed over
    /// hosts: fragmentation is not modelled.) When `host` is not among `hosts`, the allocation
    /// only lowers the spare capacity.
    ///
    /// - Parameter subject: the noun in the sentence, e.g. `VM`.
    public func check(hosts: [HeadroomHost], adding: ResourceVector, on host: HostID, subject: String = "VM") -> HeadroomVerdict {
        guard nPlusOne else {
            return HeadroomVerdict(worst: [], reason: PolicyReason(rule: Self.ruleName, sentence: "the N+1 headroom rule is off"))
        }
        let after = Self.worst(hosts: hosts, adding: adding, on: host)
        let short = after.filter { $0.short > 0 }
        let sentence: String
        if hosts.allSatisfy({ !$0.canFail }) {
            sentence = "no host can fail, so there is nothing to absorb"
        } else if short.isEmpty {
            sentence = "after this \(subject) the data center can still absorb the loss of any one host; the tightest: "
                + after.map(\.description).joined(separator: "; ")
        } else {
            let before = Self.worst(hosts: hosts, adding: .zero, on: host)
            let parts = short.map { loss -> String in
                let was = before.first { $0.dimension == loss.dimension && $0.short > 0 }
                let already = was.map { "; already \($0.dimension.format($0.short)) short before it" } ?? ""
                return "the loss of \(loss)\(already)"
            }
            sentence = "after this \(subject) the data center could not absorb " + parts.joined(separator: ", nor ")
        }
        return HeadroomVerdict(worst: after, reason: PolicyReason(rule: Self.ruleName, sentence: sentence))
    }

    /// Per dimension, the host that can fail with the least margin (ties to the smallest id).
    static func worst(hosts: [HeadroomHost], adding: ResourceVector, on target: HostID) -> [HeadroomLoss] {
        var out: [HeadroomLoss] = []
        for d in [Dimension.vcpu, .memory] {
            let ask = d.amount(in: adding)
            let targetKnown = hosts.contains { $0.id == target }
            func load(_ h: HeadroomHost) -> Int64 { h.allocated(d) + (h.id == target ? ask : 0) }
            func free(_ h: HeadroomHost) -> Int64 { h.takesPlacements ? max(0, h.allocatable(d) - load(h)) : 0 }
            // Free capacity somewhere else that the ask takes up when its host is unknown.
            let total = hosts.reduce(0) { $0 + free($1) } - (targetKnown ? 0 : ask)
            var best: HeadroomLoss?
            for h in hosts where h.canFail {
                let loss = HeadroomLoss(host: h.id, dimension: d, load: load(h), spare: total - free(h))
                if let b = best, b.margin < loss.margin || (b.margin == loss.margin && b.host < loss.host) { continue }
                best = loss
            }
            if let best { out.append(best) }
        }
        return out
    }
}
