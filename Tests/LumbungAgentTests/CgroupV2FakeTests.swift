import Foundation
import LumbungAgent
import LumbungCore
import Testing

/// cgroup v2 against a fake sysfs: a plain directory tree holding the files the kernel would.
@Suite("cgroup v2 driver against a fake tree")
struct CgroupV2FakeTests {
    /// A v2 mount as a production host has it: controllers offered at the root, none enabled yet.
    struct Fixture {
        let tree: CgroupTempTree
        let mounts: CgroupTempTree
        let fs: CgroupRecordingFS
        let driver: CgroupDriver

        init() throws {
            tree = try CgroupTempTree("cgv2")
            mounts = try CgroupTempTree("cgv2-mounts")
            try tree.put("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
            try tree.put("cgroup.subtree_control", "")
            try tree.put("cgroup.procs", "1\n")
            try mounts.put(
                "mounts",
                "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
                    + "cgroup2 \(tree.path) cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n")
            let layout = try CgroupDriver.detect(root: tree.path, mountsFile: mounts.path + "/mounts")
            #expect(layout == .v2(mount: tree.path))
            fs = CgroupRecordingFS(root: tree.path)
            driver = try CgroupDriver(layout: layout, subPath: "lumbung", fs: fs)
        }

        func remove() {
            tree.remove()
            mounts.remove()
        }
    }

    static let vmA = VMLimits(vm: "vm-3f9a0c21", opd: "dinkes", vcpus: 2, memory: .gib(1))
    static let vmB = VMLimits(vm: "vm-0b1c2d3e", opd: "dinkes", vcpus: 1, memory: .mib(512))

    @Test("apply writes cpu.max, memory.max, pids.max, subtree_control and the OPD sum")
    func applyWritesExactFiles() throws {
        let f = try Fixture()
        defer { f.remove() }
        try f.driver.apply(Self.vmA)
        try f.driver.apply(Self.vmB)
        let t = f.tree

        // Controllers enabled from the mount down to the OPD group; never in a VM (leaf) group.
        #expect(t.get("cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(t.get("lumbung/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(t.get("lumbung/dinkes/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(!t.exists("lumbung/dinkes/vm-3f9a0c21/cgroup.subtree_control"))

        // VM A: 2 vCPU, 1 GiB + 64 MiB overhead.
        #expect(t.get("lumbung/dinkes/vm-3f9a0c21/cpu.max") == "200000 100000")
        #expect(t.get("lumbung/dinkes/vm-3f9a0c21/memory.max") == String(1088 * cgroupMiB))
        #expect(t.get("lumbung/dinkes/vm-3f9a0c21/pids.max") == "512")
        // VM B: 1 vCPU, 512 MiB + 64 MiB.
        #expect(t.get("lumbung/dinkes/vm-0b1c2d3e/cpu.max") == "100000 100000")
        #expect(t.get("lumbung/dinkes/vm-0b1c2d3e/memory.max") == String(576 * cgroupMiB))
        #expect(t.get("lumbung/dinkes/vm-0b1c2d3e/pids.max") == "512")
        // OPD = sums.
        #expect(t.get("lumbung/dinkes/cpu.max") == "300000 100000")
        #expect(t.get("lumbung/dinkes/memory.max") == String((1088 + 576) * cgroupMiB))
        #expect(t.get("lumbung/dinkes/pids.max") == "1024")
        // The base group carries no limits of its own.
        #expect(!t.exists("lumbung/cpu.max"))

        // Idempotent: applying again changes nothing and enables nothing again.
        let before = t.snapshot()
        f.fs.clearLog()
        try f.driver.apply(Self.vmA)
        #expect(t.snapshot() == before)
        #expect(!f.fs.log.contains { $0.contains("subtree_control") })
    }

    @Test("subtree_control: only the controllers not yet enabled are written")
    func subtreeControlWritesOnlyMissing() throws {
        let f = try Fixture()
        defer { f.remove() }
        // As the kernel shows it after systemd enabled some controllers at the root.
        try f.tree.put("cgroup.subtree_control", "cpu memory\n")
        try f.driver.apply(Self.vmA)
        #expect(f.fs.log.contains("write cgroup.subtree_control = +pids"))
        #expect(f.fs.log.contains("write lumbung/cgroup.subtree_control = +cpu +memory +pids"))
    }

    @Test("resizing and removing a VM recompute the OPD sum; processes block removal")
    func removeRecomputesOPD() throws {
        let f = try Fixture()
        defer { f.remove() }
        let t = f.tree
        try f.driver.apply(Self.vmA)
        try f.driver.apply(Self.vmB)

        // Grow A to 4 vCPU / 2 GiB: the OPD is raised before the VM.
        f.fs.clearLog()
        try f.driver.apply(VMLimits(vm: "vm-3f9a0c21", opd: "dinkes", vcpus: 4, memory: .gib(2)))
        #expect(t.get("lumbung/dinkes/cpu.max") == "500000 100000")
        #expect(t.get("lumbung/dinkes/memory.max") == String((2048 + 64 + 576) * cgroupMiB))
        let log = f.fs.log
        let opdCPU = try #require(log.firstIndex(of: "write lumbung/dinkes/cpu.max = 500000 100000"))
        let vmCPU = try #require(log.firstIndex(of: "write lumbung/dinkes/vm-3f9a0c21/cpu.max = 400000 100000"))
        #expect(opdCPU < vmCPU)

        // A process still in B's group: removal refused, nothing removed.
        try t.put("lumbung/dinkes/vm-0b1c2d3e/cgroup.procs", "4242\n")
        let busy = #expect(throws: CgroupError.self) { try f.driver.remove(vm: "vm-0b1c2d3e", opd: "dinkes") }
        #expect(busy?.code == .busy)
        #expect(busy?.description.contains("4242") == true)
        #expect(busy?.description.contains("cgroup.procs") == true)
        #expect(t.exists("lumbung/dinkes/vm-0b1c2d3e"))
        #expect(t.get("lumbung/dinkes/cpu.max") == "500000 100000")

        // Empty it (the VM stopped): removed, OPD lowered to A alone.
        try t.put("lumbung/dinkes/vm-0b1c2d3e/cgroup.procs", "")
        try f.driver.remove(vm: "vm-0b1c2d3e", opd: "dinkes")
        #expect(!t.exists("lumbung/dinkes/vm-0b1c2d3e"))
        #expect(t.get("lumbung/dinkes/cpu.max") == "400000 100000")
        #expect(t.get("lumbung/dinkes/memory.max") == String((2048 + 64) * cgroupMiB))
        #expect(t.get("lumbung/dinkes/pids.max") == "512")
        // Idempotent.
        try f.driver.remove(vm: "vm-0b1c2d3e", opd: "dinkes")

        // The last VM gone: the OPD group goes too.
        try f.driver.remove(vm: "vm-3f9a0c21", opd: "dinkes")
        #expect(!t.exists("lumbung/dinkes"))
        #expect(t.exists("lumbung"))
    }

    @Test("recomputeOPD restores the sum over an override")
    func recomputeRestoresSum() throws {
        let f = try Fixture()
        defer { f.remove() }
        try f.driver.apply(Self.vmA)
        try f.driver.apply(Self.vmB)
        try f.driver.setOPDLimits(
            "dinkes", GroupLimits(cpuQuotaMicros: 100_000, memoryLimitBytes: 1024 * cgroupMiB, pidsLimit: 100))
        #expect(f.tree.get("lumbung/dinkes/cpu.max") == "100000 100000")
        #expect(f.tree.get("lumbung/dinkes/pids.max") == "100")
        try f.driver.recomputeOPD("dinkes")
        #expect(f.tree.get("lumbung/dinkes/cpu.max") == "300000 100000")
        #expect(f.tree.get("lumbung/dinkes/memory.max") == String((1088 + 576) * cgroupMiB))
        #expect(f.tree.get("lumbung/dinkes/pids.max") == "1024")
        // Unknown OPD: nothing to do.
        try f.driver.recomputeOPD("bappeda")
        #expect(!f.tree.exists("lumbung/bappeda"))
    }

    @Test("observe parses cpu.stat usage_usec, memory.current and pids.current")
    func observeParsesKernelFiles() throws {
        let f = try Fixture()
        defer { f.remove() }
        try f.driver.apply(Self.vmA)
        try f.driver.apply(Self.vmB)
        let vm = "lumbung/dinkes/vm-3f9a0c21"
        try f.tree.put(
            "\(vm)/cpu.stat",
            "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 10\nnr_throttled 2\nthrottled_usec 5000\n")
        try f.tree.put("\(vm)/memory.current", "52428800\n")
        try f.tree.put("\(vm)/pids.current", "7\n")

        let usage = try #require(try f.driver.observe(vm: "vm-3f9a0c21", opd: "dinkes"))
        #expect(usage.cpuTimeMicros == 1_234_567)
        #expect(usage.cpuSeconds == 1.234567)
        #expect(usage.memoryBytes == 52_428_800)
        #expect(usage.pids == 7)
        #expect(usage.limits == Self.vmA.groupLimits)
        #expect(usage.memoryLimitBytes == 1088 * cgroupMiB)
        #expect(usage.limits.cores == 2)

        // No pids.current: count the processes in cgroup.procs.
        let other = "lumbung/dinkes/vm-0b1c2d3e"
        try f.tree.put("\(other)/cpu.stat", "usage_usec 5\n")
        try f.tree.put("\(other)/memory.current", "4096\n")
        try f.tree.put("\(other)/cgroup.procs", "100\n101\n")
        #expect(try f.driver.observe(vm: "vm-0b1c2d3e", opd: "dinkes")?.pids == 2)

        try f.tree.put("lumbung/dinkes/cpu.stat", "usage_usec 1234572\n")
        try f.tree.put("lumbung/dinkes/memory.current", "52432896\n")
        let opd = try #require(try f.driver.observeOPD("dinkes"))
        #expect(opd.vms == ["vm-0b1c2d3e", "vm-3f9a0c21"])
        #expect(opd.cpuTimeMicros == 1_234_572)
        #expect(opd.memoryBytes == 52_432_896)
        #expect(opd.limits.cpuQuotaMicros == 300_000)

        #expect(try f.driver.observe(vm: "vm-ffffffff", opd: "dinkes") == nil)
        #expect(try f.driver.observeOPD("bappeda") == nil)

        // A file that is not what the kernel writes is a clear error naming it.
        try f.tree.put("\(vm)/memory.current", "lots\n")
        let bad = #expect(throws: CgroupError.self) { try f.driver.observe(vm: "vm-3f9a0c21", opd: "dinkes") }
        #expect(bad?.code == .unexpectedContent)
        #expect(bad?.description.contains("memory.current") == true)
    }

    @Test("attach writes the pid to the VM group's cgroup.procs, only after apply")
    func attachWritesProcs() throws {
        let f = try Fixture()
        defer { f.remove() }
        let missing = #expect(throws: CgroupError.self) {
            try f.driver.attach(pid: 4242, to: "vm-3f9a0c21", opd: "dinkes")
        }
        #expect(missing?.code == .notFound)
        #expect(missing?.description.contains("apply") == true)
        try f.driver.apply(Self.vmA)
        try f.driver.attach(pid: 4242, to: "vm-3f9a0c21", opd: "dinkes")
        #expect(f.tree.get("lumbung/dinkes/vm-3f9a0c21/cgroup.procs") == "4242")
        #expect(throws: CgroupError.self) { try f.driver.attach(pid: 0, to: "vm-3f9a0c21", opd: "dinkes") }
    }

    @Test("adopt lists the existing <opd>/<vm> groups for a restarted agent")
    func adoptListsGroups() throws {
        let f = try Fixture()
        defer { f.remove() }
        #expect(try f.driver.adopt().isEmpty)
        try f.driver.apply(Self.vmA)
        try f.driver.apply(Self.vmB)
        try f.driver.apply(VMLimits(vm: "vm-11111111", opd: "disdukcapil", vcpus: 1, memory: .gib(2)))
        try f.tree.put("lumbung/dinkes/vm-3f9a0c21/cgroup.procs", "4242\n")
        // Groups someone else made, with names Lumbung never uses: not adopted.
        try f.tree.mkdir("lumbung/Not_An_OPD/vm-1")
        try f.tree.mkdir("lumbung/dinkes/qemu.scope")

        // A new driver, as after an agent restart.
        let restarted = try CgroupDriver(layout: .v2(mount: f.tree.path), subPath: "lumbung", fs: DirectoryCgroupFS())
        let adopted = try restarted.adopt()
        #expect(adopted.map { "\($0.opd)/\($0.vm)" } == ["dinkes/vm-0b1c2d3e", "dinkes/vm-3f9a0c21", "disdukcapil/vm-11111111"])
        let a = try #require(adopted.first { $0.vm == Self.vmA.vm })
        #expect(a.pids == [4242])
        #expect(a.limits == Self.vmA.groupLimits)
        #expect(a.matches(Self.vmA))
        #expect(!a.matches(VMLimits(vm: "vm-3f9a0c21", opd: "dinkes", vcpus: 3, memory: .gib(1))))
    }

    @Test(
        "path-escaping or malformed names are refused and nothing is touched",
        arguments: [
            ("../etc", "vm-3f9a0c21"), ("dinkes", "../../../../tmp/x"), ("dinkes", "vm/3f"), ("dinkes", ".."),
            ("Dinkes", "vm-1"), ("dinkes", ""), ("din kes", "vm-1"), ("dinkes", "vm-1\n"), ("dinkes", "-vm"),
            ("dinkes", "vm_1"), ("dinkes", String(repeating: "a", count: 64)),
        ])
    func refusesBadNames(opd: String, vm: String) throws {
        let f = try Fixture()
        defer { f.remove() }
        let before = f.tree.snapshot()
        let spec = VMLimits(vm: VMID(rawValue: vm), opd: OPDID(rawValue: opd), vcpus: 1, memory: .gib(1))
        let calls: [(String, () throws -> Void)] = [
            ("apply", { try f.driver.apply(spec) }),
            ("attach", { try f.driver.attach(pid: 1, to: spec.vm, opd: spec.opd) }),
            ("remove", { try f.driver.remove(vm: spec.vm, opd: spec.opd) }),
            ("observe", { _ = try f.driver.observe(vm: spec.vm, opd: spec.opd) }),
        ]
        for (name, call) in calls {
            let error = #expect(throws: CgroupError.self, "\(name)") { try call() }
            #expect(error?.code == .invalidName, "\(name)")
            #expect(error?.description.contains("nothing was changed") == true)
        }
        #expect(f.tree.snapshot() == before)
        #expect(f.fs.log.isEmpty)
    }

    @Test("refused limits touch nothing")
    func refusesBadLimits() throws {
        let f = try Fixture()
        defer { f.remove() }
        let before = f.tree.snapshot()
        for spec in [
            VMLimits(vm: "vm-1", opd: "dinkes", vcpus: 0, memory: .gib(1)),
            VMLimits(vm: "vm-1", opd: "dinkes", vcpus: 1, memory: ByteSize(bytes: 0)),
            VMLimits(vm: "vm-1", opd: "dinkes", vcpus: 5000, memory: .gib(1)),
        ] {
            let error = #expect(throws: CgroupError.self) { try f.driver.apply(spec) }
            #expect(error?.code == .invalidLimits)
        }
        #expect(f.tree.snapshot() == before)
    }

    @Test("a bad sub-path is refused")
    func refusesBadSubPath() throws {
        for subPath in ["", "/", "../x", "a/../b", "a/./b"] {
            let error = #expect(throws: CgroupError.self, "\(subPath)") {
                try CgroupDriver(layout: .v2(mount: "/nonexistent"), subPath: subPath, fs: DirectoryCgroupFS())
            }
            #expect(error?.code == .invalidPath)
        }
        let nested = try CgroupDriver(
            layout: .v2(mount: "/x"), subPath: "/system.slice/lumbung-agent.service/vms/", fs: DirectoryCgroupFS())
        #expect(nested.subPath == "system.slice/lumbung-agent.service/vms")
    }

    @Test("under a delegated subtree: the agent's own processes move to a leaf, then controllers are enabled")
    func delegatedSubtree() throws {
        let f = try Fixture()
        defer { f.remove() }
        // systemd enabled the controllers down to the unit; the agent sits in the unit's group.
        try f.tree.put("cgroup.subtree_control", "cpu io memory pids\n")
        try f.tree.put("system.slice/cgroup.subtree_control", "cpu io memory pids\n")
        try f.tree.put("system.slice/lumbung-agent.service/cgroup.procs", "777\n")
        try f.tree.put("system.slice/lumbung-agent.service/cgroup.subtree_control", "")
        let driver = try CgroupDriver(
            layout: .v2(mount: f.tree.path), subPath: "system.slice/lumbung-agent.service/vms", fs: f.fs)
        let moved = try driver.moveProcesses(outOf: "system.slice/lumbung-agent.service", into: "agent")
        #expect(moved == [777])
        #expect(f.tree.get("system.slice/lumbung-agent.service/agent/cgroup.procs") == "777")
        // (The kernel would now show the unit's cgroup.procs empty.)
        try f.tree.put("system.slice/lumbung-agent.service/cgroup.procs", "")

        try driver.apply(Self.vmA)
        #expect(!f.fs.log.contains { $0.hasPrefix("write cgroup.subtree_control") })
        #expect(!f.fs.log.contains { $0.hasPrefix("write system.slice/cgroup.subtree_control") })
        #expect(f.tree.get("system.slice/lumbung-agent.service/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(f.tree.get("system.slice/lumbung-agent.service/vms/dinkes/vm-3f9a0c21/cpu.max") == "200000 100000")
    }

    struct DerivedCase: Sendable, CustomStringConvertible {
        var memoryMiB: Int64
        var vcpus: Int
        var limitMiB: Int64
        var quota: Int64
        var description: String { "\(memoryMiB) MiB, \(vcpus) vCPU" }
    }

    static let derivedCases: [DerivedCase] = [
        DerivedCase(memoryMiB: 64, vcpus: 1, limitMiB: 128, quota: 100_000),
        DerivedCase(memoryMiB: 1024, vcpus: 2, limitMiB: 1088, quota: 200_000),
        DerivedCase(memoryMiB: 3200, vcpus: 4, limitMiB: 3264, quota: 400_000),
        DerivedCase(memoryMiB: 3300, vcpus: 4, limitMiB: 3300 + 66, quota: 400_000),
        DerivedCase(memoryMiB: 8192, vcpus: 8, limitMiB: 8192 + 164, quota: 800_000),
        DerivedCase(memoryMiB: 65536, vcpus: 32, limitMiB: 65536 + 1311, quota: 3_200_000),
    ]

    @Test("memory limit = memory + max(64 MiB, 2% rounded up to MiB); quota = vCPUs × 100 ms", arguments: derivedCases)
    func derivedLimits(_ c: DerivedCase) {
        let spec = VMLimits(vm: "vm-1", opd: "dinkes", vcpus: c.vcpus, memory: .mib(c.memoryMiB))
        #expect(spec.memoryLimit == .mib(c.limitMiB))
        #expect(VMLimits.memoryOverhead(for: .mib(c.memoryMiB)) == .mib(c.limitMiB - c.memoryMiB))
        #expect(spec.cpuQuotaMicros == c.quota)
        #expect(spec.pidsLimit == 512)
        #expect(VMLimits.pidsLimit(forVCPUs: 512) == 1088)
    }
}

@Suite struct CgroupSubtreeTests {
    static let v2 = CgroupLayout.v2(mount: "/sys/fs/cgroup")
    static let v1 = CgroupLayout.v1(CgroupV1Mounts(cpu: "/sys/fs/cgroup/cpu", cpuacct: "/sys/fs/cgroup/cpuacct", memory: "/sys/fs/cgroup/memory", pids: nil))

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var configured: String
        var layout: CgroupLayout
        var own: String?
        var systemd: Bool
        var subPath: String
        var move: String?
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "systemd on v2: the delegated unit group", configured: "auto", layout: v2, own: "system.slice/lumbung-agent.service",
             systemd: true, subPath: "system.slice/lumbung-agent.service/vms", move: "system.slice/lumbung-agent.service"),
        Case(name: "already in the agent leaf", configured: "auto", layout: v2, own: "system.slice/lumbung-agent.service/agent",
             systemd: true, subPath: "system.slice/lumbung-agent.service/vms", move: "system.slice/lumbung-agent.service"),
        Case(name: "v2 without systemd", configured: "auto", layout: v2, own: "user.slice/session-1.scope", systemd: false,
             subPath: "lumbung", move: nil),
        Case(name: "v2 root group is never delegated", configured: "auto", layout: v2, own: "", systemd: true, subPath: "lumbung", move: nil),
        Case(name: "v1 ignores delegation", configured: "auto", layout: v1, own: "system.slice/lumbung-agent.service", systemd: true,
             subPath: "lumbung", move: nil),
        Case(name: "a fixed path wins", configured: "lumbung-test/a", layout: v2, own: "system.slice/lumbung-agent.service",
             systemd: true, subPath: "lumbung-test/a", move: nil),
    ]

    @Test(arguments: cases)
    func resolve(_ c: Case) {
        let got = CgroupSubtree.resolve(configured: c.configured, layout: c.layout, ownV2Cgroup: c.own, underSystemd: c.systemd)
        #expect(got.subPath == c.subPath)
        #expect(got.moveProcessesOutOf == c.move)
    }
}
