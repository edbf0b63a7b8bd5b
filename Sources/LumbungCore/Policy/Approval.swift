#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a request asks for, as policies see it.
public enum RequestKind: String, Hashable, Codable, Sendable, CaseIterable, Comparable {
    /// A new VM.
    case vm
    /// A new volume.
    case volume
    /// A change of the OPD's quota.
    case quota

    /// Orders as declared: vm, volume, quota.
    public static func < (lhs: RequestKind, rhs: RequestKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

extension RequestPayload {
    /// The payload's kind.
    public var requestKind: RequestKind {
        switch self {
        case .vm: .vm
        case .volume: .volume
        case .quota: .quota
        }
    }
}

/// Who decides a request at one level. Levels run in order: first the OPD's own approver, then a
/// Kominfo admin. (Whether an admin may stand in for an OPD's approver is the controller's
/// authorization rule, not the policy's.)
public enum ApprovalLevel: String, Hashable, Codable, Sendable, CaseIterable {
    /// A user with role `approver` of the requesting OPD.
    case approver
    /// A Kominfo user with role `admin`.
    case admin

    /// `the OPD's approver` or `an admin`.
    public var noun: String {
        switch self {
        case .approver: "the OPD's approver"
        case .admin: "an admin"
        }
    }
}

/// A request as the approval rules see it: its kind, its amounts, who asks and whether it fits
/// the OPD's remaining quota.
///
/// The amounts a ceiling compares with: for a VM its vCPU, memory and disk; for a volume its
/// size; for a quota request what it *adds* (vCPU, memory, and in ``size`` the storage added over
/// all pools; decreases count as zero).
public struct ApprovalQuery: Hashable, Sendable {
    /// The request's kind.
    public var kind: RequestKind
    /// The requesting OPD.
    public var opd: OPDID
    /// The OPD's quota class, if it has one.
    public var opdClass: QuotaClassName?
    /// vCPUs of the VM, or added by a quota request; 0 for a volume.
    public var vcpu: Int
    /// Memory of the VM, or added by a quota request; zero for a volume.
    public var memory: ByteSize
    /// Disk of the VM; zero otherwise.
    public var disk: ByteSize
    /// Size of the volume, or the storage a quota request adds over all pools; zero for a VM.
    public var size: ByteSize
    /// The first dimension that does not fit (a VM or volume beyond the OPD's remaining quota, a
    /// quota request beyond the OPD's class); nil when the request is within quota.
    public var quotaShortfall: Shortfall?

    /// True when the request fits: see ``quotaShortfall``.
    public var withinQuota: Bool { quotaShortfall == nil }

    /// Creates a query from explicit amounts.
    public init(
        kind: RequestKind, opd: OPDID, opdClass: QuotaClassName? = nil, vcpu: Int = 0, memory: ByteSize = .zero,
        disk: ByteSize = .zero, size: ByteSize = .zero, quotaShortfall: Shortfall? = nil
    ) {
        self.kind = kind
        self.opd = opd
        self.opdClass = opdClass
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
        self.size = size
        self.quotaShortfall = quotaShortfall
    }

    /// Builds the query for a request of `opd`.
    ///
    /// A VM or volume is within quota when it fits what the OPD has left (`quota − usage`). A
    /// quota request is within quota when the raised quota stays within the OPD's class
    /// (`classQuota`); without a class, only a request that raises nothing is.
    public init(
        payload: RequestPayload, opd: OPDID, opdClass: QuotaClassName?, quota: ResourceVector, usage: ResourceVector,
        classQuota: ResourceVector? = nil
    ) {
        self.init(kind: payload.requestKind, opd: opd, opdClass: opdClass)
        switch payload {
        case .vm(let spec):
            vcpu = spec.vcpu
            memory = spec.memory
            disk = spec.disk
            quotaShortfall = QuotaFit.shortfall(quota: quota, usage: usage, adding: spec.resources, opd: opd)
        case .volume(let spec):
            size = spec.size
            quotaShortfall = QuotaFit.shortfall(quota: quota, usage: usage, adding: spec.resources, opd: opd)
        case .quota(let delta):
            vcpu = max(0, delta.vcpu)
            memory = ByteSize(bytes: max(0, delta.memory.bytes))
            size = ByteSize(bytes: delta.storage.values.reduce(0) { $0 + max(0, $1.bytes) })
            // Against the class, the current quota is the "usage" and the delta the ask; only
            // raised dimensions are checked. Without a class nothing may be raised.
            quotaShortfall = QuotaFit.shortfall(quota: classQuota ?? quota, usage: quota, adding: delta, opd: opd)
        }
    }
}

/// When an approval rule applies. Every condition that is set must hold; an unset condition
/// holds for every request.
public struct ApprovalMatch: Hashable, Sendable {
    /// Request kinds the rule covers (nil: every kind).
    public var kinds: Set<RequestKind>?
    /// At most this many vCPUs (VM) or added vCPUs (quota).
    public var maxVCPU: Int?
    /// At most this much memory (VM) or added memory (quota).
    public var maxMemory: ByteSize?
    /// At most this much VM disk.
    public var maxDisk: ByteSize?
    /// At most this volume size, or storage added by a quota request.
    public var maxSize: ByteSize?
    /// OPD classes the rule covers (nil: every OPD, with or without a class).
    public var opdClasses: Set<QuotaClassName>?
    /// `true`: only requests within the OPD's quota; `false`: only requests beyond it; nil: both.
    public var withinQuota: Bool?

    /// Creates a match; with no arguments it matches every request.
    public init(
        kinds: Set<RequestKind>? = nil, maxVCPU: Int? = nil, maxMemory: ByteSize? = nil, maxDisk: ByteSize? = nil,
        maxSize: ByteSize? = nil, opdClasses: Set<QuotaClassName>? = nil, withinQuota: Bool? = nil
    ) {
        self.kinds = kinds
        self.maxVCPU = maxVCPU
        self.maxMemory = maxMemory
        self.maxDisk = maxDisk
        self.maxSize = maxSize
        self.opdClasses = opdClasses
        self.withinQuota = withinQuota
    }

    /// True when no condition is set: the rule matches every request.
    public var isCatchAll: Bool { self == ApprovalMatch() }

    /// Why no request can ever match, or nil when some can: no kinds; a zero vCPU, memory or disk
    /// ceiling on a rule for VMs only (every VM has some); a zero size ceiling on a rule for
    /// volumes only.
    public var neverMatches: String? {
        if let kinds, kinds.isEmpty { return "it covers no request kind" }
        if kinds == [.vm] {
            if maxVCPU == 0 { return "it covers only VMs and allows at most 0 vCPU, but every VM has at least 1 vCPU" }
            if maxMemory == .zero { return "it covers only VMs and allows no memory, but every VM has some" }
            if maxDisk == .zero { return "it covers only VMs and allows no disk, but every VM has one" }
        }
        if kinds == [.volume], maxSize == .zero {
            return "it covers only volumes and allows size 0, but every volume has a size"
        }
        return nil
    }

    /// True when every request this match accepts is also accepted by `self` (conservative: it may
    /// say false where a deeper analysis would say true, never the reverse). A rule placed after
    /// one that covers it can never match.
    public func covers(_ other: ApprovalMatch) -> Bool {
        func set<T>(_ mine: Set<T>?, _ theirs: Set<T>?) -> Bool {
            guard let mine else { return true }
            guard let theirs else { return false }
            return theirs.isSubset(of: mine)
        }
        func ceiling<T: Comparable>(_ mine: T?, _ theirs: T?) -> Bool {
            guard let mine else { return true }
            guard let theirs else { return false }
            return theirs <= mine
        }
        return set(kinds, other.kinds) && set(opdClasses, other.opdClasses) && ceiling(maxVCPU, other.maxVCPU)
            && ceiling(maxMemory, other.maxMemory) && ceiling(maxDisk, other.maxDisk) && ceiling(maxSize, other.maxSize)
            && (withinQuota == nil || withinQuota == other.withinQuota)
    }

    /// Why `query` does not match (the first failing condition, as a sentence), or nil when it matches.
    public func mismatch(_ query: ApprovalQuery) -> String? {
        if let kinds, !kinds.contains(query.kind) {
            return "it covers \(Self.list(kinds.sorted().map { "\($0.rawValue)" })) requests, this is a \(query.kind.rawValue) request"
        }
        let who: String
        switch query.kind {
        case .vm: who = "the VM asks for"
        case .volume: who = "the volume asks for"
        case .quota: who = "the request adds"
        }
        if let maxVCPU, query.vcpu > maxVCPU {
            return "\(who) \(query.vcpu) vCPU, the rule covers at most \(maxVCPU) vCPU"
        }
        if let maxMemory, query.memory > maxMemory {
            return "\(who) \(query.memory) of memory, the rule covers at most \(maxMemory)"
        }
        if let maxDisk, query.disk > maxDisk {
            return "\(who) a \(query.disk) disk, the rule covers at most \(maxDisk)"
        }
        if let maxSize, query.size > maxSize {
            return "\(who) \(query.size) of storage, the rule covers at most \(maxSize)"
        }
        if let opdClasses, !(query.opdClass.map(opdClasses.contains) ?? false) {
            let covered = Self.list(opdClasses.sorted().map(\.rawValue))
            guard let cls = query.opdClass else { return "\(query.opd) has no class, the rule covers class \(covered)" }
            return "\(query.opd) is of class \(cls), the rule covers class \(covered)"
        }
        if let withinQuota, withinQuota != query.withinQuota {
            if let s = query.quotaShortfall {
                if query.kind == .quota {
                    let d = s.dimension
                    return "the rule covers requests within quota, this one is not: it adds \(d.amountText(s.asked)) where \(d.amountText(max(0, s.left))) would stay within it"
                }
                return "the rule covers requests within quota, this one is not (\(s))"
            }
            return "the rule covers requests beyond the quota, this one is within it"
        }
        return nil
    }

    /// `a`, `a or b`, `a, b or c`.
    static func list(_ items: [String]) -> String {
        guard items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " or " + items.last!
    }
}

/// What an approval rule decides.
public enum ApprovalOutcome: Hashable, Sendable {
    /// Approved at once.
    case automatic
    /// Decided by people at these levels, in order (one or two: approver, admin, or approver then admin).
    case needs([ApprovalLevel])
    /// Refused with this sentence.
    case refuse(String)
}

/// One approval rule: when it applies and what it decides.
public struct ApprovalRule: Hashable, Sendable {
    /// A unique name, written into every decision the rule makes.
    public var name: String
    /// When the rule applies.
    public var match: ApprovalMatch
    /// What it decides.
    public var outcome: ApprovalOutcome

    /// Creates a rule.
    public init(name: String, match: ApprovalMatch, outcome: ApprovalOutcome) {
        self.name = name
        self.match = match
        self.outcome = outcome
    }
}

/// What the approval rules decide about a request; every case names the rule.
public enum ApprovalDecision: Hashable, Sendable, CustomStringConvertible {
    /// Approved without a person.
    case automatic(rule: String)
    /// Waits for people at these levels, in order.
    case needs(levels: [ApprovalLevel], rule: String)
    /// Refused; `reason` is the rule's sentence.
    case refused(rule: String, reason: String)

    /// The rule that made the decision (``ApprovalPolicy/fallbackRuleName`` when none matched).
    public var rule: String {
        switch self {
        case .automatic(let rule), .needs(_, let rule), .refused(let rule, _): rule
        }
    }

    /// The refusal (code `approval_refused`, naming the rule) when the decision is a refusal.
    public var refusal: PolicyRefusal? {
        guard case .refused(let rule, let reason) = self else { return nil }
        return PolicyRefusal(code: .approvalRefused, reasons: [PolicyReason(rule: "approval:\(rule)", sentence: reason)])
    }

    /// `approved automatically`, `needs the OPD's approver, then an admin`, `refused: …`.
    public var description: String {
        switch self {
        case .automatic: "approved automatically"
        case .needs(let levels, _): "needs " + levels.map(\.noun).joined(separator: ", then ")
        case .refused(_, let reason): "refused: \(reason)"
        }
    }
}

/// An approval decision with the reasons behind it, for `lumbung request explain`: one reason
/// per rule tried, in order, ending with the rule that decided.
public struct ApprovalEvaluation: Hashable, Sendable {
    /// The decision.
    public var decision: ApprovalDecision
    /// Every rule tried and why it did or did not apply, ending with the deciding one.
    public var reasons: [PolicyReason]

    /// Creates an evaluation.
    public init(decision: ApprovalDecision, reasons: [PolicyReason]) {
        self.decision = decision
        self.reasons = reasons
    }
}

/// The approval rules (first match wins) and how long an undecided request lives.
public struct ApprovalPolicy: Hashable, Sendable {
    /// The name a decision carries when no rule matched. No rule may take this name.
    public static let fallbackRuleName = "no-rule-matched"

    /// The rules in file order; the first that matches decides.
    public var rules: [ApprovalRule]
    /// Days after which an undecided request expires.
    public var requestExpiryDays: Int

    /// Creates an approval policy.
    public init(rules: [ApprovalRule], requestExpiryDays: Int = 14) {
        self.rules = rules
        self.requestExpiryDays = requestExpiryDays
    }

    /// When a request created at `createdAt` expires if still undecided.
    public func expiresAt(createdAt: Date) -> Date {
        createdAt.addingTimeInterval(Double(requestExpiryDays) * 86_400)
    }

    /// The decision for `query`: the first matching rule's, or — when none matches — an admin
    /// decides (rule ``fallbackRuleName``).
    public func approvalDecision(for query: ApprovalQuery) -> ApprovalDecision {
        for rule in rules where rule.match.mismatch(query) == nil {
            return Self.decision(of: rule)
        }
        return .needs(levels: [.admin], rule: Self.fallbackRuleName)
    }

    /// The decision with a reason for every rule tried (for explain).
    public func evaluate(_ query: ApprovalQuery) -> ApprovalEvaluation {
        var reasons: [PolicyReason] = []
        for rule in rules {
            let ref = "approval:\(rule.name)"
            if let why = rule.match.mismatch(query) {
                reasons.append(PolicyReason(rule: ref, sentence: "does not apply: \(why)"))
                continue
            }
            let decision = Self.decision(of: rule)
            reasons.append(PolicyReason(rule: ref, sentence: "applies: \(decision)"))
            return ApprovalEvaluation(decision: decision, reasons: reasons)
        }
        let decision = ApprovalDecision.needs(levels: [.admin], rule: Self.fallbackRuleName)
        reasons.append(PolicyReason(rule: "approval:\(Self.fallbackRuleName)", sentence: "no rule applies, so \(decision)"))
        return ApprovalEvaluation(decision: decision, reasons: reasons)
    }

    static func decision(of rule: ApprovalRule) -> ApprovalDecision {
        switch rule.outcome {
        case .automatic: .automatic(rule: rule.name)
        case .needs(let levels): levels.isEmpty ? .automatic(rule: rule.name) : .needs(levels: levels, rule: rule.name)
        case .refuse(let reason): .refused(rule: rule.name, reason: reason)
        }
    }
}

extension Dimension {
    /// `8 vCPU`, `8GiB of memory`, `100GiB of storage in pool ssd`, `2 VMs`.
    func amountText(_ amount: Int64) -> String {
        switch self {
        case .memory, .storage: "\(format(amount)) of \(self)"
        case .vcpu, .vms, .volumes: format(amount)
        }
    }
}
