import Foundation
import LumbungAPI
import LumbungCore
import LumbungStore

// Requests and their approval under the policy set's approval rules.
//
// At filing, the first matching rule decides (``ApprovalPolicy/approvalDecision(for:)``):
// - `automatic`: the request is approved and fulfilled in the same ledger operation, by the same
//   code as an admin's approval; when it does not fit (quota, capacity) nothing is stored and
//   the refusal says why;
// - `approver`, `admin`, `approver+admin`: the request waits, with those levels to go;
// - `refuse`: nothing is stored; the answer is `approval_refused` with the rule's sentence.
//
// Who may approve a level:
// - `approver`: the OPD's approver, or an admin standing in (as before approval rules);
// - `admin`: only an admin;
// - `approver+admin`: the OPD's approver first (the request stays pending and records the
//   approval), then an admin. An admin may not skip the approver unless the approval says
//   `override` (`lumbung request approve 7 --override`): both levels are then recorded as the
//   admin's, the approver's marked `override`, and the audit action is `request.approve.override`.
// Rejecting follows the same rule: the OPD's approver may reject only while the approver level
// is next; an admin may always reject.

/// How filing a request ended: stored, or refused by an approval rule (audited, nothing stored).
enum FilingOutcome: Sendable {
    case filed(ResourceRequest)
    case refused(APIError)
}

/// The audit record of a request an approval rule refused (it is not stored as a request).
struct RefusedRequest: Encodable {
    var opd: OPDID
    var payload: RequestPayload
    var reason: String
    var letter: String?
    var rule: String
    var refusal: String
}

extension Ledger {
    /// Files a request for the OPD and applies the approval rules at once (see the comment at the
    /// top of this file). `letter` is the official letter number (*nomor surat*).
    public func fileRequest(
        opd: OPDID, payload: RequestPayload, reason: String, letter: String? = nil, by caller: Caller
    ) async throws -> ResourceRequest {
        let outcome: FilingOutcome = try await perform { state, now, out in
            let owner = try state.opd(opd)
            let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw APIError.badRequest("invalid_reason", "a request needs a reason (--reason \"…\")") }
            guard trimmed.count <= 2000 else { throw APIError.badRequest("invalid_reason", "the reason is longer than 2000 characters") }
            let letter = try validateLetter(letter)
            try state.validatePayload(payload, opd: opd)
            guard case .user(let user, _, _) = caller.principal else { throw APIError.forbidden("only people file requests") }
            let decision = state.policy.approval.approvalDecision(for: state.approvalQuery(payload, opd: owner))
            let levels: [ApprovalLevel]
            switch decision {
            case .refused(let rule, let why):
                // Nothing is stored, but the decision is: audited with the rule, the payload and the reason.
                let refusal = APIError(.conflict, "approval_refused", "approval rule \(rule) refuses this request: \(why)")
                out.record(
                    caller, "request.refuse", "opd:\(opd)", before: Optional<RefusedRequest>.none,
                    after: RefusedRequest(opd: opd, payload: payload, reason: trimmed, letter: letter, rule: rule, refusal: refusal.detail.message),
                    at: now)
                return .refused(refusal)
            case .automatic:
                levels = []
            case .needs(let needed, _):
                levels = needed
            }
            let id = RequestID(rawValue: state.nextRequestID)
            let expiresAt =
                self.settings.requestTTL.map { now.addingTimeInterval(Double($0.components.seconds)) }
                ?? state.policy.approval.expiresAt(createdAt: now)
            var request = ResourceRequest(
                id: id, opd: opd, payload: payload, reason: trimmed, requestedBy: user, state: .pending, createdAt: now,
                expiresAt: expiresAt, rule: decision.rule, letter: letter, levels: levels, approvals: [])
            out.record(caller, "request.file", "request:\(id)", before: Optional<ResourceRequest>.none, after: request, at: now, request: id)
            if case .automatic(let rule) = decision {
                // Fulfil first: it throws before any change when the request does not fit.
                let before = request
                let result = try state.fulfil(request, caller: .system, now: now, out: &out, strategy: self.settings.strategy)
                do { request.state = try RequestState.transition(from: .pending, event: .approve) } catch { throw APIError(error) }
                do { request.state = try RequestState.transition(from: request.state, event: .fulfil) } catch { throw APIError(error) }
                request.decidedBy = Caller.system.principal.description
                request.decidedAt = now
                request.decisionReason = "approved automatically by approval rule \(rule)"
                request.result = result
                out.record(.system, "request.approve.automatic", "request:\(id)", before: before, after: request, at: now, request: id)
            }
            state.nextRequestID += 1
            state.requests[id] = request
            out.changes.insert(.requestFiled(request), at: 0)
            return .filed(request)
        }
        switch outcome {
        case .filed(let request): return request
        case .refused(let error): throw error
        }
    }

    /// Approves a pending request at its next level (see the comment at the top of this file).
    /// At the last level it is fulfilled in the same transaction: the VM or volume is placed and
    /// charged, or the quota raised. If it does not fit, nothing changes and the refusal says why.
    public func approve(_ id: RequestID, reason: String?, override: Bool = false, by caller: Caller) async throws -> ResourceRequest {
        try await perform { state, now, out in
            var request = try state.request(id)
            if request.state == .pending, request.expiresAt <= now {
                throw APIError.conflict("request_expired", "request \(id) expired on \(iso(request.expiresAt)); file a new one")
            }
            if request.state != .pending {
                do { _ = try RequestState.transition(from: request.state, event: .approve) } catch { throw APIError(error) }
            }
            let given = try approvalsGiven(request, by: caller, reason: reason, override: override, now: now)
            let before = request
            request.approvals = (request.approvals ?? []) + given
            let overridden = given.contains { $0.override == true }
            if !request.remainingLevels.isEmpty {
                // A level approved; the next one decides.
                state.requests[id] = request
                out.changes.append(.requestUpdated(request))
                out.record(caller, "request.approve.\(given.last!.level.rawValue)", "request:\(id)", before: before, after: request, at: now, request: id)
                return request
            }
            let result = try state.fulfil(request, caller: caller, now: now, out: &out, strategy: self.settings.strategy)
            do { request.state = try RequestState.transition(from: request.state, event: .approve) } catch { throw APIError(error) }
            do { request.state = try RequestState.transition(from: request.state, event: .fulfil) } catch { throw APIError(error) }
            request.decidedBy = caller.principal.description
            request.decidedAt = now
            request.decisionReason = reason
            request.result = result
            state.requests[id] = request
            out.changes.append(.requestUpdated(request))
            out.record(
                caller, overridden ? "request.approve.override" : "request.approve", "request:\(id)", before: before, after: request, at: now,
                request: id)
            return request
        }
    }

    /// Rejects (`reject`), withdraws (`cancel`) a pending request. The OPD's approver may reject
    /// only while the approver level is next.
    public func decide(_ id: RequestID, event: RequestEvent, reason: String?, by caller: Caller) async throws -> ResourceRequest {
        try await perform { state, now, out in
            var request = try state.request(id)
            let before = request
            if request.state == .pending, request.expiresAt <= now, event != .expire {
                throw APIError.conflict("request_expired", "request \(id) expired on \(iso(request.expiresAt))")
            }
            if event == .reject, request.state == .pending, caller.principal.role == .approver, request.remainingLevels.first != .approver {
                throw APIError.forbidden(
                    "request \(id) waits for \(levelsText(request.remainingLevels)) (approval rule \(request.rule ?? "none")); the OPD's approver cannot reject it")
            }
            do { request.state = try RequestState.transition(from: request.state, event: event) } catch { throw APIError(error) }
            request.decidedBy = caller.principal.description
            request.decidedAt = now
            request.decisionReason = reason
            state.requests[id] = request
            out.changes.append(.requestUpdated(request))
            out.record(caller, "request.\(event)", "request:\(id)", before: before, after: request, at: now, request: id)
            return request
        }
    }

    /// Why the request is decided as it is: the approval rules tried, the quota fit and the
    /// placement, evaluated against the state as it is now.
    public func explain(_ id: RequestID) async throws -> RequestExplanation {
        let strategy = settings.strategy
        let result = await read { state -> Result<RequestExplanation, APIError> in
            guard let request = state.requests[id] else { return .failure(APIError.notFound("request \(id)")) }
            return .success(state.explanation(request, strategy: strategy))
        }
        return try result.get()
    }
}

/// Checks a letter number (*nomor surat*): nil or blank → nil; refused with `invalid_letter`.
func validateLetter(_ letter: String?) throws -> String? {
    switch LetterNumber.check(letter) {
    case .success(let text): return text
    case .failure(let error): throw APIError.badRequest("invalid_letter", error.message)
    }
}

/// `the OPD's approver, then an admin`.
func levelsText(_ levels: [ApprovalLevel]) -> String {
    levels.isEmpty ? "nobody" : levels.map(\.noun).joined(separator: ", then ")
}

/// The approvals `caller` gives now, or why they may not.
private func approvalsGiven(
    _ request: ResourceRequest, by caller: Caller, reason: String?, override: Bool, now: Date
) throws -> [RequestApproval] {
    let remaining = request.remainingLevels
    let by = caller.principal.description
    let rule = request.rule ?? "none"
    guard let next = remaining.first else {
        throw APIError.conflict("illegal_transition", "request \(request.id) has every approval it needs")
    }
    switch caller.principal.role {
    case .approver:
        guard next == .approver else {
            throw APIError.forbidden(
                "request \(request.id) waits for \(levelsText(remaining)) (approval rule \(rule)); the OPD's approver cannot approve it")
        }
        return [RequestApproval(level: .approver, by: by, at: now, reason: reason)]
    case .admin:
        if next == .admin { return [RequestApproval(level: .admin, by: by, at: now, reason: reason)] }
        // The approver's level is next.
        if remaining.count == 1 {
            // One level `approver`: an admin may stand in, as before approval rules.
            return [RequestApproval(level: .approver, by: by, at: now, reason: reason)]
        }
        guard override else {
            throw APIError.conflict(
                "approval_order",
                "request \(request.id) needs \(levelsText(remaining)) (approval rule \(rule)); the OPD's approver has not approved it yet. Wait for the approver, or decide both levels as admin with --override (audited as an override)")
        }
        return remaining.map { RequestApproval(level: $0, by: by, at: now, override: $0 == .approver ? true : nil, reason: reason) }
    default:
        throw APIError.forbidden("deciding requests needs the admin role or the OPD's approver role")
    }
}

extension LedgerState {
    /// The approval rules' view of a request of `opd`, against its quota and use now.
    func approvalQuery(_ payload: RequestPayload, opd: OPD) -> ApprovalQuery {
        let classQuota = opd.quotaClass.flatMap { policy.quotaClass($0)?.quota }
        return ApprovalQuery(
            payload: payload, opd: opd.id, opdClass: opd.quotaClass, quota: opd.quota, usage: dc.usage(of: opd.id), classQuota: classQuota)
    }

    /// Fulfils an approved request: places and charges the VM or volume, or changes the quota.
    /// Throws before any change when it does not fit. Returns the id of what it made.
    mutating func fulfil(
        _ request: ResourceRequest, caller: Caller, now: Date, out: inout OpOutput, strategy: PlacementStrategy
    ) throws -> String {
        switch request.payload {
        case .vm(let spec):
            return try allocateVM(opd: request.opd, spec: spec, caller: caller, now: now, request: request.id, out: &out, strategy: strategy).id.rawValue
        case .volume(let spec):
            return try allocateVolume(opd: request.opd, spec: spec, caller: caller, now: now, request: request.id, out: &out, strategy: strategy).id
                .rawValue
        case .quota(let delta):
            var opd = try self.opd(request.opd)
            let newQuota = (opd.quota + delta).normalized
            if case .failure(let refusal) = dc.decideQuotaChange(opd: opd.id, newQuota: newQuota, force: false) {
                throw APIError(refusal)
            }
            let opdBefore = opd
            opd.quota = newQuota
            dc.upsertOPD(opd)
            out.changes.append(.quotaChanged(opd.id, newQuota))
            out.record(caller, "opd.set-quota", "opd:\(opd.id)", before: opdBefore, after: opd, at: now, request: request.id)
            return opd.id.rawValue
        }
    }

    /// The quota of the class `name` of the running policy set, or an error listing the known classes.
    func classQuota(_ name: QuotaClassName) throws -> ResourceVector {
        guard let cls = policy.quotaClass(name) else {
            throw APIError.badRequest("unknown_class", "there is no quota class '\(name)'; known classes: \(knownClasses)")
        }
        return cls.quota
    }

    /// `besar, kecil, sedang` (or `none`).
    var knownClasses: String {
        let names = policy.quotaClasses.keys.map(\.rawValue).sorted()
        return names.isEmpty ? "none" : names.joined(separator: ", ")
    }

    /// For a new policy set: the OPDs that follow a class (quota equal to the running set's class
    /// quota) whose class quota changes, with their new quota; throws `class_conflict` listing
    /// every OPD the new set would put below its use or whose class it drops.
    /// The OPDs whose quota follows their class (equals its quota in `previous`, class name →
    /// quota) and changes with `set`, with their new quota; throws `class_conflict` listing every
    /// OPD the new set would put below its use or whose class it drops.
    func classChanges(to set: PolicySet, previous: [String: ResourceVector]) throws -> [(opd: OPD, quota: ResourceVector)] {
        var uses: [OPDClassUse] = []
        var changes: [(opd: OPD, quota: ResourceVector)] = []
        for opd in dc.opds.values.sorted(by: { $0.id < $1.id }) {
            guard let name = opd.quotaClass else { continue }
            guard let new = set.quotaClass(name) else {
                uses.append(OPDClassUse(opd: opd.id, quotaClass: name, usage: dc.usage(of: opd.id)))
                continue
            }
            let follows = previous[name.rawValue].map { $0.normalized == opd.quota.normalized } ?? false
            guard follows, new.quota.normalized != opd.quota.normalized else { continue }
            uses.append(OPDClassUse(opd: opd.id, quotaClass: name, usage: dc.usage(of: opd.id)))
            changes.append((opd: opd, quota: new.quota.normalized))
        }
        let conflicts = set.classConflicts(uses)
        if !conflicts.isEmpty {
            throw APIError.conflict(
                "class_conflict",
                "the new quota classes would put \(conflicts.count) OPD(s) below what they use, so the running set stays: "
                    + conflicts.map(\.description).joined(separator: "; "))
        }
        return changes
    }

    /// The explanation of a request (see ``Ledger/explain(_:)``).
    func explanation(_ request: ResourceRequest, strategy: PlacementStrategy) -> RequestExplanation {
        var approvalReasons: [PolicyReason] = []
        var decisionText = "the OPD no longer exists"
        var decidingRule = ApprovalPolicy.fallbackRuleName
        var quotaLines: [String] = []
        var placementLines: [String] = []
        var host: HostID?
        var score: Double?
        if let opd = dc.opds[request.opd] {
            let query = approvalQuery(request.payload, opd: opd)
            let evaluation = policy.approval.evaluate(query)
            approvalReasons = evaluation.reasons
            decisionText = evaluation.decision.description
            decidingRule = evaluation.decision.rule
            quotaLines = quotaSentences(request.payload, opd: opd, query: query)
        }
        var levelLines: [String] = []
        if let rule = request.rule {
            levelLines.append("filed under approval rule \(rule): " + (request.requiredLevels.isEmpty ? "approved automatically" : "needs \(levelsText(request.requiredLevels))"))
        }
        for a in request.approvals ?? [] {
            levelLines.append("level \(a.level.rawValue) approved by \(a.by) at \(iso(a.at))\(a.override == true ? " (admin override)" : "")")
        }
        if request.state == .pending { levelLines.append("waits for \(levelsText(request.remainingLevels)) until \(iso(request.expiresAt))") }

        var placedText: String?
        switch request.payload {
        case .vm:
            if let vm = request.result.flatMap({ dc.vms[VMID(rawValue: $0)] }) {
                placedText = "fulfilled: VM \(vm.id) was placed on host \(vm.host.map(\.rawValue) ?? "none")"
                host = vm.host
            }
        case .volume:
            if let volume = request.result.flatMap({ dc.volumes[VolumeID(rawValue: $0)] }) {
                placedText = "fulfilled: volume \(volume.id) was placed on host \(volume.host.map(\.rawValue) ?? "none")"
                host = volume.host
            }
        case .quota:
            break
        }
        if let placedText {
            placementLines.append(placedText)
        } else {
            var decision: Result<PlacementDecision, PlacementFailure>?
            let opdClass = dc.opds[request.opd]?.quotaClass
            switch request.payload {
            case .vm(let spec):
                switch policy.placement.constrain(spec, opd: request.opd, opdClass: opdClass, tags: spec.tags) {
                case .success(let c):
                    placementLines += c.reasons.map(\.description)
                    decision = dc.placeVM(c.spec, opd: request.opd, strategy: strategy, explain: true)
                case .failure(let refusal):
                    placementLines += refusal.reasons.map(\.description)
                }
            case .volume(let spec):
                switch policy.placement.constrainVolume(opd: request.opd, opdClass: opdClass, tags: spec.tags) {
                case .success(let c):
                    placementLines += c.reasons.map(\.description)
                    decision = dc.placeVolume(
                        spec, strategy: strategy, explain: true, requiredLabels: c.requiredLabels, forbiddenLabels: c.forbiddenLabels)
                case .failure(let refusal):
                    placementLines += refusal.reasons.map(\.description)
                }
            case .quota: decision = nil
            }
            switch decision {
            case .success(let d):
                placementLines += d.excluded.map { "filtered out: \($0)" }
                placementLines.append(
                    "host \(d.host) would be chosen (\(strategy.rawValue) score \(String(format: "%.3f", d.score)), best of \(d.candidates) candidate host(s))")
                host = d.host
                score = d.score
            case .failure(let f):
                placementLines += f.excluded.map { "filtered out: \($0)" }
                placementLines.append(f.description)
            case nil:
                if case .quota = request.payload { placementLines.append("a quota request is not placed") }
            }
        }
        return RequestExplanation(
            id: request.id, state: request.state, rule: request.rule, decision: decisionText, decidingRule: decidingRule,
            approval: approvalReasons, levels: levelLines, quota: quotaLines, placement: placementLines, host: host, score: score)
    }

    private func quotaSentences(_ payload: RequestPayload, opd: OPD, query: ApprovalQuery) -> [String] {
        let usage = dc.usage(of: opd.id)
        let left = (opd.quota - usage).normalized
        var lines: [String] = []
        let classText = opd.quotaClass.map { " (class \($0))" } ?? ""
        switch payload {
        case .vm(let spec):
            lines.append(
                "the VM asks for \(spec.vcpu) vCPU, \(spec.memory) of memory and a \(spec.disk) disk in pool \(spec.pool); \(opd.id)\(classText) has \(left.vcpu) vCPU, \(left.memory) of memory, \(left.storage[spec.pool] ?? .zero) of storage in pool \(spec.pool) and \(left.vms) VM(s) left")
        case .volume(let spec):
            lines.append(
                "the volume asks for \(spec.size) in pool \(spec.pool); \(opd.id)\(classText) has \(left.storage[spec.pool] ?? .zero) of storage in pool \(spec.pool) and \(left.volumes) volume(s) left")
        case .quota(let delta):
            let raised = (opd.quota + delta).normalized
            lines.append("the request changes \(opd.id)'s quota\(classText) from \(opd.quota.vcpu) to \(raised.vcpu) vCPU and from \(opd.quota.memory) to \(raised.memory) of memory")
        }
        if let s = query.quotaShortfall {
            lines.append("beyond the quota: \(s)")
        } else {
            lines.append(payload.requestKind == .quota ? "within the class's quota" : "within \(opd.id)'s quota")
        }
        return lines
    }
}
