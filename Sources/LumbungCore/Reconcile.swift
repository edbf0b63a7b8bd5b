#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The host agent's reconcile plan: what the controller wants on one host (desired), what the
// host has (observed), and the ordered actions that converge the second to the first.
// The planner itself is in ReconcilePlanner.swift, the expected effect of each action in
// ReconcileEffects.swift, backoff in ReconcileRetry.swift.

// MARK: Desired

/// A VM as the controller wants it on this host (Core's side of the wire type `DesiredVM`).
public struct VMIntent: Hashable, Codable, Sendable {
    public var id: VMID
    public var opd: OPDID
    public var name: String
    public var vcpu: Int
    public var memory: ByteSize
    /// Size of the VM's disk on ``pool``.
    public var disk: ByteSize
    public var pool: PoolName
    /// Base image in the host's image directory; nil for a blank disk.
    public var image: String?
    public var power: PowerState

    /// Creates a desired VM.
    public init(
        id: VMID, opd: OPDID, name: String, vcpu: Int, memory: ByteSize, disk: ByteSize, pool: PoolName, image: String? = nil,
        power: PowerState = .running
    ) {
        self.id = id
        self.opd = opd
        self.name = name
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
        self.pool = pool
        self.image = image
        self.power = power
    }
}

/// A volume as the controller wants it on this host (Core's side of the wire type `DesiredVolume`).
public struct VolumeIntent: Hashable, Codable, Sendable {
    public var id: VolumeID
    public var opd: OPDID
    public var name: String
    public var size: ByteSize
    public var pool: PoolName

    /// Creates a desired volume.
    public init(id: VolumeID, opd: OPDID, name: String, size: ByteSize, pool: PoolName) {
        self.id = id
        self.opd = opd
        self.name = name
        self.size = size
        self.pool = pool
    }
}

/// Everything the controller wants on one host. Anything the host holds that is not listed
/// is removed — VMs are deleted, volumes only retained (then purged after the retention).
///
/// An empty value therefore deletes every VM: plan only against a desired state that was
/// actually received from the controller (or persisted after receiving it), never a default.
public struct DesiredHost: Hashable, Codable, Sendable {
    public var vms: [VMIntent]
    public var volumes: [VolumeIntent]

    /// Creates a desired state.
    public init(vms: [VMIntent] = [], volumes: [VolumeIntent] = []) {
        self.vms = vms
        self.volumes = volumes
    }
}

// MARK: Observed

/// A VM found on the host: its disk and runtime files exist. VMs that are absent are simply
/// not listed in ``HostObservation/vms``.
public struct ObservedVM: Hashable, Codable, Sendable {
    public var id: VMID
    public var opd: OPDID
    /// The pool its disk lives on.
    public var pool: PoolName
    /// True while its QEMU process runs.
    public var running: Bool
    /// The vCPU limit currently applied.
    public var vcpu: Int
    /// The memory limit currently applied (the VM's memory, without QEMU's overhead).
    public var memory: ByteSize
    /// The disk's virtual size.
    public var disk: ByteSize
    /// The QEMU process id while running.
    public var pid: Int32?
    /// True once this agent process has taken the VM over (created or adopted it). False for
    /// everything found after an agent restart.
    public var managed: Bool

    /// Creates an observation.
    public init(
        id: VMID, opd: OPDID, pool: PoolName, running: Bool, vcpu: Int, memory: ByteSize, disk: ByteSize, pid: Int32? = nil,
        managed: Bool = true
    ) {
        self.id = id
        self.opd = opd
        self.pool = pool
        self.running = running
        self.vcpu = vcpu
        self.memory = memory
        self.disk = disk
        self.pid = pid
        self.managed = managed
    }

    /// Where the VM is in its host-side lifecycle (see ``HostVMState``).
    public var hostState: HostVMState { running ? .running : .stopped }
}

/// A volume found on the host: its image file exists. Absent volumes are not listed in
/// ``HostObservation/volumes``.
public struct ObservedVolume: Hashable, Codable, Sendable {
    public var id: VolumeID
    public var opd: OPDID
    public var pool: PoolName
    /// The filesystem's size.
    public var size: ByteSize
    /// True while its filesystem is mounted.
    public var mounted: Bool
    /// Set when the volume was retained (unmounted because no longer desired); its data is
    /// purged at `deletedAt + retention`.
    public var deletedAt: Date?
    /// True once this agent process has taken the volume over (created, mounted or adopted it).
    public var managed: Bool

    /// Creates an observation.
    public init(
        id: VolumeID, opd: OPDID, pool: PoolName, size: ByteSize, mounted: Bool, deletedAt: Date? = nil, managed: Bool = true
    ) {
        self.id = id
        self.opd = opd
        self.pool = pool
        self.size = size
        self.mounted = mounted
        self.deletedAt = deletedAt
        self.managed = managed
    }

    /// Where the volume is in its host-side lifecycle (see ``HostVolumeState``).
    public var hostState: HostVolumeState {
        if deletedAt != nil { return .retained }
        return mounted ? .mounted : .unmounted
    }
}

/// What the agent observed on its host: VMs and volumes by id, the free bytes of each
/// storage pool the host has, and the base images in its image directory.
public struct HostObservation: Hashable, Codable, Sendable {
    public var vms: [VMID: ObservedVM]
    public var volumes: [VolumeID: ObservedVolume]
    /// Free bytes per pool. A pool not listed does not exist on this host.
    public var poolFree: [PoolName: ByteSize]
    /// Names of the base images present.
    public var images: Set<String>

    /// Creates an observation.
    public init(
        vms: [VMID: ObservedVM] = [:], volumes: [VolumeID: ObservedVolume] = [:], poolFree: [PoolName: ByteSize] = [:],
        images: Set<String> = []
    ) {
        self.vms = vms
        self.volumes = volumes
        self.poolFree = poolFree
        self.images = images
    }

    /// Builds the dictionaries from lists (a later duplicate id replaces an earlier one).
    public init(vms: [ObservedVM], volumes: [ObservedVolume], poolFree: [PoolName: ByteSize], images: Set<String>) {
        self.init(
            vms: Dictionary(vms.map { ($0.id, $0) }, uniquingKeysWith: { $1 }),
            volumes: Dictionary(volumes.map { ($0.id, $0) }, uniquingKeysWith: { $1 }), poolFree: poolFree, images: images)
    }
}

// MARK: Host-side lifecycles

/// A VM on the host, as the planner sees it, and the actions that move it.
///
/// ```
///            createVM            startVM
///  absent ────────────► stopped ─────────► running
///    ▲                   │   ▲   stopVM     │
///    │      deleteVM     │   └──────────────┘
///    └───────────────────┘  (a running VM is stopped first: stopVM, deleteVM)
///
///  in place, keeping the state: adoptVM (take over after an agent restart),
///  resizeVMLimits (vCPU/memory), growVMDisk (never shrinks)
/// ```
public enum HostVMState: String, Hashable, Codable, Sendable, CaseIterable {
    case absent, stopped, running
}

/// A volume on the host, as the planner sees it, and the actions that move it. Only
/// `purgeVolume` destroys data, and only once the retention has passed.
///
/// ```
///            createVolume             mountVolume
///  absent ───────────────► unmounted ────────────► mounted ◄──┐ growVolume (online, never shrinks)
///    ▲                        │                      │  └─────┘ adoptVolume (after an agent restart)
///    │                        │ retainVolume         │ retainVolume (no longer desired:
///    │                        ▼                      ▼           unmount, keep data, record deletedAt)
///    │   purgeVolume       ┌────────────────────────────┐
///    └─────────────────────┤          retained          │──mountVolume (desired again)──► mounted
///   (now ≥ deletedAt +     └────────────────────────────┘
///    retention, not desired)
/// ```
public enum HostVolumeState: String, Hashable, Codable, Sendable, CaseIterable {
    case absent, unmounted, mounted, retained
}

// MARK: Actions

/// What a reconcile action is about.
public enum ReconcileSubject: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    case vm(VMID)
    case volume(VolumeID)

    /// `vm:vm-1` or `volume:vol-1`.
    public var description: String {
        switch self {
        case .vm(let id): "vm:\(id)"
        case .volume(let id): "volume:\(id)"
        }
    }
}

/// The order in which actions run. Within one phase actions are sorted by subject id and
/// are independent of each other, so a phase may be applied in parallel.
///
/// Take over what runs, free resources (stop, delete, retain, shrink limits) before using
/// them, make volumes before the VMs that may use them, give a VM its disk and limits before
/// it starts, and destroy retained data last.
public enum ReconcilePhase: Int, Hashable, Codable, Sendable, Comparable, CaseIterable {
    case adopt, stopVM, deleteVM, retainVolume, resizeVMLimits, createVolume, mountVolume, growVolume, createVM, growVMDisk,
        startVM, purgeVolume

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One step that converges the host. Every action is idempotent for its driver: applying
/// it to a host already in the target state changes nothing.
public enum ReconcileAction: Hashable, Sendable, CustomStringConvertible {
    /// Create the VM's runtime files and its disk (an overlay on the image, or blank) and
    /// its cgroup; the VM is left stopped.
    case createVM(VMIntent)
    /// Start the VM's QEMU process in its cgroup.
    case startVM(VMIntent)
    /// Stop the VM (ACPI powerdown, then quit after a timeout).
    case stopVM(ObservedVM)
    /// Apply new vCPU/memory limits to the VM's cgroup (and its next start).
    case resizeVMLimits(VMIntent)
    /// Grow the VM's disk from its current size to the intent's.
    case growVMDisk(VMIntent, from: ByteSize)
    /// Remove a stopped VM: runtime files, disk and cgroup.
    case deleteVM(ObservedVM)
    /// Take over a VM found after an agent restart, without restarting it.
    case adoptVM(VMIntent, pid: Int32?)
    /// Create the volume's sparse image and filesystem; it is left unmounted.
    case createVolume(VolumeIntent)
    /// Grow the mounted volume online from its current size to the intent's.
    case growVolume(VolumeIntent, from: ByteSize)
    /// Mount the volume (clearing its retention mark when it was retained and is desired again).
    case mountVolume(VolumeIntent)
    /// No longer desired: unmount it, keep its data and record `at` as its deletion time.
    case retainVolume(ObservedVolume, at: Date)
    /// Destroy a retained volume's data: its retention has passed.
    case purgeVolume(ObservedVolume)
    /// Take over a volume found after an agent restart, without remounting it.
    case adoptVolume(VolumeIntent)

    /// The VM or volume acted on.
    public var subject: ReconcileSubject {
        switch self {
        case .createVM(let v), .startVM(let v), .resizeVMLimits(let v), .growVMDisk(let v, _), .adoptVM(let v, _): .vm(v.id)
        case .stopVM(let o), .deleteVM(let o): .vm(o.id)
        case .createVolume(let v), .growVolume(let v, _), .mountVolume(let v), .adoptVolume(let v): .volume(v.id)
        case .retainVolume(let o, _), .purgeVolume(let o): .volume(o.id)
        }
    }

    /// When it runs relative to the others.
    public var phase: ReconcilePhase {
        switch self {
        case .adoptVM, .adoptVolume: .adopt
        case .stopVM: .stopVM
        case .deleteVM: .deleteVM
        case .retainVolume: .retainVolume
        case .resizeVMLimits: .resizeVMLimits
        case .createVolume: .createVolume
        case .mountVolume: .mountVolume
        case .growVolume: .growVolume
        case .createVM: .createVM
        case .growVMDisk: .growVMDisk
        case .startVM: .startVM
        case .purgeVolume: .purgeVolume
        }
    }

    /// A stable snake_case name for logs and metric labels, e.g. `create_vm`.
    public var kind: String {
        switch self {
        case .createVM: "create_vm"
        case .startVM: "start_vm"
        case .stopVM: "stop_vm"
        case .resizeVMLimits: "resize_vm_limits"
        case .growVMDisk: "grow_vm_disk"
        case .deleteVM: "delete_vm"
        case .adoptVM: "adopt_vm"
        case .createVolume: "create_volume"
        case .growVolume: "grow_volume"
        case .mountVolume: "mount_volume"
        case .retainVolume: "retain_volume"
        case .purgeVolume: "purge_volume"
        case .adoptVolume: "adopt_volume"
        }
    }

    /// `create_vm vm:vm-1`.
    public var description: String { "\(kind) \(subject)" }

    /// True only for ``purgeVolume``: the one action that destroys a volume's data.
    public var destroysVolumeData: Bool {
        if case .purgeVolume = self { return true }
        return false
    }
}

// MARK: Errors

/// A desired VM or volume the agent cannot converge to. It is reported to the controller
/// instead of acted on; the item gets no action at all while it is in error, and other
/// items are not affected.
public struct ReconcileError: Error, Hashable, Codable, Sendable, CustomStringConvertible {
    /// Stable codes. Never rename a raw value: the controller and people match on it.
    public enum Code: String, Hashable, Codable, Sendable, CaseIterable {
        /// An id, OPD, name, pool or image name that is not accepted (it could escape a path).
        case invalidName = "invalid_name"
        /// A vCPU count or size that is not accepted (zero, not whole MiB, absurd).
        case invalidAmount = "invalid_amount"
        /// The same id is desired twice; the later one is ignored.
        case duplicateID = "duplicate_id"
        /// The base image is not in the host's image directory.
        case imageMissing = "image_missing"
        /// The pool does not exist on this host.
        case unknownPool = "unknown_pool"
        /// The pool has less free space than the creation or growth needs.
        case insufficientSpace = "insufficient_space"
        /// A smaller size than the current one: disks and volumes never shrink.
        case shrinkRefused = "shrink_refused"
        /// The item exists on the host under another OPD or pool; it is never moved.
        case moveRefused = "move_refused"
        /// A driver failed to carry out an action (a process, a file, a device); retried with backoff.
        case actionFailed = "action_failed"

        /// True when only a change of the desired state (or an admin's hand) can resolve it;
        /// false when it may resolve by itself (space freed by deletions, purges).
        public var isTerminal: Bool {
            switch self {
            case .insufficientSpace, .actionFailed: false
            case .invalidName, .invalidAmount, .duplicateID, .imageMissing, .unknownPool, .shrinkRefused, .moveRefused: true
            }
        }
    }

    /// The VM or volume concerned.
    public var subject: ReconcileSubject
    /// The stable code.
    public var code: Code
    /// A sentence for people: what was wrong and what would be accepted.
    public var message: String

    /// Creates an error.
    public init(_ subject: ReconcileSubject, _ code: Code, _ message: String) {
        self.subject = subject
        self.code = code
        self.message = message
    }

    /// See ``Code/isTerminal``.
    public var isTerminal: Bool { code.isTerminal }

    /// `vm:vm-1: image_missing: …`.
    public var description: String { "\(subject): \(code.rawValue): \(message)" }
}

// MARK: Plan

/// The outcome of one reconcile pass: actions in execution order, and errors to report.
public struct ReconcilePlan: Hashable, Sendable {
    /// Ordered by ``ReconcilePhase``, then by subject.
    public var actions: [ReconcileAction]
    /// Ordered by subject.
    public var errors: [ReconcileError]

    /// Creates a plan.
    public init(actions: [ReconcileAction] = [], errors: [ReconcileError] = []) {
        self.actions = actions
        self.errors = errors
    }

    /// True when the host has converged: nothing to do and nothing to report.
    public var isEmpty: Bool { actions.isEmpty && errors.isEmpty }

    /// The actions about one VM or volume, in order.
    public func actions(for subject: ReconcileSubject) -> [ReconcileAction] {
        actions.filter { $0.subject == subject }
    }

    /// The errors about one VM or volume.
    public func errors(for subject: ReconcileSubject) -> [ReconcileError] {
        errors.filter { $0.subject == subject }
    }
}
