import Foundation
import LumbungAgent
import LumbungCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One ordered log shared by the fake limits, the fake OS layer and the fake QMP sessions.
final class QEMUEventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _events: [String] = []
    var events: [String] { lock.withLock { _events } }
    func add(_ event: String) { lock.withLock { _events.append(event) } }
}

/// A compute-limits driver that only records what it was asked.
final class QEMUFakeLimits: ComputeLimits, @unchecked Sendable {
    let log: QEMUEventLog
    var failAttach = false
    init(log: QEMUEventLog) { self.log = log }
    func apply(_ spec: VMLimits) throws { log.add("apply \(spec.opd)/\(spec.vm) vcpus=\(spec.vcpus)") }
    func attach(pid: Int32, to vm: VMID, opd: OPDID) throws {
        log.add("attach \(pid) \(opd)/\(vm)")
        if failAttach { throw CgroupError(.notFound, "no group") }
    }
    func observe(vm: VMID, opd: OPDID) throws -> VMUsage? {
        VMUsage(vm: vm, opd: opd, cpuTimeMicros: 2_500_000, memoryBytes: 100 << 20, pids: 3, limits: .unlimited)
    }
    func observeOPD(_ opd: OPDID) throws -> OPDUsage? { nil }
    func remove(vm: VMID, opd: OPDID) throws { log.add("remove \(opd)/\(vm)") }
    func adopt() throws -> [AdoptedGroup] { [] }
    func recomputeOPD(_ opd: OPDID) throws {}
}

/// A process table, `qemu-img` and QEMU that exist only in memory.
final class QEMUFakeSystem: QEMUSystem, @unchecked Sendable {
    let log: QEMUEventLog
    private let lock = NSLock()
    var processes: [Int32: [String]] = [:]
    var qmpStatus: [String: String] = [:]  // socket → status
    var pidOfSocket: [String: Int32] = [:]
    var nextPID: Int32 = 4242
    var guestHonoursPowerdown = false
    var kvmDevice = true
    var probeResult = QEMUCommandResult(status: 0, stdout: "")
    var probeRuns = 0
    var launches: [[String]] = []

    init(log: QEMUEventLog) { self.log = log }

    func run(_ executable: String, _ arguments: [String], input: String?, timeout: Duration) throws -> QEMUCommandResult {
        if executable.hasSuffix("qemu-img") {
            log.add("qemu-img " + arguments.joined(separator: " "))
            if arguments.first == "create" {
                _ = FileManager.default.createFile(atPath: arguments[arguments.count - 2], contents: Data("QFI\u{FB}".utf8))
            }
            return QEMUCommandResult(status: 0)
        }
        lock.withLock { probeRuns += 1 }
        log.add("probe " + arguments.joined(separator: " "))
        return probeResult
    }

    func launch(_ executable: String, _ arguments: [String], logFile: String, timeout: Duration) throws -> QEMUCommandResult {
        log.add("launch")
        let pidfile = arguments[arguments.firstIndex(of: "-pidfile")! + 1]
        let qmp = arguments[arguments.firstIndex(of: "-qmp")! + 1]
        let socket = String(qmp.dropFirst("unix:".count).prefix { $0 != "," })
        let pid = lock.withLock {
            let pid = nextPID
            nextPID += 1
            processes[pid] = [executable] + arguments
            qmpStatus[socket] = "prelaunch"
            pidOfSocket[socket] = pid
            launches.append(arguments)
            return pid
        }
        try "\(pid)\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
        return QEMUCommandResult(status: 0)
    }

    func commandLine(of pid: Int32) -> [String]? { lock.withLock { processes[pid] } }

    func signal(_ pid: Int32, _ signal: Int32) {
        log.add("signal \(signal) \(pid)")
        if signal == SIGKILL { exit(pid) }
    }

    func exit(_ pid: Int32) {
        lock.withLock {
            processes[pid] = nil
            for (socket, p) in pidOfSocket where p == pid { qmpStatus[socket] = nil }
        }
    }

    func connectQMP(socket: String, timeout: Duration) throws -> any QMPSession {
        guard lock.withLock({ qmpStatus[socket] }) != nil else {
            throw VMRuntimeError(.qmpFailed, "no QEMU on \(socket)")
        }
        return Session(system: self, socket: socket)
    }

    func kvmDeviceUsable() -> Bool { kvmDevice }

    func qmp(_ socket: String, _ command: String) throws -> QMPValue {
        log.add("qmp \(command)")
        switch command {
        case "query-status":
            let status = lock.withLock { qmpStatus[socket] } ?? "unknown"
            return .object(["status": .string(status), "running": .bool(status == "running")])
        case "cont":
            lock.withLock { qmpStatus[socket] = "running" }
        case "system_powerdown":
            if guestHonoursPowerdown, let pid = lock.withLock({ pidOfSocket[socket] }) { exit(pid) }
        case "quit":
            if let pid = lock.withLock({ pidOfSocket[socket] }) { exit(pid) }
        default:
            break
        }
        return .object([:])
    }

    final class Session: QMPSession {
        let system: QEMUFakeSystem
        let socket: String
        init(system: QEMUFakeSystem, socket: String) {
            self.system = system
            self.socket = socket
        }
        func execute(_ command: String, arguments: [String: QMPValue]) throws -> QMPValue {
            try system.qmp(socket, command)
        }
        func close() {}
    }
}

/// A driver on fakes with a temporary state directory.
struct QEMUFakeRig {
    let tree: CgroupTempTree
    let log = QEMUEventLog()
    let limits: QEMUFakeLimits
    let system: QEMUFakeSystem
    let driver: QEMUDriver

    init(accel: QEMUAccelSetting = .tcg, pools: [PoolName: String] = [:]) throws {
        tree = try CgroupTempTree("qemu-unit")
        limits = QEMUFakeLimits(log: log)
        system = QEMUFakeSystem(log: log)
        try tree.mkdir("images")
        driver = QEMUDriver(config: Self.config(tree, accel: accel, pools: pools), limits: limits, system: system)
    }

    static func config(_ tree: CgroupTempTree, accel: QEMUAccelSetting = .tcg, pools: [PoolName: String] = [:]) -> QEMUConfig {
        QEMUConfig(
            stateDirectory: tree.path + "/state", imageDirectory: tree.path + "/images", poolDirectories: pools, accel: accel,
            qmpTimeout: .seconds(1), stopTimeout: .milliseconds(300))
    }

    /// A second driver on the same host, as after an agent restart.
    func restartedDriver() -> QEMUDriver { QEMUDriver(config: Self.config(tree), limits: limits, system: system) }

    var state: String { tree.path + "/state" }
}

let qemuSpec = VMRunSpec(id: "vm-3f9a0c21", opd: "dinkes", vcpus: 2, memory: .mib(2048), disk: .gib(20), pool: "ssd")

@Suite("QEMU driver (fake OS layer)")
struct QEMUDriverTests {
    @Test("QEMU arguments: name, q35, accel, -smp, -m, disk, QMP, pidfile, daemonize, held with -S")
    func argumentList() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        let dir = rig.state + "/vms/vm-3f9a0c21"
        let expected = [
            "-name", "vm-3f9a0c21", "-machine", "q35", "-accel", "tcg,tb-size=32", "-smp", "2", "-m", "2048",
            "-drive", "file=\(dir)/disk.qcow2,if=virtio,format=qcow2", "-qmp", "unix:\(dir)/qmp.sock,server=on,wait=off",
            "-pidfile", "\(dir)/qemu.pid", "-daemonize", "-S", "-display", "none", "-nodefaults", "-no-user-config",
            "-serial", "none",
        ]
        #expect(try rig.driver.arguments(for: qemuSpec, accelerator: .tcg) == expected)
        let kvm = try rig.driver.arguments(for: qemuSpec, accelerator: .kvm)
        #expect(kvm[kvm.firstIndex(of: "-accel")! + 1] == "kvm")

        try await rig.driver.start(qemuSpec)
        #expect(rig.system.launches == [expected])
    }

    @Test("with pools configured the disk goes to <pool>/vms/<id>.qcow2; an unknown pool is refused")
    func poolDisk() throws {
        let rig = try QEMUFakeRig(pools: ["ssd": "/tmp/pool-ssd"])
        defer { rig.tree.remove() }
        let args = try rig.driver.arguments(for: qemuSpec, accelerator: .tcg)
        #expect(args.contains("file=/tmp/pool-ssd/vms/vm-3f9a0c21.qcow2,if=virtio,format=qcow2"))
        var spec = qemuSpec
        spec.pool = "hdd"
        let error = #expect(throws: VMRuntimeError.self) { try rig.driver.create(spec) }
        #expect(error?.code == .poolMissing)
        #expect(!rig.tree.exists("state/vms"))
    }

    @Test("create makes a blank qcow2 of the allocated size once; again changes nothing")
    func createBlank() throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try rig.driver.create(qemuSpec)
        let dir = rig.state + "/vms/vm-3f9a0c21"
        #expect(rig.log.events == ["qemu-img create -q -f qcow2 \(dir)/disk.qcow2.part 21474836480"])
        #expect(rig.tree.exists("state/vms/vm-3f9a0c21/disk.qcow2"))
        #expect(rig.tree.exists("state/vms/vm-3f9a0c21/vm.json"))
        try rig.driver.create(qemuSpec)
        #expect(rig.log.events.count == 1)
    }

    @Test("create overlays a base image from the image directory, qcow2 or raw")
    func createOverlay() throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try rig.tree.put("images/debian-12.qcow2", "")
        try Data([0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3]).write(to: URL(fileURLWithPath: rig.tree.path + "/images/debian-12.qcow2"))
        try rig.tree.put("images/alpine.raw", "not qcow2")
        var spec = qemuSpec
        spec.image = "debian-12.qcow2"
        try rig.driver.create(spec)
        spec.id = "vm-00000002"
        spec.image = "alpine.raw"
        try rig.driver.create(spec)
        let images = rig.tree.path + "/images"
        #expect(
            rig.log.events == [
                "qemu-img create -q -f qcow2 -b \(images)/debian-12.qcow2 -F qcow2 \(rig.state)/vms/vm-3f9a0c21/disk.qcow2.part 21474836480",
                "qemu-img create -q -f qcow2 -b \(images)/alpine.raw -F raw \(rig.state)/vms/vm-00000002/disk.qcow2.part 21474836480",
            ])
    }

    @Test("an image the host lacks is image_missing and nothing is created")
    func imageMissing() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        var spec = qemuSpec
        spec.image = "windows-11.qcow2"
        let error = #expect(throws: VMRuntimeError.self) { try rig.driver.create(spec) }
        #expect(error?.code == .imageMissing)
        #expect(error?.code.rawValue == "image_missing")
        #expect(error?.message.contains("windows-11.qcow2") == true)
        await #expect(throws: VMRuntimeError.self) { try await rig.driver.start(spec) }
        #expect(!rig.tree.exists("state/vms"))
        #expect(rig.log.events.isEmpty)
    }

    @Test(
        "path-escaping or malformed names are refused before any path is built",
        arguments: [
            VMRunSpec(id: "../etc", opd: "dinkes", vcpus: 1, memory: .mib(128), disk: .mib(64), pool: "ssd"),
            VMRunSpec(id: "vm-1", opd: "Dinkes", vcpus: 1, memory: .mib(128), disk: .mib(64), pool: "ssd"),
            VMRunSpec(id: "vm-1", opd: "dinkes", vcpus: 1, memory: .mib(128), disk: .mib(64), pool: "a/b"),
            VMRunSpec(id: "vm-1", opd: "dinkes", vcpus: 1, memory: .mib(128), disk: .mib(64), pool: "ssd", image: "../../etc/shadow"),
            VMRunSpec(id: "vm-1", opd: "dinkes", vcpus: 1, memory: .mib(128), disk: .mib(64), pool: "ssd", image: ".hidden"),
        ])
    func badNames(spec: VMRunSpec) async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        let error = #expect(throws: VMRuntimeError.self) { try rig.driver.create(spec) }
        #expect(error?.code == .invalidName)
        await #expect(throws: VMRuntimeError.self) { try await rig.driver.start(spec) }
        if !Name.isValid(spec.id.rawValue) {
            await #expect(throws: VMRuntimeError.self) { try await rig.driver.stop(spec.id, timeout: .seconds(1)) }
            await #expect(throws: VMRuntimeError.self) { try await rig.driver.delete(spec.id) }
        }
        #expect(!rig.tree.exists("state"))
        #expect(rig.log.events.isEmpty)
    }

    @Test("start: limits applied, QEMU launched held, pid attached, and only then cont; again is a no-op")
    func startOrdering() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try await rig.driver.start(qemuSpec)
        let lifecycle = rig.log.events.filter { !$0.hasPrefix("qemu-img") }
        #expect(
            lifecycle == [
                "apply dinkes/vm-3f9a0c21 vcpus=2", "launch", "apply dinkes/vm-3f9a0c21 vcpus=2",
                "attach 4242 dinkes/vm-3f9a0c21", "qmp cont",
            ])
        let seen = try rig.driver.observe()
        #expect(seen.count == 1)
        #expect(seen.first?.status == .running)
        #expect(seen.first?.pid == 4242)
        #expect(seen.first?.cpuSeconds == 2.5)
        #expect(seen.first?.managed == true)
        #expect(seen.first?.observedVM.running == true)

        let before = rig.log.events.count
        try await rig.driver.start(qemuSpec)
        #expect(rig.log.events[before...].filter { $0 == "launch" || $0 == "qmp cont" }.isEmpty)
    }

    @Test("when the pid cannot be attached, QEMU is killed before the guest runs")
    func attachFailureKills() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        rig.limits.failAttach = true
        let error = await #expect(throws: VMRuntimeError.self) { try await rig.driver.start(qemuSpec) }
        #expect(error?.code == .limitsFailed)
        #expect(!rig.log.events.contains("qmp cont"))
        #expect(rig.log.events.contains("signal \(SIGKILL) 4242"))
        #expect(rig.system.commandLine(of: 4242) == nil)
    }

    @Test("stop: ACPI powerdown, then quit after the timeout when the guest ignores it")
    func stopFallsBackToQuit() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try await rig.driver.start(qemuSpec)
        let clock = ContinuousClock()
        let t0 = clock.now
        try await rig.driver.stop(qemuSpec.id, timeout: .milliseconds(300))
        #expect(clock.now - t0 >= .milliseconds(300))
        let tail = rig.log.events.drop { $0 != "qmp system_powerdown" }
        #expect(Array(tail) == ["qmp system_powerdown", "qmp quit"])
        #expect(try rig.driver.observe().first?.status == .stopped)
        // Stopping a stopped VM is not an error and does nothing.
        let count = rig.log.events.count
        try await rig.driver.stop(qemuSpec.id, timeout: .seconds(1))
        #expect(rig.log.events.count == count)
    }

    @Test("stop: a guest that honours ACPI powerdown is not sent quit")
    func stopGraceful() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        rig.system.guestHonoursPowerdown = true
        try await rig.driver.start(qemuSpec)
        try await rig.driver.stop(qemuSpec.id, timeout: .seconds(5))
        #expect(rig.log.events.last == "qmp system_powerdown")
    }

    @Test("a reused pid (another process) is not mistaken for the VM")
    func reusedPID() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try await rig.driver.start(qemuSpec)
        rig.system.exit(4242)
        rig.system.processes[4242] = ["/usr/bin/sleep", "100"]
        #expect(try rig.driver.observe().first?.status == .stopped)
        #expect(try rig.driver.observe().first?.pid == nil)
    }

    @Test("after a restart, adopt takes over the running VM: same pid, no launch, no cont; managed")
    func adoptAfterRestart() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try await rig.driver.start(qemuSpec)
        let launches = rig.log.events.filter { $0 == "launch" }.count
        let restarted = rig.restartedDriver()
        #expect(try restarted.observe().first?.managed == false)
        let adopted = try restarted.adopt()
        #expect(adopted.map(\.id) == ["vm-3f9a0c21"])
        #expect(adopted.first?.pid == 4242)
        #expect(adopted.first?.status == .running)
        #expect(adopted.first?.managed == true)
        #expect(adopted.first?.opd == "dinkes")
        #expect(rig.log.events.filter { $0 == "launch" }.count == launches)
        #expect(rig.log.events.filter { $0 == "qmp cont" }.count == 1)
    }

    @Test("adopt releases a VM the previous agent left held at -S, after confining it")
    func adoptHeld() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try rig.driver.create(qemuSpec)
        let args = try rig.driver.arguments(for: qemuSpec, accelerator: .tcg)
        _ = try rig.system.launch("/usr/bin/qemu-system-x86_64", args, logFile: "/dev/null", timeout: .seconds(1))
        let adopted = try rig.restartedDriver().adopt()
        #expect(adopted.first?.status == .running)
        let tail = rig.log.events.drop { $0 != "qmp query-status" }.prefix(4)
        #expect(Array(tail) == ["qmp query-status", "apply dinkes/vm-3f9a0c21 vcpus=2", "attach 4242 dinkes/vm-3f9a0c21", "qmp cont"])
    }

    @Test("delete stops the VM, removes its directory and disk, then its cgroup; again is a no-op")
    func deleteAll() async throws {
        let rig = try QEMUFakeRig()
        defer { rig.tree.remove() }
        try await rig.driver.start(qemuSpec)
        try await rig.driver.delete(qemuSpec.id)
        #expect(!rig.tree.exists("state/vms/vm-3f9a0c21"))
        #expect(rig.system.commandLine(of: 4242) == nil)
        #expect(rig.log.events.last == "remove dinkes/vm-3f9a0c21")
        #expect(try rig.driver.observe().isEmpty)
        try await rig.driver.delete(qemuSpec.id)
    }

    @Test("accel auto: KVM only when the probe starts QEMU and query-kvm says enabled; cached")
    func accelProbe() throws {
        let rig = try QEMUFakeRig(accel: .auto)
        defer { rig.tree.remove() }
        rig.system.probeResult = QEMUCommandResult(
            status: 1, stderr: "qemu-system-x86_64: Host doesn't support requested features\n")
        #expect(rig.driver.accelerator().accelerator == .tcg)
        #expect(rig.driver.accelerator().reason.contains("Host doesn't support requested features"))
        #expect(rig.system.probeRuns == 1)
        #expect(rig.log.events.first?.contains("-accel kvm -cpu qemu64,enforce") == true)

        let enabled = """
            {"QMP": {"version": {}, "capabilities": ["oob"]}}
            {"return": {}}
            {"return": {"enabled": true, "present": true}}
            {"return": {}}
            """
        rig.system.probeResult = QEMUCommandResult(status: 0, stdout: enabled)
        #expect(rig.driver.probeAccelerator().accelerator == .kvm)
        rig.system.probeResult = QEMUCommandResult(status: 0, stdout: enabled.replacingOccurrences(of: "\"enabled\": true", with: "\"enabled\": false"))
        #expect(rig.driver.probeAccelerator().accelerator == .tcg)
        rig.system.kvmDevice = false
        let runs = rig.system.probeRuns
        #expect(rig.driver.probeAccelerator().accelerator == .tcg)
        #expect(rig.system.probeRuns == runs)
    }

    @Test("QMP values parse booleans, numbers and objects exactly")
    func qmpValues() {
        let v = QMPValue.parse(#"{"return": {"enabled": true, "n": 1, "s": "x", "a": [null]}}"#)
        #expect(v?["return"]?["enabled"] == .bool(true))
        #expect(v?["return"]?["n"] == .number(1))
        #expect(v?["return"]?["s"]?.stringValue == "x")
        #expect(v?["return"]?["a"] == .array([.null]))
        #expect(QMPValue.parse(QMPValue.object(["execute": .string("cont")]).json) == .object(["execute": .string("cont")]))
    }
}
