import Foundation
import LumbungAgent
import LumbungCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Why the real QEMU tests cannot run here, or nil when they can: root (to create cgroups),
/// `/usr/bin/qemu-system-x86_64` and `/usr/bin/qemu-img`, and a cgroup v1 or v2 hierarchy.
/// CI runs as root with QEMU installed, so there they must run.
enum QEMUReal {
    static let qemu = "/usr/bin/qemu-system-x86_64"
    static let qemuImg = "/usr/bin/qemu-img"

    static let skipReason: String? = {
        if getuid() != 0 {
            return "real QEMU tests need root to create cgroups (running as uid \(getuid())); CI runs them as root"
        }
        for binary in [qemu, qemuImg] where !FileManager.default.isExecutableFile(atPath: binary) {
            return "real QEMU tests need \(binary) (Debian packages qemu-system-x86 and qemu-utils)"
        }
        do {
            _ = try CgroupDriver.detect()
        } catch {
            return "real QEMU tests need a cgroup v1 or v2 hierarchy under /sys/fs/cgroup: \(error)"
        }
        return nil
    }()
}

/// A unique state directory and cgroup sub-path (`lumbung-test-<random>`); ``cleanup()`` kills
/// every process whose command line names them, removes the groups and the directory.
final class QEMURealSandbox {
    let tag = "lumbung-test-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    let state: String
    let layout: CgroupLayout

    init() throws {
        state = "/tmp/\(tag)"
        layout = try CgroupDriver.detect()
        try FileManager.default.createDirectory(atPath: state + "/images", withIntermediateDirectories: true)
    }

    /// A new cgroup driver and VM driver, as a freshly started agent would make them.
    func makeDriver(accel: QEMUAccelSetting = .tcg) throws -> (QEMUDriver, CgroupDriver) {
        let cgroups = try CgroupDriver(layout: layout, subPath: tag)
        let config = QEMUConfig(
            stateDirectory: state, imageDirectory: state + "/images", accel: accel, qmpTimeout: .seconds(10),
            stopTimeout: .seconds(1), commandTimeout: .seconds(60))
        return (QEMUDriver(config: config, limits: cgroups), cgroups)
    }

    var groupRoots: [String] {
        switch layout {
        case .v2(let mount): return [mount + "/" + tag]
        case .v1(let m): return Array(Set([m.cpu, m.cpuacct, m.memory] + (m.pids.map { [$0] } ?? []))).map { $0 + "/" + tag }
        }
    }

    /// The VM group directories holding `cgroup.procs` (one per v1 hierarchy, one in v2).
    func vmGroups(opd: String, vm: String) -> [String] { groupRoots.map { "\($0)/\(opd)/\(vm)" } }

    /// Pids of live processes whose command line contains the sandbox's tag (`pgrep -f <tag>`).
    func leftoverPIDs() -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).contains(tag)
        }
    }

    /// Kills what the test started, removes the groups and the state directory; returns the
    /// processes still alive afterwards (expected none).
    @discardableResult
    func cleanup() -> [Int32] {
        for pid in leftoverPIDs() { kill(pid, SIGKILL) }
        var dirs: [String] = []
        func walk(_ dir: String) {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { return }
            dirs.append(dir)
            for child in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] { walk(dir + "/" + child) }
        }
        for root in groupRoots { walk(root) }
        let deadline = Date().addingTimeInterval(5)
        repeat {
            var busy = false
            for dir in dirs {
                let procs = (try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? ""
                for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) {
                    busy = true
                    kill(pid, SIGKILL)
                }
            }
            if !busy && leftoverPIDs().isEmpty { break }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        for dir in dirs.sorted(by: { $0.count > $1.count }) { rmdir(dir) }
        try? FileManager.default.removeItem(atPath: state)
        return leftoverPIDs()
    }

    /// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`.
    static func statField(_ pid: Int32, _ n: Int) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        return n >= 3 && n - 3 < rest.count ? String(rest[n - 3]) : nil
    }

    static func alive(_ pid: Int32) -> Bool {
        guard let state = statField(pid, 3) else { return false }
        return state != "Z" && state != "X"
    }
}

@Suite(
    "QEMU for real (TCG, BIOS-only VM)",
    .serialized,
    .enabled(if: QEMUReal.skipReason == nil, Comment(rawValue: QEMUReal.skipReason ?? ""))
)
struct QEMURealTests {
    let spec = VMRunSpec(id: "vm-real-01", opd: "dinkes", vcpus: 1, memory: .mib(128), disk: .mib(64), pool: "ssd")

    @Test("start: QEMU confined in its cgroup, QMP reports running; stop ends the process (powerdown ignored → quit)")
    func startAndStop() async throws {
        let box = try QEMURealSandbox()
        defer { #expect(box.cleanup().isEmpty, "QEMU processes left behind") }
        let (driver, cgroups) = try box.makeDriver()

        try await driver.start(spec)
        let seen = try #require(try driver.observe().first)
        #expect(seen.status == .running)
        #expect(seen.qmpStatus == "running")
        #expect(seen.accel == "tcg")
        #expect(seen.diskSize == .mib(64))
        let pid = try #require(seen.pid)
        #expect(QEMURealSandbox.alive(pid))

        // The process is in the VM's group in every hierarchy, with the VM's limits.
        for dir in box.vmGroups(opd: "dinkes", vm: "vm-real-01") {
            let procs = try String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)
            #expect(procs.split(separator: "\n").contains(Substring(String(pid))), "pid \(pid) not in \(dir)/cgroup.procs")
        }
        let usage = try #require(try cgroups.observe(vm: "vm-real-01", opd: "dinkes"))
        #expect(usage.limits.cpuQuotaMicros == 100_000)
        #expect(usage.limits.memoryLimitBytes == VMLimits.memoryLimit(for: .mib(128)).bytes)
        #expect(usage.memoryBytes > 0)

        // QMP answers directly too.
        let qmp = try QMPClient.connect(path: box.state + "/vms/vm-real-01/qmp.sock", timeout: .seconds(10))
        #expect(try qmp.execute("query-status")["status"]?.stringValue == "running")
        qmp.close()

        // A BIOS-only guest ignores ACPI powerdown: stop must fall back to quit.
        let clock = ContinuousClock()
        let t0 = clock.now
        try await driver.stop(spec.id, timeout: .seconds(1))
        #expect(clock.now - t0 >= .seconds(1))
        #expect(!QEMURealSandbox.alive(pid))
        #expect(try driver.observe().first?.status == .stopped)

        // Start again after a stop, then delete.
        try await driver.start(spec)
        #expect(try driver.observe().first?.status == .running)
        try await driver.delete(spec.id)
        #expect(try driver.observe().isEmpty)
    }

    @Test("after an agent restart the running VM is adopted: same pid, not restarted; delete removes all")
    func adoptAfterRestart() async throws {
        let box = try QEMURealSandbox()
        defer { #expect(box.cleanup().isEmpty, "QEMU processes left behind") }
        do {
            let (driver, _) = try box.makeDriver()
            try await driver.start(spec)
        }
        let dir = box.state + "/vms/vm-real-01"
        let pid = try #require(Int32(try String(contentsOfFile: dir + "/qemu.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let startTime = QEMURealSandbox.statField(pid, 22)
        // Daemonized: not the agent's child, in its own session, so it outlives the agent.
        #expect(QEMURealSandbox.statField(pid, 4) != String(getpid()))
        #expect(QEMURealSandbox.statField(pid, 6) != String(getsid(0)))

        // A new agent: new drivers, nothing in memory.
        let (restarted, cgroups) = try box.makeDriver()
        #expect(try restarted.observe().first?.managed == false)
        let adopted = try restarted.adopt()
        #expect(adopted.count == 1)
        let vm = try #require(adopted.first)
        #expect(vm.pid == pid)
        #expect(vm.status == .running)
        #expect(vm.managed)
        #expect(vm.opd == "dinkes")
        #expect(vm.observedVM.running)
        #expect(QEMURealSandbox.statField(pid, 22) == startTime, "QEMU was restarted")
        #expect(try cgroups.adopt().first { $0.vm == "vm-real-01" }?.pids.contains(pid) == true)

        try await restarted.delete(spec.id)
        #expect(!QEMURealSandbox.alive(pid))
        #expect(!FileManager.default.fileExists(atPath: dir))
        #expect(try cgroups.observe(vm: "vm-real-01", opd: "dinkes") == nil)
        for group in box.vmGroups(opd: "dinkes", vm: "vm-real-01") {
            #expect(!FileManager.default.fileExists(atPath: group))
        }
    }

    @Test("disk grow: online through QMP while running (QEMU sees the new size), offline with qemu-img; shrink refused")
    func growDisk() async throws {
        let box = try QEMURealSandbox()
        defer { #expect(box.cleanup().isEmpty, "QEMU processes left behind") }
        let (driver, _) = try box.makeDriver()
        try await driver.start(spec)
        let pid = try #require(try driver.observe().first?.pid)
        try driver.growDisk(spec, to: .mib(96))
        let seen = try #require(try driver.observe().first)
        #expect(seen.diskSize == .mib(96))
        #expect(seen.pid == pid, "growing online must not restart QEMU")
        // QEMU itself reports the new virtual size of the block device.
        let qmp = try QMPClient.connect(path: box.state + "/vms/vm-real-01/qmp.sock", timeout: .seconds(10))
        let blocks = try qmp.execute("query-block")
        qmp.close()
        guard case .array(let devices) = blocks else { Issue.record("query-block: \(blocks.json)"); return }
        let sizes = devices.compactMap { $0["inserted"]?["image"]?["virtual-size"] }
        #expect(sizes.contains(.number(Double(ByteSize.mib(96).bytes))), "query-block: \(blocks.json)")

        let shrink = #expect(throws: VMRuntimeError.self) { try driver.growDisk(spec, to: .mib(64)) }
        #expect(shrink?.code == .invalidSpec)
        #expect(try driver.observe().first?.diskSize == .mib(96))

        try await driver.stop(spec.id, timeout: .milliseconds(200))
        try driver.growDisk(spec, to: .mib(128))
        #expect(try driver.observe().first?.diskSize == .mib(128))
        try driver.growDisk(spec, to: .mib(128))  // again: nothing to do
        try await driver.delete(spec.id)
    }

    @Test("accel auto probes KVM once and falls back to TCG when KVM cannot run a guest")
    func acceleratorProbe() throws {
        let box = try QEMURealSandbox()
        defer { #expect(box.cleanup().isEmpty) }
        let (driver, _) = try box.makeDriver(accel: .auto)
        let probe = driver.accelerator()
        print("QEMU accelerator probe on this host: \(probe.accelerator.rawValue) — \(probe.reason)")
        #expect(!probe.reason.isEmpty)
        if !FileManager.default.fileExists(atPath: "/dev/kvm") { #expect(probe.accelerator == .tcg) }
        #expect(driver.accelerator() == probe)
    }

    @Test("a missing image is image_missing and nothing is created on the host")
    func missingImage() async throws {
        let box = try QEMURealSandbox()
        defer { #expect(box.cleanup().isEmpty) }
        let (driver, cgroups) = try box.makeDriver()
        var spec = spec
        spec.image = "debian-12.qcow2"
        let error = await #expect(throws: VMRuntimeError.self) { try await driver.start(spec) }
        #expect(error?.code == .imageMissing)
        #expect(!FileManager.default.fileExists(atPath: box.state + "/vms"))
        #expect(try cgroups.adopt().isEmpty)
    }
}
