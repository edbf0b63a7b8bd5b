import Foundation
import HTTPTypes
import Hummingbird
import LumbungAPI
import LumbungCore
import LumbungPKI
import LumbungStore
import Logging
import ServiceLifecycle

/// Registers every `/v1` route. Each handler authorizes by role and OPD before it reads or
/// changes anything; objects of another OPD answer 404 so their names do not leak.
struct Routes {
    let services: ControllerServices

    var ledger: Ledger { services.ledger }

    func register(on router: Router<LumbungContext>) {
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        registerEnrollment(router)
        registerOPDs(router)
        registerHosts(router)
        registerUsers(router)
        registerVMs(router)
        registerVolumes(router)
        registerRequests(router)
        registerReports(router)
        registerPolicy(router)
        registerAgent(router)
    }

    // MARK: Policy

    func policyView() async -> PolicyView {
        let (set, loadedAt) = await ledger.policy
        let attempt = services.policies.lastAttempt
        return PolicyView(
            hash: set.hash, loadedAt: loadedAt, directory: services.config.policyDirectory, sources: set.sources,
            classes: set.quotaClasses.keys.map(\.description).sorted(), strategy: set.placement.strategy.rawValue,
            requestExpiryDays: set.approval.requestExpiryDays, headroomNPlusOne: set.placement.headroom.nPlusOne,
            volumeRetentionDays: set.retention.volumeRetentionDays, auditRetentionDays: set.retention.auditRetentionDays,
            lastAttemptAt: attempt?.at, lastAttemptOK: attempt?.ok, lastErrors: attempt?.errors ?? [])
    }

    func registerPolicy(_ router: Router<LumbungContext>) {
        router.get("/v1/policy") { _, context in
            try context.auth().requirePerson()
            return try json(await policyView())
        }
        router.post("/v1/policy/reload") { _, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            switch await services.policies.reload(by: auth.caller) {
            case .success: return try json(await policyView())
            case .failure(let errors):
                throw APIError(
                    .unprocessableContent, "policy_invalid",
                    "the policy set was not loaded; the running set (unchanged) stays in force. \(errors.errors.count) error(s):\n\(errors)")
            }
        }
    }

    // MARK: Enrollment

    func registerEnrollment(_ router: Router<LumbungContext>) {
        router.get("/v1/enroll/ca") { _, _ in
            try json(CAInfo(name: services.config.name, caPEM: services.ca.certificatePEM, fingerprint: services.ca.fingerprint))
        }
        router.post("/v1/enroll") { request, context in
            let body = try await decodeBody(EnrollRequest.self, request, context)
            return try json(try await services.enroll(body))
        }
        router.post("/v1/renew") { request, context in
            let auth = try context.auth()
            let body = try await decodeBody(RenewRequest.self, request, context)
            return try json(try await services.renew(auth, csr: body.csr))
        }
        router.get("/v1/whoami") { _, context in
            let auth = try context.auth()
            return try json(WhoAmI(principal: auth.principal.description, role: auth.principal.role, opd: auth.principal.opd, certificateNotAfter: auth.notAfter))
        }
    }

    // MARK: OPDs and quota

    func registerOPDs(_ router: Router<LumbungContext>) {
        router.get("/v1/opds") { _, context in
            let auth = try context.auth()
            let scope = try auth.scope(nil)
            let views = await ledger.read { s in
                s.dc.opds.values.filter { scope == nil || $0.id == scope }.sorted { $0.id < $1.id }.map(s.opdView)
            }
            return try json(views)
        }
        router.post("/v1/opds") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let body = try await decodeBody(CreateOPDBody.self, request, context)
            let opd = try await ledger.createOPD(body, by: auth.caller)
            return try json(await ledger.read { $0.opdView(opd) }, status: .created)
        }
        router.get("/v1/opds/:opd") { _, context in
            let auth = try context.auth()
            let id = OPDID(rawValue: try context.param("opd"))
            return try json(try await opdView(auth, id))
        }
        router.get("/v1/quota") { request, context in
            let auth = try context.auth()
            let id = try auth.requiredScope(request.query("opd").map(OPDID.init(rawValue:)), what: "the quota")
            return try json(try await opdView(auth, id))
        }
        router.put("/v1/opds/:opd/quota") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let id = OPDID(rawValue: try context.param("opd"))
            let body = try await decodeBody(SetQuotaBody.self, request, context)
            let opd = try await ledger.setQuota(id, quota: body.quota, change: body.change, quotaClass: body.quotaClass, force: body.force ?? false, by: auth.caller)
            return try json(await ledger.read { $0.opdView(opd) })
        }
    }

    func opdView(_ auth: Authenticated, _ id: OPDID) async throws -> OPDView {
        try auth.requirePerson()
        guard auth.canSee(id) else { throw APIError.notFound("OPD \(id)") }
        guard let view = await ledger.read({ s in s.dc.opds[id].map(s.opdView) }) else { throw APIError.notFound("OPD \(id)") }
        return view
    }

    // MARK: Hosts

    func registerHosts(_ router: Router<LumbungContext>) {
        router.get("/v1/hosts") { _, context in
            try context.auth().requireAdmin()
            return try json(await ledger.read { s in s.dc.hosts.values.sorted { $0.id < $1.id }.map(s.hostView) })
        }
        router.post("/v1/hosts") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let body = try await decodeBody(AddHostBody.self, request, context)
            let host = try await ledger.declareHost(body, by: auth.caller)
            let token = try await services.issueToken(role: .agent, subject: host.id.rawValue, opd: nil, by: auth)
            let view = await ledger.read { $0.hostView(host) }
            return try json(AddHostResponse(host: view, joinToken: token.encoded, tokenExpiresAt: token.expiresAt), status: .created)
        }
        router.get("/v1/hosts/:host") { _, context in
            try context.auth().requireAdmin()
            let id = HostID(rawValue: try context.param("host"))
            guard let view = await ledger.read({ s in s.dc.hosts[id].map(s.hostView) }) else { throw APIError.notFound("host \(id)") }
            return try json(view)
        }
        router.post("/v1/hosts/:host/token") { _, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let id = HostID(rawValue: try context.param("host"))
            guard let view = await ledger.read({ s in s.dc.hosts[id].map(s.hostView) }) else { throw APIError.notFound("host \(id)") }
            let token = try await services.issueToken(role: .agent, subject: id.rawValue, opd: nil, by: auth)
            return try json(AddHostResponse(host: view, joinToken: token.encoded, tokenExpiresAt: token.expiresAt))
        }
        for (path, cordoned) in [("cordon", true), ("uncordon", false)] {
            router.post("/v1/hosts/:host/\(path)") { _, context in
                let auth = try context.auth()
                try auth.requireAdmin()
                let id = HostID(rawValue: try context.param("host"))
                let host = try await ledger.setCordon(id, cordoned: cordoned, by: auth.caller)
                return try json(await ledger.read { $0.hostView(host) })
            }
        }
        router.post("/v1/hosts/:host/labels") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let id = HostID(rawValue: try context.param("host"))
            let body = try await decodeBody(SetHostLabelsBody.self, request, context)
            let host = try await ledger.setLabels(id, set: body.set ?? [:], remove: body.remove ?? [], by: auth.caller)
            return try json(await ledger.read { $0.hostView(host) })
        }
        router.delete("/v1/hosts/:host") { _, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let id = HostID(rawValue: try context.param("host"))
            let view = await ledger.read { s in s.dc.hosts[id].map(s.hostView) }
            // The store revokes the host's certificates and unused join tokens in the same transaction.
            _ = try await ledger.removeHost(id, by: auth.caller)
            guard let view else { throw APIError.notFound("host \(id)") }
            return try json(view)
        }
    }

    // MARK: Users

    func registerUsers(_ router: Router<LumbungContext>) {
        router.get("/v1/users") { _, context in
            try context.auth().requireAdmin()
            return try json(try await services.listUsers())
        }
        router.post("/v1/users") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let body = try await decodeBody(AddUserBody.self, request, context)
            return try json(try await services.addUser(body, by: auth), status: .created)
        }
        router.post("/v1/users/:name/revoke") { _, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let name = UserID(rawValue: try context.param("name"))
            return try json(try await services.revokeUser(name, by: auth))
        }
        router.post("/v1/users/:name/token") { _, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let name = UserID(rawValue: try context.param("name"))
            return try json(try await services.newUserToken(name, by: auth))
        }
    }

    // MARK: VMs

    func registerVMs(_ router: Router<LumbungContext>) {
        router.get("/v1/vms") { request, context in
            let auth = try context.auth()
            let scope = try auth.scope(request.query("opd").map(OPDID.init(rawValue:)))
            let vms = await ledger.read { s in
                s.dc.vms.values.filter { $0.state != .deleted && (scope == nil || $0.opd == scope) }
                    .sorted { ($0.opd, $0.spec.name) < ($1.opd, $1.spec.name) }
            }
            return try json(vms)
        }
        router.post("/v1/vms") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let body = try await decodeBody(CreateVMBody.self, request, context)
            let spec = body.vm.spec(defaultPool: try await defaultPool(body.vm.pool))
            let (vm, text) = try await ledger.allocateVMWithJSON(opd: body.opd, spec: spec, force: body.force ?? false, by: auth.caller)
            if let text { return json(text: text, status: .created) }
            return try json(vm, status: .created)
        }
        router.post("/v1/vms/place") { request, context in
            let auth = try context.auth()
            let body = try await decodeBody(PlaceVMBody.self, request, context)
            let opd = try auth.requiredScope(body.opd, what: "the placement dry run")
            let spec = body.vm.spec(defaultPool: try await defaultPool(body.vm.pool))
            return try json(try await ledger.explainPlacement(opd: opd, spec: spec))
        }
        router.get("/v1/vms/:ref") { request, context in
            let auth = try context.auth()
            return try json(try await resolveVM(auth, try context.param("ref"), request.query("opd")))
        }
        for (path, power) in [("start", PowerState.running), ("stop", PowerState.stopped)] {
            router.post("/v1/vms/:ref/\(path)") { request, context in
                let auth = try context.auth()
                let vm = try await resolveVM(auth, try context.param("ref"), request.query("opd"))
                return try json(try await ledger.setPower(vm.id, power: power, by: auth.caller))
            }
        }
        router.post("/v1/vms/:ref/resize") { request, context in
            let auth = try context.auth()
            let vm = try await resolveVM(auth, try context.param("ref"), request.query("opd"))
            try auth.requireAdmin()
            let body = try await decodeBody(ResizeVMBody.self, request, context)
            return try json(try await ledger.resizeVM(vm.id, vcpu: body.vcpu, memory: body.memory, disk: body.disk, by: auth.caller))
        }
        router.delete("/v1/vms/:ref") { request, context in
            let auth = try context.auth()
            let vm = try await resolveVM(auth, try context.param("ref"), request.query("opd"))
            try requireDeleter(auth)
            return try json(try await ledger.deleteVM(vm.id, by: auth.caller))
        }
    }

    /// The pool a VM's disk uses when the caller names none: the configured default pool if
    /// any host has it, else the only pool of the data center.
    func defaultPool(_ given: PoolName?) async throws -> PoolName {
        if let given { return given }
        let preferred = services.config.defaultPool
        let pools = await ledger.read { s in Set(s.dc.hosts.values.flatMap { $0.effective.pools.keys }) }
        if pools.contains(preferred) { return preferred }
        if pools.count == 1, let only = pools.first { return only }
        let list = pools.sorted().map(\.rawValue).joined(separator: ", ")
        throw APIError.badRequest("missing_pool", "name the disk's pool (--pool); known pools: \(list.isEmpty ? "none" : list)")
    }

    func requireDeleter(_ auth: Authenticated) throws {
        guard auth.principal.role == .admin || auth.principal.role == .approver else {
            throw APIError.forbidden("deleting needs the admin role or the OPD's approver role; file a request or ask your approver")
        }
    }

    /// Finds a VM by id or by name, visible to the caller (404 otherwise).
    func resolveVM(_ auth: Authenticated, _ ref: String, _ opdParam: String?) async throws -> VM {
        try await resolve(auth, ref, opdParam, what: "VM") { s in
            (s.dc.vms[VMID(rawValue: ref)], s.dc.vms.values.filter { $0.spec.name == ref })
        } opd: { $0.opd } live: { $0.state != .deleted }
    }

    /// Finds an object by id, else by name within the caller's scope; several matches across
    /// OPDs (admins without --opd) are ambiguous; invisible ones answer 404.
    func resolve<T: Sendable>(
        _ auth: Authenticated, _ ref: String, _ opdParam: String?, what: String,
        candidates: @escaping @Sendable (LedgerState) -> (byID: T?, byName: [T]), opd: @escaping @Sendable (T) -> OPDID,
        live: @escaping @Sendable (T) -> Bool
    ) async throws -> T {
        let scope = try auth.scope(opdParam.map(OPDID.init(rawValue:)))
        let found: [T] = await ledger.read { s in
            let (byID, byName) = candidates(s)
            if let byID, live(byID) { return [byID] }
            return byName.filter(live)
        }
        let visible = found.filter { auth.canSee(opd($0)) && (scope == nil || opd($0) == scope) }
        if visible.count > 1 {
            let opds = visible.map { opd($0).rawValue }.sorted().joined(separator: ", ")
            throw APIError.conflict("ambiguous", "several OPDs have a \(what) named \(ref) (\(opds)); give --opd")
        }
        guard let object = visible.first else { throw APIError.notFound("\(what) \(ref)") }
        return object
    }

    // MARK: Volumes

    func registerVolumes(_ router: Router<LumbungContext>) {
        router.get("/v1/volumes") { request, context in
            let auth = try context.auth()
            let scope = try auth.scope(request.query("opd").map(OPDID.init(rawValue:)))
            let volumes = await ledger.read { s in
                s.dc.volumes.values.filter { $0.state != .deleted && (scope == nil || $0.opd == scope) }
                    .sorted { ($0.opd, $0.spec.name) < ($1.opd, $1.spec.name) }
            }
            return try json(volumes)
        }
        router.post("/v1/volumes") { request, context in
            let auth = try context.auth()
            try auth.requireAdmin()
            let body = try await decodeBody(CreateVolumeBody.self, request, context)
            return try json(
                try await ledger.allocateVolume(opd: body.opd, spec: body.volume.spec, force: body.force ?? false, by: auth.caller), status: .created)
        }
        router.get("/v1/volumes/:ref") { request, context in
            let auth = try context.auth()
            return try json(try await resolveVolume(auth, try context.param("ref"), request.query("opd")))
        }
        router.post("/v1/volumes/:ref/resize") { request, context in
            let auth = try context.auth()
            let volume = try await resolveVolume(auth, try context.param("ref"), request.query("opd"))
            try auth.requireAdmin()
            let body = try await decodeBody(ResizeVolumeBody.self, request, context)
            return try json(try await ledger.resizeVolume(volume.id, size: body.size, by: auth.caller))
        }
        router.delete("/v1/volumes/:ref") { request, context in
            let auth = try context.auth()
            let volume = try await resolveVolume(auth, try context.param("ref"), request.query("opd"))
            try requireDeleter(auth)
            return try json(try await ledger.deleteVolume(volume.id, by: auth.caller))
        }
    }

    func resolveVolume(_ auth: Authenticated, _ ref: String, _ opdParam: String?) async throws -> Volume {
        try await resolve(auth, ref, opdParam, what: "volume") { s in
            (s.dc.volumes[VolumeID(rawValue: ref)], s.dc.volumes.values.filter { $0.spec.name == ref })
        } opd: { $0.opd } live: { $0.state != .deleted }
    }

    // MARK: Requests

    func registerRequests(_ router: Router<LumbungContext>) {
        router.get("/v1/requests") { request, context in
            let auth = try context.auth()
            let scope = try auth.scope(request.query("opd").map(OPDID.init(rawValue:)))
            var stateFilter: RequestState?
            if let text = request.query("state") {
                guard let s = RequestState(rawValue: text) else {
                    let accepted = RequestState.allCases.map(\.rawValue).joined(separator: ", ")
                    throw APIError.badRequest("invalid_state", "unknown request state '\(text)'; use one of \(accepted)")
                }
                stateFilter = s
            }
            let wanted = stateFilter
            let list = await ledger.read { s in
                s.requests.values.filter { (scope == nil || $0.opd == scope) && (wanted == nil || $0.state == wanted) }
                    .sorted { $0.id < $1.id }
            }
            return try json(list)
        }
        router.post("/v1/requests") { request, context in
            let auth = try context.auth()
            try auth.requirePerson()
            let body = try await decodeBody(FileRequestBody.self, request, context)
            let opd = try auth.requiredScope(body.opd, what: "the request")
            var vmPayload: RequestPayload?
            if let vm = body.vm { vmPayload = .vm(vm.spec(defaultPool: try await defaultPool(vm.pool))) }
            let payloads = [vmPayload, body.volume.map { .volume($0.spec) }, body.quota.map { .quota($0) }].compactMap { $0 }
            guard payloads.count == 1, let payload = payloads.first else {
                throw APIError.badRequest("invalid_request", "a request asks for exactly one of: vm, volume, quota")
            }
            let filed = try await ledger.fileRequest(opd: opd, payload: payload, reason: body.reason, letter: body.letter, by: auth.caller)
            return try json(filed, status: .created)
        }
        router.get("/v1/requests/:id") { _, context in
            let auth = try context.auth()
            return try json(try await visibleRequest(auth, try context.param("id")))
        }
        router.post("/v1/requests/:id/approve") { request, context in
            let auth = try context.auth()
            let r = try await visibleRequest(auth, try context.param("id"))
            let body = try await decodeOptionalBody(DecisionBody.self, request, context)
            try requireApprover(auth, r)
            return try json(try await ledger.approve(r.id, reason: body?.reason, override: body?.override ?? false, by: auth.caller))
        }
        router.get("/v1/requests/:id/explain") { _, context in
            let auth = try context.auth()
            let r = try await visibleRequest(auth, try context.param("id"))
            return try json(try await ledger.explain(r.id))
        }
        router.post("/v1/requests/:id/reject") { request, context in
            let auth = try context.auth()
            let r = try await visibleRequest(auth, try context.param("id"))
            let body = try await decodeOptionalBody(DecisionBody.self, request, context)
            try requireApprover(auth, r)
            guard let reason = body?.reason?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty else {
                throw APIError.badRequest("invalid_reason", "rejecting needs a reason (--reason \"…\")")
            }
            return try json(try await ledger.decide(r.id, event: .reject, reason: reason, by: auth.caller))
        }
        router.post("/v1/requests/:id/cancel") { request, context in
            let auth = try context.auth()
            let r = try await visibleRequest(auth, try context.param("id"))
            let body = try await decodeOptionalBody(DecisionBody.self, request, context)
            let isRequester: Bool = if case .user(let u, _, _) = auth.principal { u == r.requestedBy } else { false }
            guard isRequester || auth.principal.role == .admin || auth.principal.role == .approver else {
                throw APIError.forbidden("only the requester, the OPD's approver or an admin may cancel request \(r.id)")
            }
            return try json(try await ledger.decide(r.id, event: .cancel, reason: body?.reason, by: auth.caller))
        }
    }

    func visibleRequest(_ auth: Authenticated, _ text: String) async throws -> ResourceRequest {
        try auth.requirePerson()
        guard let n = Int64(text) else { throw APIError.badRequest("invalid_id", "request id '\(text)' is not a number") }
        let id = RequestID(rawValue: n)
        guard let r = await ledger.read({ $0.requests[id] }), auth.canSee(r.opd) else { throw APIError.notFound("request \(text)") }
        return r
    }

    /// Admins decide every level; an OPD's approver only while the approver level is next (a
    /// quota request under the built-in rules needs an admin). The ledger checks the level again
    /// when it decides.
    func requireApprover(_ auth: Authenticated, _ r: ResourceRequest) throws {
        switch auth.principal.role {
        case .admin: return
        case .approver:
            guard r.remainingLevels.first == .approver else {
                throw APIError.forbidden(
                    "request \(r.id) needs \(levelsText(r.remainingLevels)) (approval rule \(r.rule ?? "none")); the OPD's approver cannot decide it")
            }
        default:
            throw APIError.forbidden("deciding requests needs the admin role or the OPD's approver role")
        }
    }

    // MARK: Capacity and audit

    func registerReports(_ router: Router<LumbungContext>) {
        router.get("/v1/capacity") { _, context in
            try context.auth().requireAdmin()
            return try json(await ledger.read { $0.capacityView() })
        }
        router.get("/v1/audit") { request, context in
            try context.auth().requireAdmin()
            let after = request.query("after").flatMap { Int64($0) }
            let limit = min(max(request.query("limit").flatMap { Int($0) } ?? 100, 1), 10_000)
            return try json(try services.auditEntries(after: after, limit: limit))
        }
        router.get("/v1/audit/verify") { _, context in
            try context.auth().requireAdmin()
            return try json(try services.verifyAudit())
        }
    }

    // MARK: Agent protocol

    func registerAgent(_ router: Router<LumbungContext>) {
        router.get("/v1/agent/desired") { request, context in
            let auth = try context.auth()
            let host = try agentHost(auth, request.query("host"))
            var after: Int64?
            if let text = request.query("after") {
                guard let n = Int64(text) else { throw APIError.badRequest("invalid_query", "after=\(text) is not a number") }
                after = n
            }
            let timeout = min(max(request.query("timeout").flatMap { Int($0) } ?? 30, 0), 120)
            if let after {
                // A controller shutting down answers its long-polls at once instead of holding the
                // shutdown for up to their timeout; the agent hears that it is going away.
                await cancelWhenGracefulShutdown {
                    await services.hub.wait(for: host, after: after, timeout: .seconds(timeout))
                }
                if Task.isShuttingDownGracefully {
                    throw APIError(.serviceUnavailable, "shutting_down", "the controller is shutting down; keep the last desired state and retry")
                }
            }
            guard let desired = await ledger.read({ s in s.dc.hosts[host] == nil ? nil : s.desiredState(for: host) }) else {
                throw APIError.notFound("host \(host)")
            }
            return try json(desired)
        }
        router.post("/v1/agent/report") { request, context in
            let auth = try context.auth()
            let body = try await decodeBody(AgentReport.self, request, context)
            _ = try agentHost(auth, body.host.rawValue)
            let version = try await ledger.report(body, by: auth.caller)
            return try json(ReportAck(desiredVersion: version))
        }
    }

    /// An agent may speak only for its own host.
    func agentHost(_ auth: Authenticated, _ requested: String?) throws -> HostID {
        guard case .host(let own) = auth.principal else {
            throw APIError.forbidden("the /v1/agent routes are for host agents only")
        }
        if let requested, requested != own.rawValue {
            throw APIError.forbidden("host \(own)'s certificate cannot act for host \(requested)")
        }
        return own
    }
}
