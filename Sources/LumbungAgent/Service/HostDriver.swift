#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungAPI
import LumbungCore

/// What a host driver sees on the host at one moment: the reconciler's observation plus the
/// measured usage that goes into reports.
public struct HostSnapshot: Sendable {
    public var observation: HostObservation
    /// Per VM: CPU seconds, memory used and limit, disk used.
    public var vmUsage: [VMID: VMUsageSample]
    /// Per volume: bytes used.
    public var volumeUsed: [VolumeID: ByteSize]

    public init(observation: HostObservation, vmUsage: [VMID: VMUsageSample] = [:], volumeUsed: [VolumeID: ByteSize] = [:]) {
        self.observation = observation
        self.vmUsage = vmUsage
        self.volumeUsed = volumeUsed
    }
}

/// Measured use of one VM.
public struct VMUsageSample: Sendable, Hashable {
    public var cpuSeconds: Double?
    public var memoryUsed: ByteSize?
    public var memoryLimit: ByteSize?
    public var diskUsed: ByteSize?
    public init(cpuSeconds: Double? = nil, memoryUsed: ByteSize? = nil, memoryLimit: ByteSize? = nil, diskUsed: ByteSize? = nil) {
        self.cpuSeconds = cpuSeconds
        self.memoryUsed = memoryUsed
        self.memoryLimit = memoryLimit
        self.diskUsed = diskUsed
    }
}

/// Everything the agent needs from a host: its facts, what runs on it, and a way to carry out
/// one planned action. Implementations: ``SimulatedHostDriver`` (dev mode and load simulation:
/// no side effects) and the Linux driver built from the cgroup, QEMU and volume drivers.
public protocol HostDriver: Sendable {
    /// `real` or `simulated`; reported to the controller and shown in metrics and `lumbung host show`.
    var kind: String { get }
    /// CPU count, memory and each configured pool's size.
    func facts() async throws -> HostCapacity
    /// What is on the host now (VMs, volumes, pool free space, images) and its measured use.
    func snapshot() async throws -> HostSnapshot
    /// Carries out one action of a reconcile plan (idempotent).
    func perform(_ action: ReconcileAction) async throws
}

extension DesiredState {
    /// The reconciler's view of a desired state received from the controller.
    public var intent: DesiredHost {
        DesiredHost(
            vms: vms.map {
                VMIntent(id: $0.id, opd: $0.opd, name: $0.name, vcpu: $0.vcpu, memory: $0.memory, disk: $0.disk, pool: $0.pool, image: $0.image, power: $0.power)
            },
            volumes: volumes.map { VolumeIntent(id: $0.id, opd: $0.opd, name: $0.name, size: $0.size, pool: $0.pool) })
    }
}
