#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungAPI
import LumbungCore
import Metrics
import NIOConcurrencyHelpers

/// Publishes the host's capacity, allocation and use, and each VM's, OPD's and volume's use,
/// as gauges (Prometheus names and base units: bytes, seconds). Series of VMs and volumes that
/// are gone are removed.
final class HostMetrics: Sendable {
    private let known = NIOLockedValueBox(Known())

    struct Known {
        var vms: Set<VMID> = []
        var opds: Set<OPDID> = []
        var volumes: Set<VolumeID> = []
        var vmOPD: [VMID: OPDID] = [:]
        var volumeOPD: [VolumeID: OPDID] = [:]
    }

    func update(facts: HostCapacity, snapshot: HostSnapshot, desired: DesiredState?) {
        Gauge(label: "lumbung_host_cpus").record(facts.cpus)
        Gauge(label: "lumbung_host_memory_bytes").record(facts.memory.bytes)
        for (pool, size) in facts.pools {
            Gauge(label: "lumbung_host_pool_size_bytes", dimensions: [("pool", pool.rawValue)]).record(size.bytes)
        }
        for (pool, free) in snapshot.observation.poolFree {
            Gauge(label: "lumbung_host_pool_free_bytes", dimensions: [("pool", pool.rawValue)]).record(free.bytes)
        }
        let vms = snapshot.observation.vms.values
        Gauge(label: "lumbung_host_allocated_vcpus").record(vms.reduce(0) { $0 + $1.vcpu })
        Gauge(label: "lumbung_host_allocated_memory_bytes").record(vms.reduce(Int64(0)) { $0 + $1.memory.bytes })
        Gauge(label: "lumbung_host_used_memory_bytes").record(snapshot.vmUsage.values.reduce(Int64(0)) { $0 + ($1.memoryUsed?.bytes ?? 0) })
        Gauge(label: "lumbung_host_vms", dimensions: [("state", "running")]).record(vms.filter(\.running).count)
        Gauge(label: "lumbung_host_vms", dimensions: [("state", "stopped")]).record(vms.filter { !$0.running }.count)
        Gauge(label: "lumbung_host_desired_version").record(desired?.version ?? 0)

        var opdCPU: [OPDID: Double] = [:]
        var opdMemory: [OPDID: Int64] = [:]
        var opdLimit: [OPDID: Int64] = [:]
        for vm in vms {
            let dims = [("vm", vm.id.rawValue), ("opd", vm.opd.rawValue)]
            let u = snapshot.vmUsage[vm.id]
            Gauge(label: "lumbung_vm_cpu_seconds", dimensions: dims).record(u?.cpuSeconds ?? 0)
            Gauge(label: "lumbung_vm_memory_bytes", dimensions: dims).record(u?.memoryUsed?.bytes ?? 0)
            Gauge(label: "lumbung_vm_memory_limit_bytes", dimensions: dims).record(u?.memoryLimit?.bytes ?? vm.memory.bytes)
            Gauge(label: "lumbung_vm_vcpus", dimensions: dims).record(vm.vcpu)
            Gauge(label: "lumbung_vm_disk_size_bytes", dimensions: dims).record(vm.disk.bytes)
            Gauge(label: "lumbung_vm_disk_used_bytes", dimensions: dims).record(u?.diskUsed?.bytes ?? 0)
            opdCPU[vm.opd, default: 0] += u?.cpuSeconds ?? 0
            opdMemory[vm.opd, default: 0] += u?.memoryUsed?.bytes ?? 0
            opdLimit[vm.opd, default: 0] += u?.memoryLimit?.bytes ?? vm.memory.bytes
        }
        for (opd, cpu) in opdCPU {
            let dims = [("opd", opd.rawValue)]
            Gauge(label: "lumbung_opd_cpu_seconds", dimensions: dims).record(cpu)
            Gauge(label: "lumbung_opd_memory_bytes", dimensions: dims).record(opdMemory[opd] ?? 0)
            Gauge(label: "lumbung_opd_memory_limit_bytes", dimensions: dims).record(opdLimit[opd] ?? 0)
        }
        let volumes = snapshot.observation.volumes.values
        for v in volumes {
            let dims = [("volume", v.id.rawValue), ("opd", v.opd.rawValue)]
            Gauge(label: "lumbung_volume_size_bytes", dimensions: dims).record(v.size.bytes)
            Gauge(label: "lumbung_volume_used_bytes", dimensions: dims).record(snapshot.volumeUsed[v.id]?.bytes ?? 0)
        }
        // Forget series of what is gone.
        let current = Known(
            vms: Set(vms.map(\.id)), opds: Set(opdCPU.keys), volumes: Set(volumes.map(\.id)),
            vmOPD: Dictionary(uniqueKeysWithValues: vms.map { ($0.id, $0.opd) }),
            volumeOPD: Dictionary(uniqueKeysWithValues: volumes.map { ($0.id, $0.opd) }))
        let previous = known.withLockedValue { k -> Known in
            let p = k
            k = current
            return p
        }
        for id in previous.vms.subtracting(current.vms) {
            guard let opd = previous.vmOPD[id] else { continue }
            let dims = [("vm", id.rawValue), ("opd", opd.rawValue)]
            for label in [
                "lumbung_vm_cpu_seconds", "lumbung_vm_memory_bytes", "lumbung_vm_memory_limit_bytes", "lumbung_vm_vcpus",
                "lumbung_vm_disk_size_bytes", "lumbung_vm_disk_used_bytes",
            ] {
                Gauge(label: label, dimensions: dims).destroy()
            }
        }
        for opd in previous.opds.subtracting(current.opds) {
            for label in ["lumbung_opd_cpu_seconds", "lumbung_opd_memory_bytes", "lumbung_opd_memory_limit_bytes"] {
                Gauge(label: label, dimensions: [("opd", opd.rawValue)]).destroy()
            }
        }
        for id in previous.volumes.subtracting(current.volumes) {
            guard let opd = previous.volumeOPD[id] else { continue }
            for label in ["lumbung_volume_size_bytes", "lumbung_volume_used_bytes"] {
                Gauge(label: label, dimensions: [("volume", id.rawValue), ("opd", opd.rawValue)]).destroy()
            }
        }
    }
}
