import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import Testing

/// Operating the controller: online backup and restore, Prometheus `/metrics`.
@Suite("Controller operations: backup, restore, metrics", .serialized)
struct ControllerOpsTests {
    static var lumbungd: String { binDirectory() + "/lumbungd" }

    @Test("a backup taken during concurrent allocations restores to a consistent controller: same OPDs, VMs = usage, audit verifies")
    func backupDuringAllocations() async throws {
        let state = makeTempDirectory("lumbung-backup")
        let initialized = try StateDirectory.initialize(directory: state, name: "test-dc", addresses: ["127.0.0.1"])
        let ctl = try ControllerProcess(state: state, port: freePort())
        defer { ctl.terminate() }
        let caPEM = try String(contentsOfFile: StatePaths(state).caCertificate, encoding: .utf8)
        try await ctl.waitUntilReady(caPEM: caPEM)
        let admin = try await enrollClient(baseURL: ctl.baseURL, caPEM: caPEM, token: initialized.adminToken)
        for opd in ["dinkes", "bappeda"] {
            _ = try await admin.client.createOPD(
                CreateOPDBody(id: OPDID(rawValue: opd), displayName: opd, quota: ResourceVector(vcpu: 500, memory: .gib(500), storage: ["ssd": .tib(10)], vms: 500)))
        }
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 400, memory: .tib(2), pools: ["ssd": .tib(40)])))

        let backupFile = makeTempDirectory("lumbung-backup-file") + "/dc.lumbung-backup"
        let backup = Task {
            try await Task.sleep(for: .milliseconds(150))
            return try await runCommand(Self.lumbungd, ["backup", "--state", state, "--to", backupFile])
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for i in 0..<40 {
                        _ = try await admin.client.createVM(
                            CreateVMBody(
                                opd: worker % 2 == 0 ? "dinkes" : "bappeda",
                                vm: VMBody(name: "w\(worker)-\(i)", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd")))
                    }
                }
            }
            try await group.waitForAll()
        }
        let made = try await backup.value
        #expect(made.code == 0, "backup: \(made.out) \(made.err)")
        #expect(made.out.contains("chain verifies"))
        // Refused: an existing file is never overwritten.
        let again = try await runCommand(Self.lumbungd, ["backup", "--state", state, "--to", backupFile])
        #expect(again.code == 1 && again.err.contains("exists"))

        let restoredDir = makeTempDirectory("lumbung-restored") + "/state"
        let restored = try await runCommand(Self.lumbungd, ["restore", "--from", backupFile, "--state", restoredDir])
        #expect(restored.code == 0, "restore: \(restored.out) \(restored.err)")
        let keyMode = try FileManager.default.attributesOfItem(atPath: StatePaths(restoredDir).caKey)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        // Never over an existing database.
        let over = try await runCommand(Self.lumbungd, ["restore", "--from", backupFile, "--state", restoredDir])
        #expect(over.code == 1 && over.err.contains("exists"))

        let second = try ControllerProcess(state: restoredDir, port: freePort())
        defer { second.terminate() }
        try await second.waitUntilReady(caPEM: caPEM)
        // The same CA and the same admin certificate work against the restored controller.
        let restoredAdmin = try LumbungClient(baseURL: second.baseURL, credentials: admin.credentials)
        #expect(try await restoredAdmin.listOPDs().map(\.id).sorted() == ["bappeda", "dinkes"])
        let vms = try await restoredAdmin.listVMs()
        let original = try await admin.client.listVMs()
        #expect(vms.count <= original.count)
        #expect(vms.count > 0, "the backup ran while VMs were being allocated")
        for opd in ["dinkes", "bappeda"] {
            let quota = try await restoredAdmin.quota(opd: OPDID(rawValue: opd))
            let mine = vms.filter { $0.opd.rawValue == opd }
            #expect(quota.usage.vcpu == mine.reduce(0) { $0 + $1.spec.vcpu })
            #expect(quota.usage.vms == mine.count)
        }
        #expect(try await restoredAdmin.host("node-01").allocated.vcpu == vms.count)
        let verify = try await restoredAdmin.verifyAudit()
        #expect(verify.ok, "\(verify.problem ?? "")")
        try await restoredAdmin.shutdown()
        await admin.shutdown()
    }

    @Test("lumbungd serves /metrics (requests, hosts, ledger commits, policy) that promtool accepts")
    func metrics() async throws {
        let state = makeTempDirectory("lumbung-metrics")
        let initialized = try StateDirectory.initialize(directory: state, name: "test-dc", addresses: ["127.0.0.1"])
        let metricsPort = freePort()
        let ctl = try ControllerProcess(state: state, port: freePort(), extraArgs: ["--metrics-listen", "127.0.0.1:\(metricsPort)"])
        defer { ctl.terminate() }
        let caPEM = try String(contentsOfFile: StatePaths(state).caCertificate, encoding: .utf8)
        try await ctl.waitUntilReady(caPEM: caPEM)
        let admin = try await enrollClient(baseURL: ctl.baseURL, caPEM: caPEM, token: initialized.adminToken)
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 8, memory: .gib(8), storage: ["ssd": .tib(1)], vms: 8)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 8, memory: .gib(32), pools: ["ssd": .tib(1)])))
        _ = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(2), disk: .gib(10), pool: "ssd")))
        var text = ""
        for _ in 0..<150 {
            text = (try? await runCommand("/usr/bin/curl", ["-s", "http://127.0.0.1:\(metricsPort)/metrics"]).out) ?? ""
            if text.contains("lumbung_vms{state=\"scheduled\"} 1") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(text.contains("lumbung_vms{state=\"scheduled\"} 1"), "\(text.prefix(2000))")
        #expect(text.contains("lumbung_hosts{state=\"enrolled\"} 1"))
        #expect(text.contains("lumbung_ledger_commit_duration_seconds"))
        #expect(text.contains("lumbung_store_flush_duration_seconds"))
        #expect(text.contains("lumbung_ledger_operation_duration_seconds"))
        #expect(text.contains("lumbung_ledger_operations_total"))
        #expect(text.contains("lumbung_policy_info{hash="))
        #expect(text.contains("lumbung_policy_last_reload_success 1"))
        #expect(text.contains("lumbung_datacenter_vcpu{kind=\"allocatable\"} 32"))
        try await expectPromtoolClean(text, scratch: state)
        await admin.shutdown()
    }

    @Test("lumbungd run --config: the shipped controller.yaml is accepted (flags win), unknown keys are refused with the accepted ones")
    func configFile() async throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let state = makeTempDirectory("lumbung-config")
        let initialized = try StateDirectory.initialize(directory: state, name: "test-dc", addresses: ["127.0.0.1"])
        let bad = state + "/bad.yaml"
        try "state: \(state)\nlisten: 127.0.0.1:1\nheartbeat: 5\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await runCommand(Self.lumbungd, ["run", "--config", bad])
        #expect(refused.code == 2)
        #expect(refused.err.contains("unknown key(s) heartbeat") && refused.err.contains("heartbeat_timeout_seconds"), "\(refused.err)")

        let port = freePort()
        let ctl = try ControllerProcess(
            state: state, port: port,
            extraArgs: ["--config", repo.appendingPathComponent("controller/controller.yaml").path, "--policies", repo.appendingPathComponent("policies").path,
                "--metrics-listen", "off"])
        defer { ctl.terminate() }
        let caPEM = try String(contentsOfFile: StatePaths(state).caCertificate, encoding: .utf8)
        try await ctl.waitUntilReady(caPEM: caPEM)
        let admin = try await enrollClient(baseURL: ctl.baseURL, caPEM: caPEM, token: initialized.adminToken)
        let policy = try await admin.client.policy()
        #expect(policy.directory == repo.appendingPathComponent("policies").path)
        #expect(policy.headroomNPlusOne)
        await admin.shutdown()
    }
}
