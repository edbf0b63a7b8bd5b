#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import LumbungCore

import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The Linux VM driver: one daemonized `qemu-system-x86_64` per VM, confined in its cgroup.
///
/// Runtime directory `<state>/vms/<vm-id>/`:
///
/// | file | holds |
/// |---|---|
/// | `vm.json` | the ``VMRunSpec`` and accelerator it was started with (so observe/adopt know its OPD) |
/// | `disk.qcow2` | the disk, unless pools are configured (then `<pool dir>/vms/<vm-id>.qcow2`) |
/// | `qmp.sock` | the QMP socket |
/// | `qemu.pid` | QEMU's pidfile |
/// | `qemu.log` | what QEMU printed while starting |
///
/// **Start order**: limits applied → QEMU launched with `-S` (guest held before its first
/// instruction) and `-daemonize` (it outlives the agent) → its pid attached to the VM's cgroup →
/// QMP `cont`. A failure between launch and `cont` kills QEMU, so no guest ever runs unconfined.
///
/// **Stop**: QMP `system_powerdown` (ACPI), wait up to the timeout, then QMP `quit`, then SIGKILL.
///
/// **Liveness**: a pid counts only when `/proc/<pid>/cmdline` is QEMU's with `-name <vm-id>`,
/// so a reused pid is never mistaken for the VM.
///
/// **Accelerator** (`auto`): see ``probeAccelerator()``. The result is cached for the driver's life.
public final class QEMUDriver: VMRuntime, @unchecked Sendable {
    /// The configuration.
    public let config: QEMUConfig
    private let limits: any ComputeLimits
    private let system: any QEMUSystem
    private let logger: Logger
    private let lock = NIOLock()
    private var probe: QEMUAcceleratorProbe?
    private var managedVMs: Set<VMID> = []

    /// The commands the KVM probe sends on QEMU's stdio QMP.
    static let probeInput = """
        {"execute":"qmp_capabilities"}
        {"execute":"query-kvm"}
        {"execute":"quit"}

        """

    /// Creates a driver.
    ///
    /// - Parameters:
    ///   - config: directories, binaries, accelerator and timeouts.
    ///   - limits: the compute-limits driver (``CgroupDriver`` on a host).
    ///   - system: the OS layer (``LinuxQEMUSystem`` on a host, a fake in unit tests).
    ///   - logger: lifecycle events at info, details at debug.
    public init(
        config: QEMUConfig, limits: any ComputeLimits, system: any QEMUSystem = LinuxQEMUSystem(),
        logger: Logger = Logger(label: "lumbung.agent.qemu", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.config = config
        self.limits = limits
        self.system = system
        self.logger = logger
    }

    // MARK: - Accelerator

    /// The accelerator VMs are launched with, probing once when the setting is `auto`.
    public func accelerator() -> QEMUAcceleratorProbe {
        switch config.accel {
        case .kvm: return QEMUAcceleratorProbe(accelerator: .kvm, reason: "configured: accel kvm")
        case .tcg: return QEMUAcceleratorProbe(accelerator: .tcg, reason: "configured: accel tcg")
        case .auto:
            if let cached = lock.withLock({ probe }) { return cached }
            let result = probeAccelerator()
            lock.withLock { probe = result }
            logger.info(
                "Selected QEMU accelerator", metadata: ["accel": "\(result.accelerator.rawValue)", "reason": "\(result.reason)"])
            return result
        }
    }

    /// Decides whether KVM can run a guest here. `/dev/kvm` existing is not enough: a nested
    /// or software KVM may open, create a VM and even report `query-kvm` enabled, yet lack CPU
    /// features every guest kernel expects. So the probe starts a held (`-S`) QEMU with
    /// `-accel kvm -cpu qemu64,enforce` (fails when KVM cannot provide the CPU model QEMU
    /// gives guests by default) and asks QMP `query-kvm`; KVM is chosen only when QEMU starts
    /// and reports `{"enabled": true, "present": true}`. Anything else selects TCG.
    ///
    /// Measured on the development machine (Firecracker guest with a PVM "software" KVM):
    /// plain `-accel kvm` starts and `query-kvm` says enabled, but KVM lacks SSE3
    /// (`CPUID.01H:ECX.pni`), so `enforce` makes QEMU exit 1 → TCG.
    public func probeAccelerator() -> QEMUAcceleratorProbe {
        guard system.kvmDeviceUsable() else {
            return QEMUAcceleratorProbe(accelerator: .tcg, reason: "/dev/kvm is missing or not readable and writable")
        }
        let args = [
            "-accel", "kvm", "-cpu", "qemu64,enforce", "-machine", "q35", "-S", "-display", "none", "-nodefaults",
            "-no-user-config", "-qmp", "stdio",
        ]
        let result: QEMUCommandResult
        do {
            result = try system.run(config.qemuBinary, args, input: Self.probeInput, timeout: .seconds(30))
        } catch {
            return QEMUAcceleratorProbe(accelerator: .tcg, reason: "the KVM probe did not run: \(error)")
        }
        let stderr = result.stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        guard result.status == 0 else {
            return QEMUAcceleratorProbe(
                accelerator: .tcg,
                reason: "/dev/kvm present, but QEMU cannot run a guest with KVM (exit \(result.status)): \(stderr.joined(separator: "; "))")
        }
        for line in result.stdout.split(separator: "\n") {
            guard let value = QMPValue.parse(line), let ret = value["return"], ret["enabled"] != nil else { continue }
            if ret["enabled"]?.boolValue == true && ret["present"]?.boolValue == true {
                return QEMUAcceleratorProbe(accelerator: .kvm, reason: "KVM probe passed: query-kvm \(ret.json)")
            }
            return QEMUAcceleratorProbe(accelerator: .tcg, reason: "KVM not usable: query-kvm \(ret.json)")
        }
        return QEMUAcceleratorProbe(accelerator: .tcg, reason: "the KVM probe gave no query-kvm answer")
    }

    // MARK: - Paths and names

    /// `<state>/vms`.
    public var vmsDirectory: String { config.stateDirectory + "/vms" }

    /// The runtime directory of a VM (after validating the id).
    public func runtimeDirectory(of id: VMID) throws -> String {
        "\(vmsDirectory)/\(try Self.checkedName(id.rawValue, what: "VM id"))"
    }

    static func checkedName(_ text: String, what: String) throws -> String {
        do {
            return try Name.validate(text, what: what)
        } catch {
            throw VMRuntimeError(.invalidName, "\(error.message); nothing was touched")
        }
    }

    /// An image is a file name in the image directory: `[A-Za-z0-9._-]`, not starting with `.`.
    static func checkedImageName(_ image: String) throws -> String {
        let ok = !image.isEmpty && image.count <= 255 && image.first != "."
            && image.utf8.allSatisfy { b in
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                    || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".")
                    || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
            }
        guard ok else {
            throw VMRuntimeError(
                .invalidName,
                "image name '\(image.prefix(80))' is not a plain file name; use letters, digits, '.', '-' and '_', not starting with '.'; nothing was touched")
        }
        return image
    }

    private func checked(_ spec: VMRunSpec) throws {
        _ = try Self.checkedName(spec.id.rawValue, what: "VM id")
        _ = try Self.checkedName(spec.opd.rawValue, what: "OPD id")
        _ = try Self.checkedName(spec.pool.rawValue, what: "pool name")
        if let image = spec.image { _ = try Self.checkedImageName(image) }
        guard (1...4096).contains(spec.vcpus) else {
            throw VMRuntimeError(.invalidSpec, "VM '\(spec.id)' asks for \(spec.vcpus) vCPUs; use 1–4096")
        }
        guard spec.memory.bytes > 0, spec.memory.bytes % ByteSize.mib == 0 else {
            throw VMRuntimeError(.invalidSpec, "VM '\(spec.id)' memory \(spec.memory.bytes) bytes is not a positive whole number of MiB")
        }
        guard spec.disk.bytes > 0, spec.disk.bytes % ByteSize.mib == 0 else {
            throw VMRuntimeError(.invalidSpec, "VM '\(spec.id)' disk \(spec.disk.bytes) bytes is not a positive whole number of MiB")
        }
        for path in [config.stateDirectory, config.imageDirectory] + config.poolDirectories.values where path.contains(",") {
            throw VMRuntimeError(.invalidSpec, "directory \(path) contains ',', which QEMU's option syntax cannot take")
        }
    }

    /// Where a VM's disk lives.
    func diskPath(id: VMID, pool: PoolName) throws -> String {
        if config.poolDirectories.isEmpty { return try runtimeDirectory(of: id) + "/disk.qcow2" }
        guard let dir = config.poolDirectories[pool] else {
            throw VMRuntimeError(
                .poolMissing,
                "pool '\(pool)' is not configured on this host (it has \(config.poolDirectories.keys.sorted().map(\.rawValue).joined(separator: ", "))); nothing was created")
        }
        return "\(dir)/vms/\(id.rawValue).qcow2"
    }

    /// The base image file for `image`, or `image_missing`.
    func baseImage(_ image: String) throws -> (path: String, format: String) {
        let name = try Self.checkedImageName(image)
        let path = config.imageDirectory + "/" + name
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR else {
            throw VMRuntimeError(
                .imageMissing, "image '\(name)' is not in this host's image directory \(config.imageDirectory); nothing was created")
        }
        // Only the magic number: a base image can be many GiB.
        return (path, Self.readHead(path, 4) == [0x51, 0x46, 0x49, 0xFB] ? "qcow2" : "raw")
    }

    // MARK: - Record

    /// What the runtime directory remembers about a VM.
    struct Record: Codable, Hashable {
        var spec: VMRunSpec
        var accel: String?
    }

    private func readRecord(_ dir: String) -> Record? {
        guard let data = FileManager.default.contents(atPath: dir + "/vm.json") else { return nil }
        return try? JSONDecoder().decode(Record.self, from: data)
    }

    private func writeRecord(_ record: Record, _ dir: String) throws {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(record).write(to: URL(fileURLWithPath: dir + "/vm.json"), options: .atomic)
        } catch {
            throw VMRuntimeError(.io, "cannot write \(dir)/vm.json: \(error)")
        }
    }

    // MARK: - Arguments

    /// The exact `qemu-system-x86_64` arguments for a VM.
    public func arguments(for spec: VMRunSpec, accelerator: QEMUAccelerator) throws -> [String] {
        let dir = try runtimeDirectory(of: spec.id)
        let disk = try diskPath(id: spec.id, pool: spec.pool)
        let accel = accelerator == .tcg ? "tcg,tb-size=\(config.tcgTranslationCacheMiB)" : "kvm"
        return [
            "-name", spec.id.rawValue,
            "-machine", "q35",
            "-accel", accel,
            "-smp", String(spec.vcpus),
            "-m", String(spec.memory.bytes / ByteSize.mib),
            "-drive", "file=\(Self.escaped(disk)),if=virtio,format=qcow2",
            "-qmp", "unix:\(Self.escaped(dir))/qmp.sock,server=on,wait=off",
            "-pidfile", dir + "/qemu.pid",
            "-daemonize",
            "-S",
            "-display", "none",
            "-nodefaults",
            "-no-user-config",
            "-serial", "none",
        ]
    }

    /// QEMU option values escape ',' by doubling it.
    static func escaped(_ path: String) -> String { path.replacing(",", with: ",,") }

    // MARK: - VMRuntime

    public func create(_ spec: VMRunSpec) throws {
        try checked(spec)
        let dir = try runtimeDirectory(of: spec.id)
        let disk = try diskPath(id: spec.id, pool: spec.pool)
        let base = try spec.image.map(baseImage)  // image_missing before anything is created
        let socket = dir + "/qmp.sock"
        guard socket.utf8.count < 108 else {
            throw VMRuntimeError(.invalidSpec, "QMP socket path \(socket) is longer than a Unix socket allows (107 bytes)")
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                atPath: String(disk[..<(disk.lastIndex(of: "/") ?? disk.endIndex)]), withIntermediateDirectories: true)
        } catch {
            throw VMRuntimeError(.io, "cannot create the runtime directory of VM '\(spec.id)': \(error)")
        }
        var record = readRecord(dir) ?? Record(spec: spec, accel: nil)
        record.spec = spec
        if !FileManager.default.fileExists(atPath: disk) {
            let partial = disk + ".part"
            try? FileManager.default.removeItem(atPath: partial)
            var args = ["create", "-q", "-f", "qcow2"]
            if let base { args += ["-b", base.path, "-F", base.format] }
            args += [partial, String(spec.disk.bytes)]
            let result = try system.run(config.qemuImgBinary, args, input: nil, timeout: config.commandTimeout)
            guard result.status == 0 else {
                try? FileManager.default.removeItem(atPath: partial)
                throw VMRuntimeError(
                    .diskFailed,
                    "qemu-img could not create the disk of VM '\(spec.id)' (exit \(result.status)): \(result.stderr.trimmed())")
            }
            do {
                try FileManager.default.moveItem(atPath: partial, toPath: disk)
            } catch {
                throw VMRuntimeError(.io, "cannot move the new disk into place at \(disk): \(error)")
            }
            logger.info("Created VM disk", metadata: ["vm.id": "\(spec.id)", "disk": "\(disk)", "image": "\(spec.image ?? "-")"])
        }
        try writeRecord(record, dir)
        lock.withLock { _ = managedVMs.insert(spec.id) }
    }

    public func start(_ spec: VMRunSpec) async throws {
        try create(spec)
        let dir = try runtimeDirectory(of: spec.id)
        if let pid = livePID(spec.id, dir) {
            // Already running. A QEMU still held at -S (the agent died before `cont`) is
            // confined and released now; a running one is left alone.
            let status = try? withQMP(dir) { try $0.execute("query-status")["status"]?.stringValue }
            if status == "prelaunch" {
                try confine(spec, pid: pid)
                try withQMP(dir) { _ = try $0.execute("cont") }
            }
            return
        }
        let accel = accelerator().accelerator
        do {
            try limits.apply(spec.limits)
        } catch {
            throw VMRuntimeError(.limitsFailed, "cannot apply the limits of VM '\(spec.id)': \(error)")
        }
        for file in ["qemu.pid", "qmp.sock"] { try? FileManager.default.removeItem(atPath: dir + "/" + file) }
        var record = readRecord(dir) ?? Record(spec: spec)
        record.spec = spec
        record.accel = accel.rawValue
        try writeRecord(record, dir)

        let args = try arguments(for: spec, accelerator: accel)
        logger.info(
            "Starting VM", metadata: ["vm.id": "\(spec.id)", "opd.id": "\(spec.opd)", "accel": "\(accel.rawValue)"])
        let result = try system.launch(config.qemuBinary, args, logFile: dir + "/qemu.log", timeout: config.commandTimeout)
        guard result.status == 0 else {
            throw VMRuntimeError(
                .launchFailed,
                "QEMU did not start VM '\(spec.id)' (exit \(result.status)): \(result.stderr.trimmed().suffix(500))")
        }
        guard let pid = readPID(dir), system.commandLine(of: pid) != nil else {
            throw VMRuntimeError(.launchFailed, "QEMU exited right after starting VM '\(spec.id)' (no live pid in \(dir)/qemu.pid)")
        }
        do {
            try confine(spec, pid: pid)
            try withQMP(dir) { _ = try $0.execute("cont") }
        } catch {
            // Never let a guest run outside its cgroup.
            system.signal(pid, SIGKILL)
            _ = await waitGone(pid, spec.id, timeout: .seconds(5))
            throw error
        }
        logger.info("VM running", metadata: ["vm.id": "\(spec.id)", "pid": "\(pid)"])
    }

    private func confine(_ spec: VMRunSpec, pid: Int32) throws {
        do {
            try limits.apply(spec.limits)
            try limits.attach(pid: pid, to: spec.id, opd: spec.opd)
        } catch {
            throw VMRuntimeError(.limitsFailed, "cannot confine VM '\(spec.id)' (pid \(pid)) in its cgroup: \(error)")
        }
    }

    public func growDisk(_ spec: VMRunSpec, to size: ByteSize) throws {
        try checked(spec)
        let dir = try runtimeDirectory(of: spec.id)
        let disk = try diskPath(id: spec.id, pool: spec.pool)
        guard var record = readRecord(dir), FileManager.default.fileExists(atPath: disk) else {
            throw VMRuntimeError(.notFound, "VM '\(spec.id)' has no disk on this host to grow; nothing was changed")
        }
        do {
            _ = try ByteSize.validate(size, what: "disk of VM '\(spec.id)'")
        } catch {
            throw VMRuntimeError(.invalidSpec, "refusing to grow the disk of VM '\(spec.id)': \(error); nothing was changed")
        }
        guard let current = Self.diskSizes(disk).virtual else {
            throw VMRuntimeError(.diskFailed, "cannot read the size of \(disk) (not a qcow2 image?); nothing was changed")
        }
        if size == current {
            record.spec.disk = size
            try writeRecord(record, dir)
            return
        }
        guard size > current else {
            throw VMRuntimeError(
                .invalidSpec, "the disk of VM '\(spec.id)' is \(current); shrinking it to \(size) is refused (it would destroy data); nothing was changed")
        }
        if livePID(spec.id, dir) != nil {
            try withQMP(dir) { qmp in
                let target = try Self.blockDevice(of: disk, in: qmp.execute("query-block"))
                _ = try qmp.execute("block_resize", arguments: [target.key: .string(target.name), "size": .number(Double(size.bytes))])
            }
            logger.info("Grew VM disk online", metadata: ["vm.id": "\(spec.id)", "from": "\(current)", "to": "\(size)"])
        } else {
            let result = try system.run(config.qemuImgBinary, ["resize", "-q", "-f", "qcow2", disk, String(size.bytes)], input: nil, timeout: config.commandTimeout)
            guard result.status == 0 else {
                throw VMRuntimeError(
                    .diskFailed,
                    "qemu-img could not grow the disk of VM '\(spec.id)' (exit \(result.status)): \(result.stderr.trimmed())")
            }
            logger.info("Grew VM disk", metadata: ["vm.id": "\(spec.id)", "from": "\(current)", "to": "\(size)"])
        }
        record.spec.disk = size
        try writeRecord(record, dir)
    }

    /// How `block_resize` names the block device whose top image is `path`, from a `query-block`
    /// answer: `device` (the drive name) when QEMU gives one, else the top `node-name`.
    static func blockDevice(of path: String, in answer: QMPValue) throws -> (key: String, name: String) {
        if case .array(let devices) = answer {
            for device in devices where device["inserted"]?["file"]?.stringValue == path {
                if let name = device["device"]?.stringValue, !name.isEmpty { return ("device", name) }
                if let node = device["inserted"]?["node-name"]?.stringValue, !node.isEmpty { return ("node-name", node) }
            }
        }
        throw VMRuntimeError(.qmpFailed, "QEMU does not show the disk \(path) in query-block; cannot grow it online")
    }

    public func stop(_ id: VMID, timeout: Duration) async throws {
        let dir = try runtimeDirectory(of: id)
        guard let pid = livePID(id, dir) else {
            cleanRuntimeFiles(dir)
            return
        }
        logger.info("Stopping VM", metadata: ["vm.id": "\(id)", "pid": "\(pid)"])
        do {
            try withQMP(dir) { _ = try $0.execute("system_powerdown") }
        } catch {
            logger.debug("ACPI powerdown failed", metadata: ["vm.id": "\(id)", "error": "\(error)"])
        }
        if await waitGone(pid, id, timeout: timeout) {
            cleanRuntimeFiles(dir)
            return
        }
        logger.info("Guest ignored ACPI powerdown; quitting QEMU", metadata: ["vm.id": "\(id)", "pid": "\(pid)"])
        do {
            try withQMP(dir) { _ = try $0.execute("quit") }
        } catch {
            logger.debug("QMP quit failed", metadata: ["vm.id": "\(id)", "error": "\(error)"])
        }
        if await waitGone(pid, id, timeout: .seconds(10)) {
            cleanRuntimeFiles(dir)
            return
        }
        logger.warning("QEMU survived quit; killing it", metadata: ["vm.id": "\(id)", "pid": "\(pid)"])
        system.signal(pid, SIGKILL)
        guard await waitGone(pid, id, timeout: .seconds(10)) else {
            throw VMRuntimeError(.stopFailed, "QEMU of VM '\(id)' (pid \(pid)) survived powerdown, quit and SIGKILL")
        }
        cleanRuntimeFiles(dir)
    }

    public func delete(_ id: VMID) async throws {
        let dir = try runtimeDirectory(of: id)
        let record = readRecord(dir)
        if livePID(id, dir) != nil { try await stop(id, timeout: config.stopTimeout) }
        var disks = [dir + "/disk.qcow2"]
        if let record, let disk = try? diskPath(id: id, pool: record.spec.pool) { disks.append(disk) }
        for disk in disks where FileManager.default.fileExists(atPath: disk) {
            do { try FileManager.default.removeItem(atPath: disk) } catch {
                throw VMRuntimeError(.io, "cannot remove the disk \(disk) of VM '\(id)': \(error)")
            }
        }
        if FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.removeItem(atPath: dir) } catch {
                throw VMRuntimeError(.io, "cannot remove the runtime directory \(dir): \(error)")
            }
        }
        var opd = record?.spec.opd
        if opd == nil { opd = (try? limits.adopt())?.first(where: { $0.vm == id })?.opd }
        if let opd {
            // QEMU has exited, but the kernel may list it in the group for a moment longer.
            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            while true {
                do {
                    try limits.remove(vm: id, opd: opd)
                    break
                } catch let error as CgroupError where error.code == .busy && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(50))
                } catch {
                    throw VMRuntimeError(.limitsFailed, "cannot remove the cgroup of VM '\(id)': \(error)")
                }
            }
        }
        lock.withLock { _ = managedVMs.remove(id) }
        logger.info("Deleted VM", metadata: ["vm.id": "\(id)"])
    }

    public func observe() throws -> [VMObservationOnHost] {
        try listVMs().map { observation($0.id, $0.dir, $0.record) }
    }

    public func adopt() throws -> [VMObservationOnHost] {
        var result: [VMObservationOnHost] = []
        for (id, dir, record) in try listVMs() {
            if let pid = livePID(id, dir) {
                // Same process, never restarted: make sure it is confined and, if the previous
                // agent died between launch and `cont`, release the guest.
                let status = try? withQMP(dir) { try $0.execute("query-status")["status"]?.stringValue }
                if status == "prelaunch" {
                    try confine(record.spec, pid: pid)
                    try withQMP(dir) { _ = try $0.execute("cont") }
                }
                logger.info("Adopted running VM", metadata: ["vm.id": "\(id)", "pid": "\(pid)"])
            }
            lock.withLock { _ = managedVMs.insert(id) }
            result.append(observation(id, dir, record))
        }
        return result
    }

    // MARK: - Helpers

    private func listVMs() throws -> [(id: VMID, dir: String, record: Record)] {
        let names: [String]
        do {
            names = FileManager.default.fileExists(atPath: vmsDirectory)
                ? try FileManager.default.contentsOfDirectory(atPath: vmsDirectory) : []
        } catch {
            throw VMRuntimeError(.io, "cannot list \(vmsDirectory): \(error)")
        }
        return names.sorted().filter(Name.isValid).compactMap { name in
            let dir = vmsDirectory + "/" + name
            guard let record = readRecord(dir), record.spec.id.rawValue == name else { return nil }
            return (VMID(rawValue: name), dir, record)
        }
    }

    private func observation(_ id: VMID, _ dir: String, _ record: Record) -> VMObservationOnHost {
        let spec = record.spec
        let pid = livePID(id, dir)
        var status = VMRunStatus.stopped
        var qmpStatus: String?
        if pid != nil {
            qmpStatus = try? withQMP(dir, timeout: .seconds(3)) { try $0.execute("query-status")["status"]?.stringValue }
            status = qmpStatus == nil ? .unresponsive : (qmpStatus == "running" ? .running : .paused)
        }
        let usage: VMUsage? = (try? limits.observe(vm: id, opd: spec.opd)) ?? nil
        let disk = (try? diskPath(id: id, pool: spec.pool)) ?? dir + "/disk.qcow2"
        let (virtual, used) = Self.diskSizes(disk)
        return VMObservationOnHost(
            id: id, opd: spec.opd, pool: spec.pool, vcpus: spec.vcpus, memory: spec.memory, image: spec.image, pid: pid,
            status: status, qmpStatus: qmpStatus, cpuSeconds: usage?.cpuSeconds, memoryBytes: usage?.memoryBytes,
            memoryLimitBytes: usage?.memoryLimitBytes, diskSize: virtual ?? spec.disk, diskUsedBytes: used,
            accel: record.accel, managed: lock.withLock { managedVMs.contains(id) })
    }

    /// The virtual size from the qcow2 header (big-endian at offset 24) and the bytes allocated.
    static func diskSizes(_ path: String) -> (virtual: ByteSize?, used: Int64) {
        var st = stat()
        guard stat(path, &st) == 0 else { return (nil, 0) }
        let used = Int64(st.st_blocks) * 512
        let head = readHead(path, 32)
        guard head.count == 32, head[0..<4] == [0x51, 0x46, 0x49, 0xFB] else { return (nil, used) }
        let size = head[24..<32].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (ByteSize(bytes: Int64(clamping: size)), used)
    }

    private func readPID(_ dir: String) -> Int32? {
        guard let text = try? String(contentsOfFile: dir + "/qemu.pid", encoding: .utf8) else { return nil }
        return Int32(text.trimmed())
    }

    /// The first `count` bytes of a file (fewer when it is shorter or unreadable).
    static func readHead(_ path: String, _ count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, count - got, off_t(got)) }
            if n > 0 { got += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return Array(bytes[0..<got])
    }

    /// The pid from the pidfile when that process is this VM's QEMU (`-name <id>` in its argv).
    func livePID(_ id: VMID, _ dir: String) -> Int32? {
        guard let pid = readPID(dir), pid > 0, isQEMU(of: id, pid: pid) else { return nil }
        return pid
    }

    private func isQEMU(of id: VMID, pid: Int32) -> Bool {
        guard let argv = system.commandLine(of: pid) else { return false }
        for (i, arg) in argv.enumerated() where arg == "-name" && i + 1 < argv.count {
            let value = argv[i + 1]
            if value == id.rawValue || value.hasPrefix(id.rawValue + ",") { return true }
        }
        return false
    }

    private func waitGone(_ pid: Int32, _ id: VMID, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while isQEMU(of: id, pid: pid) {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    private func cleanRuntimeFiles(_ dir: String) {
        for file in ["qemu.pid", "qmp.sock"] { try? FileManager.default.removeItem(atPath: dir + "/" + file) }
    }

    private func withQMP<T>(_ dir: String, timeout: Duration? = nil, _ body: (any QMPSession) throws -> T) throws -> T {
        let session = try system.connectQMP(socket: dir + "/qmp.sock", timeout: timeout ?? config.qmpTimeout)
        defer { session.close() }
        return try body(session)
    }
}
