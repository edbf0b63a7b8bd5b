/// The in-memory snapshot of the one data center that the controller's ledger decides against:
/// hosts, OPDs, VMs and volumes, with indexes kept up to date on every mutation.
///
/// ## Counting rule
///
/// Every resource is taken once and returned exactly once on each side:
///
/// | | counts while the VM is | counts while the volume is |
/// |---|---|---|
/// | the OPD's **usage** (quota) | pending, scheduled, running, stopped | pending, scheduled, ready |
/// | its host's **allocation** (capacity) | scheduled, running, stopped, deleting | scheduled, ready, deleting |
///
/// Quota is returned as soon as deletion starts (the OPD may immediately re-use it);
/// host capacity is returned only when the agent confirms `deleted`, because until then
/// the VM or volume still occupies the host. A VM or volume without a host holds no host
/// capacity. ``usage(of:)`` and ``allocated(on:)`` are O(1): both are maintained
/// incrementally by ``upsertVM(_:)``/``upsertVolume(_:)``, never recomputed by scanning.
///
/// ## Decisions
///
/// The `decide…` methods are pure: they read the snapshot and return a verdict; the
/// caller commits the result and then applies it here with `upsert…`.
///
/// ## Placement
///
/// Filter then score, like Nomad. Filters, in order, each giving a reason per excluded
/// host: cordoned; unreachable; lacks the pool; a required label missing; a forbidden
/// label present; anti-affinity (a VM of the same OPD and the same app already holds
/// capacity on the host); too little vCPU, memory or pool storage. Hosts still
/// `enrolled` (declared, agent not reported yet) are eligible. Among the hosts left,
/// ``PlacementStrategy/binpack`` picks the fullest after placement and
/// ``PlacementStrategy/spread`` the emptiest (mean of the vCPU, memory and pool
/// fractions for a VM; the pool fraction for a volume); ties go to the smallest host id.
public struct DataCenter: Sendable {
    /// Every host by id.
    public private(set) var hosts: [HostID: Host] = [:]
    /// Every OPD by id.
    public private(set) var opds: [OPDID: OPD] = [:]
    /// Every VM by id, including deleted ones not yet removed.
    public private(set) var vms: [VMID: VM] = [:]
    /// Every volume by id, including deleted ones not yet removed.
    public private(set) var volumes: [VolumeID: Volume] = [:]

    struct NameKey: Hashable, Sendable {
        var opd: OPDID
        var name: String
    }

    struct Residents: Sendable {
        var vms = 0
        var volumes = 0
        var isEmpty: Bool { vms == 0 && volumes == 0 }
    }

    private var usageByOPD: [OPDID: ResourceVector] = [:]
    private var allocatedByHost: [HostID: ResourceVector] = [:]
    /// Non-deleted VMs and volumes that name the host, whatever their state.
    private var residentsByHost: [HostID: Residents] = [:]
    /// Non-deleted VMs and volumes by (OPD, name).
    private var vmNames: [NameKey: [VMID]] = [:]
    private var volumeNames: [NameKey: [VolumeID]] = [:]
    /// Hosts holding capacity for VMs of one app of one OPD, with how many.
    private var appHosts: [AppKey: [HostID: Int]] = [:]
    /// The dense view placement scans.
    private(set) var index = PlacementIndex()

    /// An empty data center.
    public init() {}

    /// A snapshot of the given objects; indexes are built once here.
    public init(hosts: [Host], opds: [OPD], vms: [VM], volumes: [Volume]) {
        for h in hosts { self.hosts[h.id] = h }
        for o in opds { self.opds[o.id] = o }
        for vm in vms { upsertVMIndexes(vm) }
        for v in volumes { upsertVolumeIndexes(v) }
        rebuildIndex()
    }

    // MARK: Reading

    /// The host with this id.
    public func host(_ id: HostID) -> Host? { hosts[id] }
    /// The OPD with this id.
    public func opd(_ id: OPDID) -> OPD? { opds[id] }
    /// The VM with this id.
    public func vm(_ id: VMID) -> VM? { vms[id] }
    /// The volume with this id.
    public func volume(_ id: VolumeID) -> Volume? { volumes[id] }

    /// The non-deleted VM of `opd` named `name`.
    public func vm(named name: String, in opd: OPDID) -> VM? {
        vmNames[NameKey(opd: opd, name: name)]?.first.flatMap { vms[$0] }
    }

    /// The non-deleted volume of `opd` named `name`.
    public func volume(named name: String, in opd: OPDID) -> Volume? {
        volumeNames[NameKey(opd: opd, name: name)]?.first.flatMap { volumes[$0] }
    }

    /// What counts against the OPD's quota (see the counting rule). O(1).
    public func usage(of opd: OPDID) -> ResourceVector {
        usageByOPD[opd] ?? .zero
    }

    /// What is allocated on the host (see the counting rule), including the VM and volume counts. O(1).
    public func allocated(on host: HostID) -> ResourceVector {
        allocatedByHost[host] ?? .zero
    }

    /// The names of the storage pools at least one host has, sorted.
    public var pools: [PoolName] { index.knownPools }

    // MARK: Mutations

    /// Adds or replaces a host. A known host is updated in place and a new host is inserted in
    /// the index (O(n) moves); only a host that brings a new pool re-indexes every host.
    public mutating func upsertHost(_ host: Host) {
        hosts[host.id] = host
        if index.canUpdateInPlace(host) {
            index.update(host, allocated: allocated(on: host.id))
        } else if index.canInsert(host) {
            index.insert(host, allocated: allocated(on: host.id))
            // VMs may already name a host before it is (re)declared.
            for (app, counts) in appHosts where (counts[host.id] ?? 0) > 0 { index.setApp(app, on: host.id, true) }
        } else {
            rebuildIndex()
        }
    }

    /// Increments a host's desired-state version and returns the new one (nil for an unknown
    /// host). The version plays no part in placement, so the index is left alone: O(1).
    public mutating func bumpDesiredVersion(of id: HostID) -> Int64? {
        guard hosts[id] != nil else { return nil }
        hosts[id]!.desiredVersion += 1
        return hosts[id]!.desiredVersion
    }

    /// Removes a host that holds nothing any more. Throws `illegal_transition` when VMs or
    /// volumes that are not deleted still name it. Returns the removed host, or nil if unknown.
    @discardableResult
    public mutating func removeHost(_ id: HostID) throws(CoreError) -> Host? {
        guard let host = hosts[id] else { return nil }
        if let r = residentsByHost[id], !r.isEmpty {
            let vmText = r.vms == 1 ? "1 VM" : "\(r.vms) VMs"
            let volText = r.volumes == 1 ? "1 volume" : "\(r.volumes) volumes"
            throw CoreError(
                .illegalTransition,
                "host \(id) still holds \(vmText) and \(volText) that are not deleted; drain it and wait until they are deleted before removing it")
        }
        hosts[id] = nil
        residentsByHost[id] = nil
        if allocatedByHost[id]?.normalized == ResourceVector.zero { allocatedByHost[id] = nil }
        rebuildIndex()
        return host
    }

    /// Adds or replaces an OPD (its quota takes effect for the next decision).
    public mutating func upsertOPD(_ opd: OPD) {
        opds[opd.id] = opd
    }

    /// Adds or replaces a VM, moving its usage, host allocation, name and anti-affinity
    /// entries for any change of state, host, OPD or spec.
    public mutating func upsertVM(_ vm: VM) {
        upsertVMIndexes(vm)
    }

    /// Adds or replaces a volume, moving its usage, host allocation and name entries for any
    /// change of state, host, OPD or spec.
    public mutating func upsertVolume(_ volume: Volume) {
        upsertVolumeIndexes(volume)
    }

    /// Forgets a deleted VM. Throws `illegal_transition` for a VM that is not deleted.
    /// Returns the removed VM, or nil if unknown.
    @discardableResult
    public mutating func removeVM(_ id: VMID) throws(CoreError) -> VM? {
        guard let vm = vms[id] else { return nil }
        guard vm.state == .deleted else {
            throw CoreError(.illegalTransition, "VM \(vm.spec.name) (\(id)) of \(vm.opd) is \(vm.state); only a deleted VM can be forgotten")
        }
        account(vm, sign: -1)
        vms[id] = nil
        return vm
    }

    /// Forgets a deleted volume. Throws `illegal_transition` for a volume that is not deleted.
    /// Returns the removed volume, or nil if unknown.
    @discardableResult
    public mutating func removeVolume(_ id: VolumeID) throws(CoreError) -> Volume? {
        guard let volume = volumes[id] else { return nil }
        guard volume.state == .deleted else {
            throw CoreError(
                .illegalTransition,
                "volume \(volume.spec.name) (\(id)) of \(volume.opd) is \(volume.state); only a deleted volume can be forgotten")
        }
        account(volume, sign: -1)
        volumes[id] = nil
        return volume
    }

    private mutating func upsertVMIndexes(_ vm: VM) {
        if let old = vms[vm.id] { account(old, sign: -1) }
        account(vm, sign: 1)
        vms[vm.id] = vm
    }

    private mutating func upsertVolumeIndexes(_ volume: Volume) {
        if let old = volumes[volume.id] { account(old, sign: -1) }
        account(volume, sign: 1)
        volumes[volume.id] = volume
    }

    private mutating func account(_ vm: VM, sign: Int) {
        let resources = vm.spec.resources
        if vm.state.countsAgainstQuota {
            usageByOPD[vm.opd, default: .zero].accumulate(resources, sign: sign)
        }
        if let host = vm.host {
            if vm.state.holdsHostCapacity {
                allocatedByHost[host, default: .zero].accumulate(resources, sign: sign)
                index.allocate(resources, on: host, sign: Int64(sign))
                if let app = vm.spec.app {
                    let key = AppKey(opd: vm.opd, app: app)
                    let count = (appHosts[key]?[host] ?? 0) + sign
                    if count == 0 {
                        appHosts[key]?[host] = nil
                        if appHosts[key]?.isEmpty == true { appHosts[key] = nil }
                        index.setApp(key, on: host, false)
                    } else {
                        appHosts[key, default: [:]][host] = count
                        if count == 1 && sign > 0 { index.setApp(key, on: host, true) }
                    }
                }
            }
            if vm.state != .deleted {
                residentsByHost[host, default: Residents()].vms += sign
                if residentsByHost[host]?.isEmpty == true { residentsByHost[host] = nil }
            }
        }
        if vm.state != .deleted {
            Self.updateNames(&vmNames, NameKey(opd: vm.opd, name: vm.spec.name), vm.id, sign: sign)
        }
    }

    private mutating func account(_ volume: Volume, sign: Int) {
        let resources = volume.spec.resources
        if volume.state.countsAgainstQuota {
            usageByOPD[volume.opd, default: .zero].accumulate(resources, sign: sign)
        }
        if let host = volume.host {
            if volume.state.holdsHostCapacity {
                allocatedByHost[host, default: .zero].accumulate(resources, sign: sign)
                index.allocate(resources, on: host, sign: Int64(sign))
            }
            if volume.state != .deleted {
                residentsByHost[host, default: Residents()].volumes += sign
                if residentsByHost[host]?.isEmpty == true { residentsByHost[host] = nil }
            }
        }
        if volume.state != .deleted {
            Self.updateNames(&volumeNames, NameKey(opd: volume.opd, name: volume.spec.name), volume.id, sign: sign)
        }
    }

    private static func updateNames<ID: Equatable>(_ names: inout [NameKey: [ID]], _ key: NameKey, _ id: ID, sign: Int) {
        if sign > 0 {
            names[key, default: []].append(id)
        } else if var ids = names[key], let i = ids.firstIndex(of: id) {
            ids.remove(at: i)
            names[key] = ids.isEmpty ? nil : ids
        }
    }

    private mutating func rebuildIndex() {
        let allocated = allocatedByHost
        index = PlacementIndex(hosts: hosts.values, allocated: { allocated[$0] ?? .zero }, apps: appHosts)
    }

    // MARK: Placement

    /// Where a VM of `opd` would go, without validation or quota checks (the ledger's re-check
    /// and the benchmark use this directly). With `explain`, the decision also lists every
    /// excluded host and why.
    public func placeVM(
        _ spec: VMSpec, opd: OPDID, strategy: PlacementStrategy = .binpack, explain: Bool = false
    ) -> Result<PlacementDecision, PlacementFailure> {
        let ask = PlacementIndex.Ask(
            isVM: true, vcpu: Int64(spec.vcpu), memory: spec.memory.bytes, pool: spec.pool, storage: spec.disk.bytes,
            required: spec.requiredLabels, forbidden: spec.forbiddenLabels, image: spec.image)
        let app = spec.app.map { AppKey(opd: opd, app: $0) }
        return index.decide(ask, app: app, strategy: strategy, explain: explain, subject: .vm)
    }

    /// Where a volume would go (pool storage only), without validation or quota checks.
    ///
    /// `requiredLabels` / `forbiddenLabels`: host labels the volume needs or must avoid (from the
    /// policy's placement constraints; volumes have no selectors of their own).
    public func placeVolume(
        _ spec: VolumeSpec, strategy: PlacementStrategy = .binpack, explain: Bool = false,
        requiredLabels: [String: String] = [:], forbiddenLabels: [String: String] = [:]
    ) -> Result<PlacementDecision, PlacementFailure> {
        let ask = PlacementIndex.Ask(
            isVM: false, vcpu: 0, memory: 0, pool: spec.pool, storage: spec.size.bytes, required: requiredLabels,
            forbidden: forbiddenLabels)
        return index.decide(ask, app: nil, strategy: strategy, explain: explain, subject: .volume)
    }

    // MARK: Decisions

    /// Decides where a new VM of `opd` goes: validates the spec (``VMSpec/validate()``), checks the
    /// OPD exists, the pool exists on some host and the name is free among the OPD's non-deleted
    /// VMs, then the quota, then placement.
    public func decideVM(_ spec: VMSpec, opd: OPDID, strategy: PlacementStrategy = .binpack) -> Result<PlacementDecision, Refusal> {
        do throws(CoreError) {
            try spec.validate()
        } catch {
            return .failure(.invalid(error))
        }
        guard let owner = opds[opd] else { return .failure(.notFound("OPD \(opd) does not exist")) }
        if let refusal = unknownPool(spec.pool) { return .failure(refusal) }
        if let image = spec.image, let refusal = unknownImage(image) { return .failure(refusal) }
        if let existing = vm(named: spec.name, in: opd) {
            return .failure(.conflict("\(opd) already has a VM named \(spec.name) (\(existing.id), \(existing.state))"))
        }
        if let shortfall = QuotaFit.shortfall(
            quota: owner.quota, usage: usage(of: opd), vcpu: spec.vcpu, memory: spec.memory.bytes, pool: spec.pool,
            storage: spec.disk.bytes, vms: 1, volumes: 0, opd: opd)
        {
            return .failure(.quota(shortfall))
        }
        return placeVM(spec, opd: opd, strategy: strategy).mapError { .placement($0) }
    }

    /// Decides where a new volume of `opd` goes: validation, OPD, pool, unique name, quota, placement.
    public func decideVolume(
        _ spec: VolumeSpec, opd: OPDID, strategy: PlacementStrategy = .binpack,
        requiredLabels: [String: String] = [:], forbiddenLabels: [String: String] = [:]
    ) -> Result<PlacementDecision, Refusal> {
        do throws(CoreError) {
            try spec.validate()
        } catch {
            return .failure(.invalid(error))
        }
        guard let owner = opds[opd] else { return .failure(.notFound("OPD \(opd) does not exist")) }
        if let refusal = unknownPool(spec.pool) { return .failure(refusal) }
        if let existing = volume(named: spec.name, in: opd) {
            return .failure(.conflict("\(opd) already has a volume named \(spec.name) (\(existing.id), \(existing.state))"))
        }
        if let shortfall = QuotaFit.shortfall(
            quota: owner.quota, usage: usage(of: opd), vcpu: 0, memory: 0, pool: spec.pool, storage: spec.size.bytes, vms: 0,
            volumes: 1, opd: opd)
        {
            return .failure(.quota(shortfall))
        }
        return placeVolume(spec, strategy: strategy, requiredLabels: requiredLabels, forbiddenLabels: forbiddenLabels)
            .mapError { .placement($0) }
    }

    /// Decides whether `opd`'s quota may become `newQuota` (absolute amounts): refuses negative
    /// amounts and bad pool names, and, unless `force`, a quota below current use, listing every
    /// dimension below use.
    public func decideQuotaChange(opd: OPDID, newQuota: ResourceVector, force: Bool = false) -> Result<Void, Refusal> {
        guard opds[opd] != nil else { return .failure(.notFound("OPD \(opd) does not exist")) }
        func negative(_ dimension: Dimension, _ amount: Int64) -> Refusal {
            .invalid(
                CoreError(
                    .invalidAmount,
                    "\(opd)'s \(dimension.quotaNoun) cannot be negative (\(dimension.bareAmount(amount))); use 0 to allow none"))
        }
        if newQuota.vcpu < 0 { return .failure(negative(.vcpu, Int64(newQuota.vcpu))) }
        if newQuota.memory.bytes < 0 { return .failure(negative(.memory, newQuota.memory.bytes)) }
        for pool in newQuota.storage.keys.sorted() {
            do throws(CoreError) {
                _ = try Name.validate(pool.rawValue, what: "pool name")
            } catch {
                return .failure(.invalid(error))
            }
            let size = newQuota.storage(pool)
            if size.bytes < 0 { return .failure(negative(.storage(pool), size.bytes)) }
        }
        if newQuota.vms < 0 { return .failure(negative(.vms, Int64(newQuota.vms))) }
        if newQuota.volumes < 0 { return .failure(negative(.volumes, Int64(newQuota.volumes))) }
        if !force {
            let below = QuotaFit.belowUse(newQuota: newQuota, usage: usage(of: opd), opd: opd)
            if !below.isEmpty { return .failure(.quotaBelowUse(below)) }
        }
        return .success(())
    }

    /// Decides a VM's new size (each of `vcpu`, `memory`, `disk` nil = unchanged) and returns
    /// the new spec. vCPU and memory may go up or down; the disk only grows. The growth (the
    /// positive part of each difference) is checked against the OPD's quota and, while the VM
    /// holds capacity on a host, against that host's free vCPU, memory and pool storage. A VM
    /// being deleted cannot be resized.
    public func decideVMResize(id: VMID, vcpu: Int?, memory: ByteSize?, disk: ByteSize?) -> Result<VMSpec, Refusal> {
        guard let vm = vms[id], vm.state != .deleted else { return .failure(.notFound("VM \(id) does not exist")) }
        let name = vm.spec.name
        guard vcpu != nil || memory != nil || disk != nil else {
            return .failure(.invalid(CoreError(.invalidAmount, "resizing VM \(name) needs at least one of vcpu, memory or disk")))
        }
        guard vm.state.countsAgainstQuota else {
            return .failure(.conflict("VM \(name) (\(id)) is \(vm.state); it cannot be resized"))
        }
        var spec = vm.spec
        if let vcpu { spec.vcpu = vcpu }
        if let memory { spec.memory = memory }
        if let disk { spec.disk = disk }
        do throws(CoreError) {
            try spec.validate()
        } catch {
            return .failure(.invalid(error))
        }
        if spec.disk < vm.spec.disk {
            return .failure(
                .invalid(CoreError(.invalidAmount, "VM \(name)'s disk is \(vm.spec.disk); shrinking it to \(spec.disk) is refused, disks only grow")))
        }
        let growth = ResourceVector(
            vcpu: max(0, spec.vcpu - vm.spec.vcpu), memory: ByteSize(bytes: max(0, spec.memory.bytes - vm.spec.memory.bytes)),
            storage: spec.disk > vm.spec.disk ? [spec.pool: spec.disk - vm.spec.disk] : [:])
        guard let owner = opds[vm.opd] else { return .failure(.notFound("OPD \(vm.opd) does not exist")) }
        if let shortfall = QuotaFit.shortfall(quota: owner.quota, usage: usage(of: vm.opd), adding: growth, opd: vm.opd) {
            return .failure(.quota(shortfall))
        }
        if vm.state.holdsHostCapacity, let hostID = vm.host, let host = hosts[hostID] {
            let free = host.allocatable - allocated(on: hostID)
            var dims: [(Dimension, Int64, Int64)] = [(.vcpu, Int64(growth.vcpu), Int64(free.vcpu)), (.memory, growth.memory.bytes, free.memory.bytes)]
            for (pool, size) in growth.storage { dims.append((.storage(pool), size.bytes, free.storage(pool).bytes)) }
            for (dimension, asked, left) in dims where asked > 0 && asked > left {
                let shortfall = Shortfall(scope: .host(hostID), dimension: dimension, asked: asked, left: max(0, left), subject: .vm)
                return .failure(
                    .placement(PlacementFailure(subject: .vmGrowth, excluded: [HostExclusion(host: hostID, reason: .insufficient(shortfall))])))
            }
        }
        return .success(spec)
    }

    /// Decides whether a volume may grow to `newSize`: grow only (the same size is accepted as a
    /// no-op, shrinking is refused), not while deleting, the difference checked against the
    /// OPD's quota and the free storage of the volume's pool on its host.
    public func decideVolumeResize(id: VolumeID, newSize: ByteSize) -> Result<Void, Refusal> {
        guard let volume = volumes[id] else { return .failure(.notFound("volume \(id) does not exist")) }
        do throws(CoreError) {
            _ = try ByteSize.validate(newSize, what: "volume size")
        } catch {
            return .failure(.invalid(error))
        }
        let name = volume.spec.name
        guard volume.state.countsAgainstQuota else {
            return .failure(.conflict("volume \(name) (\(id)) is \(volume.state); it cannot be resized"))
        }
        if newSize < volume.spec.size {
            return .failure(
                .invalid(
                    CoreError(
                        .invalidAmount,
                        "volume \(name) is \(volume.spec.size); shrinking it to \(newSize) is refused, volumes only grow")))
        }
        if newSize == volume.spec.size { return .success(()) }
        let pool = volume.spec.pool
        let growth = newSize - volume.spec.size
        guard let owner = opds[volume.opd] else { return .failure(.notFound("OPD \(volume.opd) does not exist")) }
        let adding = ResourceVector(storage: [pool: growth])
        if let shortfall = QuotaFit.shortfall(quota: owner.quota, usage: usage(of: volume.opd), adding: adding, opd: volume.opd) {
            return .failure(.quota(shortfall))
        }
        if volume.state.holdsHostCapacity, let host = volume.host {
            guard let slot = index.slots[host], let free = index.free(slot: slot, pool: pool) else {
                return .failure(.conflict("volume \(name)'s host \(host) is unknown or has no pool \(pool)"))
            }
            if free < growth.bytes {
                let shortfall = Shortfall(
                    scope: .host(host), dimension: .storage(pool), asked: growth.bytes, left: free, subject: .volume)
                return .failure(
                    .placement(
                        PlacementFailure(
                            subject: .volumeGrowth, excluded: [HostExclusion(host: host, reason: .insufficient(shortfall))])))
            }
        }
        return .success(())
    }

    /// Refuses an image no host reported: the data center's image catalogue is the union of
    /// what the agents found in their image directories.
    private func unknownImage(_ image: String) -> Refusal? {
        guard !index.hasImage(image) else { return nil }
        let known = index.knownImages
        let list = known.isEmpty ? "no host has reported any image yet" : "images: " + known.joined(separator: ", ")
        return .invalid(CoreError(.unknownImage, "image \(image) exists on no host; \(list)"))
    }

    private func unknownPool(_ pool: PoolName) -> Refusal? {
        guard !index.hasPool(pool) else { return nil }
        let known = index.knownPools
        let list = known.isEmpty ? "no host has any pool yet" : "pools: " + known.map(\.rawValue).joined(separator: ", ")
        return .invalid(CoreError(.unknownPool, "pool \(pool) exists on no host; \(list)"))
    }

    // MARK: Capacity

    /// Allocatable, allocated and free per host, per pool and for the whole data center.
    public func capacity() -> CapacityReport {
        var lines: [CapacityReport.HostLine] = []
        var total = CapacityReport.Totals()
        var pools: [PoolName: CapacityReport.PoolLine] = [:]
        for id in hosts.keys.sorted() {
            let host = hosts[id]!
            let allocatable = host.allocatable
            let allocated = allocated(on: id)
            var free = ResourceVector(vcpu: allocatable.vcpu - allocated.vcpu, memory: allocatable.memory - allocated.memory)
            for pool in Set(allocatable.storage.keys).union(allocated.storage.keys) {
                free.storage[pool] = allocatable.storage(pool) - allocated.storage(pool)
                var line = pools[pool] ?? CapacityReport.PoolLine(pool: pool)
                if allocatable.storage[pool] != nil { line.hosts += 1 }
                line.allocatable += allocatable.storage(pool)
                line.allocated += allocated.storage(pool)
                line.free = line.allocatable - line.allocated
                pools[pool] = line
            }
            lines.append(
                CapacityReport.HostLine(
                    host: id, state: host.state, allocatable: allocatable, allocated: allocated, free: free))
            total.allocatable += allocatable
            total.allocated += allocated
            total.free += free
        }
        return CapacityReport(hosts: lines, total: total, pools: pools.keys.sorted().map { pools[$0]! })
    }
}

/// Allocatable, allocated and free capacity per host, per pool and in total.
public struct CapacityReport: Hashable, Codable, Sendable {
    /// One host's capacity.
    public struct HostLine: Hashable, Codable, Sendable {
        /// The host.
        public var host: HostID
        /// Its state for people.
        public var state: HostState
        /// What may be allocated: (effective − reserved) × overcommit.
        public var allocatable: ResourceVector
        /// What is allocated, with the number of VMs and volumes it holds.
        public var allocated: ResourceVector
        /// Allocatable minus allocated (vCPU, memory, storage; negative when over). Counts are zero.
        public var free: ResourceVector

        /// Creates a host line.
        public init(host: HostID, state: HostState, allocatable: ResourceVector, allocated: ResourceVector, free: ResourceVector) {
            self.host = host
            self.state = state
            self.allocatable = allocatable
            self.allocated = allocated
            self.free = free
        }
    }

    /// One storage pool across hosts.
    public struct PoolLine: Hashable, Codable, Sendable {
        /// The pool.
        public var pool: PoolName
        /// How many hosts have it.
        public var hosts: Int
        /// Allocatable storage summed over hosts.
        public var allocatable: ByteSize
        /// Allocated storage summed over hosts.
        public var allocated: ByteSize
        /// Allocatable minus allocated.
        public var free: ByteSize

        /// Creates a pool line.
        public init(pool: PoolName, hosts: Int = 0, allocatable: ByteSize = .zero, allocated: ByteSize = .zero, free: ByteSize = .zero) {
            self.pool = pool
            self.hosts = hosts
            self.allocatable = allocatable
            self.allocated = allocated
            self.free = free
        }
    }

    /// Sums over every host (cordoned and unreachable ones included).
    public struct Totals: Hashable, Codable, Sendable {
        /// Allocatable summed over hosts.
        public var allocatable: ResourceVector
        /// Allocated summed over hosts.
        public var allocated: ResourceVector
        /// Free summed over hosts.
        public var free: ResourceVector

        /// Creates totals.
        public init(allocatable: ResourceVector = .zero, allocated: ResourceVector = .zero, free: ResourceVector = .zero) {
            self.allocatable = allocatable
            self.allocated = allocated
            self.free = free
        }
    }

    /// Every host, in host id order.
    public var hosts: [HostLine]
    /// The data center's totals.
    public var total: Totals
    /// Every pool, in name order.
    public var pools: [PoolLine]

    /// Creates a report.
    public init(hosts: [HostLine], total: Totals, pools: [PoolLine]) {
        self.hosts = hosts
        self.total = total
        self.pools = pools
    }
}

extension ResourceVector {
    /// Adds (`sign` 1) or subtracts (`sign` -1) `other`, dropping pools that come to zero.
    mutating func accumulate(_ other: ResourceVector, sign: Int) {
        vcpu += sign * other.vcpu
        memory.bytes += Int64(sign) * other.memory.bytes
        for (pool, size) in other.storage {
            let next = storage(pool).bytes + Int64(sign) * size.bytes
            storage[pool] = next == 0 ? nil : ByteSize(bytes: next)
        }
        vms += sign * other.vms
        volumes += sign * other.volumes
    }
}
