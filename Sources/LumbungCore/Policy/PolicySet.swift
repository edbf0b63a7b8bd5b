#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Names a quota class, e.g. `kecil`, `sedang`, `besar`.
public struct QuotaClassName: StringIdentifier {
    /// The class name as written in `classes.yaml`.
    public let rawValue: String
    /// Wraps a class name (not validated here; the loader checks it with ``Name``).
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A named size an OPD is created with (`lumbung opd create dinkes --class sedang`): its quota
/// in vCPU, memory, storage per pool, VM and volume counts.
public struct QuotaClass: Hashable, Codable, Sendable {
    /// The class's name.
    public var name: QuotaClassName
    /// What an OPD of this class may hold at most.
    public var quota: ResourceVector
    /// A line for people, e.g. "OPD with one or two small applications".
    public var description: String

    /// Creates a class.
    public init(name: QuotaClassName, quota: ResourceVector, description: String = "") {
        self.name = name
        self.quota = quota
        self.description = description
    }
}

/// How long things are kept.
public struct RetentionPolicy: Hashable, Codable, Sendable {
    /// The least number of days audit entries are kept: 3650 days (10 years).
    ///
    /// Indonesian public archives follow UU No. 43 Tahun 2009 tentang Kearsipan: each agency
    /// keeps records for the period its retention schedule (*Jadwal Retensi Arsip*) sets, and
    /// the longest periods commonly set for financial and administrative records are ten years
    /// (ten years is also the term UU No. 8 Tahun 1997 sets for company documents). An audit
    /// trail of who allocated the region's computing resources is such a record, so Lumbung
    /// never keeps it for less. This is a project choice, not legal advice: a region whose
    /// schedule sets a longer term writes that longer term in `retention.yaml`.
    public static let legalMinimumAuditDays = 3650

    /// Days a deleted volume's data is kept before it is purged. Default 7.
    public var volumeRetentionDays: Int
    /// Days audit entries are kept; never less than ``legalMinimumAuditDays``.
    public var auditRetentionDays: Int

    /// Creates a retention policy (the loader refuses audit retention below the legal minimum).
    public init(volumeRetentionDays: Int = 7, auditRetentionDays: Int = RetentionPolicy.legalMinimumAuditDays) {
        self.volumeRetentionDays = volumeRetentionDays
        self.auditRetentionDays = auditRetentionDays
    }

    /// When a volume deleted at `deletedAt` may be purged.
    public func volumePurgeTime(deletedAt: Date) -> Date {
        deletedAt.addingTimeInterval(Double(volumeRetentionDays) * 86_400)
    }

    /// The oldest audit entry time that must still be kept at `now`.
    public func auditKeepSince(now: Date) -> Date {
        now.addingTimeInterval(-Double(auditRetentionDays) * 86_400)
    }
}

/// Why a policy said something, for `explain` and the audit log: the rule, qualified by its
/// section (`approval:vm-kecil`, `limits:vm.max_vcpu`, `placement:headroom`,
/// `constraint:pdp-data-pribadi`, `overcommit:tier=ssd`), and a sentence for people.
public struct PolicyReason: Hashable, Codable, Sendable, CustomStringConvertible {
    /// The rule, as `section:name`.
    public var rule: String
    /// What the rule said about this request, with the numbers.
    public var sentence: String

    /// Creates a reason.
    public init(rule: String, sentence: String) {
        self.rule = rule
        self.sentence = sentence
    }

    /// `approval:vm-kecil: …sentence`.
    public var description: String { "\(rule): \(sentence)" }
}

/// A policy says no: a stable code for the API and every reason, each naming its rule.
public struct PolicyRefusal: Error, Hashable, Codable, Sendable, CustomStringConvertible {
    /// Stable codes. Never rename a raw value: clients match on it.
    public enum Code: String, Hashable, Codable, Sendable {
        /// A limit (largest VM or volume, allowed images or pools, name pattern) is exceeded.
        case limitExceeded = "limit_exceeded"
        /// An approval rule refuses the request.
        case approvalRefused = "approval_refused"
        /// The allocation would break the data center's N+1 headroom.
        case headroom = "headroom"
        /// Placement constraints contradict each other for this VM or volume.
        case constraintConflict = "constraint_conflict"
    }

    /// The stable code.
    public var code: Code
    /// Every reason, in the order the rules were checked.
    public var reasons: [PolicyReason]

    /// Creates a refusal.
    public init(code: Code, reasons: [PolicyReason]) {
        self.code = code
        self.reasons = reasons
    }

    /// The sentences joined with `; `.
    public var description: String { reasons.map(\.sentence).joined(separator: "; ") }
}

/// What the whole data center can allocate, for checking that a class fits in it.
public struct DataCenterTotals: Hashable, Codable, Sendable {
    /// Allocatable vCPU, memory and storage per pool summed over hosts.
    public var allocatable: ResourceVector

    /// Creates totals from summed allocatable amounts.
    public init(allocatable: ResourceVector) { self.allocatable = allocatable }

    /// The totals of a capacity report (every host, cordoned and unreachable ones included).
    public init(capacity: CapacityReport) { self.allocatable = capacity.total.allocatable }
}

extension QuotaClass {
    /// Every dimension in which this class gives more than the whole data center can allocate,
    /// with a sentence (VM and volume counts are not compared); empty when it fits.
    public func excess(over totals: DataCenterTotals) -> [(dimension: Dimension, sentence: String)] {
        let dims: [Dimension] = [.vcpu, .memory] + quota.storage.keys.sorted().map { .storage($0) }
        return dims.compactMap { d in
            let asked = d.amount(in: quota)
            let total = d.amount(in: totals.allocatable)
            guard asked > total else { return nil }
            if case .storage(let pool) = d, totals.allocatable.storage[pool] == nil {
                return (d, "class \(name) gives \(d.format(asked)) of storage in pool \(pool), but no host of the data center has pool \(pool)")
            }
            return (d, "class \(name) gives \(d.amountText(asked)), but the whole data center has \(d.format(total)) allocatable")
        }
    }
}

/// The rules of the data center, as loaded from the `policies/` files: quota classes, approval
/// rules, placement and capacity, limits and retention. A plain value: the controller keeps
/// the last valid set and replaces it whole on reload, so no decision ever sees half of one.
public struct PolicySet: Hashable, Sendable {
    /// Quota classes by name.
    public var quotaClasses: [QuotaClassName: QuotaClass]
    /// Approval rules and request expiry.
    public var approval: ApprovalPolicy
    /// Strategy, overcommit, host reserve, headroom and placement constraints.
    public var placement: PlacementPolicy
    /// Largest VM and volume, allowed images and pools, name pattern.
    public var limits: Limits
    /// Volume and audit retention.
    public var retention: RetentionPolicy
    /// SHA-256 (lowercase hex) of the files the set was loaded from (see the loader); written
    /// into every audit entry of a decision made under this set.
    public var hash: String
    /// The file names the set was loaded from, sorted.
    public var sources: [String]

    /// Creates a policy set.
    public init(
        quotaClasses: [QuotaClassName: QuotaClass], approval: ApprovalPolicy, placement: PlacementPolicy, limits: Limits,
        retention: RetentionPolicy, hash: String, sources: [String] = []
    ) {
        self.quotaClasses = quotaClasses
        self.approval = approval
        self.placement = placement
        self.limits = limits
        self.retention = retention
        self.hash = hash
        self.sources = sources
    }

    /// The class named `name`.
    public func quotaClass(_ name: QuotaClassName) -> QuotaClass? { quotaClasses[name] }

    /// For a reload that changes classes: every OPD whose class quota in this set would be below
    /// its current use, or whose class this set no longer has. Sorted by OPD id; empty when the
    /// set can replace the running one without putting any OPD below its use.
    public func classConflicts(_ opds: [OPDClassUse]) -> [ClassConflict] {
        opds.sorted { $0.opd < $1.opd }.compactMap { use in
            guard let cls = quotaClasses[use.quotaClass] else {
                return ClassConflict(opd: use.opd, quotaClass: use.quotaClass, classMissing: true, shortfalls: [])
            }
            let below = QuotaFit.belowUse(newQuota: cls.quota, usage: use.usage, opd: use.opd)
            return below.isEmpty ? nil : ClassConflict(opd: use.opd, quotaClass: use.quotaClass, classMissing: false, shortfalls: below)
        }
    }
}

/// An OPD's class and current use, the input of ``PolicySet/classConflicts(_:)``.
public struct OPDClassUse: Hashable, Sendable {
    /// The OPD.
    public var opd: OPDID
    /// Its quota class.
    public var quotaClass: QuotaClassName
    /// What it uses now (``DataCenter/usage(of:)``).
    public var usage: ResourceVector

    /// Creates an entry.
    public init(opd: OPDID, quotaClass: QuotaClassName, usage: ResourceVector) {
        self.opd = opd
        self.quotaClass = quotaClass
        self.usage = usage
    }
}

/// An OPD a new policy set would put below its use (or whose class it drops).
public struct ClassConflict: Hashable, Sendable, CustomStringConvertible {
    /// The OPD.
    public var opd: OPDID
    /// Its class.
    public var quotaClass: QuotaClassName
    /// True when the new set has no class of that name.
    public var classMissing: Bool
    /// Every dimension below use: `asked` is the use, `left` the class's new quota.
    public var shortfalls: [Shortfall]

    /// Creates a conflict.
    public init(opd: OPDID, quotaClass: QuotaClassName, classMissing: Bool, shortfalls: [Shortfall]) {
        self.opd = opd
        self.quotaClass = quotaClass
        self.classMissing = classMissing
        self.shortfalls = shortfalls
    }

    /// `dinkes (class sedang): lowering dinkes's vCPU quota to 32 is below its use of 40`.
    public var description: String {
        if classMissing { return "\(opd) (class \(quotaClass)): the new policy set has no class \(quotaClass)" }
        return "\(opd) (class \(quotaClass)): " + shortfalls.map(Refusal.belowUseSentence).joined(separator: "; ")
    }
}
