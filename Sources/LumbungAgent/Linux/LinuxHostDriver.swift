#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LumbungCore

/// The real host driver: compute limits in cgroups (``CgroupDriver``), VMs as QEMU processes
/// (``QEMUDriver``), volumes as loop-mounted XFS images (``LoopVolumeDriver``). It maps each
/// planned ``ReconcileAction`` onto those drivers and builds the observation the planner and the
/// reports need. Call ``adoptAll()`` once at start so VMs and volumes that survived an agent
/// restart are taken over (same processes, same mounts), never recreated.
public final class LinuxHostDriver: HostDriver {
    public let kind = "real"
    let vms: any VMRuntime
    let volumes: any VolumeDriver
    let limits: any ComputeLimits
    let pools: [PoolName: String]
    let imageDirectory: String
    /// How long a stop waits for the guest's ACPI power-off before QEMU is told to quit.
    let stopTimeout: Duration

    public init(
        vms: any VMRuntime, volumes: any VolumeDriver, limits: any ComputeLimits, pools: [PoolName: String], imageDirectory: String,
        stopTimeout: Duration = .seconds(60)
    ) {
        self.vms = vms
        self.volumes = volumes
        self.limits = limits
        self.pools = pools
        self.imageDirectory = imageDirectory
        self.stopTimeout = stopTimeout
    }

    /// Takes over what already runs (after an agent restart).
    public func adoptAll() throws {
        _ = try vms.adopt()
        _ = try volumes.adopt()
    }

    public func facts() async throws -> HostCapacity {
        var pools: [PoolName: ByteSize] = [:]
        for (name, path) in self.pools {
            var st = statvfs()
            guard statvfs(path, &st) == 0 else {
                throw AgentError("pool \(name): cannot read the filesystem of \(path): \(String(cString: strerror(errno)))")
            }
            let bytes = Int64(st.f_blocks) * Int64(st.f_frsize)
            pools[name] = ByteSize(bytes: bytes / ByteSize.mib * ByteSize.mib)
        }
        return HostCapacity(cpus: ProcessInfo.processInfo.activeProcessorCount, memory: Self.memTotal(), pools: pools)
    }

    static func memTotal() -> ByteSize {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
            let kib = Int64(line.split(separator: " ").dropFirst().first ?? "")
        else { return ByteSize(bytes: Int64(ProcessInfo.processInfo.physicalMemory) / ByteSize.mib * ByteSize.mib) }
        return ByteSize(bytes: kib * 1024 / ByteSize.mib * ByteSize.mib)
    }

    public func snapshot() async throws -> HostSnapshot {
        let vmObs = try vms.observe()
        let volObs = try volumes.observe()
        var usage: [VMID: VMUsageSample] = [:]
        for vm in vmObs {
            usage[vm.id] = VMUsageSample(
                cpuSeconds: vm.cpuSeconds, memoryUsed: vm.memoryBytes.map { ByteSize(bytes: $0) },
                memoryLimit: vm.memoryLimitBytes.map { ByteSize(bytes: $0) }, diskUsed: ByteSize(bytes: vm.diskUsedBytes))
        }
        var used: [VolumeID: ByteSize] = [:]
        for v in volObs { if let u = v.used { used[v.id] = u } }
        let images = Set((try? FileManager.default.contentsOfDirectory(atPath: imageDirectory)) ?? [])
        let observation = HostObservation(
            vms: vmObs.map(\.observedVM), volumes: volObs.map(\.observed), poolFree: try volumes.poolFree(), images: images)
        return HostSnapshot(observation: observation, vmUsage: usage, volumeUsed: used)
    }

    public func perform(_ action: ReconcileAction) async throws {
        switch action {
        case .createVM(let intent):
            try vms.create(VMRunSpec(intent))
        case .startVM(let intent):
            try await vms.start(VMRunSpec(intent))
        case .stopVM(let observed):
            try await vms.stop(observed.id, timeout: stopTimeout)
        case .resizeVMLimits(let intent):
            // The cgroup limits change now; QEMU's own -smp/-m take the new size at its next start.
            try limits.apply(VMLimits(vm: intent.id, opd: intent.opd, vcpus: intent.vcpu, memory: intent.memory))
        case .growVMDisk(let intent, let from):
            _ = from
            try vms.growDisk(VMRunSpec(intent), to: intent.disk)
        case .deleteVM(let observed):
            try await vms.delete(observed.id)
        case .adoptVM, .adoptVolume:
            break
        case .createVolume(let intent):
            try volumes.create(try spec(intent))
        case .growVolume(let intent, _):
            try volumes.grow(try spec(intent), to: intent.size)
        case .mountVolume(let intent):
            try volumes.mount(try spec(intent))
        case .retainVolume(let observed, let at):
            try volumes.retain(observed.id, at: at)
        case .purgeVolume(let observed):
            try volumes.purge(observed.id)
        }
    }

    func spec(_ intent: VolumeIntent) throws -> VolumeSpecOnHost {
        guard let path = pools[intent.pool] else {
            throw AgentError("this host has no pool \(intent.pool); configured pools: \(pools.keys.sorted().map(\.rawValue).joined(separator: ", "))")
        }
        return VolumeSpecOnHost(id: intent.id, opd: intent.opd, size: intent.size, poolPath: path)
    }
}
