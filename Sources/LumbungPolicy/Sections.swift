import Foundation
import LumbungCore
import Yams

/// The pieces of a policy set as they are read from its files, with the places that checks
/// across files report at.
final class SetBuilder {
    struct Place {
        var file: String
        var line: Int
    }

    /// A class named somewhere outside `classes`, checked once every file is read.
    struct ClassRef {
        var name: QuotaClassName
        var place: Place
        var what: String
    }

    /// The sections, in the order the README documents them.
    static let sectionNames = ["classes", "approval", "placement", "limits", "retention"]

    var sections: [String: Place] = [:]
    var classes: [QuotaClassName: QuotaClass]?
    /// Every class named in `classes`, valid or not (so a broken class is not also "unknown").
    var declaredClasses: Set<QuotaClassName> = []
    var classPlaces: [QuotaClassName: [LumbungCore.Dimension: Place]] = [:]
    var classRefs: [ClassRef] = []
    var approval: ApprovalPolicy?
    var placement: PlacementPolicy?
    var limits: Limits?
    var retention: RetentionPolicy?
}

/// Reading each section of a policy file into Core values.
extension NodeReader {
    /// Reads one file's top level: a mapping of section names to sections.
    func readFile(_ root: Node, into b: SetBuilder) {
        let allowed = SetBuilder.sectionNames
        guard let top = fields(root, line: root.line, what: "a policy file's top level", allowed: allowed) else { return }
        for e in top.entries {
            if let first = b.sections[e.key] {
                error(e.keyLine, "section '\(e.key)' is also defined at \(first.file):\(first.line); define each section once")
                continue
            }
            b.sections[e.key] = SetBuilder.Place(file: file, line: e.keyLine)
            switch e.key {
            case "classes": readClasses(e, into: b)
            case "approval": readApproval(e, into: b)
            case "placement": readPlacement(e, into: b)
            case "limits": readLimits(e, into: b)
            default: b.retention = readRetention(e)
            }
        }
    }

    /// Runs `body` and tells whether it reported no new error.
    private func clean(_ body: () -> Void) -> Bool {
        let before = errors.count
        body()
        return errors.count == before
    }

    private func classRefs(_ node: Node, line: Int, what: String, into b: SetBuilder) -> Set<QuotaClassName>? {
        guard let names = names(node, line: line, what: what, example: "[kecil, sedang]") else { return nil }
        for n in names {
            b.classRefs.append(SetBuilder.ClassRef(name: QuotaClassName(rawValue: n.text), place: .init(file: file, line: n.line), what: what))
        }
        return Set(names.map { QuotaClassName(rawValue: $0.text) })
    }

    /// The items of a block list, or nil (reported) when the value is not a list.
    private func sequence(_ e: Entry, what: String, example: String) -> Node.Sequence? {
        guard case .sequence(let items) = e.value else {
            error(e.line, "\(what) must be \(example); got \(e.value.shown)")
            return nil
        }
        return items
    }

    private func validName(_ text: String, line: Int, what: String) -> Bool {
        do throws(CoreError) {
            _ = try Name.validate(text, what: what)
            return true
        } catch {
            self.error(line, error.message)
            return false
        }
    }

    // MARK: classes

    func readClasses(_ section: Entry, into b: SetBuilder) {
        guard let entries = namedEntries(section.value, line: section.keyLine, what: "classes", example: "kecil: {vcpu: 16, …}")
        else { return }
        var classes: [QuotaClassName: QuotaClass] = [:]
        for e in entries {
            let name = QuotaClassName(rawValue: e.key)
            b.declaredClasses.insert(name)
            var read: (QuotaClass, [LumbungCore.Dimension: SetBuilder.Place])?
            // A class with any problem is left out, so later checks do not repeat its errors.
            if clean({ read = readClass(e) }), let (cls, places) = read {
                classes[name] = cls
                b.classPlaces[name] = places
            }
        }
        b.classes = classes
    }

    /// One class and the line of each amount.
    private func readClass(_ e: Entry) -> (QuotaClass, [LumbungCore.Dimension: SetBuilder.Place])? {
        let what = "class \(e.key)"
        let counts = 0...1_000_000
        guard validName(e.key, line: e.keyLine, what: "class name"),
            let f = fields(
                e.value, line: e.keyLine, what: what, allowed: ["description", "vcpu", "memory", "storage", "vms", "volumes"],
                required: ["vcpu", "memory", "vms", "volumes"])
        else { return nil }
        var quota = ResourceVector()
        var places: [LumbungCore.Dimension: SetBuilder.Place] = [:]
        var description = ""
        for v in f.entries {
            let at = SetBuilder.Place(file: file, line: v.line)
            switch v.key {
            case "description": description = string(v.value, line: v.line, what: "description of \(what)") ?? ""
            case "vcpu":
                quota.vcpu = int(v.value, line: v.line, what: "vcpu of \(what)", range: counts, example: 16) ?? 0
                places[.vcpu] = at
            case "memory":
                quota.memory = byteSize(v.value, line: v.line, what: "memory of \(what)", allowZero: true) ?? .zero
                places[.memory] = at
            case "storage":
                let example = "{ssd: 200GiB, hdd: 1TiB}"
                for p in namedEntries(v.value, line: v.line, what: "storage of \(what)", example: example) ?? [] {
                    guard validName(p.key, line: p.keyLine, what: "pool name in storage of \(what)") else { continue }
                    let pool = PoolName(rawValue: p.key)
                    quota.storage[pool] = byteSize(p.value, line: p.line, what: "storage in pool \(p.key) of \(what)", allowZero: true)
                    places[.storage(pool)] = SetBuilder.Place(file: file, line: p.line)
                }
            case "vms": quota.vms = int(v.value, line: v.line, what: "vms of \(what)", range: counts, example: 10) ?? 0
            default: quota.volumes = int(v.value, line: v.line, what: "volumes of \(what)", range: counts, example: 10) ?? 0
            }
        }
        return (QuotaClass(name: QuotaClassName(rawValue: e.key), quota: quota, description: description), places)
    }

    // MARK: approval

    func readApproval(_ section: Entry, into b: SetBuilder) {
        guard let f = fields(section.value, line: section.keyLine, what: "approval", allowed: ["request_expiry_days", "rules"], required: ["rules"])
        else { return }
        var policy = ApprovalPolicy(rules: [])
        if let e = f["request_expiry_days"],
            let days = int(e.value, line: e.line, what: "request_expiry_days", range: 1...365, example: 14)
        {
            policy.requestExpiryDays = days
        }
        guard let e = f["rules"] else { return }
        guard let items = sequence(e, what: "approval rules", example: "a list of rules, each starting with '- name:'") else { return }
        var seen: [String: Int] = [:]
        var checked: [(rule: ApprovalRule, line: Int)] = []
        for item in items {
            let line = item.line
            let allowed = ["name", "kind", "opd_class", "max_vcpu", "max_memory", "max_disk", "max_size", "within_quota", "decision", "reason"]
            var rule: ApprovalRule?
            let ok = clean { rule = readRule(item, line: line, allowed: allowed, into: b) }
            guard let rule else { continue }
            if let first = seen[rule.name] {
                error(line, "approval rule name '\(rule.name)' is used twice (first at line \(first)); give each rule its own name")
            } else {
                seen[rule.name] = line
            }
            policy.rules.append(rule)
            guard ok else { continue }
            if let why = rule.match.neverMatches {
                error(line, "approval rule '\(rule.name)' can never match: \(why)")
            } else if let earlier = checked.first(where: { $0.rule.match.covers(rule.match) }) {
                let what = earlier.rule.match.isCatchAll ? "matches every request" : "matches every request this one would"
                error(
                    line,
                    "approval rule '\(rule.name)' can never match: rule '\(earlier.rule.name)' (line \(earlier.line)) comes first and \(what); move this rule above it or narrow that one")
            }
            checked.append((rule, line))
        }
        b.approval = policy
    }

    private func readRule(_ item: Node, line: Int, allowed: [String], into b: SetBuilder) -> ApprovalRule? {
        let named = item["name"]?.text.map { "approval rule '\($0)'" } ?? "an approval rule"
        guard let f = fields(item, line: line, what: named, allowed: allowed, required: ["name", "decision"]),
            let nameEntry = f["name"], let name = string(nameEntry.value, line: nameEntry.line, what: "approval rule name"),
            validName(name, line: nameEntry.line, what: "approval rule name")
        else { return nil }
        if name == ApprovalPolicy.fallbackRuleName {
            error(nameEntry.line, "approval rule name '\(name)' is reserved for decisions no rule made; choose another name")
        }
        let what = "rule \(name)"
        var match = ApprovalMatch()
        var decision: String?
        var reason: String?
        for e in f.entries {
            switch e.key {
            case "kind":
                let kinds = list(e.value, line: e.line, what: "kind of \(what)", example: "[vm, volume]")?.compactMap { k in
                    guard let kind = RequestKind(rawValue: k.text) else {
                        error(k.line, "kind of \(what) '\(k.text)' is unknown; kinds are vm, volume, quota")
                        return nil as RequestKind?
                    }
                    return kind
                }
                match.kinds = kinds.map(Set.init)
            case "opd_class": match.opdClasses = classRefs(e.value, line: e.line, what: "opd_class of \(what)", into: b)
            case "max_vcpu": match.maxVCPU = int(e.value, line: e.line, what: "max_vcpu of \(what)", range: 0...VCPU.absurd, example: 4)
            case "max_memory": match.maxMemory = byteSize(e.value, line: e.line, what: "max_memory of \(what)", allowZero: true)
            case "max_disk": match.maxDisk = byteSize(e.value, line: e.line, what: "max_disk of \(what)", allowZero: true)
            case "max_size": match.maxSize = byteSize(e.value, line: e.line, what: "max_size of \(what)", allowZero: true)
            case "within_quota": match.withinQuota = bool(e.value, line: e.line, what: "within_quota of \(what)")
            case "decision":
                decision = choice(
                    e.value, line: e.line, what: "decision of \(what)", choices: ["automatic", "approver", "admin", "approver+admin", "refuse"])
                if e.value.text == "admin+approver" {
                    error(e.line, "decision of \(what) puts admin first; the OPD's approver decides first, then an admin: write approver+admin")
                }
            case "reason": reason = string(e.value, line: e.line, what: "reason of \(what)")
            default: break  // name, read above
            }
        }
        let outcome: ApprovalOutcome
        switch decision {
        case "automatic": outcome = .automatic
        case "approver": outcome = .needs([.approver])
        case "admin": outcome = .needs([.admin])
        case "approver+admin": outcome = .needs([.approver, .admin])
        case "refuse":
            guard let reason else {
                error(line, "approval rule '\(name)' refuses but gives no reason; add reason: '…' so people read why")
                return ApprovalRule(name: name, match: match, outcome: .refuse(""))
            }
            outcome = .refuse(reason)
        default: return ApprovalRule(name: name, match: match, outcome: .needs([.admin]))
        }
        return ApprovalRule(name: name, match: match, outcome: outcome)
    }

    // MARK: placement

    func readPlacement(_ section: Entry, into b: SetBuilder) {
        let allowed = ["strategy", "overcommit", "overcommit_by_label", "host_reserve", "headroom", "constraints"]
        guard let f = fields(section.value, line: section.keyLine, what: "placement", allowed: allowed) else { return }
        var p = PlacementPolicy()
        for e in f.entries {
            switch e.key {
            case "strategy":
                let choices = PlacementStrategy.allCases.map(\.rawValue)
                if let s = choice(e.value, line: e.line, what: "placement strategy", choices: choices) {
                    p.strategy = PlacementStrategy(rawValue: s)!
                }
            case "overcommit":
                guard let o = fields(e.value, line: e.line, what: "overcommit", allowed: ["cpu", "memory", "storage"]) else { continue }
                let r = ratios(o, what: "overcommit")
                p.overcommit = Overcommit(cpu: r.cpu ?? 4.0, memory: r.memory ?? 1.0, storage: r.storage ?? 1.0)
            case "overcommit_by_label": p.overcommitOverrides = readOverrides(e)
            case "host_reserve":
                guard let h = fields(e.value, line: e.line, what: "host_reserve", allowed: ["cpus", "memory"]) else { continue }
                if let c = h["cpus"], let n = int(c.value, line: c.line, what: "cpus of host_reserve", range: 0...1024, example: 2) {
                    p.hostReserve.cpus = n
                }
                if let m = h["memory"], let size = byteSize(m.value, line: m.line, what: "memory of host_reserve", allowZero: true) {
                    p.hostReserve.memory = size
                }
            case "headroom":
                guard let h = fields(e.value, line: e.line, what: "headroom", allowed: ["n_plus_one"]) else { continue }
                if let n = h["n_plus_one"], let on = bool(n.value, line: n.line, what: "n_plus_one") {
                    p.headroom = HeadroomRule(nPlusOne: on)
                }
            default: p.constraints = readConstraints(e, into: b)
            }
        }
        b.placement = p
    }

    private func ratios(_ f: Fields, what: String) -> (cpu: Double?, memory: Double?, storage: Double?) {
        func one(_ key: String) -> Double? {
            f[key].flatMap { ratio($0.value, line: $0.line, what: "\(key) ratio of \(what)") }
        }
        return (one("cpu"), one("memory"), one("storage"))
    }

    private func readOverrides(_ e: Entry) -> [OvercommitOverride] {
        guard let items = sequence(e, what: "overcommit_by_label", example: "a list like '- {label: tier=ssd, cpu: 2.0}'") else { return [] }
        var out: [OvercommitOverride] = []
        var seen: [String: Int] = [:]
        for item in items {
            let named = item["label"]?.text.map { "overcommit_by_label entry \($0)" } ?? "an overcommit_by_label entry"
            guard let f = fields(item, line: item.line, what: named, allowed: ["label", "cpu", "memory", "storage"], required: ["label"]),
                let l = f["label"], let text = string(l.value, line: l.line, what: "label of overcommit_by_label")
            else { continue }
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                error(l.line, "label '\(text)' of overcommit_by_label must be key=value, e.g. tier=ssd")
                continue
            }
            do throws(CoreError) {
                try HostLabel.validate(key: parts[0], value: parts[1], what: "overcommit_by_label label")
            } catch {
                self.error(l.line, error.message)
                continue
            }
            if let first = seen[text] {
                error(l.line, "overcommit_by_label lists label \(text) twice (first at line \(first)); merge the two entries")
                continue
            }
            seen[text] = l.line
            let r = ratios(f, what: text)
            if f["cpu"] == nil && f["memory"] == nil && f["storage"] == nil {
                error(l.line, "overcommit_by_label entry \(text) sets no ratio; add cpu, memory or storage")
            }
            out.append(OvercommitOverride(labelKey: parts[0], labelValue: parts[1], cpu: r.cpu, memory: r.memory, storage: r.storage))
        }
        return out
    }

    private func readConstraints(_ e: Entry, into b: SetBuilder) -> [PlacementConstraint] {
        guard let items = sequence(e, what: "constraints", example: "a list of constraints, each starting with '- name:'") else { return [] }
        var out: [PlacementConstraint] = []
        var seen: [String: Int] = [:]
        for item in items {
            let allowed = ["name", "when", "require_host_labels", "forbid_host_labels"]
            let named = item["name"]?.text.map { "constraint '\($0)'" } ?? "a constraint"
            guard let f = fields(item, line: item.line, what: named, allowed: allowed, required: ["name"]),
                let n = f["name"], let name = string(n.value, line: n.line, what: "constraint name"),
                validName(name, line: n.line, what: "constraint name")
            else { continue }
            if let first = seen[name] {
                error(n.line, "constraint name '\(name)' is used twice (first at line \(first)); give each constraint its own name")
            }
            seen[name] = n.line
            var c = PlacementConstraint(name: name)
            let what = "constraint \(name)"
            if let w = f["when"], let when = fields(w.value, line: w.line, what: "when of \(what)", allowed: ["kind", "tags", "opd", "opd_class"]) {
                for v in when.entries {
                    switch v.key {
                    case "kind":
                        c.kinds = list(v.value, line: v.line, what: "kind of \(what)", example: "[vm]").map { kinds in
                            Set(kinds.compactMap { k in
                                guard let kind = RequestKind(rawValue: k.text), kind != .quota else {
                                    error(k.line, "kind of \(what) '\(k.text)' is not placed; constraints apply to vm and volume")
                                    return nil
                                }
                                return kind
                            })
                        }
                    case "tags": c.tags = labels(v.value, line: v.line, what: "tags of \(what)") ?? [:]
                    case "opd":
                        c.opds = names(v.value, line: v.line, what: "opd of \(what)", example: "[dinkes]").map { Set($0.map { OPDID(rawValue: $0.text) }) }
                    default: c.opdClasses = classRefs(v.value, line: v.line, what: "opd_class of \(what)", into: b)
                    }
                }
            }
            if let r = f["require_host_labels"] { c.requiredLabels = labels(r.value, line: r.line, what: "require_host_labels of \(what)") ?? [:] }
            if let r = f["forbid_host_labels"] { c.forbiddenLabels = labels(r.value, line: r.line, what: "forbid_host_labels of \(what)") ?? [:] }
            if f["require_host_labels"] == nil && f["forbid_host_labels"] == nil {
                error(n.line, "\(what) demands nothing; add require_host_labels or forbid_host_labels")
            }
            for key in c.requiredLabels.keys.sorted() where c.forbiddenLabels[key] == c.requiredLabels[key] {
                error(n.line, "\(what) can never be satisfied: it requires and forbids \(key)=\(c.requiredLabels[key]!)")
            }
            out.append(c)
        }
        return out
    }

    // MARK: limits

    func readLimits(_ section: Entry, into b: SetBuilder) {
        let allowed = ["vm", "volume", "images", "pools", "per_class", "name_pattern"]
        guard let f = fields(section.value, line: section.keyLine, what: "limits", allowed: allowed) else { return }
        var l = Limits()
        for e in f.entries {
            switch e.key {
            case "vm":
                guard let vm = fields(e.value, line: e.line, what: "limits.vm", allowed: ["max_vcpu", "max_memory", "max_disk"]) else { continue }
                if let v = vm["max_vcpu"] { l.maxVMVCPU = vcpu(v.value, line: v.line, what: "max_vcpu of limits.vm", allowZero: false) }
                if let v = vm["max_memory"] { l.maxVMMemory = byteSize(v.value, line: v.line, what: "max_memory of limits.vm", allowZero: false) }
                if let v = vm["max_disk"] { l.maxVMDisk = byteSize(v.value, line: v.line, what: "max_disk of limits.vm", allowZero: false) }
            case "volume":
                guard let vol = fields(e.value, line: e.line, what: "limits.volume", allowed: ["max_size"]) else { continue }
                if let v = vol["max_size"] { l.maxVolumeSize = byteSize(v.value, line: v.line, what: "max_size of limits.volume", allowZero: false) }
            case "images", "pools": readAllowance(e, what: "limits", into: &l.allowed)
            case "per_class":
                guard let classes = namedEntries(e.value, line: e.line, what: "per_class", example: "kecil: {pools: [hdd]}") else { continue }
                for c in classes {
                    b.classRefs.append(.init(name: QuotaClassName(rawValue: c.key), place: .init(file: file, line: c.keyLine), what: "per_class"))
                    guard let cf = fields(c.value, line: c.keyLine, what: "per_class \(c.key)", allowed: ["images", "pools"]) else { continue }
                    var allowance = ClassAllowance()
                    for v in cf.entries { readAllowance(v, what: "per_class \(c.key)", into: &allowance) }
                    l.perClass[QuotaClassName(rawValue: c.key)] = allowance
                }
            default:
                guard let pattern = string(e.value, line: e.line, what: "name_pattern") else { continue }
                do {
                    _ = try Regex(pattern)
                    l.namePattern = pattern
                } catch {
                    self.error(e.line, "name_pattern '\(pattern)' is not a valid regular expression (\(error)); write e.g. '^[a-z][a-z0-9-]{1,62}$'")
                }
            }
        }
        b.limits = l
    }

    private func readAllowance(_ e: Entry, what: String, into a: inout ClassAllowance) {
        if e.key == "pools" {
            a.pools = names(e.value, line: e.line, what: "pools of \(what)", example: "[ssd, hdd]").map { Set($0.map { PoolName(rawValue: $0.text) }) }
            return
        }
        guard let items = list(e.value, line: e.line, what: "images of \(what)", example: "[ubuntu-24.04, debian-12]") else { return }
        a.images = Set(items.compactMap { item in
            do throws(CoreError) {
                return try ImageName.validate(item.text)
            } catch {
                self.error(item.line, error.message)
                return nil
            }
        })
    }

    // MARK: retention

    func readRetention(_ section: Entry) -> RetentionPolicy? {
        guard let f = fields(section.value, line: section.keyLine, what: "retention", allowed: ["volume_days", "audit_days"]) else { return nil }
        var r = RetentionPolicy()
        if let v = f["volume_days"], let days = int(v.value, line: v.line, what: "volume_days", range: 0...3650, example: 7) {
            r.volumeRetentionDays = days
        }
        if let a = f["audit_days"], let days = int(a.value, line: a.line, what: "audit_days", range: 0...36_500, example: 3650) {
            let minimum = RetentionPolicy.legalMinimumAuditDays
            if days < minimum {
                error(
                    a.line,
                    "audit_days is \(days); audit entries must be kept at least \(minimum) days (10 years, the archival minimum documented in policies/README.md); write \(minimum) or more")
            } else {
                r.auditRetentionDays = days
            }
        }
        return r
    }
}
