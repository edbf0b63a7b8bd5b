/// Overcommit ratios for hosts carrying one label, e.g. `tier=ssd` → cpu 2.0. A ratio left unset
/// keeps the value from the default (or from an earlier override that matched).
public struct OvercommitOverride: Hashable, Sendable {
    /// The host label key.
    public var labelKey: String
    /// The host label value.
    public var labelValue: String
    /// vCPU ratio, if overridden.
    public var cpu: Double?
    /// Memory ratio, if overridden.
    public var memory: Double?
    /// Storage ratio, if overridden.
    public var storage: Double?

    /// Creates an override.
    public init(labelKey: String, labelValue: String, cpu: Double? = nil, memory: Double? = nil, storage: Double? = nil) {
        self.labelKey = labelKey
        self.labelValue = labelValue
        self.cpu = cpu
        self.memory = memory
        self.storage = storage
    }

    /// `tier=ssd`.
    public var label: String { "\(labelKey)=\(labelValue)" }
}

/// The data center's headroom rule.
public struct HeadroomRule: Hashable, Sendable {
    /// N+1: after every allocation the other hosts together must still have enough free vCPU and
    /// memory to take over everything allocated on any one host, should it fail.
    public var nPlusOne: Bool

    /// Creates a headroom rule.
    public init(nPlusOne: Bool) { self.nPlusOne = nPlusOne }
}

/// What a placement constraint looks at: a VM or volume being placed.
public struct PlacementSubject: Hashable, Sendable {
    /// `.vm` or `.volume`.
    public var kind: RequestKind
    /// The owning OPD.
    public var opd: OPDID
    /// The OPD's class, if it has one.
    public var opdClass: QuotaClassName?
    /// The VM's or volume's tags (`data=pribadi`).
    public var tags: [String: String]

    /// Creates a subject.
    public init(kind: RequestKind, opd: OPDID, opdClass: QuotaClassName? = nil, tags: [String: String] = [:]) {
        self.kind = kind
        self.opd = opd
        self.opdClass = opdClass
        self.tags = tags
    }
}

/// A placement constraint: when a VM or volume has these tags, belongs to these OPDs or OPD
/// classes, it may only go to hosts with the required labels and never to hosts with the
/// forbidden ones. E.g. VMs tagged `data=pribadi` (personal data under UU PDP) only on hosts
/// labelled `certified=pdp`.
public struct PlacementConstraint: Hashable, Sendable {
    /// A unique name, quoted in explanations.
    public var name: String
    /// Kinds it applies to (`.vm`, `.volume`; nil: both).
    public var kinds: Set<RequestKind>?
    /// Tags the VM or volume must all carry for the constraint to apply (empty: any).
    public var tags: [String: String]
    /// OPDs it applies to (nil: every OPD).
    public var opds: Set<OPDID>?
    /// OPD classes it applies to (nil: every class).
    public var opdClasses: Set<QuotaClassName>?
    /// Host labels required (all of them).
    public var requiredLabels: [String: String]
    /// Host labels forbidden (any one excludes a host).
    public var forbiddenLabels: [String: String]

    /// Creates a constraint.
    public init(
        name: String, kinds: Set<RequestKind>? = nil, tags: [String: String] = [:], opds: Set<OPDID>? = nil,
        opdClasses: Set<QuotaClassName>? = nil, requiredLabels: [String: String] = [:], forbiddenLabels: [String: String] = [:]
    ) {
        self.name = name
        self.kinds = kinds
        self.tags = tags
        self.opds = opds
        self.opdClasses = opdClasses
        self.requiredLabels = requiredLabels
        self.forbiddenLabels = forbiddenLabels
    }

    /// True when the constraint applies to `subject`.
    public func applies(to subject: PlacementSubject) -> Bool {
        if let kinds, !kinds.contains(subject.kind) { return false }
        for (key, value) in tags where subject.tags[key] != value { return false }
        if let opds, !opds.contains(subject.opd) { return false }
        if let opdClasses, !(subject.opdClass.map(opdClasses.contains) ?? false) { return false }
        return true
    }

    /// Why it applies: `the VM is tagged data=pribadi`, `dinkes is of class besar`, or `it applies to every VM`.
    func why(_ subject: PlacementSubject) -> String {
        let noun = subject.kind == .volume ? "the volume" : "the VM"
        var parts: [String] = []
        if !tags.isEmpty { parts.append("\(noun) is tagged \(Self.pairs(tags))") }
        if opds != nil { parts.append("it belongs to \(subject.opd)") }
        if opdClasses != nil, let cls = subject.opdClass { parts.append("\(subject.opd) is of class \(cls)") }
        return parts.isEmpty ? "it applies to every \(subject.kind == .volume ? "volume" : "VM")" : parts.joined(separator: " and ")
    }

    /// `a=1, b=2` in key order.
    static func pairs(_ labels: [String: String]) -> String {
        labels.keys.sorted().map { "\($0)=\(labels[$0]!)" }.joined(separator: ", ")
    }
}

/// The host labels the constraints demand for one VM or volume, with a reason per constraint
/// that applied and every contradiction found.
public struct ConstraintResult: Hashable, Sendable {
    /// Host labels required (merged over every applying constraint).
    public var requiredLabels: [String: String]
    /// Host labels forbidden (merged).
    public var forbiddenLabels: [String: String]
    /// One reason per applying constraint, in file order.
    public var reasons: [PolicyReason]
    /// Contradictions (two values required for one key, a pair both required and forbidden);
    /// when not empty no host can ever satisfy the constraints.
    public var conflicts: [PolicyReason]

    /// Creates a result.
    public init(
        requiredLabels: [String: String] = [:], forbiddenLabels: [String: String] = [:], reasons: [PolicyReason] = [],
        conflicts: [PolicyReason] = []
    ) {
        self.requiredLabels = requiredLabels
        self.forbiddenLabels = forbiddenLabels
        self.reasons = reasons
        self.conflicts = conflicts
    }

    /// Adds labels demanded by `rule`, recording contradictions with what is already demanded.
    mutating func merge(rule: String, required: [String: String], forbidden: [String: String]) {
        for key in required.keys.sorted() {
            let value = required[key]!
            if let other = requiredLabels[key], other != value {
                conflicts.append(PolicyReason(rule: rule, sentence: "requires host label \(key)=\(value), but \(key)=\(other) is also required"))
            } else if forbiddenLabels[key] == value {
                conflicts.append(PolicyReason(rule: rule, sentence: "requires host label \(key)=\(value), which is also forbidden"))
            } else {
                requiredLabels[key] = value
            }
        }
        for key in forbidden.keys.sorted() {
            let value = forbidden[key]!
            if requiredLabels[key] == value {
                conflicts.append(PolicyReason(rule: rule, sentence: "forbids host label \(key)=\(value), which is also required"))
            } else if let other = forbiddenLabels[key], other != value {
                // A selector map holds one value per key; a second forbidden value cannot be kept.
                conflicts.append(
                    PolicyReason(rule: rule, sentence: "forbids host label \(key)=\(value), but \(key)=\(other) is already forbidden; forbid one value per key"))
            } else {
                forbiddenLabels[key] = value
            }
        }
    }

    /// The conflicts as a refusal, or nil when there are none.
    public var refusal: PolicyRefusal? {
        conflicts.isEmpty ? nil : PolicyRefusal(code: .constraintConflict, reasons: conflicts)
    }
}

/// Strategy, overcommit, host reserve, headroom and placement constraints.
public struct PlacementPolicy: Hashable, Sendable {
    /// binpack or spread.
    public var strategy: PlacementStrategy
    /// Default overcommit ratios (cpu 4.0, memory 1.0, storage 1.0).
    public var overcommit: Overcommit
    /// Per-label overrides, applied in order (a later match wins for the ratios it sets).
    public var overcommitOverrides: [OvercommitOverride]
    /// What a new host keeps for itself unless declared otherwise (vCPUs and memory).
    public var hostReserve: HostCapacity
    /// The N+1 rule.
    public var headroom: HeadroomRule
    /// Constraints in file order.
    public var constraints: [PlacementConstraint]

    /// Creates a placement policy.
    public init(
        strategy: PlacementStrategy = .binpack, overcommit: Overcommit = .default, overcommitOverrides: [OvercommitOverride] = [],
        hostReserve: HostCapacity = HostCapacity(), headroom: HeadroomRule = HeadroomRule(nPlusOne: false),
        constraints: [PlacementConstraint] = []
    ) {
        self.strategy = strategy
        self.overcommit = overcommit
        self.overcommitOverrides = overcommitOverrides
        self.hostReserve = hostReserve
        self.headroom = headroom
        self.constraints = constraints
    }

    /// The overcommit ratios for a host with these labels: the default, then every matching
    /// override in order.
    public func overcommit(forHostLabels labels: [String: String]) -> Overcommit {
        var r = overcommit
        for o in overcommitOverrides where labels[o.labelKey] == o.labelValue {
            if let cpu = o.cpu { r.cpu = cpu }
            if let memory = o.memory { r.memory = memory }
            if let storage = o.storage { r.storage = storage }
        }
        return r
    }

    /// Where each ratio of ``overcommit(forHostLabels:)`` comes from, for explain.
    public func overcommitReasons(forHostLabels labels: [String: String]) -> [PolicyReason] {
        let r = overcommit(forHostLabels: labels)
        var out = [
            PolicyReason(
                rule: "overcommit:default",
                sentence: "default ratios cpu \(overcommit.cpu), memory \(overcommit.memory), storage \(overcommit.storage)")
        ]
        for o in overcommitOverrides where labels[o.labelKey] == o.labelValue {
            let set = [("cpu", o.cpu), ("memory", o.memory), ("storage", o.storage)].compactMap { name, v in v.map { "\(name) \($0)" } }
            out.append(PolicyReason(rule: "overcommit:\(o.label)", sentence: "the host is labelled \(o.label): " + set.joined(separator: ", ")))
        }
        out.append(PolicyReason(rule: "overcommit:effective", sentence: "cpu \(r.cpu), memory \(r.memory), storage \(r.storage)"))
        return out
    }

    /// The host labels every applying constraint demands of `subject`, merged, with reasons and
    /// contradictions.
    public func constraints(for subject: PlacementSubject) -> ConstraintResult {
        constraints(for: subject, startingWith: ConstraintResult())
    }

    /// `spec` with the labels the constraints demand for a VM of `opd` added to its own
    /// selectors, with a reason per applying constraint; or a refusal when they contradict each
    /// other or the spec's own selectors.
    public func constrain(
        _ spec: VMSpec, opd: OPDID, opdClass: QuotaClassName?, tags: [String: String]
    ) -> Result<(spec: VMSpec, reasons: [PolicyReason]), PolicyRefusal> {
        let subject = PlacementSubject(kind: .vm, opd: opd, opdClass: opdClass, tags: tags)
        let merged = constraints(
            for: subject, startingWith: ConstraintResult(requiredLabels: spec.requiredLabels, forbiddenLabels: spec.forbiddenLabels))
        if let refusal = merged.refusal { return .failure(refusal) }
        var out = spec
        out.requiredLabels = merged.requiredLabels
        out.forbiddenLabels = merged.forbiddenLabels
        return .success((out, merged.reasons))
    }

    /// The host labels the constraints demand for a volume of `opd` with `tags`, with a reason per
    /// applying constraint; or a refusal when they contradict each other.
    public func constrainVolume(
        opd: OPDID, opdClass: QuotaClassName?, tags: [String: String]
    ) -> Result<ConstraintResult, PolicyRefusal> {
        let merged = constraints(for: PlacementSubject(kind: .volume, opd: opd, opdClass: opdClass, tags: tags))
        if let refusal = merged.refusal { return .failure(refusal) }
        return .success(merged)
    }

    private func constraints(for subject: PlacementSubject, startingWith start: ConstraintResult) -> ConstraintResult {
        var result = start
        for c in constraints where c.applies(to: subject) {
            let rule = "constraint:\(c.name)"
            var demands: [String] = []
            if !c.requiredLabels.isEmpty { demands.append("only hosts labelled \(PlacementConstraint.pairs(c.requiredLabels))") }
            if !c.forbiddenLabels.isEmpty { demands.append("no host labelled \(PlacementConstraint.pairs(c.forbiddenLabels))") }
            result.reasons.append(PolicyReason(rule: rule, sentence: "\(c.why(subject)), so " + demands.joined(separator: " and ")))
            result.merge(rule: rule, required: c.requiredLabels, forbidden: c.forbiddenLabels)
        }
        return result
    }
}
