import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungPolicy
import Testing

/// The policy directory: loaded at start, reloaded by API and SIGHUP, an invalid set never
/// replaces the running one, every audited decision carries the hash of the set it was made under.
@Suite("Policy reload", .serialized)
struct PolicyReloadTests {
    static var shipped: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("policies").path
    }

    /// A copy of the shipped `policies/` the test may edit.
    static func copyOfShipped() throws -> String {
        let dir = makeTempDirectory("lumbung-policies")
        for name in try FileManager.default.contentsOfDirectory(atPath: shipped) where name.hasSuffix(".yaml") {
            try FileManager.default.copyItem(atPath: shipped + "/" + name, toPath: dir + "/" + name)
        }
        return dir
    }

    static func edit(_ file: String, _ from: String, _ to: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains(from), "\(file) has no '\(from)'")
        try text.replacingOccurrences(of: from, with: to).write(toFile: file, atomically: true, encoding: .utf8)
    }

    @Test("reload: a valid set replaces the running one, an invalid one is refused with file:line errors and changes nothing")
    func reloadValidAndInvalid() async throws {
        let policies = try Self.copyOfShipped()
        let expected = try PolicyLoader.load(directory: policies).get()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        let shown = try await admin.client.policy()
        #expect(shown.hash == expected.hash)
        #expect(shown.directory == policies)
        #expect(shown.classes == ["besar", "kecil", "sedang"])

        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 8, memory: .gib(8), storage: ["ssd": .tib(1)], vms: 8)))
        #expect(try await admin.client.audit().last?.policyHash == expected.hash)

        // An invalid set: refused, every error named with its file and line, the running set stays.
        try Self.edit(policies + "/approval.yaml", "request_expiry_days: 14", "request_expiry_days: 0")
        try "placement:\n  strategy: sideways\n".write(toFile: policies + "/zz-extra.yaml", atomically: true, encoding: .utf8)
        let refused = try #require(await apiError { try await admin.client.reloadPolicy() })
        #expect(refused.status == 422)
        #expect(refused.detail.code == "policy_invalid")
        #expect(refused.detail.message.contains("approval.yaml:"))
        #expect(refused.detail.message.contains("zz-extra.yaml:1: section 'placement' is also defined at placement.yaml:"))
        let after = try await admin.client.policy()
        #expect(after.hash == expected.hash)
        #expect(after.lastAttemptOK == false)
        #expect(after.lastErrors.count >= 2)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quota: .zero))
        #expect(try await admin.client.audit().last?.policyHash == expected.hash)

        // Fixed and changed: installed, audited with the old and new hash.
        try FileManager.default.removeItem(atPath: policies + "/zz-extra.yaml")
        try Self.edit(policies + "/approval.yaml", "request_expiry_days: 0", "request_expiry_days: 7")
        let reloaded = try await admin.client.reloadPolicy()
        #expect(reloaded.hash != expected.hash)
        #expect(reloaded.requestExpiryDays == 7)
        #expect(reloaded.lastAttemptOK == true)
        let install = try #require(try await admin.client.audit().last { $0.action == "policy.install" })
        #expect(install.before?.contains(expected.hash) == true && install.after?.contains(reloaded.hash) == true)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "disdukcapil", displayName: "Disdukcapil", quota: .zero))
        #expect(try await admin.client.audit().last?.policyHash == reloaded.hash)
        #expect(try await admin.client.verifyAudit().ok)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("reloads while allocations run: each decision carries exactly the set in force when it was decided")
    func reloadUnderLoad() async throws {
        let policies = try Self.copyOfShipped()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 400, memory: .gib(400), storage: ["ssd": .tib(10)], vms: 400)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 200, memory: .gib(800), pools: ["ssd": .tib(20), "hdd": .tib(40)])))
        // A second host, so that the shipped N+1 headroom rule can be kept.
        _ = try await admin.client.addHost(AddHostBody(id: "node-02", capacity: HostCapacity(cpus: 200, memory: .gib(800), pools: ["ssd": .tib(20), "hdd": .tib(40)])))
        let first = try await admin.client.policy().hash
        var hashes = [first]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<60 {
                group.addTask {
                    _ = try await admin.client.createVM(
                        CreateVMBody(opd: "dinkes", vm: VMBody(name: "vm-\(i)", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd")))
                }
            }
            for days in [5, 6, 7] {
                try await Task.sleep(for: .milliseconds(30))
                try Self.edit(policies + "/approval.yaml", "request_expiry_days: \(days == 5 ? 14 : days - 1)", "request_expiry_days: \(days)")
                hashes.append(try await admin.client.reloadPolicy().hash)
            }
            try await group.waitForAll()
        }
        #expect(Set(hashes).count == 4)
        #expect(try await admin.client.listVMs(opd: "dinkes").count == 60)
        // Walk the log: every entry carries the hash installed by the last policy.install before it.
        var current = first
        var seen = Set<String>()
        // (`lumbungd init` wrote the first entries, before any policy set existed.)
        for entry in try await admin.client.audit(limit: 10_000) where entry.actor != "lumbungd" {
            if entry.action == "policy.install" {
                current = try #require(hashes.first { entry.after?.contains($0) == true })
            }
            #expect(entry.policyHash == current, "entry \(entry.seq) \(entry.action)")
            seen.insert(current)
        }
        #expect(seen.count == 4)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("lumbungd reloads its policy directory on SIGHUP and keeps the running set when the files are invalid")
    func sighup() async throws {
        let policies = try Self.copyOfShipped()
        let state = makeTempDirectory("lumbung-sighup")
        let initialized = try StateDirectory.initialize(directory: state, name: "test-dc", addresses: ["127.0.0.1"])
        let ctl = try ControllerProcess(state: state, port: freePort(), extraArgs: ["--policies", policies])
        defer { ctl.terminate() }
        let caPEM = try String(contentsOfFile: StatePaths(state).caCertificate, encoding: .utf8)
        try await ctl.waitUntilReady(caPEM: caPEM)
        let admin = try await enrollClient(baseURL: ctl.baseURL, caPEM: caPEM, token: initialized.adminToken)
        let before = try await admin.client.policy().hash

        try Self.edit(policies + "/approval.yaml", "request_expiry_days: 14", "request_expiry_days: 0")
        kill(ctl.process.processIdentifier, SIGHUP)
        var shown = try await admin.client.policy()
        for _ in 0..<100 where shown.lastAttemptOK != false {
            try await Task.sleep(for: .milliseconds(50))
            shown = try await admin.client.policy()
        }
        #expect(shown.lastAttemptOK == false)
        #expect(shown.hash == before)
        #expect(shown.lastErrors.contains { $0.hasPrefix("approval.yaml:") })

        try Self.edit(policies + "/approval.yaml", "request_expiry_days: 0", "request_expiry_days: 3")
        kill(ctl.process.processIdentifier, SIGHUP)
        for _ in 0..<100 where shown.hash == before {
            try await Task.sleep(for: .milliseconds(50))
            shown = try await admin.client.policy()
        }
        #expect(shown.hash != before)
        #expect(shown.requestExpiryDays == 3)
        #expect(ctl.process.isRunning)
        await admin.shutdown()
    }
}
