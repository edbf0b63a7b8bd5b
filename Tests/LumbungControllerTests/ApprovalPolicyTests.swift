import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungPolicy
import Testing

/// Approval rules at filing time (zero, one and two levels, refusal, expiry), letter numbers,
/// quota classes (create, move, change on reload and a refused change) and `request explain`.
@Suite("Approval rules and quota classes", .serialized)
struct ApprovalPolicyTests {
    /// The shipped policies with a refusing rule first, requests expiring after 3 days, no N+1
    /// rule and VMs up to 64 vCPU.
    static func testPolicies() throws -> String {
        let dir = try PolicyReloadTests.copyOfShipped()
        try PolicyReloadTests.edit(dir + "/approval.yaml", "request_expiry_days: 14", "request_expiry_days: 3")
        // One host in these tests: the N+1 headroom rule (tested in PlacementPolicyControllerTests)
        // would refuse every VM, and the class test places a VM larger than the shipped limit.
        try PolicyReloadTests.edit(dir + "/placement.yaml", "n_plus_one: true", "n_plus_one: false")
        try PolicyReloadTests.edit(dir + "/limits.yaml", "max_vcpu: 32 ", "max_vcpu: 64 ")
        try PolicyReloadTests.edit(
            dir + "/approval.yaml", "  rules:\n",
            """
              rules:
                - name: kecil-tanpa-tambah-kuota
                  kind: quota
                  opd_class: kecil
                  decision: refuse
                  reason: "OPDs of class kecil move to a larger class instead of raising their quota"

            """)
        return dir
    }

    static func vm(_ name: String, vcpu: Int, memoryGiB: Int64, diskGiB: Int64 = 20) -> VMBody {
        VMBody(name: name, vcpu: vcpu, memory: .gib(memoryGiB), disk: .gib(diskGiB), pool: "ssd")
    }

    @Test("approval at zero, one and two levels; admin override; refusal by rule; expiry after the policy's days; letter; explain")
    func levels() async throws {
        let clock = ManualClock()
        let policies = try Self.testPolicies()
        let ctl = try await TestController.start(sweepInterval: .seconds(3600), clock: clock) { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 128, memory: .gib(512), pools: ["ssd": .tib(8), "hdd": .tib(40)])))
        _ = try await admin.client.addHost(AddHostBody(id: "node-02", capacity: HostCapacity(cpus: 128, memory: .gib(512), pools: ["ssd": .tib(8), "hdd": .tib(40)])))
        _ = try await admin.client.cordon("node-02")
        let dinkes = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quotaClass: "besar"))
        #expect(dinkes.quotaClass == "besar" && dinkes.quota.vcpu == 128)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quotaClass: "kecil"))
        let budi = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin)
        let ani = try await ctl.user("ani", role: .approver, opd: "dinkes", admin: admin)
        let sari = try await ctl.user("sari", role: .member, opd: "bappeda", admin: admin)

        // Zero levels: a small VM within quota is approved and placed at once, the rule named.
        let small = try await budi.client.fileRequest(
            FileRequestBody(reason: "sikda web", vm: Self.vm("sikda-web", vcpu: 2, memoryGiB: 4), letter: "800/123/Diskominfo/2026"))
        #expect(small.state == .fulfilled)
        #expect(small.rule == "vm-kecil-otomatis")
        #expect(small.levels == [])
        #expect(small.letter == "800/123/Diskominfo/2026")
        let placed = try await admin.client.vm(try #require(small.result))
        #expect(placed.state == .scheduled && placed.host == "node-01")
        #expect(try await budi.client.request(small.id).letter == "800/123/Diskominfo/2026")
        let auto = try #require(try await admin.client.audit().last { $0.action == "request.approve.automatic" })
        #expect(auto.after?.contains("vm-kecil-otomatis") == true)
        let hash = try await admin.client.policy().hash
        #expect(auto.policyHash == hash)
        #expect(await errorCode { try await budi.client.fileRequest(FileRequestBody(reason: "x", vm: Self.vm("bad-letter", vcpu: 2, memoryGiB: 4), letter: "800;DROP")) } == "invalid_letter")

        // One level: the OPD's approver decides.
        let medium = try await budi.client.fileRequest(FileRequestBody(reason: "database", vm: Self.vm("sikda-db", vcpu: 8, memoryGiB: 16)))
        #expect(medium.state == .pending && medium.rule == "vm-volume-dalam-kuota" && medium.levels == [.approver])
        #expect(await errorCode { try await budi.client.approve(medium.id) } == "forbidden")
        let mediumDone = try await ani.client.approve(medium.id, reason: "ok")
        #expect(mediumDone.state == .fulfilled && mediumDone.result != nil)
        #expect(mediumDone.approvals?.map(\.level) == [.approver] && mediumDone.approvals?.first?.by == "user:ani")

        // Two levels: the approver first, then an admin; an admin before the approver is refused.
        let big = try await budi.client.fileRequest(FileRequestBody(reason: "analytics", vm: Self.vm("analytics", vcpu: 24, memoryGiB: 96)))
        #expect(big.state == .pending && big.rule == "vm-volume-besar" && big.levels == [.approver, .admin])
        let early = try #require(await apiError { try await admin.client.approve(big.id) })
        #expect(early.status == 409 && early.detail.code == "approval_order")
        #expect(early.detail.message.contains("--override"))
        let half = try await ani.client.approve(big.id)
        #expect(half.state == .pending && half.result == nil)
        #expect(half.approvals?.map(\.level) == [.approver] && half.remainingLevels == [.admin])
        #expect(await errorCode { try await ani.client.approve(big.id) } == "forbidden")
        #expect(await errorCode { try await ani.client.reject(big.id, reason: "no") } == "forbidden")
        let bigDone = try await admin.client.approve(big.id)
        #expect(bigDone.state == .fulfilled && bigDone.approvals?.map(\.level) == [.approver, .admin])
        #expect(bigDone.approvals?.last?.by == "user:admin")

        // An admin may decide both levels with override; audited as such.
        let urgent = try await budi.client.fileRequest(FileRequestBody(reason: "outbreak dashboard", vm: Self.vm("dashboard", vcpu: 24, memoryGiB: 96)))
        let overridden = try await admin.client.approve(urgent.id, reason: "emergency", override: true)
        #expect(overridden.state == .fulfilled)
        #expect(overridden.approvals?.map(\.override) == [true, nil])
        #expect(try await admin.client.audit().last { $0.action == "request.approve.override" }?.target == "request:\(urgent.id)")

        // Quota requests: only an admin (rule kuota-oleh-admin).
        let more = try await budi.client.fileRequest(FileRequestBody(reason: "growth", quota: ResourceVector(vcpu: 8)))
        #expect(more.rule == "kuota-oleh-admin" && more.levels == [.admin])
        #expect(await errorCode { try await ani.client.approve(more.id) } == "forbidden")

        // Refused by rule: nothing stored.
        let refused = try #require(await apiError { try await sari.client.fileRequest(FileRequestBody(reason: "more", quota: ResourceVector(vcpu: 4))) })
        #expect(refused.status == 409 && refused.detail.code == "approval_refused")
        #expect(refused.detail.message.contains("kecil-tanpa-tambah-kuota") && refused.detail.message.contains("larger class"))
        #expect(try await admin.client.listRequests(opd: "bappeda").isEmpty)

        // Explain a pending two-level request: rules tried, quota numbers, hosts filtered out, the chosen host's score.
        let pending = try await budi.client.fileRequest(FileRequestBody(reason: "reports", vm: Self.vm("reports", vcpu: 20, memoryGiB: 64)))
        let explained = try await budi.client.explainRequest(pending.id)
        #expect(explained.rule == "vm-volume-besar" && explained.decidingRule == "vm-volume-besar")
        #expect(explained.approval.first?.rule == "approval:kecil-tanpa-tambah-kuota")
        #expect(explained.approval.contains { $0.rule == "approval:vm-kecil-otomatis" && $0.sentence.contains("20 vCPU") })
        #expect(explained.approval.last?.sentence.contains("applies") == true)
        #expect(explained.quota.contains { $0.contains("20 vCPU") && $0.contains("dinkes (class besar) has") })
        #expect(explained.placement.contains { $0.contains("node-02") && $0.contains("cordoned") })
        #expect(explained.host == "node-01" && explained.score != nil)
        #expect(explained.placement.last?.contains("host node-01 would be chosen") == true)
        #expect(await errorCode { try await sari.client.explainRequest(pending.id) } == "not_found")

        // Expiry after the policy's 3 days, by the ledger sweep.
        #expect(pending.expiresAt.timeIntervalSince(pending.createdAt) == 3 * 86_400)
        clock.advance(3 * 86_400 + 1)
        let swept = try await ctl.services.ledger.sweep()
        #expect(Set(swept.expired) == [more.id, pending.id])
        #expect(try await budi.client.request(pending.id).state == .expired)
        #expect(try await admin.client.verifyAudit().ok)
        for c in [admin, budi, ani, sari] { await c.shutdown() }
        await ctl.stop()
    }

    @Test("quota classes: create with a class, unknown class, move to a class, a class change on reload applies or is refused with the OPDs")
    func classes() async throws {
        let policies = try Self.testPolicies()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 256, memory: .tib(2), pools: ["ssd": .tib(16), "hdd": .tib(64)])))
        let sedang = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quotaClass: "sedang"))
        #expect(sedang.quotaClass == "sedang" && sedang.quota.vcpu == 48 && sedang.quota.memory == .gib(128) && sedang.quota.vms == 24)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quotaClass: "besar"))

        let unknown = try #require(await apiError { try await admin.client.createOPD(CreateOPDBody(id: "dishub", displayName: "Dishub", quotaClass: "raksasa")) })
        #expect(unknown.status == 400 && unknown.detail.code == "unknown_class")
        #expect(unknown.detail.message.contains("raksasa") && unknown.detail.message.contains("besar, kecil, sedang"))
        #expect(await errorCode { try await admin.client.createOPD(CreateOPDBody(id: "dishub", displayName: "Dishub", quota: .zero, quotaClass: "kecil")) } == "invalid_quota")
        #expect(await errorCode { try await admin.client.createOPD(CreateOPDBody(id: "dishub", displayName: "Dishub")) } == "missing_quota")
        #expect(await errorCode { try await admin.client.opd("dishub") } == "not_found")

        // Move to another class.
        let moved = try await admin.client.setQuota("dinkes", SetQuotaBody(quotaClass: "besar"))
        #expect(moved.quotaClass == "besar" && moved.quota.vcpu == 128)
        #expect(try await admin.client.audit().last?.action == "opd.set-class")
        #expect(await errorCode { try await admin.client.setQuota("dinkes", SetQuotaBody(quotaClass: "raksasa")) } == "unknown_class")
        // An OPD given amounts leaves its class and keeps its quota on reload.
        let own = try await admin.client.setQuota("bappeda", SetQuotaBody(quota: ResourceVector(vcpu: 10, memory: .gib(10), storage: ["ssd": .tib(1)], vms: 4)))
        #expect(own.quotaClass == nil && own.quota.vcpu == 10)

        // A class change on reload changes every OPD of the class, audited.
        _ = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("big", vcpu: 60, memoryGiB: 64)))
        try PolicyReloadTests.edit(policies + "/classes.yaml", "vcpu: 128", "vcpu: 100")
        let reloaded = try await admin.client.reloadPolicy()
        #expect(reloaded.lastAttemptOK == true)
        #expect(try await admin.client.opd("dinkes").quota.vcpu == 100)
        #expect(try await admin.client.opd("bappeda").quota.vcpu == 10)
        let change = try #require(try await admin.client.audit().last { $0.action == "opd.set-quota.class" })
        #expect(change.target == "opd:dinkes" && change.policyHash == reloaded.hash)

        // A change that would put an OPD below its use is refused with the OPD and numbers; nothing changes.
        try PolicyReloadTests.edit(policies + "/classes.yaml", "vcpu: 100", "vcpu: 40")
        let conflict = try #require(await apiError { try await admin.client.reloadPolicy() })
        #expect(conflict.status == 422)
        #expect(conflict.detail.message.contains("dinkes (class besar)"))
        #expect(conflict.detail.message.contains("40") && conflict.detail.message.contains("60"))
        #expect(try await admin.client.policy().hash == reloaded.hash)
        #expect(try await admin.client.opd("dinkes").quota.vcpu == 100)
        for c in [admin] { await c.shutdown() }
        await ctl.stop()
    }
}
