import Foundation
import LumbungAPI
import LumbungCore
import Testing

/// Root and QEMU present (CI is root and installs QEMU): the real drivers run for real.
let realHostAvailable: Bool = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img") && FileManager.default.fileExists(atPath: "/sys/fs/cgroup")

/// `lumbungd` (in process) + the real `lumbung-agent` process with the real Linux driver:
/// approve a VM → QEMU runs in its cgroup with its limits → reported back → delete → stopped and released.
@Suite("Real agent end to end (root, QEMU)", .serialized, .enabled(if: realHostAvailable, "needs root, /usr/bin/qemu-system-x86_64 and cgroups (CI runs as root and installs qemu-system-x86)"))
struct RealAgentEndToEndTests {
    @Test("approve → QEMU running with limits → reported → delete → gone and released")
    func approveRunDelete() async throws {
        guard let agentBinary = builtAgentBinary() else { return }
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 4, memory: .gib(4), storage: ["ssd": .gib(50)], vms: 4, volumes: 2)))
        let added = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 2, memory: .gib(4), pools: ["ssd": .gib(50)])))
        let tag = "lumbung-test-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let dir = "/tmp/" + tag
        try FileManager.default.createDirectory(atPath: dir + "/ssd", withIntermediateDirectories: true)
        let config = dir + "/agent.yaml"
        try """
            controller: \(ctl.baseURL)
            driver: real
            state: \(dir)/state
            heartbeat_seconds: 1
            metrics_listen: 127.0.0.1:\(freePort())
            accel: auto
            stop_timeout_seconds: 2
            cgroup_subpath: \(tag)
            pools:
              ssd: \(dir)/ssd
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let joined = try await runCommand(agentBinary, ["join", "--controller", ctl.baseURL, "--token", added.joinToken, "--config", config, "--state", dir + "/state"])
        #expect(joined.code == 0, "\(joined.err)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: agentBinary)
        process.arguments = ["run", "--config", config, "--log-level", "warning"]
        _ = FileManager.default.createFile(atPath: dir + "/agent.log", contents: nil)
        let log = FileHandle(forWritingAtPath: dir + "/agent.log")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
            _ = try? runCommandBlocking("/usr/bin/pkill", ["-9", "-f", dir])
            _ = try? runCommandBlocking("/bin/sh", ["-c", "for d in /sys/fs/cgroup/*/\(tag) /sys/fs/cgroup/\(tag); do [ -d $d ] && find $d -depth -type d -exec rmdir {} + 2>/dev/null; done; rm -rf \(dir)"])
        }

        let budi = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin)
        let request = try await budi.client.fileRequest(
            FileRequestBody(reason: "real VM", vm: VMBody(name: "bios-only", vcpu: 1, memory: .mib(128), disk: .gib(1), pool: "ssd")))
        let approved = try await admin.client.approve(request.id)
        let vmID = try #require(approved.result)
        var vm = try await budi.client.vm(vmID)
        for _ in 0..<300 where vm.state != .running {
            try await Task.sleep(for: .milliseconds(100))
            vm = try await budi.client.vm(vmID)
        }
        #expect(vm.state == .running, "agent log: \((try? String(contentsOfFile: dir + "/agent.log", encoding: .utf8)) ?? "")")
        // The QEMU process runs with the VM's id and sits in the VM's cgroup with its limits.
        let pids = try await runCommand("/usr/bin/pgrep", ["-f", "name \(vmID)"]).out.split(separator: "\n").map(String.init)
        #expect(pids.count == 1)
        let procs = (try? String(contentsOfFile: "/sys/fs/cgroup/cpu/\(tag)/dinkes/\(vmID)/cgroup.procs", encoding: .utf8))
            ?? (try? String(contentsOfFile: "/sys/fs/cgroup/cpu,cpuacct/\(tag)/dinkes/\(vmID)/cgroup.procs", encoding: .utf8))
            ?? (try? String(contentsOfFile: "/sys/fs/cgroup/\(tag)/dinkes/\(vmID)/cgroup.procs", encoding: .utf8)) ?? ""
        let tree = try await runCommand("/bin/sh", ["-c", "find /sys/fs/cgroup/cpu*/ -maxdepth 4 -path '*\(tag)*' -name cgroup.procs | head -20; cat /proc/\(pids.first ?? "1")/cgroup"]).out
        if let pid = pids.first { #expect(procs.contains(pid), "QEMU \(pid) is in the VM's cgroup: \(tree)") }
        // Reported back with its measured use and limit.
        for _ in 0..<100 where vm.observed?.memoryLimit == nil {
            try await Task.sleep(for: .milliseconds(100))
            vm = try await budi.client.vm(vmID)
        }
        #expect((vm.observed?.memoryLimit?.bytes ?? 0) >= ByteSize.mib(128).bytes)
        #expect(try await admin.client.host("node-01").reported?.cpus == ProcessInfo.processInfo.activeProcessorCount)

        func qemuPIDs() async throws -> [String] {
            try await runCommand("/usr/bin/pgrep", ["-f", "name \(vmID)"]).out.split(separator: "\n").map(String.init)
        }
        func waitFor(_ what: String, _ check: () async throws -> Bool) async throws {
            for _ in 0..<300 {
                if try await check() { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("timed out waiting for \(what); agent log: \((try? String(contentsOfFile: dir + "/agent.log", encoding: .utf8)) ?? "")")
        }
        // Stop and start converge the host: QEMU goes away, then runs again (a new process).
        _ = try await budi.client.stopVM(vmID)
        try await waitFor("VM stopped") { try await budi.client.vm(vmID).state == .stopped }
        #expect(try await qemuPIDs().isEmpty)
        _ = try await budi.client.startVM(vmID)
        try await waitFor("VM running again") { try await budi.client.vm(vmID).state == .running }
        let restarted = try await qemuPIDs()
        #expect(restarted.count == 1 && restarted != pids)

        // Resize: the cgroup's CPU quota follows at once, the disk grows online (same QEMU process).
        _ = try await admin.client.resizeVM(vmID, ResizeVMBody(vcpu: 2, disk: .gib(2)))
        let quotaFile = ["/sys/fs/cgroup/cpu/\(tag)/dinkes/\(vmID)/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/\(tag)/dinkes/\(vmID)/cpu.cfs_quota_us"]
            .first { FileManager.default.fileExists(atPath: $0) }
        let disk = dir + "/ssd/vms/\(vmID).qcow2"
        func virtualSize() -> Int64 {
            guard let h = FileHandle(forReadingAtPath: disk) else { return 0 }
            defer { try? h.close() }
            let head = [UInt8]((try? h.read(upToCount: 32)) ?? Data())
            return head.count == 32 ? Int64(head[24..<32].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) : 0
        }
        try await waitFor("disk grown") { virtualSize() == ByteSize.gib(2).bytes }
        if let quotaFile {
            try await waitFor("CPU quota raised") {
                (try? String(contentsOfFile: quotaFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "200000"
            }
        } else {
            Issue.record("no cgroup v1 cpu quota file for \(vmID)")
        }
        #expect(try await qemuPIDs() == restarted, "growing the disk must not restart QEMU")

        // A volume: a mounted filesystem of its size on the host; writing past it fails with ENOSPC; it grows online.
        let volume = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .mib(300), pool: "ssd")))
        try await waitFor("volume ready") { try await budi.client.volume(volume.id.rawValue).state == .ready }
        let mount = dir + "/ssd/dinkes/\(volume.id)"
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        #expect(mounts.contains(" \(mount) xfs "), "volume mounted at \(mount)")
        let fill = try await runCommand("/bin/dd", ["if=/dev/zero", "of=\(mount)/fill", "bs=1M", "count=600"])
        #expect(fill.code != 0 && fill.err.contains("No space left"), "dd: \(fill.err)")
        _ = try await admin.client.resizeVolume(volume.id.rawValue, ResizeVolumeBody(size: .mib(600)))
        try await waitFor("volume grown") {
            var st = statvfs()
            guard statvfs(mount, &st) == 0 else { return false }
            return Int64(st.f_blocks) * Int64(st.f_frsize) > ByteSize.mib(400).bytes
        }
        _ = try await admin.client.deleteVolume(volume.id.rawValue)
        try await waitFor("volume unmounted and released") {
            let now = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
            let held = try await admin.client.host("node-01").allocated.storage["ssd"] ?? .zero
            return !now.contains(" \(mount) ") && held == .gib(2)
        }

        _ = try await admin.client.deleteVM(vmID)
        var allocated = 1
        for _ in 0..<300 where allocated != 0 {
            try await Task.sleep(for: .milliseconds(100))
            allocated = try await admin.client.host("node-01").allocated.vcpu
        }
        #expect(allocated == 0, "host capacity released once the agent confirmed; agent log: \((try? String(contentsOfFile: dir + "/agent.log", encoding: .utf8)) ?? "")")
        let left = try await runCommand("/usr/bin/pgrep", ["-f", "name \(vmID)"]).out
        #expect(left.isEmpty, "QEMU is gone")
        process.terminate()
        process.waitUntilExit()
        await budi.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }
}
