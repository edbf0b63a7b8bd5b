#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension HostObservation {
    /// Changes this observation the way a successful `action` changes the host: the model a
    /// simulated host follows, and what the planner's idempotence is tested against (planning
    /// again after applying a whole plan yields no actions).
    ///
    /// Pool free space follows allocated sizes: creations and growths take from it, `deleteVM`
    /// and `purgeVolume` give back. A started VM has no pid in this model.
    public mutating func apply(_ action: ReconcileAction) {
        switch action {
        case .createVM(let v):
            vms[v.id] = ObservedVM(
                id: v.id, opd: v.opd, pool: v.pool, running: false, vcpu: v.vcpu, memory: v.memory, disk: v.disk, managed: true)
            take(v.disk, from: v.pool)
        case .startVM(let v):
            vms[v.id]?.running = true
            vms[v.id]?.managed = true
        case .stopVM(let o):
            vms[o.id]?.running = false
            vms[o.id]?.pid = nil
        case .resizeVMLimits(let v):
            vms[v.id]?.vcpu = v.vcpu
            vms[v.id]?.memory = v.memory
        case .growVMDisk(let v, let from):
            vms[v.id]?.disk = v.disk
            take(v.disk - from, from: v.pool)
        case .deleteVM(let o):
            if let gone = vms.removeValue(forKey: o.id) { give(gone.disk, to: gone.pool) }
        case .adoptVM(let v, _):
            vms[v.id]?.managed = true
        case .createVolume(let v):
            volumes[v.id] = ObservedVolume(id: v.id, opd: v.opd, pool: v.pool, size: v.size, mounted: false, managed: true)
            take(v.size, from: v.pool)
        case .growVolume(let v, let from):
            volumes[v.id]?.size = v.size
            take(v.size - from, from: v.pool)
        case .mountVolume(let v):
            volumes[v.id]?.mounted = true
            volumes[v.id]?.deletedAt = nil
            volumes[v.id]?.managed = true
        case .retainVolume(let o, let at):
            volumes[o.id]?.mounted = false
            if volumes[o.id]?.deletedAt == nil { volumes[o.id]?.deletedAt = at }
        case .purgeVolume(let o):
            if let gone = volumes.removeValue(forKey: o.id) { give(gone.size, to: gone.pool) }
        case .adoptVolume(let v):
            volumes[v.id]?.managed = true
        }
    }

    /// Applies every action in order.
    public mutating func apply(_ actions: [ReconcileAction]) {
        for action in actions { apply(action) }
    }

    private mutating func take(_ size: ByteSize, from pool: PoolName) {
        if let left = poolFree[pool] { poolFree[pool] = left - size }
    }

    private mutating func give(_ size: ByteSize, to pool: PoolName) {
        if let left = poolFree[pool] { poolFree[pool] = left + size }
    }
}
