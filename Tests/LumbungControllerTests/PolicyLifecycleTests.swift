import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungStore
import Testing

/// The policy set over the controller's life: volume tags under placement constraints, per-class
/// limits, refusals by an approval rule in the audit log, class changes made while the
/// controller was stopped, and pruning of audit entries past the retention.
@Suite("Policy lifecycle", .serialized)
struct PolicyLifecycleTests {
    static let quota = ResourceVector(vcpu: 100, memory: .gib(400), storage: ["ssd": .tib(20), "hdd": .tib(20)], vms: 50, volumes: 50)

    static func pool(_ id: HostID, labels: [String: String]? = nil, ssd: ByteSize = .tib(4)) -> AddHostBody {
        AddHostBody(id: id, capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": ssd, "hdd": .tib(8)]), labels: labels)
    }

    @Test("UU PDP: a volume tagged data=pribadi goes only to a host labelled certified=pdp; refused with the constraint named when none has room")
    func volumeConstraint() async throws {
        let policies = try PolicyReloadTests.copyOfShipped()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: Self.quota))
        // The plain host is fuller (binpack prefers it); only node-pdp is certified.
        _ = try await admin.client.addHost(Self.pool("node-plain", ssd: .tib(4)))
        _ = try await admin.client.addHost(Self.pool("node-pdp", labels: ["certified": "pdp"], ssd: .tib(2)))
        _ = try await admin.client.addHost(PlacementPolicyControllerTests.bigHost)

        let tagged = try await admin.client.createVolume(
            CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "rekam-medis", size: .gib(500), pool: "ssd", tags: ["data": "pribadi"])))
        #expect(tagged.host == "node-pdp")
        #expect(tagged.spec.tags == ["data": "pribadi"])
        #expect(try await admin.client.volume("rekam-medis", opd: "dinkes").spec.tags == ["data": "pribadi"])
        // An untagged volume too big for node-pdp goes elsewhere; a tagged one is refused, naming the constraint.
        let elsewhere = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "cadangan", size: .gib(1600), pool: "ssd")))
        #expect(elsewhere.host != "node-pdp")
        let refused = try #require(
            await apiError {
                try await admin.client.createVolume(
                    CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "pasien", size: .gib(1600), pool: "ssd", tags: ["data": "pribadi"])))
            })
        #expect(refused.status == 409)
        #expect(refused.detail.message.contains("constraint:data-pribadi-di-host-pdp"))
        #expect(refused.detail.message.contains("certified=pdp"))
        // Bad tags are refused before anything is decided.
        let badTag = await apiError {
            try await admin.client.createVolume(
                CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "bad-tag", size: .gib(1), pool: "ssd", tags: ["data/..": "x"])))
        }
        #expect(badTag?.detail.code == "invalid_label", "\(String(describing: badTag))")

        // A member's request for a tagged volume (over 500GiB: the OPD's approver decides) is
        // explained with the constraint and placed on node-pdp when approved.
        let budi = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin)
        let request = try await budi.client.fileRequest(
            FileRequestBody(reason: "arsip pasien", volume: VolumeBody(name: "lab", size: .gib(600), pool: "ssd", tags: ["data": "pribadi"])))
        #expect(request.state == .pending)
        let explained = try await admin.client.explainRequest(request.id)
        #expect(explained.placement.contains { $0.contains("constraint:data-pribadi-di-host-pdp") })
        #expect(explained.host == "node-pdp")
        #expect(explained.placement.contains { $0 == "filtered out: host node-plain lacks label certified=pdp" }, "\(explained.placement)")
        let approved = try await admin.client.approve(request.id, reason: "ok")
        #expect(approved.state == .fulfilled)
        #expect(try await admin.client.volume("lab", opd: "dinkes").host == "node-pdp")
        await budi.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("host labels set and removed later: constraints and overcommit by label follow at once, audited; what runs stays")
    func hostLabels() async throws {
        let policies = try PolicyReloadTests.copyOfShipped()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: Self.quota))
        _ = try await admin.client.addHost(Self.pool("node-01"))
        let pribadi = VolumeBody(name: "rekam-medis", size: .gib(100), pool: "ssd", tags: ["data": "pribadi"])
        let unplaced = await errorCode { try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: pribadi)) }
        #expect(unplaced == "no_host_fits", "\(String(describing: unplaced))")
        let before = try await admin.client.host("node-01")
        #expect(before.overcommit.cpu == 4.0)

        // Certified for personal data, and an SSD tier (placement.yaml gives tier=ssd cpu 2.0).
        let labelled = try await admin.client.setHostLabels("node-01", SetHostLabelsBody(set: ["certified": "pdp", "tier": "ssd"]))
        #expect(labelled.labels == ["certified": "pdp", "tier": "ssd"])
        #expect(labelled.overcommit.cpu == 2.0)
        #expect(labelled.allocatable.vcpu == (64 - 2) * 2)
        let volume = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: pribadi))
        #expect(volume.host == "node-01")

        // Removing the certification keeps the volume where it is, but no new personal data goes there.
        let removed = try await admin.client.setHostLabels("node-01", SetHostLabelsBody(remove: ["certified"]))
        #expect(removed.labels == ["tier": "ssd"])
        #expect(try await admin.client.volume("rekam-medis", opd: "dinkes").host == "node-01")
        let again = VolumeBody(name: "lab", size: .gib(10), pool: "ssd", tags: ["data": "pribadi"])
        #expect(await errorCode { try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: again)) } == "no_host_fits")
        let audit = try await admin.client.audit(limit: 1000).filter { $0.action == "host.label" }
        #expect(audit.count == 2)

        // Bad input changes nothing.
        #expect(await errorCode { try await admin.client.setHostLabels("node-01", SetHostLabelsBody()) } == "missing_labels")
        let badKey = await errorCode { try await admin.client.setHostLabels("node-01", SetHostLabelsBody(set: ["bad/key": "x"])) }
        #expect(badKey == "invalid_label", "\(String(describing: badKey))")
        #expect(
            await errorCode { try await admin.client.setHostLabels("node-01", SetHostLabelsBody(set: ["a": "b"], remove: ["a"])) } == "invalid_label")
        #expect(await errorCode { try await admin.client.setHostLabels("node-99", SetHostLabelsBody(set: ["a": "b"])) } == "not_found")
        let finalLabels = try await admin.client.host("node-01").labels
        #expect(finalLabels == ["tier": "ssd"], "\(finalLabels)")
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("per-class limits: an OPD of class kecil may use only pool hdd; another class may use ssd")
    func perClassPools() async throws {
        let policies = try PolicyReloadTests.copyOfShipped()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(PlacementPolicyControllerTests.bigHost)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "kecamatan", displayName: "Kecamatan Kota", quotaClass: "kecil"))
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quotaClass: "sedang"))
        let refused = try #require(
            await apiError { try await admin.client.createVolume(CreateVolumeBody(opd: "kecamatan", volume: VolumeBody(name: "arsip", size: .gib(10), pool: "ssd"))) })
        #expect(refused.detail.code == "limit_exceeded")
        #expect(refused.detail.message.contains("limits:per_class.kecil.pools"))
        let hdd = try await admin.client.createVolume(CreateVolumeBody(opd: "kecamatan", volume: VolumeBody(name: "arsip", size: .gib(10), pool: "hdd")))
        #expect(hdd.spec.pool == "hdd")
        let ssd = try await admin.client.createVolume(CreateVolumeBody(opd: "bappeda", volume: VolumeBody(name: "arsip", size: .gib(10), pool: "ssd")))
        #expect(ssd.spec.pool == "ssd")
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("a request refused by an approval rule stores nothing but is audited with the rule, the payload and the policy hash")
    func refusalAudited() async throws {
        let policies = try PolicyReloadTests.copyOfShipped()
        try PolicyReloadTests.edit(
            policies + "/approval.yaml", "  rules:\n",
            """
              rules:
                - name: tolak-volume-di-luar-kuota
                  kind: volume
                  within_quota: false
                  decision: refuse
                  reason: "volumes beyond the quota are not considered; ask for quota first"

            """)
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(PlacementPolicyControllerTests.bigHost)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quotaClass: "sedang"))
        let siti = try await ctl.user("siti", role: .member, opd: "bappeda", admin: admin)
        let before = try await admin.client.audit(limit: 1000).count
        let refused = try #require(
            await apiError {
                try await siti.client.fileRequest(
                    FileRequestBody(reason: "arsip peta", volume: VolumeBody(name: "peta", size: .tib(3), pool: "ssd"), letter: "050/77/Bappeda/2026"))
            })
        #expect(refused.detail.code == "approval_refused")
        #expect(refused.detail.message.contains("tolak-volume-di-luar-kuota"))
        #expect(try await siti.client.listRequests().isEmpty)
        let entries = try await admin.client.audit(limit: 1000)
        #expect(entries.count == before + 1)
        let entry = try #require(entries.last)
        #expect(entry.action == "request.refuse")
        #expect(entry.actor == "user:siti")
        #expect(entry.target == "opd:bappeda")
        #expect(entry.policyHash == (try await admin.client.policy()).hash)
        let afterText = try #require(entry.after)
        let after = try #require(try JSONSerialization.jsonObject(with: Data(afterText.utf8)) as? [String: Any])
        #expect(after["rule"] as? String == "tolak-volume-di-luar-kuota")
        #expect(after["letter"] as? String == "050/77/Bappeda/2026")
        #expect(after["reason"] as? String == "arsip peta")
        #expect((after["refusal"] as? String)?.contains("ask for quota first") == true)
        #expect(try await admin.client.verifyAudit().ok)
        await siti.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("class quotas edited while the controller was stopped apply at the next start, audited; a class below use stops the start")
    func classChangeAtRestart() async throws {
        let policies = try PolicyReloadTests.copyOfShipped()
        var ctl = try await TestController.start { $0.policyDirectory = policies }
        let directory = ctl.directory
        var admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(PlacementPolicyControllerTests.bigHost)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quotaClass: "sedang"))
        _ = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quotaClass: "sedang"))
        // dinkes gets a quota of its own: it no longer follows its class.
        _ = try await admin.client.setQuota("dinkes", SetQuotaBody(quota: ResourceVector(vcpu: 40, memory: .gib(100), storage: ["ssd": .tib(1)], vms: 10, volumes: 10)))
        _ = try await admin.client.createVM(
            CreateVMBody(opd: "bappeda", vm: VMBody(name: "sipd", vcpu: 30, memory: .gib(16), disk: .gib(50), pool: "ssd"), force: true))
        await admin.shutdown()
        await ctl.stop()

        // sedang: 48 → 64 vCPU while stopped.
        try PolicyReloadTests.edit(policies + "/classes.yaml", "vcpu: 48", "vcpu: 64")
        ctl = try await TestController.start(directory: directory) { $0.policyDirectory = policies }
        admin = try await ctl.adminClient()
        #expect(try await admin.client.opd("bappeda").quota.vcpu == 64)
        #expect(try await admin.client.opd("dinkes").quota.vcpu == 40)
        let entries = try await admin.client.audit(limit: 1000)
        let classChange = try #require(entries.last { $0.action == "opd.set-quota.class" })
        #expect(classChange.target == "opd:bappeda")
        let install = try #require(entries.last { $0.action == "policy.install" })
        #expect(install.policyHash == (try await admin.client.policy()).hash)
        #expect(install.seq < classChange.seq)
        // Started again with the same files: nothing more is installed.
        await admin.shutdown()
        await ctl.stop()
        ctl = try await TestController.start(directory: directory) { $0.policyDirectory = policies }
        admin = try await ctl.adminClient()
        #expect(try await admin.client.audit(limit: 1000).filter { $0.action == "policy.install" }.count == entries.filter { $0.action == "policy.install" }.count)
        await admin.shutdown()
        await ctl.stop()

        // sedang: 64 → 16 vCPU while stopped: bappeda uses 30, so the controller refuses to start.
        try PolicyReloadTests.edit(policies + "/classes.yaml", "vcpu: 64", "vcpu: 16")
        do {
            let started = try await TestController.start(directory: directory) { $0.policyDirectory = policies }
            await started.stop()
            Issue.record("the controller started with a class below an OPD's use")
        } catch {
            let text = "\(error)"
            #expect(text.contains("bappeda"), "\(text)")
            #expect(text.contains("class_conflict") || text.contains("below what they use"), "\(text)")
        }
        // The previous files again: it starts, and nothing was changed by the refused start.
        try PolicyReloadTests.edit(policies + "/classes.yaml", "vcpu: 16", "vcpu: 64")
        ctl = try await TestController.start(directory: directory) { $0.policyDirectory = policies }
        admin = try await ctl.adminClient()
        #expect(try await admin.client.opd("bappeda").quota.vcpu == 64)
        #expect(try await admin.client.verifyAudit().ok)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("audit entries older than the retention are pruned by the controller; the chain still verifies and the pruning is audited")
    func auditPruning() async throws {
        let clock = ManualClock()
        let policies = try PolicyReloadTests.copyOfShipped()
        let ctl = try await TestController.start(sweepInterval: .seconds(3600), clock: clock) { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(PlacementPolicyControllerTests.bigHost)
        _ = try await admin.client.createOPD(CreateOPDBody(id: "bappeda", displayName: "Bappeda", quotaClass: "sedang"))
        let old = try await admin.client.audit(limit: 1000)
        #expect(old.count >= 3)

        // Client certificates do not live ten years: from here on the test reads the store and
        // drives the ledger directly.
        await admin.shutdown()
        let store = ctl.services.store
        let ledger = ctl.services.ledger

        // Within the retention nothing goes.
        clock.advance(3649 * 86_400)
        #expect(try await ledger.pruneAudit() == nil)
        _ = try await ledger.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quotaClass: "kecil"), by: .system)

        // Past 3650 days (the shipped audit_days) the old entries go, the newer one stays.
        clock.advance(2 * 86_400)
        let pruned = try #require(try await ledger.pruneAudit())
        #expect(pruned.from == 1)
        #expect(pruned.to == old.last!.seq)
        #expect(pruned.retentionDays == 3650)
        let now = try store.auditEntries(limit: 1000)
        #expect(now.first?.seq == old.last!.seq + 1)
        #expect(now.first?.target == "opd:dinkes")
        let record = try #require(now.last)
        #expect(record.action == "audit.prune")
        #expect(record.policyHash == (await ledger.policy).set.hash)
        #expect(try store.auditBase().seq == old.last!.seq)
        #expect(try store.verifyAudit().ok)
        // The log goes on.
        _ = try await ledger.createOPD(CreateOPDBody(id: "disdukcapil", displayName: "Disdukcapil", quotaClass: "kecil"), by: .system)
        #expect(try store.verifyAudit().ok)
        await ctl.stop()
    }
}
