#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungCore

/// Runs VMs on this host. Every operation is keyed by ``VMID`` and idempotent: calling it again
/// with the same arguments converges to the same state and changes nothing more.
///
/// The Linux implementation is ``QEMUDriver`` (one `qemu-system-x86_64` process per VM, confined
/// in its cgroup by a ``ComputeLimits`` driver). Ids, OPDs, pools and image names are validated
/// before any path is built; a refused name touches nothing.
public protocol VMRuntime: Sendable {
    /// Prepares the VM's runtime directory and its qcow2 disk of the allocated size (an overlay
    /// on the named base image, or blank). Never recreates or shrinks an existing disk.
    /// Throws ``VMRuntimeError/Code/imageMissing`` (nothing created) when the image is absent.
    func create(_ spec: VMRunSpec) throws
    /// Creates the VM if needed and runs it: limits applied and the process attached to its
    /// cgroup before the guest executes its first instruction. A VM already running is left alone.
    func start(_ spec: VMRunSpec) async throws
    /// Asks the guest to power off (ACPI), and after `timeout` makes QEMU quit; returns once the
    /// process is gone. A VM that is not running is not an error.
    func stop(_ id: VMID, timeout: Duration) async throws
    /// Grows the VM's disk to `size`: online through QMP `block_resize` while QEMU runs (the guest
    /// sees a bigger disk), with `qemu-img resize` otherwise. Growing to the current size changes
    /// nothing; a smaller size is refused (`invalid_spec`) and the disk is untouched.
    func growDisk(_ spec: VMRunSpec, to size: ByteSize) throws
    /// Stops the VM if running, removes its disk, runtime directory and cgroup. Deleting an
    /// absent VM is not an error.
    func delete(_ id: VMID) async throws
    /// Every VM this host has runtime files for, running or not, with measured use.
    func observe() throws -> [VMObservationOnHost]
    /// After an agent restart: takes over the VMs whose QEMU still runs (same process, never
    /// restarted) and returns every VM found, marked ``VMObservationOnHost/managed``.
    func adopt() throws -> [VMObservationOnHost]
}

/// What one VM needs to run on this host.
public struct VMRunSpec: Sendable, Hashable, Codable {
    /// The VM, e.g. `vm-3f9a0c21`: its runtime directory, QEMU `-name` and cgroup name.
    public var id: VMID
    /// Its OPD: the parent cgroup.
    public var opd: OPDID
    /// Whole vCPUs (`-smp`).
    public var vcpus: Int
    /// Guest memory, whole MiB (`-m`).
    public var memory: ByteSize
    /// The disk's virtual size.
    public var disk: ByteSize
    /// The storage pool holding the disk.
    public var pool: PoolName
    /// A base image file name in the host's image directory (`debian-12.qcow2`), nil for a blank disk.
    public var image: String?

    /// Creates a run spec.
    public init(id: VMID, opd: OPDID, vcpus: Int, memory: ByteSize, disk: ByteSize, pool: PoolName, image: String? = nil) {
        self.id = id
        self.opd = opd
        self.vcpus = vcpus
        self.memory = memory
        self.disk = disk
        self.pool = pool
        self.image = image
    }

    /// The run spec of a desired VM.
    public init(_ intent: VMIntent) {
        self.init(
            id: intent.id, opd: intent.opd, vcpus: intent.vcpu, memory: intent.memory, disk: intent.disk,
            pool: intent.pool, image: intent.image)
    }

    /// The cgroup limits this VM gets.
    public var limits: VMLimits { VMLimits(vm: id, opd: opd, vcpus: vcpus, memory: memory) }
}

/// Where a VM is, as seen on the host.
public enum VMRunStatus: String, Sendable, Hashable, Codable {
    /// QEMU runs and the guest executes (QMP `running`).
    case running
    /// QEMU runs but the guest does not execute (QMP `prelaunch`, `paused`, `shutdown`, `internal-error`…).
    case paused
    /// QEMU runs but QMP did not answer.
    case unresponsive
    /// No QEMU process for this VM.
    case stopped
}

/// One VM found on the host by ``VMRuntime/observe()`` or ``VMRuntime/adopt()``.
public struct VMObservationOnHost: Sendable, Hashable {
    public var id: VMID
    public var opd: OPDID
    public var pool: PoolName
    /// vCPUs it was started with.
    public var vcpus: Int
    /// Guest memory it was started with.
    public var memory: ByteSize
    /// The base image, nil for a blank disk.
    public var image: String?
    /// The live QEMU process, nil when stopped.
    public var pid: Int32?
    /// Summary of the process and QMP status.
    public var status: VMRunStatus
    /// QEMU's own status word from QMP `query-status` (`running`, `prelaunch`, `paused`…), nil without an answer.
    public var qmpStatus: String?
    /// CPU time of the VM's cgroup, nil when the group does not exist.
    public var cpuSeconds: Double?
    /// Memory charged to the VM's cgroup now.
    public var memoryBytes: Int64?
    /// The cgroup's memory limit (guest memory + QEMU overhead).
    public var memoryLimitBytes: Int64?
    /// The disk's virtual size (from the qcow2 header).
    public var diskSize: ByteSize
    /// Bytes the disk file occupies on the pool.
    public var diskUsedBytes: Int64
    /// `kvm` or `tcg`, as the VM was launched.
    public var accel: String?
    /// True once this driver instance created, started or adopted the VM.
    public var managed: Bool

    /// Creates an observation.
    public init(
        id: VMID, opd: OPDID, pool: PoolName, vcpus: Int, memory: ByteSize, image: String?, pid: Int32?,
        status: VMRunStatus, qmpStatus: String?, cpuSeconds: Double?, memoryBytes: Int64?, memoryLimitBytes: Int64?,
        diskSize: ByteSize, diskUsedBytes: Int64, accel: String?, managed: Bool
    ) {
        self.id = id
        self.opd = opd
        self.pool = pool
        self.vcpus = vcpus
        self.memory = memory
        self.image = image
        self.pid = pid
        self.status = status
        self.qmpStatus = qmpStatus
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.diskSize = diskSize
        self.diskUsedBytes = diskUsedBytes
        self.accel = accel
        self.managed = managed
    }

    /// True while the QEMU process lives (running, paused or unresponsive).
    public var processRunning: Bool { pid != nil }

    /// The Core view used by the reconcile planner (running = the QEMU process lives).
    public var observedVM: ObservedVM {
        ObservedVM(
            id: id, opd: opd, pool: pool, running: processRunning, vcpu: vcpus, memory: memory, disk: diskSize, pid: pid,
            managed: managed)
    }
}

/// The one error type of the VM driver: a stable ``Code`` and a sentence naming the VM, the file
/// or command, and what was expected.
public struct VMRuntimeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes. Never rename a raw value: reports and clients match on it.
    public enum Code: String, Sendable, Codable, Hashable {
        /// A VM, OPD, pool or image name is not safe as a path component. Nothing was touched.
        case invalidName = "invalid_name"
        /// vCPUs, memory or disk size out of range, or a path QEMU cannot take.
        case invalidSpec = "invalid_spec"
        /// The base image named by the controller is not in the host's image directory. Nothing was created.
        case imageMissing = "image_missing"
        /// The VM's pool is not configured on this host. Nothing was created.
        case poolMissing = "pool_missing"
        /// The VM has no runtime files on this host.
        case notFound = "vm_not_found"
        /// `qemu-img` failed.
        case diskFailed = "disk_failed"
        /// `qemu-system-x86_64` did not start, or exited.
        case launchFailed = "qemu_launch_failed"
        /// The QMP socket did not answer or returned an error.
        case qmpFailed = "qmp_failed"
        /// The cgroup driver refused the limits or the attach (the QEMU process was killed before the guest ran).
        case limitsFailed = "limits_failed"
        /// The QEMU process survived powerdown, `quit` and SIGKILL.
        case stopFailed = "stop_failed"
        /// A file operation on the runtime directory failed.
        case io = "vm_io"
    }

    /// The stable code.
    public var code: Code
    /// A sentence for people.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The accelerator setting of the agent's config (`accel: auto|kvm|tcg`).
public enum QEMUAccelSetting: String, Sendable, Hashable, Codable {
    /// KVM when a probe shows it can run a guest, TCG otherwise (see ``QEMUDriver/probeAccelerator()``).
    case auto
    /// Always `-accel kvm`.
    case kvm
    /// Always `-accel tcg` (software emulation).
    case tcg
}

/// The accelerator a VM is launched with.
public enum QEMUAccelerator: String, Sendable, Hashable, Codable {
    case kvm, tcg
}

/// The outcome of the KVM probe: the accelerator chosen and why.
public struct QEMUAcceleratorProbe: Sendable, Hashable {
    /// What VMs are launched with.
    public var accelerator: QEMUAccelerator
    /// Why, e.g. `/dev/kvm present, but KVM cannot provide the qemu64 CPU model: …`.
    public var reason: String
    /// Creates a probe result.
    public init(accelerator: QEMUAccelerator, reason: String) {
        self.accelerator = accelerator
        self.reason = reason
    }
}

/// Configuration of ``QEMUDriver``.
public struct QEMUConfig: Sendable {
    /// The agent's state directory; VM runtime directories are `<stateDirectory>/vms/<vm-id>/`.
    public var stateDirectory: String
    /// Base images the controller may name (`image: debian-12.qcow2`).
    public var imageDirectory: String
    /// Pool name → directory. Disks go to `<pool dir>/vms/<vm-id>.qcow2`. When empty, every
    /// disk lives in its runtime directory (`disk.qcow2`) whatever its pool.
    public var poolDirectories: [PoolName: String]
    /// `auto`, `kvm` or `tcg`.
    public var accel: QEMUAccelSetting
    /// The QEMU system emulator.
    public var qemuBinary: String
    /// `qemu-img`.
    public var qemuImgBinary: String
    /// How long to wait for the QMP socket and each answer (generous: a loaded host is slow).
    public var qmpTimeout: Duration
    /// How long `delete` waits for an ACPI powerdown before `quit`.
    public var stopTimeout: Duration
    /// How long QEMU may take to daemonize, and `qemu-img` to finish.
    public var commandTimeout: Duration
    /// TCG translation cache, in MiB (`-accel tcg,tb-size=N`). QEMU's default (1 GiB) would
    /// outgrow the cgroup's QEMU overhead allowance (min 64 MiB) and get QEMU OOM-killed.
    public var tcgTranslationCacheMiB: Int

    /// Creates a configuration; only the state directory has no default.
    public init(
        stateDirectory: String, imageDirectory: String = "/var/lib/lumbung-agent/images",
        poolDirectories: [PoolName: String] = [:], accel: QEMUAccelSetting = .auto,
        qemuBinary: String = "/usr/bin/qemu-system-x86_64", qemuImgBinary: String = "/usr/bin/qemu-img",
        qmpTimeout: Duration = .seconds(10), stopTimeout: Duration = .seconds(60), commandTimeout: Duration = .seconds(60),
        tcgTranslationCacheMiB: Int = 32
    ) {
        self.stateDirectory = stateDirectory
        self.imageDirectory = imageDirectory
        self.poolDirectories = poolDirectories
        self.accel = accel
        self.qemuBinary = qemuBinary
        self.qemuImgBinary = qemuImgBinary
        self.qmpTimeout = qmpTimeout
        self.stopTimeout = stopTimeout
        self.commandTimeout = commandTimeout
        self.tcgTranslationCacheMiB = tcgTranslationCacheMiB
    }
}
