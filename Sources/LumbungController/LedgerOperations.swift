import Foundation
import LumbungAPI
import LumbungCore
import LumbungStore

/// The ledger's operations. Each checks first (throwing changes nothing) and then applies.
extension Ledger {
    // MARK: OPDs

    /// Creates an OPD with its quota, given as amounts or as a quota class of the policy set.
    public func createOPD(_ body: CreateOPDBody, by caller: Caller) async throws -> OPD {
        try await perform { state, now, out in
            let quota: ResourceVector
            do {
                _ = try Name.validate(body.id.rawValue, what: "OPD name")
                try validateDisplayName(body.displayName)
                switch (body.quota, body.quotaClass) {
                case (let q?, nil):
                    try validateQuota(q)
                    quota = q
                case (nil, let name?):
                    quota = try state.classQuota(name)
                case (.some, .some):
                    throw APIError.badRequest(
                        "invalid_quota", "give either a quota or a quota class (--class), not both; the class sets the whole quota")
                case (nil, nil):
                    throw APIError.badRequest(
                        "missing_quota", "an OPD needs a quota: give amounts (--vcpu, --memory, …) or a quota class (--class); known classes: \(state.knownClasses)")
                }
            } catch let error as CoreError {
                throw APIError(error)
            }
            if state.dc.opds[body.id] != nil {
                throw APIError.conflict("conflict", "OPD \(body.id) already exists")
            }
            let opd = OPD(id: body.id, displayName: body.displayName, quota: quota.normalized, createdAt: now, quotaClass: body.quotaClass)
            state.dc.upsertOPD(opd)
            out.changes.append(.opdCreated(opd))
            out.record(caller, "opd.create", "opd:\(opd.id)", before: Optional<OPD>.none, after: opd, at: now)
            return opd
        }
    }

    /// Replaces an OPD's quota with amounts (the OPD then has a quota of its own and leaves its
    /// class) or with a quota class's (the OPD then follows that class). Lowering below current
    /// use is refused with the numbers unless `force`.
    ///
    /// `change` sets some amounts and keeps the others, read and written in the same ledger
    /// operation (no lost update between two admins changing different amounts).
    public func setQuota(
        _ id: OPDID, quota: ResourceVector?, change: QuotaChange? = nil, quotaClass: QuotaClassName? = nil, force: Bool,
        by caller: Caller
    ) async throws -> OPD {
        try await perform { state, now, out in
            var opd = try state.opd(id)
            let newQuota: ResourceVector
            if quota != nil, change != nil {
                throw APIError.badRequest("invalid_quota", "give either the whole quota or a change of some amounts, not both")
            }
            if let change, change.isEmpty {
                throw APIError.badRequest("missing_quota", "the quota change names no amount; give at least one of vcpu, memory, storage, vms, volumes")
            }
            switch (quota ?? change.map { $0.applied(to: opd.quota) }, quotaClass) {
            case (let q?, nil):
                do { try validateQuota(q) } catch let error as CoreError { throw APIError(error) }
                newQuota = q
            case (nil, let name?):
                newQuota = try state.classQuota(name)
            case (.some, .some):
                throw APIError.badRequest("invalid_quota", "give either a quota or a quota class (--class), not both; the class sets the whole quota")
            case (nil, nil):
                throw APIError.badRequest(
                    "missing_quota", "give the new quota (--vcpu, --memory, …) or a quota class (--class); known classes: \(state.knownClasses)")
            }
            if case .failure(let refusal) = state.dc.decideQuotaChange(opd: id, newQuota: newQuota, force: force) {
                throw APIError(refusal)
            }
            let before = opd
            opd.quota = newQuota.normalized
            opd.quotaClass = quotaClass
            state.dc.upsertOPD(opd)
            out.changes.append(.quotaChanged(id, opd.quota))
            if before.quotaClass != opd.quotaClass { out.changes.append(.opdClassChanged(id, opd.quotaClass)) }
            let action = quotaClass != nil ? "opd.set-class" : "opd.set-quota"
            out.record(caller, force ? action + ".forced" : action, "opd:\(id)", before: before, after: opd, at: now)
            return opd
        }
    }

    // MARK: Hosts

    /// Declares a host; it counts in capacity planning before its agent exists.
    public func declareHost(_ body: AddHostBody, by caller: Caller) async throws -> LumbungCore.Host {
        try await perform { state, now, out in
            do {
                _ = try Name.validate(body.id.rawValue, what: "host name")
                try validateCapacity(body.capacity, what: "host", requirePositive: true)
                if let r = body.reserved { try validateCapacity(r, what: "reserved", requirePositive: false) }
                try validateLabels(body.labels ?? [:])
                if let o = body.overcommit { try validateOvercommit(o) }
            } catch let error as CoreError {
                throw APIError(error)
            }
            if state.dc.hosts[body.id] != nil {
                throw APIError.conflict("conflict", "host \(body.id) already exists")
            }
            if let reserved = body.reserved {
                for pool in reserved.pools.keys where body.capacity.pools[pool] == nil {
                    throw APIError.badRequest("unknown_pool", "reserved storage names pool \(pool), which host \(body.id) does not have")
                }
            }
            var host = Host(
                id: body.id, declared: body.capacity, reserved: body.reserved ?? HostCapacity(), overcommit: body.overcommit ?? .default,
                labels: body.labels ?? [:], connectivity: .enrolled, createdAt: now)
            // Values not given follow the policy set (and are re-derived when a new set is installed).
            host.overcommitFromPolicy = body.overcommit == nil
            host.reservedFromPolicy = body.reserved == nil
            host = state.derivedFromPolicy(host)
            state.dc.upsertHost(host)
            out.changes.append(.hostDeclared(host))
            out.touchedHosts.insert(host.id)
            out.record(caller, "host.declare", "host:\(host.id)", before: Optional<LumbungCore.Host>.none, after: host, at: now)
            return host
        }
    }

    /// Sets and removes labels of a host (`lumbung host label`). Placement and the policy's
    /// constraints see the new labels at once; a host that follows the policy gets the
    /// overcommit ratios of its new labels. VMs and volumes already on the host stay.
    public func setLabels(_ id: HostID, set: [String: String], remove: [String], by caller: Caller) async throws -> LumbungCore.Host {
        try await perform { state, now, out in
            guard var host = state.dc.hosts[id] else { throw APIError.notFound("host \(id)") }
            if set.isEmpty && remove.isEmpty {
                throw APIError.badRequest("missing_labels", "name at least one label to set (key=value) or remove (key-)")
            }
            try validateLabels(set)
            for key in remove {
                do { try HostLabel.validate([key: "x"], what: "label") } catch { throw APIError(error) }
                if set[key] != nil { throw APIError.badRequest("invalid_label", "label \(key) is both set and removed; give it once") }
            }
            let before = host
            for key in remove { host.labels[key] = nil }
            for (key, value) in set { host.labels[key] = value }
            host = state.derivedFromPolicy(host)
            state.dc.upsertHost(host)
            out.changes.append(.hostUpdated(host))
            out.record(caller, "host.label", "host:\(id)", before: before, after: host, at: now)
            return host
        }
    }

    /// Cordons (no new placements) or uncordons a host.
    public func setCordon(_ id: HostID, cordoned: Bool, by caller: Caller) async throws -> LumbungCore.Host {
        try await perform { state, now, out in
            guard var host = state.dc.hosts[id] else { throw APIError.notFound("host \(id)") }
            let before = host
            do { try host.apply(cordoned ? .cordon : .uncordon) } catch { throw APIError(error) }
            state.dc.upsertHost(host)
            out.changes.append(.hostUpdated(host))
            out.record(caller, cordoned ? "host.cordon" : "host.uncordon", "host:\(id)", before: before, after: host, at: now)
            return host
        }
    }

    /// Removes a host that holds nothing any more; its certificates are revoked by the caller.
    public func removeHost(_ id: HostID, by caller: Caller) async throws -> LumbungCore.Host {
        try await perform { state, now, out in
            guard let host = state.dc.hosts[id] else { throw APIError.notFound("host \(id)") }
            let vms = state.dc.vms.values.filter { $0.host == id && $0.state != .deleted }.count
            let volumes = state.dc.volumes.values.filter { $0.host == id && $0.state != .deleted }.count
            if vms + volumes > 0 {
                throw APIError.conflict(
                    "conflict", "host \(id) still holds \(vms) VM(s) and \(volumes) volume(s); delete or move them first (cordon the host to stop new placements)")
            }
            do { _ = try state.dc.removeHost(id) } catch { throw APIError(error) }
            out.changes.append(.hostRemoved(id))
            out.touchedHosts.insert(id)
            out.record(caller, "host.remove", "host:\(id)", before: host, after: Optional<LumbungCore.Host>.none, at: now)
            return host
        }
    }

    // MARK: VMs and volumes

    /// Allocates a VM to an OPD at once (admin), or as the fulfilment of a request. `force`
    /// (admin) allocates past the N+1 headroom rule, audited as `policy.override`.
    public func allocateVM(opd: OPDID, spec: VMSpec, force: Bool = false, by caller: Caller) async throws -> VM {
        try await perform { state, now, out in
            try state.allocateVM(
                opd: opd, spec: spec, caller: caller, now: now, request: nil, out: &out, strategy: self.settings.strategy, force: force)
        }
    }

    /// ``allocateVM(opd:spec:force:by:)``, also returning the VM as the JSON text its audit entry
    /// already holds (`StrictJSON`, the same bytes `json(vm)` would encode), so the route answers
    /// without encoding the VM a second time.
    func allocateVMWithJSON(opd: OPDID, spec: VMSpec, force: Bool = false, by caller: Caller) async throws -> (vm: VM, json: String?) {
        try await perform { state, now, out in
            let vm = try state.allocateVM(
                opd: opd, spec: spec, caller: caller, now: now, request: nil, out: &out, strategy: self.settings.strategy, force: force)
            let target = "vm:\(vm.id)"
            return (vm, out.audit.first { $0.action == "vm.allocate" && $0.target == target }?.after)
        }
    }

    /// Allocates a volume to an OPD at once (admin).
    public func allocateVolume(opd: OPDID, spec: VolumeSpec, force: Bool = false, by caller: Caller) async throws -> Volume {
        try await perform { state, now, out in
            try state.allocateVolume(
                opd: opd, spec: spec, caller: caller, now: now, request: nil, out: &out, strategy: self.settings.strategy, force: force)
        }
    }

    /// Where a VM of `opd` would go and why, under the policy in force; changes nothing.
    public func explainPlacement(opd: OPDID, spec: VMSpec) async throws -> PlacementExplanation {
        let fallback = settings.strategy
        return try await read { state -> Result<PlacementExplanation, APIError> in
            do {
                _ = try state.opd(opd)
                try state.validatePayload(.vm(spec), opd: opd)
                return .success(state.explainVM(spec, opd: opd, fallback: fallback))
            } catch {
                return .failure(APIError(error))
            }
        }.get()
    }

    /// Sets whether a VM should run.
    public func setPower(_ id: VMID, power: PowerState, by caller: Caller) async throws -> VM {
        try await perform { state, now, out in
            guard var vm = state.dc.vms[id], vm.state != .deleted else { throw APIError.notFound("VM \(id)") }
            if vm.state == .deleting {
                throw APIError.conflict("illegal_transition", "VM \(vm.spec.name) is being deleted; it cannot be \(power == .running ? "started" : "stopped")")
            }
            if vm.desiredPower == power {
                return vm
            }
            let before = vm
            vm.desiredPower = power
            state.dc.upsertVM(vm)
            out.changes.append(.vmUpdated(vm))
            if let host = vm.host { state.bumpDesired(host, &out) }
            out.record(caller, power == .running ? "vm.start" : "vm.stop", "vm:\(id)", before: before, after: vm, at: now)
            return vm
        }
    }

    /// Starts deleting a VM: its quota returns now, its host capacity when the agent confirms.
    public func deleteVM(_ id: VMID, by caller: Caller) async throws -> VM {
        try await perform { state, now, out in
            guard var vm = state.dc.vms[id], vm.state != .deleted else { throw APIError.notFound("VM \(id)") }
            if vm.state == .deleting { return vm }
            let before = vm
            do { vm.state = try VMState.transition(from: vm.state, event: .delete) } catch { throw APIError(error) }
            // A host whose agent never reported holds nothing: the VM is gone at once.
            if let host = vm.host, let h = state.dc.hosts[host], h.connectivity == .enrolled {
                vm.state = .deleted
            }
            state.dc.upsertVM(vm)
            out.changes.append(.vmUpdated(vm))
            if let host = vm.host { state.bumpDesired(host, &out) }
            out.record(caller, "vm.delete", "vm:\(id)", before: before, after: vm, at: now)
            return vm
        }
    }

    /// Changes a VM's vCPU, memory and/or disk (the disk only grows); the growth is charged to
    /// the quota and checked against its host.
    public func resizeVM(_ id: VMID, vcpu: Int?, memory: ByteSize?, disk: ByteSize?, by caller: Caller) async throws -> VM {
        try await perform { state, now, out in
            guard var vm = state.dc.vms[id], vm.state != .deleted else { throw APIError.notFound("VM \(id)") }
            // Size limits only: a VM created before a name pattern or image list keeps growing.
            var asked = vm.spec
            asked.vcpu = vcpu ?? asked.vcpu
            asked.memory = memory ?? asked.memory
            asked.disk = disk ?? asked.disk
            if let refusal = state.policy.limits.check(vm: asked, opdClass: state.dc.opds[vm.opd]?.quotaClass) {
                let size = refusal.reasons.filter { $0.rule.hasPrefix("limits:vm.max_") }
                if !size.isEmpty { throw APIError(PolicyRefusal(code: refusal.code, reasons: size)) }
            }
            let spec: VMSpec
            switch state.dc.decideVMResize(id: id, vcpu: vcpu, memory: memory, disk: disk) {
            case .success(let s): spec = s
            case .failure(let refusal): throw APIError(refusal)
            }
            if spec == vm.spec { return vm }
            let before = vm
            vm.spec = spec
            state.dc.upsertVM(vm)
            out.changes.append(.vmUpdated(vm))
            if let host = vm.host { state.bumpDesired(host, &out) }
            out.record(caller, "vm.resize", "vm:\(id)", before: before, after: vm, at: now)
            return vm
        }
    }

    /// Grows a volume (shrinking is refused).
    public func resizeVolume(_ id: VolumeID, size: ByteSize, by caller: Caller) async throws -> Volume {
        try await perform { state, now, out in
            guard var volume = state.dc.volumes[id], volume.state != .deleted else { throw APIError.notFound("volume \(id)") }
            if let refusal = state.policy.limits.check(volumeResize: size) { throw APIError(refusal) }
            if case .failure(let refusal) = state.dc.decideVolumeResize(id: id, newSize: size) { throw APIError(refusal) }
            let before = volume
            volume.spec.size = size
            state.dc.upsertVolume(volume)
            out.changes.append(.volumeUpdated(volume))
            if let host = volume.host { state.bumpDesired(host, &out) }
            out.record(caller, "volume.resize", "volume:\(id)", before: before, after: volume, at: now)
            return volume
        }
    }

    /// Starts deleting a volume; the agent keeps its data for the retention period.
    public func deleteVolume(_ id: VolumeID, by caller: Caller) async throws -> Volume {
        try await perform { state, now, out in
            guard var volume = state.dc.volumes[id], volume.state != .deleted else { throw APIError.notFound("volume \(id)") }
            if volume.state == .deleting { return volume }
            let before = volume
            do { volume.state = try VolumeState.transition(from: volume.state, event: .delete) } catch { throw APIError(error) }
            if let host = volume.host, let h = state.dc.hosts[host], h.connectivity == .enrolled {
                volume.state = .deleted
            }
            state.dc.upsertVolume(volume)
            out.changes.append(.volumeUpdated(volume))
            if let host = volume.host { state.bumpDesired(host, &out) }
            out.record(caller, "volume.delete", "volume:\(id)", before: before, after: volume, at: now)
            return volume
        }
    }

    // (Requests and their approval: Approvals.swift.)

    // MARK: Agents and time

    /// Applies an agent's report: host facts (reported facts win; differences are audited),
    /// connectivity, and what runs. Returns the host's desired version.
    public func report(_ report: AgentReport, by caller: Caller) async throws -> Int64 {
        try await perform { state, now, out in
            guard var host = state.dc.hosts[report.host] else { throw APIError.notFound("host \(report.host)") }
            let before = host
            var changedHost = false
            if let facts = report.facts, facts != host.reported {
                host.reported = facts
                changedHost = true
                out.record(caller, "host.facts", "host:\(host.id)", before: before.reported, after: facts, at: now)
            }
            let wasReady = host.connectivity == .ready
            do { try host.apply(.report(at: now)) } catch { throw APIError(error) }
            if !wasReady {
                changedHost = true
                out.record(caller, "host.ready", "host:\(host.id)", before: before.connectivity, after: HostConnectivity.ready, at: now)
            }
            if host.driver != report.driver {
                host.driver = report.driver
                changedHost = true
            }
            if let images = report.images {
                var valid = Set<String>()
                for image in images {
                    do { valid.insert(try ImageName.validate(image)) } catch {
                        throw APIError(.badRequest, "invalid_name", "the report names an image that is not accepted: \(error)")
                    }
                }
                if valid != host.images {
                    out.record(caller, "host.images", "host:\(host.id)", before: host.images?.sorted(), after: valid.sorted(), at: now)
                    host.images = valid
                    changedHost = true
                }
            }
            state.dc.upsertHost(host)
            if changedHost { out.changes.append(.hostUpdated(host)) }

            for r in report.vms {
                guard var vm = state.dc.vms[r.id], vm.host == host.id else { continue }
                let previous = vm
                vm.observed = Observation(
                    state: r.state, cpuSeconds: r.cpuSeconds, memoryUsed: r.memoryUsed, memoryLimit: r.memoryLimit,
                    diskUsed: r.diskUsed, message: r.message, at: now)
                let event: VMEvent? =
                    switch (r.state, vm.state) {
                    case ("running", .scheduled), ("running", .stopped): .reportRunning
                    case ("stopped", .scheduled), ("stopped", .running): .reportStopped
                    case ("absent", .deleting): .reportDeleted
                    default: nil
                    }
                if let event, let next = try? VMState.transition(from: vm.state, event: event) {
                    vm.state = next
                }
                state.dc.upsertVM(vm)
                if vm.state != previous.state {
                    out.changes.append(.vmUpdated(vm))
                    out.record(caller, "vm.\(vm.state.rawValue)", "vm:\(vm.id)", before: previous.state, after: vm.state, at: now)
                }
            }
            for r in report.volumes {
                guard var volume = state.dc.volumes[r.id], volume.host == host.id else { continue }
                let previous = volume
                volume.observed = Observation(state: r.state, diskUsed: r.used, message: r.message, at: now)
                let event: VolumeEvent? =
                    switch (r.state, volume.state) {
                    case ("ready", .scheduled): .reportReady
                    case ("absent", .deleting): .reportDeleted
                    default: nil
                    }
                if let event, let next = try? VolumeState.transition(from: volume.state, event: event) {
                    volume.state = next
                }
                state.dc.upsertVolume(volume)
                if volume.state != previous.state {
                    out.changes.append(.volumeUpdated(volume))
                    out.record(caller, "volume.\(volume.state.rawValue)", "volume:\(volume.id)", before: previous.state, after: volume.state, at: now)
                }
            }
            if report.complete == true {
                // A complete inventory: what is being deleted and no longer listed is gone.
                let listedVMs = Set(report.vms.map(\.id))
                let listedVolumes = Set(report.volumes.filter { $0.state != "retained" }.map(\.id))
                let goneVMs = state.dc.vms.values.filter { $0.host == host.id && $0.state == .deleting && !listedVMs.contains($0.id) }
                for var vm in goneVMs {
                    let previous = vm.state
                    guard let next = try? VMState.transition(from: vm.state, event: .reportDeleted) else { continue }
                    vm.state = next
                    state.dc.upsertVM(vm)
                    out.changes.append(.vmUpdated(vm))
                    out.record(caller, "vm.deleted", "vm:\(vm.id)", before: previous, after: vm.state, at: now)
                }
                let goneVolumes = state.dc.volumes.values.filter { $0.host == host.id && $0.state == .deleting && !listedVolumes.contains($0.id) }
                for var volume in goneVolumes {
                    let previous = volume.state
                    guard let next = try? VolumeState.transition(from: volume.state, event: .reportDeleted) else { continue }
                    volume.state = next
                    state.dc.upsertVolume(volume)
                    out.changes.append(.volumeUpdated(volume))
                    out.record(caller, "volume.deleted", "volume:\(volume.id)", before: previous, after: volume.state, at: now)
                }
            }
            return host.desiredVersion
        }
    }

    /// Marks hosts without reports for longer than the heartbeat timeout unreachable, and expires
    /// requests past their time. Returns what changed, for logging.
    @discardableResult
    public func sweep() async throws -> (unreachable: [HostID], expired: [RequestID]) {
        let timeout = settings.heartbeatTimeout
        return try await perform { state, now, out in
            var unreachable: [HostID] = []
            var expired: [RequestID] = []
            for host in state.dc.hosts.values where host.connectivity == .ready {
                var h = host
                guard h.heartbeatCheck(now: now, timeout: timeout) else { continue }
                state.dc.upsertHost(h)
                out.changes.append(.hostUpdated(h))
                out.record(Caller.system, "host.unreachable", "host:\(h.id)", before: HostConnectivity.ready, after: HostConnectivity.unreachable, at: now)
                unreachable.append(h.id)
            }
            for request in state.requests.values where request.state == .pending && request.expiresAt <= now {
                var r = request
                r.state = .expired
                r.decidedAt = now
                r.decidedBy = Caller.system.principal.description
                state.requests[r.id] = r
                out.changes.append(.requestUpdated(r))
                out.record(Caller.system, "request.expire", "request:\(r.id)", before: request, after: r, at: now, request: r.id)
                expired.append(r.id)
            }
            return (unreachable, expired)
        }
    }
}

extension Ledger {
    /// Deletes the audit entries older than the policy's audit retention (never less than
    /// ``RetentionPolicy/legalMinimumAuditDays``) from the start of the log, recording an
    /// `audit.prune` entry with the range, count and the hash the chain continues from. Run by
    /// the controller's sweep; returns what was pruned, nil when nothing was old enough.
    @discardableResult
    public func pruneAudit() async throws -> AuditPrune? {
        let (retention, hash) = await read { ($0.policy.retention, $0.policy.hash) }
        let at = now()
        let keepSince = retention.auditKeepSince(now: at)
        let record = AuditInput(
            at: at, actor: Caller.system.principal.description, role: Caller.system.principal.role.rawValue, action: AuditPrune.action,
            target: "audit", policyHash: hash)
        return try await store.pruneAudit(keepSince: keepSince, record: record, retentionDays: retention.auditRetentionDays)
    }
}

func iso(_ date: Date) -> String {
    ISO8601DateFormatter().string(from: date)
}

// MARK: - Shared decision helpers on the state

extension LedgerState {
    /// Allocates a VM under the policy in force (the one path of direct allocation and approval):
    /// limits, placement constraints for its tags, quota and placement (the policy's strategy;
    /// `strategy` only under the built-in set), then the N+1 headroom rule, which `force` (admin)
    /// overrides with an audited `policy.override` entry.
    mutating func allocateVM(
        opd: OPDID, spec: VMSpec, caller: Caller, now: Date, request: RequestID?, out: inout OpOutput, strategy: PlacementStrategy,
        force: Bool = false
    ) throws -> VM {
        _ = try self.opd(opd)
        let (placed, reasons) = try policySpec(spec, opd: opd)
        let decision: PlacementDecision
        switch dc.decideVM(placed, opd: opd, strategy: self.strategy(fallback: strategy)) {
        case .success(let d): decision = d
        case .failure(let refusal):
            var error = APIError(refusal)
            if case .placement = refusal, !reasons.isEmpty {
                error.detail.message = "placement constraints apply (" + reasons.map(\.description).joined(separator: "; ") + "); " + error.detail.message
            }
            throw error
        }
        let override = try enforceHeadroom(adding: spec.resources, on: decision.host, subject: "VM", force: force, caller: caller)
        var id = VMID(rawValue: newID("vm"))
        while dc.vms[id] != nil { id = VMID(rawValue: newID("vm")) }
        let vm = VM(id: id, opd: opd, spec: spec, host: decision.host, state: .scheduled, desiredPower: .running, createdAt: now)
        dc.upsertVM(vm)
        out.changes.append(.vmAllocated(vm))
        bumpDesired(decision.host, &out)
        out.record(caller, "vm.allocate", "vm:\(id)", before: Optional<VM>.none, after: vm, at: now, request: request)
        if let override { recordOverride(override, target: "vm:\(id)", caller: caller, now: now, request: request, out: &out) }
        return vm
    }

    /// Allocates a volume under the policy in force (direct allocation and approval): limits,
    /// placement constraints for its tags, quota and placement, then the N+1 rule (see
    /// ``enforceHeadroom``).
    mutating func allocateVolume(
        opd: OPDID, spec: VolumeSpec, caller: Caller, now: Date, request: RequestID?, out: inout OpOutput, strategy: PlacementStrategy,
        force: Bool = false
    ) throws -> Volume {
        let owner = try self.opd(opd)
        do throws(CoreError) { try spec.validate() } catch { throw APIError(error) }
        if let refusal = policy.limits.check(volume: spec, opdClass: owner.quotaClass) { throw APIError(refusal) }
        let constraints: ConstraintResult
        switch policy.placement.constrainVolume(opd: opd, opdClass: owner.quotaClass, tags: spec.tags) {
        case .success(let c): constraints = c
        case .failure(let refusal): throw APIError(refusal)
        }
        let decision: PlacementDecision
        switch dc.decideVolume(
            spec, opd: opd, strategy: self.strategy(fallback: strategy), requiredLabels: constraints.requiredLabels,
            forbiddenLabels: constraints.forbiddenLabels)
        {
        case .success(let d): decision = d
        case .failure(let refusal):
            var error = APIError(refusal)
            if case .placement = refusal, !constraints.reasons.isEmpty {
                error.detail.message =
                    "placement constraints apply (" + constraints.reasons.map(\.description).joined(separator: "; ") + "); " + error.detail.message
            }
            throw error
        }
        let override = try enforceHeadroom(adding: spec.resources, on: decision.host, subject: "volume", force: force, caller: caller)
        var id = VolumeID(rawValue: newID("vol"))
        while dc.volumes[id] != nil { id = VolumeID(rawValue: newID("vol")) }
        let volume = Volume(id: id, opd: opd, spec: spec, host: decision.host, state: .scheduled, createdAt: now)
        dc.upsertVolume(volume)
        out.changes.append(.volumeAllocated(volume))
        bumpDesired(decision.host, &out)
        out.record(caller, "volume.allocate", "volume:\(id)", before: Optional<Volume>.none, after: volume, at: now, request: request)
        if let override { recordOverride(override, target: "volume:\(id)", caller: caller, now: now, request: request, out: &out) }
        return volume
    }

    /// Checks a request's shape (names, amounts, pools) without quota or capacity.
    func validatePayload(_ payload: RequestPayload, opd: OPDID) throws {
        do {
            switch payload {
            case .vm(let spec):
                _ = try Name.validate(spec.name, what: "VM name")
                _ = try VCPU.validate(spec.vcpu)
                _ = try ByteSize.validate(spec.memory, what: "memory")
                _ = try ByteSize.validate(spec.disk, what: "disk")
                if let app = spec.app { _ = try Name.validate(app, what: "app") }
                if let image = spec.image { _ = try Name.validate(image, what: "image") }
                try validateLabels(spec.requiredLabels)
                try validateLabels(spec.forbiddenLabels)
                try validateLabels(spec.tags)
                try checkPool(spec.pool)
                if dc.vm(named: spec.name, in: opd) != nil {
                    throw APIError.conflict("conflict", "OPD \(opd) already has a VM named \(spec.name)")
                }
            case .volume(let spec):
                _ = try Name.validate(spec.name, what: "volume name")
                _ = try ByteSize.validate(spec.size, what: "volume size")
                try validateLabels(spec.tags)
                try checkPool(spec.pool)
                if dc.volume(named: spec.name, in: opd) != nil {
                    throw APIError.conflict("conflict", "OPD \(opd) already has a volume named \(spec.name)")
                }
            case .quota(let delta):
                if delta.normalized == .zero {
                    throw CoreError(.invalidAmount, "a quota request must change at least one amount (e.g. --vcpu +8)")
                }
                for pool in delta.storage.keys { try checkPool(pool) }
                for (pool, size) in delta.storage where size.bytes.magnitude > UInt64(ByteSize.absurd.bytes) {
                    throw CoreError(.invalidAmount, "storage change for pool \(pool) is absurdly large")
                }
                if delta.vcpu.magnitude > UInt(VCPU.absurd) * 64 || delta.memory.bytes.magnitude > UInt64(ByteSize.absurd.bytes) {
                    throw CoreError(.invalidAmount, "the quota change is absurdly large")
                }
            }
        } catch let error as CoreError {
            throw APIError(error)
        }
    }

    func checkPool(_ pool: PoolName) throws {
        let known = Set(dc.hosts.values.flatMap { $0.effective.pools.keys })
        if !known.contains(pool) {
            let list = known.sorted().map(\.rawValue).joined(separator: ", ")
            throw APIError.badRequest("unknown_pool", "no host has a storage pool named \(pool); known pools: \(list.isEmpty ? "none" : list)")
        }
    }
}

func validateDisplayName(_ name: String) throws {
    let trimmed = name.trimmingCharacters(in: .whitespaces)
    if trimmed.isEmpty || trimmed.count > 200 || trimmed.contains(where: { $0.isNewline }) {
        throw CoreError(.invalidName, "display name must be 1–200 characters on one line")
    }
}

func validateQuota(_ quota: ResourceVector) throws {
    if quota.vcpu < 0 || quota.vcpu > VCPU.absurd * 64 {
        throw CoreError(.invalidAmount, "quota vCPU \(quota.vcpu) must be between 0 and \(VCPU.absurd * 64)")
    }
    if quota.memory.bytes < 0 || quota.memory > ByteSize.absurd {
        throw CoreError(.invalidAmount, "quota memory \(quota.memory) must be between 0 and \(ByteSize.absurd)")
    }
    for (pool, size) in quota.storage {
        _ = try Name.validate(pool.rawValue, what: "pool name")
        if size.bytes < 0 || size > ByteSize.absurd {
            throw CoreError(.invalidAmount, "quota storage for pool \(pool) (\(size)) must be between 0 and \(ByteSize.absurd)")
        }
    }
    if quota.vms < 0 || quota.vms > 100_000 { throw CoreError(.invalidAmount, "quota VM count \(quota.vms) must be between 0 and 100000") }
    if quota.volumes < 0 || quota.volumes > 100_000 {
        throw CoreError(.invalidAmount, "quota volume count \(quota.volumes) must be between 0 and 100000")
    }
}

func validateCapacity(_ c: HostCapacity, what: String, requirePositive: Bool) throws {
    if c.cpus < (requirePositive ? 1 : 0) || c.cpus > VCPU.absurd {
        throw CoreError(.invalidAmount, "\(what) CPUs \(c.cpus) must be between \(requirePositive ? 1 : 0) and \(VCPU.absurd)")
    }
    if c.memory.bytes < (requirePositive ? ByteSize.mib : 0) || c.memory > ByteSize.absurd {
        throw CoreError(.invalidAmount, "\(what) memory \(c.memory) must be between \(requirePositive ? "1MiB" : "0") and \(ByteSize.absurd)")
    }
    for (pool, size) in c.pools {
        _ = try Name.validate(pool.rawValue, what: "pool name")
        if size.bytes < (requirePositive ? ByteSize.mib : 0) || size > ByteSize.absurd {
            throw CoreError(.invalidAmount, "\(what) pool \(pool) size \(size) must be between \(requirePositive ? "1MiB" : "0") and \(ByteSize.absurd)")
        }
    }
}

func validateOvercommit(_ o: Overcommit) throws {
    for (name, value) in [("cpu", o.cpu), ("memory", o.memory), ("storage", o.storage)] where !(value > 0 && value <= 64) {
        throw CoreError(.invalidAmount, "overcommit ratio for \(name) is \(value); it must be greater than 0 and at most 64")
    }
}

/// Host labels, VM and volume selectors and tags all follow ``HostLabel``'s rules (the same as
/// the policy files), so a label written anywhere can be matched everywhere.
func validateLabels(_ labels: [String: String], what: String = "label") throws {
    do { try HostLabel.validate(labels, what: what) } catch { throw APIError(error) }
}
