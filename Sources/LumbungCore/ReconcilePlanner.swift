#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Plans one reconcile pass of a host: a pure, level-based comparison of what the controller
/// wants (``DesiredHost``) with what the host has (``HostObservation``), keyed by VM and
/// volume id.
///
/// Planning twice against the same inputs gives the same plan, and planning against the
/// state the plan's actions produce (``HostObservation/apply(_:)``) gives an empty one.
///
/// Per desired item, after validation (names with ``Name``, image with ``ImageName``,
/// amounts with ``VCPU`` and ``ByteSize``, ids unique):
///
/// | on the host          | actions                                                          |
/// |----------------------|------------------------------------------------------------------|
/// | absent               | create (needs the pool, the image, the free space); start/mount  |
/// | present, not managed | adopt first (no restart, no remount), then as below               |
/// | present              | grow if bigger (smaller: `shrink_refused`), resize limits, power |
/// | retained volume      | mount again (its data was kept)                                  |
///
/// Per item on the host that is not desired: a VM is stopped if running, then deleted; a
/// volume is retained (unmounted, data kept), and purged only once
/// `now ≥ deletedAt + retention`.
///
/// An item in error gets no action at all. Free space is counted down as creations and
/// growths are admitted (volumes first, then VMs, each in id order); space that deletions
/// will free is not counted until it shows in the next observation.
public struct ReconcilePlanner: Hashable, Sendable {
    /// How long a volume that is no longer desired keeps its data: 7 days.
    public static let defaultRetention: Duration = .seconds(7 * 24 * 3600)

    /// How long a retained volume keeps its data before it is purged.
    public var retention: Duration

    /// Creates a planner with a volume retention period (default 7 days).
    public init(retention: Duration = ReconcilePlanner.defaultRetention) {
        self.retention = retention
    }

    /// The plan that converges `actual` to `desired` at `now`.
    public func plan(desired: DesiredHost, actual: HostObservation, now: Date) -> ReconcilePlan {
        var pass = Pass(actual: actual)
        pass.planVolumes(desired.volumes, now: now, retention: Self.seconds(retention))
        pass.planVMs(desired.vms)
        pass.actions.sort { ($0.phase, $0.subject) < ($1.phase, $1.subject) }
        pass.errors.sort { ($0.subject, $0.code.rawValue) < ($1.subject, $1.code.rawValue) }
        return ReconcilePlan(actions: pass.actions, errors: pass.errors)
    }

    /// The time a volume retained at `deletedAt` may be purged.
    public func purgeTime(deletedAt: Date) -> Date {
        deletedAt.addingTimeInterval(Self.seconds(retention))
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }
}

/// The mutable working state of one planning pass.
private struct Pass {
    let actual: HostObservation
    var free: [PoolName: ByteSize]
    var actions: [ReconcileAction] = []
    var errors: [ReconcileError] = []

    init(actual: HostObservation) {
        self.actual = actual
        self.free = actual.poolFree
    }

    // MARK: Volumes

    mutating func planVolumes(_ desired: [VolumeIntent], now: Date, retention: Double) {
        var seen: Set<VolumeID> = []
        var valid: [VolumeIntent] = []
        for v in desired {
            let subject = ReconcileSubject.volume(v.id)
            guard seen.insert(v.id).inserted else {
                errors.append(.init(subject, .duplicateID, "volume \(v.id) is desired more than once; only the first is acted on"))
                continue
            }
            if let error = Self.validate(v) {
                errors.append(error)
                continue
            }
            valid.append(v)
        }
        for v in valid.sorted(by: { $0.id < $1.id }) {
            planVolume(v)
        }
        for o in actual.volumes.values.sorted(by: { $0.id < $1.id }) where !seen.contains(o.id) {
            guard observedNamesValid(.volume(o.id), id: o.id.rawValue, opd: o.opd, pool: o.pool) else { continue }
            switch o.hostState {
            case .retained:
                if let deletedAt = o.deletedAt, now >= deletedAt.addingTimeInterval(retention) {
                    actions.append(.purgeVolume(o))
                }
            case .mounted, .unmounted:
                actions.append(.retainVolume(o, at: now))
            case .absent:
                break
            }
        }
    }

    private mutating func planVolume(_ v: VolumeIntent) {
        let subject = ReconcileSubject.volume(v.id)
        guard let o = actual.volumes[v.id] else {
            guard reserve(v.size, on: v.pool, for: subject, what: "volume \(v.id) of \(v.size)") else { return }
            actions.append(.createVolume(v))
            actions.append(.mountVolume(v))
            return
        }
        if let error = Self.moveError(subject, what: "volume \(v.id)", has: (o.opd, o.pool), wants: (v.opd, v.pool)) {
            errors.append(error)
            return
        }
        if v.size < o.size {
            errors.append(.init(subject, .shrinkRefused, "volume \(v.id) is \(o.size) and cannot shrink to \(v.size); volumes only grow"))
            return
        }
        if v.size > o.size {
            guard reserve(v.size - o.size, on: v.pool, for: subject, what: "growing volume \(v.id) from \(o.size) to \(v.size)")
            else { return }
        }
        if !o.managed { actions.append(.adoptVolume(v)) }
        if o.hostState != .mounted { actions.append(.mountVolume(v)) }
        if v.size > o.size { actions.append(.growVolume(v, from: o.size)) }
    }

    private static func validate(_ v: VolumeIntent) -> ReconcileError? {
        let subject = ReconcileSubject.volume(v.id)
        do throws(CoreError) {
            _ = try Name.validate(v.id.rawValue, what: "volume id")
            _ = try Name.validate(v.opd.rawValue, what: "OPD id")
            _ = try Name.validate(v.name, what: "volume name")
            _ = try Name.validate(v.pool.rawValue, what: "pool name")
            _ = try ByteSize.validate(v.size, what: "volume size")
        } catch {
            return ReconcileError(subject, error.code == .invalidAmount ? .invalidAmount : .invalidName, error.message)
        }
        return nil
    }

    // MARK: VMs

    mutating func planVMs(_ desired: [VMIntent]) {
        var seen: Set<VMID> = []
        var valid: [VMIntent] = []
        for v in desired {
            let subject = ReconcileSubject.vm(v.id)
            guard seen.insert(v.id).inserted else {
                errors.append(.init(subject, .duplicateID, "VM \(v.id) is desired more than once; only the first is acted on"))
                continue
            }
            if let error = Self.validate(v) {
                errors.append(error)
                continue
            }
            valid.append(v)
        }
        for v in valid.sorted(by: { $0.id < $1.id }) {
            planVM(v)
        }
        for o in actual.vms.values.sorted(by: { $0.id < $1.id }) where !seen.contains(o.id) {
            guard observedNamesValid(.vm(o.id), id: o.id.rawValue, opd: o.opd, pool: o.pool) else { continue }
            if o.running { actions.append(.stopVM(o)) }
            actions.append(.deleteVM(o))
        }
    }

    private mutating func planVM(_ v: VMIntent) {
        let subject = ReconcileSubject.vm(v.id)
        guard let o = actual.vms[v.id] else {
            if let image = v.image, !actual.images.contains(image) {
                errors.append(.init(subject, .imageMissing, "VM \(v.id) needs the image '\(image)', which this host does not have"))
                return
            }
            guard reserve(v.disk, on: v.pool, for: subject, what: "the disk of VM \(v.id) of \(v.disk)") else { return }
            actions.append(.createVM(v))
            if v.power == .running { actions.append(.startVM(v)) }
            return
        }
        if let error = Self.moveError(subject, what: "VM \(v.id)", has: (o.opd, o.pool), wants: (v.opd, v.pool)) {
            errors.append(error)
            return
        }
        if v.disk < o.disk {
            let message = "the disk of VM \(v.id) is \(o.disk) and cannot shrink to \(v.disk); disks only grow"
            errors.append(.init(subject, .shrinkRefused, message))
            return
        }
        if v.disk > o.disk {
            guard reserve(v.disk - o.disk, on: v.pool, for: subject, what: "growing the disk of VM \(v.id) from \(o.disk) to \(v.disk)")
            else { return }
        }
        if !o.managed { actions.append(.adoptVM(v, pid: o.pid)) }
        if v.vcpu != o.vcpu || v.memory != o.memory { actions.append(.resizeVMLimits(v)) }
        if v.disk > o.disk { actions.append(.growVMDisk(v, from: o.disk)) }
        switch (v.power, o.hostState) {
        case (.running, .stopped): actions.append(.startVM(v))
        case (.stopped, .running): actions.append(.stopVM(o))
        default: break
        }
    }

    private static func validate(_ v: VMIntent) -> ReconcileError? {
        let subject = ReconcileSubject.vm(v.id)
        do throws(CoreError) {
            _ = try Name.validate(v.id.rawValue, what: "VM id")
            _ = try Name.validate(v.opd.rawValue, what: "OPD id")
            _ = try Name.validate(v.name, what: "VM name")
            _ = try Name.validate(v.pool.rawValue, what: "pool name")
            if let image = v.image { _ = try ImageName.validate(image) }
            _ = try VCPU.validate(v.vcpu, what: "vCPU")
            _ = try ByteSize.validate(v.memory, what: "memory")
            _ = try ByteSize.validate(v.disk, what: "disk")
        } catch {
            return ReconcileError(subject, error.code == .invalidAmount ? .invalidAmount : .invalidName, error.message)
        }
        return nil
    }

    // MARK: Shared

    /// Takes `size` from the pool's remaining free space, or records why it cannot.
    private mutating func reserve(_ size: ByteSize, on pool: PoolName, for subject: ReconcileSubject, what: String) -> Bool {
        guard let left = free[pool] else {
            let known = free.keys.sorted().map(\.rawValue).joined(separator: ", ")
            errors.append(.init(subject, .unknownPool, "this host has no pool '\(pool)' (it has: \(known.isEmpty ? "none" : known))"))
            return false
        }
        guard size <= left else {
            errors.append(.init(subject, .insufficientSpace, "\(what) does not fit in pool '\(pool)': \(left) free"))
            return false
        }
        free[pool] = left - size
        return true
    }

    private static func moveError(
        _ subject: ReconcileSubject, what: String, has: (OPDID, PoolName), wants: (OPDID, PoolName)
    ) -> ReconcileError? {
        guard has != wants else { return nil }
        let message = "\(what) exists on this host for OPD \(has.0) on pool '\(has.1)' "
            + "and is desired for OPD \(wants.0) on pool '\(wants.1)'; it is never moved"
        return ReconcileError(subject, .moveRefused, message)
    }

    /// An item found on the host whose id, OPD or pool could escape a path is left alone and reported.
    private mutating func observedNamesValid(_ subject: ReconcileSubject, id: String, opd: OPDID, pool: PoolName) -> Bool {
        do throws(CoreError) {
            _ = try Name.validate(id, what: "id found on the host")
            _ = try Name.validate(opd.rawValue, what: "OPD id found on the host")
            _ = try Name.validate(pool.rawValue, what: "pool name found on the host")
            return true
        } catch {
            errors.append(.init(subject, .invalidName, "\(error.message); it is left untouched"))
            return false
        }
    }
}
