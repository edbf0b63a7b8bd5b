import Foundation
import LumbungAgent
import LumbungCore
import Testing

/// Why the real cgroup v1 tests cannot run here, or nil when they can (root, and the cpu,
/// cpuacct and memory controllers mounted as cgroup v1 under /sys/fs/cgroup). CI runs as root
/// on such a host, so there they must run.
enum CgroupV1Real {
    static let skipReason: String? = {
        if getuid() != 0 {
            return "real cgroup v1 tests need root to create cgroups (running as uid \(getuid())); CI runs them as root"
        }
        let layout: CgroupLayout
        do {
            layout = try CgroupDriver.detect()
        } catch {
            return "real cgroup v1 tests need cgroup v1 cpu and memory mounts under /sys/fs/cgroup: \(error)"
        }
        guard case .v1 = layout else {
            return "real cgroup v1 tests need cgroup v1 cpu and memory mounts under /sys/fs/cgroup, this host has \(layout); the v2 driver is tested against a fake tree"
        }
        return nil
    }()

    static var layout: CgroupV1Mounts {
        guard case .v1(let mounts) = try! CgroupDriver.detect() else { fatalError("checked by skipReason") }
        return mounts
    }
}

/// Groups under a unique sub-path (`lumbung-test-<random>`) with everything in them killed and
/// removed by ``cleanup()``, which the tests call in a `defer` so it runs even on failure.
final class CgroupV1Sandbox {
    let subPath = "lumbung-test-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    let mounts: CgroupV1Mounts
    let driver: CgroupDriver
    private var processes: [Process] = []
    private let fs = SysCgroupFS()

    init() throws {
        mounts = CgroupV1Real.layout
        Self.sweepStale(mounts)
        driver = try CgroupDriver(layout: .v1(mounts), subPath: subPath)
        // Weight the test's subtree 10× an ordinary process, so concurrent builds on the
        // 2-core machine cannot starve the burners below the lower bounds. The caps under test
        // are quotas, which weights do not lift.
        try fs.mkdir(mounts.cpu + "/" + subPath)
        try fs.write(mounts.cpu + "/" + subPath + "/cpu.shares", "10240")
    }

    private var allMounts: [String] {
        var seen: [String] = []
        for m in [mounts.cpu, mounts.cpuacct, mounts.memory] + (mounts.pids.map { [$0] } ?? []) where !seen.contains(m) {
            seen.append(m)
        }
        return seen
    }

    /// Starts `/bin/sh -c script`, held at a `read` until ``release(_:)``, so it is in its group
    /// before it does anything measured.
    func startHeld(_ script: String) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "read _ || exit 3; \(script)"]
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        processes.append(process)
        return (process, input)
    }

    func release(_ input: Pipe) {
        input.fileHandleForWriting.write(Data("go\n".utf8))
    }

    /// Waits for `process` to exit, up to `seconds`; false on timeout.
    func wait(_ process: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { return false }
        process.waitUntilExit()
        return true
    }

    func stop(_ process: Process) {
        if process.isRunning { _ = kill(process.processIdentifier, SIGKILL) }
        _ = wait(process, seconds: 5)
    }

    /// Kills every process in the test's groups and removes the groups, deepest first.
    func cleanup() {
        for process in processes { stop(process) }
        Self.removeTree(allMounts.map { $0 + "/" + subPath }, fs: fs)
    }

    private static func removeTree(_ roots: [String], fs: SysCgroupFS) {
        var dirs: [String] = []
        func walk(_ dir: String) {
            guard fs.exists(dir) else { return }
            dirs.append(dir)
            for child in (try? fs.list(dir)) ?? [] { walk(dir + "/" + child) }
        }
        for root in roots { walk(root) }
        let deadline = Date().addingTimeInterval(5)
        repeat {
            var busy = false
            for dir in dirs {
                let pids = ((try? fs.read(dir + "/cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
                for pid in pids {
                    busy = true
                    _ = kill(pid, SIGKILL)
                }
            }
            if !busy { break }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        for dir in dirs.sorted(by: { $0.count > $1.count }) { try? fs.rmdir(dir) }
    }

    /// Removes `lumbung-test-*` groups left behind by a crashed run (older than 10 minutes, so a
    /// concurrent run's groups are left alone).
    private static func sweepStale(_ mounts: CgroupV1Mounts) {
        let fs = SysCgroupFS()
        for mount in Set([mounts.cpu, mounts.cpuacct, mounts.memory] + (mounts.pids.map { [$0] } ?? [])) {
            for name in (try? fs.list(mount)) ?? [] where name.hasPrefix("lumbung-test-") {
                let path = mount + "/" + name
                let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date
                if let modified, modified < Date().addingTimeInterval(-600) { removeTree([path], fs: fs) }
            }
        }
    }

    /// CPU cores used, measured from `cpuMicros` over `seconds` of wall time.
    func cores(over seconds: Double, _ cpuMicros: () throws -> Int64) throws -> Double {
        let clock = ContinuousClock()
        let c0 = try cpuMicros()
        let t0 = clock.now
        Thread.sleep(forTimeInterval: seconds)
        let c1 = try cpuMicros()
        let elapsed = t0.duration(to: clock.now)
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(c1 - c0) / 1e6 / wall
    }
}

@Suite(
    "cgroup v1 for real",
    .serialized,
    .enabled(if: CgroupV1Real.skipReason == nil, Comment(rawValue: CgroupV1Real.skipReason ?? ""))
)
struct CgroupV1RealTests {
    @Test("two CPU burners in a 1-vCPU VM group are throttled to about one core")
    func cpuQuotaBites() throws {
        let box = try CgroupV1Sandbox()
        defer { box.cleanup() }
        let driver = box.driver
        // Raise then lower for real: the kernel refuses a child quota above its parent's, so
        // this proves the driver's ordering.
        try driver.apply(VMLimits(vm: "vm-c0000001", opd: "dinkes", vcpus: 2, memory: .mib(64)))
        try driver.apply(VMLimits(vm: "vm-c0000001", opd: "dinkes", vcpus: 1, memory: .mib(64)))
        #expect(try driver.observe(vm: "vm-c0000001", opd: "dinkes")?.limits.cpuQuotaMicros == 100_000)
        #expect(try driver.observeOPD("dinkes")?.limits.cpuQuotaMicros == 100_000)

        // Control: the same two burners in a group without a quota get well over one core.
        let fs = SysCgroupFS()
        let controlDirs = Array(Set([box.mounts.cpu, box.mounts.cpuacct])).map { "\($0)/\(box.subPath)/control" }
        for dir in controlDirs { try fs.mkdir(dir) }
        let burners = try (0..<2).map { _ in try box.startHeld("while :; do :; done") }
        for (process, _) in burners {
            for dir in controlDirs { try fs.write(dir + "/cgroup.procs", String(process.processIdentifier)) }
        }
        for (_, input) in burners { box.release(input) }
        Thread.sleep(forTimeInterval: 0.2)
        let acct = "\(box.mounts.cpuacct)/\(box.subPath)/control/cpuacct.usage"
        let uncapped = try box.cores(over: 1) { Int64(try fs.read(acct).trimmingCharacters(in: .whitespacesAndNewlines))! / 1000 }
        if ProcessInfo.processInfo.activeProcessorCount >= 2 {
            #expect(uncapped >= 1.3, "two burners without a quota used only \(uncapped) cores; the cap would prove nothing")
        }

        // Into the VM group: capped at one core.
        for (process, _) in burners {
            try driver.attach(pid: process.processIdentifier, to: "vm-c0000001", opd: "dinkes")
        }
        Thread.sleep(forTimeInterval: 0.3)

        let busy = #expect(throws: CgroupError.self) { try driver.remove(vm: "vm-c0000001", opd: "dinkes") }
        #expect(busy?.code == .busy)

        let usage = try #require(try driver.observe(vm: "vm-c0000001", opd: "dinkes"))
        #expect(usage.pids == 2)
        let cores = try box.cores(over: 2) { try #require(try driver.observe(vm: "vm-c0000001", opd: "dinkes")).cpuTimeMicros }
        #expect(cores <= 1.15, "two burners in a 1-vCPU group used \(cores) cores")
        #expect(cores >= 0.5, "two burners in a 1-vCPU group used only \(cores) cores")

        for (process, _) in burners { box.stop(process) }
        try driver.remove(vm: "vm-c0000001", opd: "dinkes")
        #expect(try driver.observe(vm: "vm-c0000001", opd: "dinkes") == nil)
        #expect(try driver.observeOPD("dinkes") == nil)
    }

    @Test("a process allocating past the memory limit is OOM-killed")
    func memoryLimitBites() throws {
        let box = try CgroupV1Sandbox()
        defer { box.cleanup() }
        let driver = box.driver
        // 64 MiB of guest memory → 128 MiB limit.
        try driver.apply(VMLimits(vm: "vm-a0000001", opd: "dinkes", vcpus: 1, memory: .mib(64)))
        #expect(try driver.observe(vm: "vm-a0000001", opd: "dinkes")?.memoryLimitBytes == 128 * cgroupMiB)

        let python = "/usr/bin/python3"
        let hasPython = FileManager.default.isExecutableFile(atPath: python)
        let script =
            hasPython
            ? "exec \(python) -c 'a = bytearray(200 * 1024 * 1024); import time; time.sleep(5)'"
            : "head -c 200M /dev/zero | tail"
        let (process, input) = try box.startHeld(script)
        try driver.attach(pid: process.processIdentifier, to: "vm-a0000001", opd: "dinkes")
        box.release(input)
        #expect(box.wait(process, seconds: 10), "the allocating process was not killed within 10 s")

        if hasPython {
            #expect(process.terminationReason == .uncaughtSignal)
            #expect(process.terminationStatus == SIGKILL)
        } else {
            // The pipeline's tail is killed; the shell reports 128 + 9.
            #expect(process.terminationStatus == 128 + SIGKILL)
        }
        let oomControl = try SysCgroupFS().read("\(box.mounts.memory)/\(box.subPath)/dinkes/vm-a0000001/memory.oom_control")
        if let line = oomControl.split(separator: "\n").first(where: { $0.hasPrefix("oom_kill ") }) {
            #expect((Int(line.dropFirst("oom_kill ".count)) ?? 0) >= 1, "memory.oom_control: \(oomControl)")
        }
    }

    @Test("the OPD group caps the sum of its VMs")
    func opdCapsTheSum() throws {
        let box = try CgroupV1Sandbox()
        defer { box.cleanup() }
        let driver = box.driver
        for vm in ["vm-b0000001", "vm-b0000002"] {
            try driver.apply(VMLimits(vm: VMID(rawValue: vm), opd: "bappeda", vcpus: 1, memory: .mib(64)))
        }
        var limits = try #require(try driver.observeOPD("bappeda")).limits
        #expect(limits.cpuQuotaMicros == 200_000)
        #expect(limits.memoryLimitBytes == 256 * cgroupMiB)
        #expect(limits.pidsLimit == 1024)

        // The kernel refuses an OPD quota below one of its VMs' (v1), with a clear error.
        limits.cpuQuotaMicros = 50_000
        let refused = #expect(throws: CgroupError.self) { try driver.setOPDLimits("bappeda", limits) }
        #expect(refused?.code == .rejected)
        #expect(refused?.description.contains("cpu.cfs_quota_us") == true)

        // Cap the OPD at one core: two 1-vCPU VMs together get about one.
        limits.cpuQuotaMicros = 100_000
        try driver.setOPDLimits("bappeda", limits)
        var burners: [(Process, Pipe)] = []
        for vm in ["vm-b0000001", "vm-b0000002"] {
            let burner = try box.startHeld("while :; do :; done")
            try driver.attach(pid: burner.0.processIdentifier, to: VMID(rawValue: vm), opd: "bappeda")
            burners.append(burner)
        }
        for (_, input) in burners { box.release(input) }
        Thread.sleep(forTimeInterval: 0.3)
        let cores = try box.cores(over: 2) { try #require(try driver.observeOPD("bappeda")).cpuTimeMicros }
        #expect(cores <= 1.15, "two 1-vCPU VMs under a 1-core OPD used \(cores) cores")
        #expect(cores >= 0.5, "two 1-vCPU VMs under a 1-core OPD used only \(cores) cores")

        // Recompute restores the sum.
        try driver.recomputeOPD("bappeda")
        #expect(try driver.observeOPD("bappeda")?.limits.cpuQuotaMicros == 200_000)

        // adopt sees both groups and their processes, as a restarted agent would.
        let adopted = try CgroupDriver(layout: .v1(box.mounts), subPath: box.subPath).adopt()
        #expect(adopted.map(\.vm) == ["vm-b0000001", "vm-b0000002"])
        #expect(adopted.map(\.pids.count) == [1, 1])
    }
}
