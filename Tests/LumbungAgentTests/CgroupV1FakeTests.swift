import Foundation
import LumbungAgent
import LumbungCore
import Testing

/// cgroup v1 detection from sample mounts files, and the v1 file protocol against a fake tree.
@Suite("cgroup v1 detection and files against a fake tree")
struct CgroupV1FakeTests {
    /// A hybrid host as this project's CI machine has it: one v1 mount per controller and an
    /// empty v2 `unified` mount. `joined` mounts cpu and cpuacct together as `cpu,cpuacct`.
    static func mountsFile(root: String, joined: Bool) -> String {
        var lines = ["tmpfs \(root) tmpfs rw,relatime,mode=755 0 0"]
        if joined {
            lines.append("cgroup \(root)/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0")
        } else {
            lines.append("cgroup \(root)/cpu cgroup rw,relatime,cpu 0 0")
            lines.append("cgroup \(root)/cpuacct cgroup rw,relatime,cpuacct 0 0")
        }
        lines += [
            "cgroup \(root)/cpuset cgroup rw,relatime,cpuset 0 0",
            "cgroup \(root)/memory cgroup rw,relatime,memory 0 0",
            "cgroup \(root)/blkio cgroup rw,relatime,blkio 0 0",
            "cgroup \(root)/pids cgroup rw,relatime,pids 0 0",
            "cgroup \(root)/systemd cgroup rw,relatime,name=systemd 0 0",
            "cgroup2 \(root)/unified cgroup2 rw,relatime 0 0",
            // Mounts elsewhere are ignored.
            "cgroup /elsewhere/memory cgroup rw,memory 0 0",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    struct Fixture {
        let tree: CgroupTempTree
        let mounts: CgroupTempTree
        let layout: CgroupLayout

        init(joined: Bool) throws {
            tree = try CgroupTempTree("cgv1")
            mounts = try CgroupTempTree("cgv1-mounts")
            let cpuDirs = joined ? ["cpu,cpuacct"] : ["cpu", "cpuacct"]
            for dir in cpuDirs + ["cpuset", "memory", "blkio", "pids", "systemd", "unified"] {
                try tree.mkdir(dir)
            }
            try tree.put("unified/cgroup.controllers", "\n")  // a v2 mount without controllers
            try mounts.put("mounts", CgroupV1FakeTests.mountsFile(root: tree.path, joined: joined))
            layout = try CgroupDriver.detect(root: tree.path, mountsFile: mounts.path + "/mounts")
        }

        func remove() {
            tree.remove()
            mounts.remove()
        }
    }

    @Test("detects separate cpu and cpuacct mounts")
    func detectsSeparate() throws {
        let f = try Fixture(joined: false)
        defer { f.remove() }
        let r = f.tree.path
        #expect(f.layout == .v1(CgroupV1Mounts(cpu: "\(r)/cpu", cpuacct: "\(r)/cpuacct", memory: "\(r)/memory", pids: "\(r)/pids")))
    }

    @Test("detects a joined cpu,cpuacct mount")
    func detectsJoined() throws {
        let f = try Fixture(joined: true)
        defer { f.remove() }
        let r = f.tree.path
        #expect(
            f.layout
                == .v1(CgroupV1Mounts(cpu: "\(r)/cpu,cpuacct", cpuacct: "\(r)/cpu,cpuacct", memory: "\(r)/memory", pids: "\(r)/pids")))
    }

    @Test("a v2 mount offering cpu, memory and pids wins; escaped mount points are decoded")
    func detectsV2AndEscapes() throws {
        let tree = try CgroupTempTree("cg detect")
        defer { tree.remove() }
        try tree.put("with space/cgroup.controllers", "cpu io memory pids\n")
        let escaped = tree.path.replacingOccurrences(of: " ", with: "\\040")
        try tree.put("mounts", "cgroup2 \(escaped)/with\\040space cgroup2 rw 0 0\n")
        #expect(try CgroupDriver.detect(root: tree.path, mountsFile: tree.path + "/mounts") == .v2(mount: tree.path + "/with space"))
    }

    @Test("no usable hierarchy: a clear error naming what was found")
    func unsupported() throws {
        let tree = try CgroupTempTree("cgnone")
        defer { tree.remove() }
        try tree.put("unified/cgroup.controllers", "io\n")
        try tree.put(
            "mounts",
            "cgroup2 \(tree.path)/unified cgroup2 rw 0 0\ncgroup \(tree.path)/blkio cgroup rw,blkio 0 0\n"
                + "cgroup \(tree.path)/pids cgroup rw,pids 0 0\n")
        let error = #expect(throws: CgroupError.self) {
            try CgroupDriver.detect(root: tree.path, mountsFile: tree.path + "/mounts")
        }
        #expect(error?.code == .unsupported)
        #expect(error?.description.contains("offers 'io'") == true)
        #expect(error?.description.contains("cgroup v1 mounts for pids, blkio") == true)

        let missing = #expect(throws: CgroupError.self) {
            try CgroupDriver.detect(root: tree.path, mountsFile: tree.path + "/no-such-mounts")
        }
        #expect(missing?.code == .notFound)
        #expect(missing?.description.contains("no-such-mounts") == true)
    }

    @Test("v1 files in every hierarchy; parent raised before the child, child lowered before the parent", arguments: [false, true])
    func v1FilesAndOrdering(joined: Bool) throws {
        let f = try Fixture(joined: joined)
        defer { f.remove() }
        let fs = CgroupRecordingFS(root: f.tree.path)
        let driver = try CgroupDriver(layout: f.layout, subPath: "lumbung", fs: fs)
        let cpu = joined ? "cpu,cpuacct" : "cpu"
        let spec = VMLimits(vm: "vm-3f9a0c21", opd: "dinkes", vcpus: 1, memory: .mib(64))
        try driver.apply(spec)

        let vm = "lumbung/dinkes/vm-3f9a0c21"
        let t = f.tree
        #expect(t.get("\(cpu)/\(vm)/cpu.cfs_quota_us") == "100000")
        #expect(t.get("\(cpu)/\(vm)/cpu.cfs_period_us") == "100000")
        #expect(t.get("memory/\(vm)/memory.limit_in_bytes") == String(128 * cgroupMiB))
        #expect(t.get("pids/\(vm)/pids.max") == "512")
        #expect(t.get("\(cpu)/lumbung/dinkes/cpu.cfs_quota_us") == "100000")
        #expect(t.get("memory/lumbung/dinkes/memory.limit_in_bytes") == String(128 * cgroupMiB))
        #expect(t.exists("cpuacct/\(vm)") == !joined)
        #expect(!t.exists("blkio/lumbung"))
        #expect(!t.exists("\(cpu)/lumbung/cgroup.subtree_control"))

        // Raise: the OPD before the VM, for each limit.
        fs.clearLog()
        try driver.apply(VMLimits(vm: "vm-3f9a0c21", opd: "dinkes", vcpus: 2, memory: .gib(4)))
        var log = fs.log
        func index(_ entry: String) throws -> Int { try #require(log.firstIndex(of: entry), "\(entry) in \(log)") }
        #expect(try index("write \(cpu)/lumbung/dinkes/cpu.cfs_quota_us = 200000") < index("write \(cpu)/\(vm)/cpu.cfs_quota_us = 200000"))
        let bigMemory = String((4096 + 82) * cgroupMiB)
        #expect(
            try index("write memory/lumbung/dinkes/memory.limit_in_bytes = \(bigMemory)")
                < index("write memory/\(vm)/memory.limit_in_bytes = \(bigMemory)"))

        // Lower: the VM before the OPD.
        fs.clearLog()
        try driver.apply(spec)
        log = fs.log
        #expect(try index("write \(cpu)/\(vm)/cpu.cfs_quota_us = 100000") < index("write \(cpu)/lumbung/dinkes/cpu.cfs_quota_us = 100000"))
        let smallMemory = String(128 * cgroupMiB)
        #expect(
            try index("write memory/\(vm)/memory.limit_in_bytes = \(smallMemory)")
                < index("write memory/lumbung/dinkes/memory.limit_in_bytes = \(smallMemory)"))

        // With swap accounting (memsw present): memsw raised first and lowered last.
        try t.put("memory/\(vm)/memory.memsw.limit_in_bytes", smallMemory)
        fs.clearLog()
        try driver.apply(VMLimits(vm: "vm-3f9a0c21", opd: "dinkes", vcpus: 1, memory: .mib(256)))
        log = fs.log
        let mid = String(320 * cgroupMiB)
        #expect(
            try index("write memory/\(vm)/memory.memsw.limit_in_bytes = \(mid)")
                < index("write memory/\(vm)/memory.limit_in_bytes = \(mid)"))
        fs.clearLog()
        try driver.apply(spec)
        log = fs.log
        #expect(
            try index("write memory/\(vm)/memory.limit_in_bytes = \(smallMemory)")
                < index("write memory/\(vm)/memory.memsw.limit_in_bytes = \(smallMemory)"))

        // Attach writes the pid into every hierarchy, memory first.
        fs.clearLog()
        try driver.attach(pid: 4242, to: "vm-3f9a0c21", opd: "dinkes")
        let expected = ["memory", "pids", cpu] + (joined ? [] : ["cpuacct"])
        #expect(fs.log == expected.map { "write \($0)/\(vm)/cgroup.procs = 4242" })

        // Observe reads cpuacct.usage (ns) and memory.usage_in_bytes.
        let acct = joined ? "cpu,cpuacct" : "cpuacct"
        try t.put("\(acct)/\(vm)/cpuacct.usage", "2500000000\n")
        try t.put("memory/\(vm)/memory.usage_in_bytes", "1048576\n")
        try t.put("pids/\(vm)/pids.current", "3\n")
        let usage = try #require(try driver.observe(vm: "vm-3f9a0c21", opd: "dinkes"))
        #expect(usage.cpuTimeMicros == 2_500_000)
        #expect(usage.memoryBytes == 1_048_576)
        #expect(usage.pids == 3)
        #expect(usage.limits == spec.groupLimits)

        // The kernel's "unlimited" reads back as nil.
        try t.put("memory/lumbung/dinkes/memory.limit_in_bytes", "9223372036854771712\n")
        try t.put("\(cpu)/lumbung/dinkes/cpu.cfs_quota_us", "-1\n")
        try t.put("\(acct)/lumbung/dinkes/cpuacct.usage", "2500000000\n")
        try t.put("memory/lumbung/dinkes/memory.usage_in_bytes", "1048576\n")
        let opdLimits = try #require(try driver.observeOPD("dinkes")).limits
        #expect(opdLimits.memoryLimitBytes == nil)
        #expect(opdLimits.cpuQuotaMicros == nil)

        // Remove: rmdir in every hierarchy, then the empty OPD group.
        for dir in expected { try t.put("\(dir)/\(vm)/cgroup.procs", "") }  // the VM stopped
        fs.clearLog()
        try driver.remove(vm: "vm-3f9a0c21", opd: "dinkes")
        for dir in [cpu, "memory", "pids"] + (joined ? [] : ["cpuacct"]) {
            #expect(fs.log.contains("rmdir \(dir)/\(vm)"))
            #expect(!t.exists("\(dir)/lumbung/dinkes"))
        }
    }
}
