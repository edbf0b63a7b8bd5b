import Foundation
import LumbungAPI
import LumbungCore
import LumbungPolicy

// How the running policy set shapes placement and allocation: strategy, host overcommit and
// reserve, limits, constraints (UU PDP tags), the N+1 headroom rule and the dry-run explanation.
// Every allocation path (direct `allocateVM`/`allocateVolume` and approvals) goes through
// `LedgerState.allocateVM`/`allocateVolume`, which call the helpers here.

extension APIError {
    /// A policy refusal: 409 with its stable code (`limit_exceeded`, `headroom`,
    /// `constraint_conflict`) and every reason as `rule: sentence`.
    init(_ refusal: PolicyRefusal) {
        self.init(.conflict, refusal.code.rawValue, refusal.reasons.map(\.description).joined(separator: "; "))
    }
}

extension LedgerState {
    /// The placement strategy in force: the policy's, except under the built-in set, where the
    /// controller's `--strategy` (``LedgerSettings/strategy``) still applies.
    func strategy(fallback: PlacementStrategy) -> PlacementStrategy {
        policy.hash == PolicySet.builtinDefault.hash ? fallback : policy.placement.strategy
    }

    /// `host` with the overcommit ratios and reserve the policy gives it, where it follows the
    /// policy (declared without explicit values).
    func derivedFromPolicy(_ host: LumbungCore.Host) -> LumbungCore.Host {
        var h = host
        if h.overcommitFromPolicy { h.overcommit = policy.placement.overcommit(forHostLabels: h.labels) }
        if h.reservedFromPolicy {
            let r = policy.placement.hostReserve
            h.reserved = HostCapacity(cpus: r.cpus, memory: r.memory, pools: r.pools.filter { h.effective.pools[$0.key] != nil })
        }
        return h
    }

    /// Re-derives every host that follows the policy (after a new set is installed); the
    /// placement index follows through `upsertHost`.
    mutating func rederiveHosts(caller: Caller, now: Date, out: inout OpOutput) {
        for id in dc.hosts.keys.sorted() {
            let host = dc.hosts[id]!
            let derived = derivedFromPolicy(host)
            guard derived != host else { continue }
            dc.upsertHost(derived)
            out.changes.append(.hostUpdated(derived))
            out.record(caller, "host.policy-derived", "host:\(id)", before: host, after: derived, at: now)
        }
    }

    /// Limits and constraints for a new VM of `opd`: the spec placement should use (the VM's own
    /// label selectors merged with what the constraints demand for its tags) and why.
    func policySpec(_ spec: VMSpec, opd: OPDID) throws -> (spec: VMSpec, reasons: [PolicyReason]) {
        let opdClass = dc.opds[opd]?.quotaClass
        // A malformed spec is named as such before any policy speaks about it.
        do throws(CoreError) { try spec.validate() } catch { throw APIError(error) }
        if let refusal = policy.limits.check(vm: spec, opdClass: opdClass) { throw APIError(refusal) }
        switch policy.placement.constrain(spec, opd: opd, opdClass: opdClass, tags: spec.tags) {
        case .success(let constrained): return constrained
        case .failure(let refusal): throw APIError(refusal)
        }
    }

    /// The N+1 verdict for allocating `adding` on `host`, against the state before it.
    func headroom(adding: ResourceVector, on host: HostID, subject: String) -> HeadroomVerdict {
        let rule = policy.placement.headroom
        // The rule off looks at no host: skip the O(hosts) capacity report (it was most of an allocation's CPU).
        guard rule.nPlusOne else { return rule.check(hosts: [], adding: adding, on: host, subject: subject) }
        return rule.check(hosts: dc.capacity().hosts.map(HeadroomHost.init), adding: adding, on: host, subject: subject)
    }

    /// Enforces the N+1 rule for an allocation of `adding` on `host` (call before the state
    /// changes): refuses with code `headroom` and the numbers, unless an admin forces it. Returns
    /// the verdict to audit as an override when forced past it. An allocation that adds no vCPU
    /// or memory (a volume) cannot make a host's loss harder to absorb and is never refused.
    func enforceHeadroom(adding: ResourceVector, on host: HostID, subject: String, force: Bool, caller: Caller) throws -> HeadroomVerdict? {
        guard adding.vcpu > 0 || adding.memory.bytes > 0 else { return nil }
        let verdict = headroom(adding: adding, on: host, subject: subject)
        guard let refusal = verdict.refusal else { return nil }
        guard force else {
            var message = APIError(refusal)
            if caller.principal.role == .admin {
                message.detail.message += " (an admin may force it with --force; the override is audited)"
            }
            throw message
        }
        guard caller.principal.role == .admin else {
            throw APIError.forbidden("only an admin may force an allocation past the N+1 headroom rule")
        }
        return verdict
    }

    /// Audits a forced override of the headroom rule.
    func recordOverride(_ verdict: HeadroomVerdict, target: String, caller: Caller, now: Date, request: RequestID?, out: inout OpOutput) {
        out.record(caller, "policy.override", target, before: Optional<PolicyReason>.none, after: verdict.reason, at: now, request: request)
    }

    /// Explains, without changing anything, where a VM of `opd` would go and why: limits,
    /// constraints, quota, hosts filtered out, overcommit of the chosen host, headroom, score.
    func explainVM(_ spec: VMSpec, opd: OPDID, fallback: PlacementStrategy) -> PlacementExplanation {
        let strategy = strategy(fallback: fallback)
        var reasons: [PolicyReason] = []
        var placeable = true
        let opdClass = dc.opds[opd]?.quotaClass
        if let refusal = policy.limits.check(vm: spec, opdClass: opdClass) {
            placeable = false
            reasons += refusal.reasons
        } else {
            reasons.append(PolicyReason(rule: "limits", sentence: "the VM keeps every limit (size, image, pool, name)"))
        }
        var placed = spec
        switch policy.placement.constrain(spec, opd: opd, opdClass: opdClass, tags: spec.tags) {
        case .success(let c):
            placed = c.spec
            reasons += c.reasons.isEmpty ? [PolicyReason(rule: "constraints", sentence: "no placement constraint applies")] : c.reasons
        case .failure(let refusal):
            placeable = false
            reasons += refusal.reasons
        }
        let decision = dc.placeVM(placed, opd: opd, strategy: strategy, explain: true)
        var out = PlacementExplanation(placeable: placeable, strategy: strategy.rawValue, reasons: reasons, excluded: [])
        if case .failure(let refusal) = dc.decideVM(placed, opd: opd, strategy: strategy) {
            // Placement failures are explained host by host below; the rest (quota, pool, name) here.
            if case .placement = refusal {} else {
                out.placeable = false
                out.reasons.append(PolicyReason(rule: refusal.code, sentence: refusal.description))
            }
        }
        switch decision {
        case .success(let d):
            out.excluded = d.excluded
            out.host = d.host
            out.score = d.score
            out.candidates = d.candidates
            if let host = dc.hosts[d.host] {
                if host.overcommitFromPolicy {
                    out.reasons += policy.placement.overcommitReasons(forHostLabels: host.labels).map {
                        PolicyReason(rule: $0.rule, sentence: "host \(d.host): \($0.sentence)")
                    }
                } else {
                    let o = host.overcommit
                    out.reasons.append(
                        PolicyReason(
                            rule: "overcommit:host",
                            sentence: "host \(d.host) has its own ratios from `lumbung host add`: cpu \(o.cpu), memory \(o.memory), storage \(o.storage)"))
                }
            }
            let verdict = headroom(adding: spec.resources, on: d.host, subject: "VM")
            out.reasons.append(verdict.reason)
            if !verdict.isOK { out.placeable = false }
            out.reasons.append(
                PolicyReason(
                    rule: "placement:\(strategy.rawValue)",
                    sentence: "chosen host \(d.host) with score \(String(format: "%.3f", d.score)) (\(strategy.rawValue), \(d.candidates) candidate host(s))"))
        case .failure(let failure):
            out.placeable = false
            out.excluded = failure.excluded
            out.reasons.append(PolicyReason(rule: "placement:\(strategy.rawValue)", sentence: failure.description))
        }
        out.sentences = out.reasons.map(\.description) + out.excluded.map { "filtered out: \($0)" }
        return out
    }
}
