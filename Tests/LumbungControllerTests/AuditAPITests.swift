import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import Testing

@Suite("Audit log through the API")
struct AuditAPITests {
    func sqlite(_ db: String, _ sql: String) async throws {
        let result = try await runCommand("/usr/bin/sqlite3", [db, sql])
        if result.code != 0 { throw ProcessTestError("sqlite3 failed: \(result.err)") }
    }

    @Test("every change is in the log; verify detects a modified row and a deleted row")
    func tamper() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") else {
            Issue.record("sqlite3 is missing: .ci/run installs it (apt-get install sqlite3)")
            return
        }
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 8, storage: ["ssd": .tib(1)], vms: 5)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 8, memory: .gib(16), pools: ["ssd": .tib(1)])))
        _ = try await admin.client.setQuota("dinkes", SetQuotaBody(quota: ResourceVector(vcpu: 16, storage: ["ssd": .tib(1)], vms: 5)))
        let entries = try await admin.client.audit(limit: 1000)
        #expect(entries.contains { $0.action == "opd.create" && $0.target == "opd:dinkes" })
        let quotaEntry = try #require(entries.first { $0.action == "opd.set-quota" })
        #expect(quotaEntry.before?.contains("\"vcpu\":8") == true)
        #expect(quotaEntry.after?.contains("\"vcpu\":16") == true)
        #expect(quotaEntry.actor == "user:admin")
        #expect(try await admin.client.verifyAudit().ok)

        let db = StatePaths(ctl.directory).database
        // The table refuses edits through triggers; a tamperer with the file drops them first.
        try await sqlite(db, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        try await sqlite(db, "UPDATE audit SET after = replace(after, '16', '99') WHERE seq = \(quotaEntry.seq)")
        let modified = try await admin.client.verifyAudit()
        #expect(!modified.ok)
        #expect(modified.firstBadSeq == quotaEntry.seq)
        await admin.shutdown()
        await ctl.stop()

        // A fresh controller whose log loses a middle row.
        let ctl2 = try await TestController.start()
        let admin2 = try await ctl2.adminClient()
        for i in 1...4 {
            _ = try await admin2.client.createOPD(CreateOPDBody(id: OPDID(rawValue: "opd-\(i)"), displayName: "OPD \(i)", quota: ResourceVector(vcpu: i)))
        }
        let all = try await admin2.client.audit(limit: 1000)
        let middle = all[all.count / 2].seq
        try await sqlite(StatePaths(ctl2.directory).database, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        try await sqlite(StatePaths(ctl2.directory).database, "DELETE FROM audit WHERE seq = \(middle)")
        let deleted = try await admin2.client.verifyAudit()
        #expect(!deleted.ok)
        #expect(deleted.problem != nil)
        await admin2.shutdown()
        await ctl2.stop()
    }
}
