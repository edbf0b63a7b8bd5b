import LumbungCore

/// Enforces each VM's CPU, memory and process limits on this host, one group per OPD with one
/// group per VM beneath it:
///
/// ```
/// <root>/<sub-path>/            e.g. /sys/fs/cgroup/lumbung (v2) or /sys/fs/cgroup/cpu/lumbung (v1)
///   <opd>/                      sum of its VMs' limits on this host
///     <vm>/                     the VM's QEMU process: vCPUs × period, memory + overhead, pids
/// ```
///
/// Every operation is idempotent: calling it again with the same arguments changes nothing.
/// Ids are checked as ``Name``s before they become paths; a refused id touches nothing.
/// The Linux implementation is ``CgroupDriver``.
public protocol ComputeLimits: Sendable {
    /// Creates or updates the VM's group (and its OPD's group) and writes its limits; the OPD
    /// group is set to the sum of its VMs, in an order the kernel accepts.
    func apply(_ spec: VMLimits) throws
    /// Moves a process (all its threads) into the VM's group. The VM's limits must have been
    /// applied first. The QEMU driver calls it before the guest runs.
    func attach(pid: Int32, to vm: VMID, opd: OPDID) throws
    /// The VM group's measured use and limits, or nil when the group does not exist.
    func observe(vm: VMID, opd: OPDID) throws -> VMUsage?
    /// The OPD group's measured use (all its VMs on this host) and limits, or nil when absent.
    func observeOPD(_ opd: OPDID) throws -> OPDUsage?
    /// Removes the VM's group and recomputes its OPD's sum (removing the OPD group when it has
    /// no VM left). Refuses with ``CgroupError/Code/busy`` while processes remain in the group.
    /// Removing a group that does not exist is not an error.
    func remove(vm: VMID, opd: OPDID) throws
    /// Lists the existing `<opd>/<vm>` groups with their limits and processes, so a restarted
    /// agent keeps them instead of recreating them.
    func adopt() throws -> [AdoptedGroup]
    /// Sets the OPD group to the sum of the VM groups present beneath it (removing it when
    /// none is left).
    func recomputeOPD(_ opd: OPDID) throws
}

/// The limits of one group as the kernel holds them. `nil` means unlimited (`max`).
public struct GroupLimits: Sendable, Hashable, CustomStringConvertible {
    /// CPU time the group may use per period, in microseconds (v2 `cpu.max` first field,
    /// v1 `cpu.cfs_quota_us`). `nil` = unlimited.
    public var cpuQuotaMicros: Int64?
    /// The CFS period in microseconds (v2 `cpu.max` second field, v1 `cpu.cfs_period_us`).
    public var cpuPeriodMicros: Int64
    /// The memory limit in bytes (v2 `memory.max`, v1 `memory.limit_in_bytes`). `nil` = unlimited.
    public var memoryLimitBytes: Int64?
    /// The most tasks (processes and threads) the group may hold (`pids.max`). `nil` = unlimited.
    public var pidsLimit: Int64?

    /// No limits at all: what the kernel gives a new group.
    public static let unlimited = GroupLimits(cpuQuotaMicros: nil, memoryLimitBytes: nil, pidsLimit: nil)

    /// Creates limits; the period defaults to ``VMLimits/cpuPeriodMicros``.
    public init(
        cpuQuotaMicros: Int64?, cpuPeriodMicros: Int64 = VMLimits.cpuPeriodMicros,
        memoryLimitBytes: Int64?, pidsLimit: Int64?
    ) {
        self.cpuQuotaMicros = cpuQuotaMicros
        self.cpuPeriodMicros = cpuPeriodMicros
        self.memoryLimitBytes = memoryLimitBytes
        self.pidsLimit = pidsLimit
    }

    /// The CPU quota as a number of cores (quota ÷ period), nil when unlimited.
    public var cores: Double? {
        cpuQuotaMicros.map { Double($0) / Double(cpuPeriodMicros) }
    }

    /// The CPU quota scaled to the standard 100 ms period, so quotas with different periods add up.
    var normalizedQuota: Int64? {
        guard let quota = cpuQuotaMicros else { return nil }
        if cpuPeriodMicros == VMLimits.cpuPeriodMicros { return quota }
        return (quota * VMLimits.cpuPeriodMicros + cpuPeriodMicros - 1) / cpuPeriodMicros
    }

    public var description: String {
        let cpu = cpuQuotaMicros.map { "\($0)/\(cpuPeriodMicros)µs" } ?? "max"
        let memory = memoryLimitBytes.map { "\($0) bytes" } ?? "max"
        let pids = pidsLimit.map { "\($0)" } ?? "max"
        return "cpu \(cpu), memory \(memory), pids \(pids)"
    }
}

/// What one VM is allowed on this host, and the cgroup limits derived from it.
///
/// - CPU quota = vCPUs × ``cpuPeriodMicros`` (100 ms): a 2-vCPU VM gets `200000 100000`.
/// - Memory limit = VM memory + ``memoryOverhead(for:)`` (QEMU's own memory: device models,
///   page tables, I/O buffers).
/// - Pids limit = ``pidsLimit(forVCPUs:)`` (QEMU uses a thread per vCPU plus I/O threads).
public struct VMLimits: Sendable, Hashable {
    /// The VM, e.g. `vm-3f9a0c21`; becomes the group's directory name.
    public var vm: VMID
    /// The VM's OPD, e.g. `dinkes`; becomes the parent group's directory name.
    public var opd: OPDID
    /// Whole vCPUs (1…4096).
    public var vcpus: Int
    /// The guest's memory (whole MiB).
    public var memory: ByteSize

    /// Creates the limits of one VM.
    public init(vm: VMID, opd: OPDID, vcpus: Int, memory: ByteSize) {
        self.vm = vm
        self.opd = opd
        self.vcpus = vcpus
        self.memory = memory
    }

    /// The CFS period used for every group: 100 ms.
    public static let cpuPeriodMicros: Int64 = 100_000

    /// The smallest QEMU memory overhead: 64 MiB.
    public static let minimumMemoryOverhead = ByteSize.mib(64)

    /// The smallest pids limit of a VM group: 512 tasks.
    public static let minimumPidsLimit: Int64 = 512

    /// The memory QEMU needs beyond the guest's: **max(64 MiB, 2 % of the guest memory rounded
    /// up to a whole MiB)**. 1 GiB → 64 MiB; 8 GiB → 164 MiB; 64 GiB → 1311 MiB.
    public static func memoryOverhead(for memory: ByteSize) -> ByteSize {
        let twoPercent = (max(memory.bytes, 0) * 2 + 99) / 100
        let roundedToMiB = (twoPercent + ByteSize.mib - 1) / ByteSize.mib * ByteSize.mib
        return max(minimumMemoryOverhead, ByteSize(bytes: roundedToMiB))
    }

    /// The memory limit of a VM's group: guest memory + ``memoryOverhead(for:)``.
    public static func memoryLimit(for memory: ByteSize) -> ByteSize {
        memory + memoryOverhead(for: memory)
    }

    /// The pids limit of a VM's group: **max(512, 2 × vCPUs + 64)** tasks — room for QEMU's
    /// vCPU and I/O threads, none for a fork bomb.
    public static func pidsLimit(forVCPUs vcpus: Int) -> Int64 {
        max(minimumPidsLimit, 2 * Int64(vcpus) + 64)
    }

    /// vCPUs × 100 ms, in microseconds.
    public var cpuQuotaMicros: Int64 { Int64(vcpus) * Self.cpuPeriodMicros }
    /// Guest memory + QEMU overhead.
    public var memoryLimit: ByteSize { Self.memoryLimit(for: memory) }
    /// The pids limit for this VM's vCPU count.
    public var pidsLimit: Int64 { Self.pidsLimit(forVCPUs: vcpus) }

    /// The limits written to the VM's group.
    public var groupLimits: GroupLimits {
        GroupLimits(
            cpuQuotaMicros: cpuQuotaMicros, cpuPeriodMicros: Self.cpuPeriodMicros,
            memoryLimitBytes: memoryLimit.bytes, pidsLimit: pidsLimit)
    }
}

/// One VM group's measured use and limits.
public struct VMUsage: Sendable, Hashable {
    /// The VM.
    public var vm: VMID
    /// Its OPD.
    public var opd: OPDID
    /// CPU time used by the group since it was created, in microseconds
    /// (v2 `cpu.stat` `usage_usec`; v1 `cpuacct.usage` ÷ 1000).
    public var cpuTimeMicros: Int64
    /// Memory charged to the group now, in bytes (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    public var memoryBytes: Int64
    /// Tasks in the group now (`pids.current`, or the processes in `cgroup.procs`).
    public var pids: Int
    /// The limits the kernel holds for the group.
    public var limits: GroupLimits

    /// CPU time in seconds.
    public var cpuSeconds: Double { Double(cpuTimeMicros) / 1_000_000 }
    /// The memory limit in bytes, nil when unlimited.
    public var memoryLimitBytes: Int64? { limits.memoryLimitBytes }

    /// Creates a usage record.
    public init(vm: VMID, opd: OPDID, cpuTimeMicros: Int64, memoryBytes: Int64, pids: Int, limits: GroupLimits) {
        self.vm = vm
        self.opd = opd
        self.cpuTimeMicros = cpuTimeMicros
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.limits = limits
    }
}

/// One OPD group's measured use (all its VMs on this host together) and limits.
public struct OPDUsage: Sendable, Hashable {
    /// The OPD.
    public var opd: OPDID
    /// The VM groups beneath it, sorted.
    public var vms: [VMID]
    /// CPU time used by the OPD's groups, in microseconds.
    public var cpuTimeMicros: Int64
    /// Memory charged to the OPD's groups now, in bytes.
    public var memoryBytes: Int64
    /// Tasks in the OPD's groups now.
    public var pids: Int
    /// The limits the kernel holds for the OPD group (normally the sum of its VMs').
    public var limits: GroupLimits

    /// CPU time in seconds.
    public var cpuSeconds: Double { Double(cpuTimeMicros) / 1_000_000 }
    /// The memory limit in bytes, nil when unlimited.
    public var memoryLimitBytes: Int64? { limits.memoryLimitBytes }

    /// Creates a usage record.
    public init(opd: OPDID, vms: [VMID], cpuTimeMicros: Int64, memoryBytes: Int64, pids: Int, limits: GroupLimits) {
        self.opd = opd
        self.vms = vms
        self.cpuTimeMicros = cpuTimeMicros
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.limits = limits
    }
}

/// A VM group found on the host by ``ComputeLimits/adopt()``.
public struct AdoptedGroup: Sendable, Hashable {
    /// The OPD (the parent group's name).
    public var opd: OPDID
    /// The VM (the group's name).
    public var vm: VMID
    /// The limits the kernel holds for the group now.
    public var limits: GroupLimits
    /// The processes in the group (e.g. the VM's QEMU), sorted.
    public var pids: [Int32]

    /// Creates an adopted-group record.
    public init(opd: OPDID, vm: VMID, limits: GroupLimits, pids: [Int32]) {
        self.opd = opd
        self.vm = vm
        self.limits = limits
        self.pids = pids
    }

    /// True when the group already holds exactly the limits `spec` derives (so the reconciler
    /// need not re-apply them).
    public func matches(_ spec: VMLimits) -> Bool {
        spec.opd == opd && spec.vm == vm && limits.normalizedQuota == spec.cpuQuotaMicros
            && limits.memoryLimitBytes == spec.memoryLimit.bytes && limits.pidsLimit == spec.pidsLimit
    }
}
