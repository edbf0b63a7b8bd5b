import Foundation
import LumbungAPI
import LumbungAgent
import LumbungController
import LumbungCore
import LumbungPolicy
import Testing

/// Placement under the policy set: overcommit by label and host reserve, the N+1 headroom rule
/// and its audited override, the UU PDP constraint, limits, the dry run and volume retention.
/// Every test runs a controller on a copy of the shipped `policies/`.
@Suite("Placement policy", .serialized)
struct PlacementPolicyControllerTests {
    /// A controller on a copy of the shipped policies, an admin and OPD `dinkes` with a large quota.
    static func start() async throws -> (ctl: TestController, admin: TestClient, policies: String) {
        let policies = try PolicyReloadTests.copyOfShipped()
        let ctl = try await TestController.start { $0.policyDirectory = policies }
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(
                id: "dinkes", displayName: "Dinas Kesehatan",
                quota: ResourceVector(vcpu: 400, memory: .gib(1000), storage: ["ssd": .tib(40)], vms: 100, volumes: 100)))
        return (ctl, admin, policies)
    }

    static func host(_ id: HostID, labels: [String: String]? = nil, overcommit: Overcommit? = nil) -> AddHostBody {
        AddHostBody(id: id, capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(8)]), overcommit: overcommit, labels: labels)
    }

    /// A host large enough for every shipped quota class (unlabelled, so never re-derived differently).
    static let bigHost = AddHostBody(
        id: "node-big", capacity: HostCapacity(cpus: 256, memory: .tib(2), pools: ["ssd": .tib(40), "hdd": .tib(80)]))

    static func vm(_ name: String, vcpu: Int = 2, memory: ByteSize = .gib(4), tags: [String: String]? = nil) -> VMBody {
        VMBody(name: name, vcpu: vcpu, memory: memory, disk: .gib(20), pool: "ssd", tags: tags)
    }

    @Test("hosts declared without overcommit or reserve follow the policy (by label) and are re-derived on reload; explicit values stay")
    func overcommitByLabel() async throws {
        let (ctl, admin, policies) = try await Self.start()
        _ = try await admin.client.addHost(Self.host("node-ssd", labels: ["tier": "ssd"]))
        _ = try await admin.client.addHost(Self.host("node-plain"))
        _ = try await admin.client.addHost(Self.host("node-own", overcommit: Overcommit(cpu: 1, memory: 1, storage: 1)))
        // The shipped classes must fit in the data center for a reload to be accepted.
        _ = try await admin.client.addHost(Self.bigHost)

        // Reserve 2 CPUs and 8GiB (host_reserve); tier=ssd cpu 2.0, others the default 4.0.
        let ssd = try await admin.client.host("node-ssd")
        #expect(ssd.overcommit.cpu == 2.0)
        #expect(ssd.reserved.cpus == 2 && ssd.reserved.memory == .gib(8))
        #expect(ssd.allocatable.vcpu == (16 - 2) * 2)
        #expect(ssd.allocatable.memory == .gib(56))
        #expect(try await admin.client.host("node-plain").allocatable.vcpu == (16 - 2) * 4)
        let own = try await admin.client.host("node-own")
        #expect(own.overcommit.cpu == 1.0)  // its own ratio
        #expect(own.reserved.cpus == 2)  // no reserve given: the policy's
        #expect(own.allocatable.vcpu == 16 - 2)

        // A new set: tier=ssd hosts get cpu 3.0. Only the host following the policy changes.
        try PolicyReloadTests.edit(policies + "/placement.yaml", "cpu: 2.0", "cpu: 3.0")
        _ = try await admin.client.reloadPolicy()
        #expect(try await admin.client.host("node-ssd").allocatable.vcpu == (16 - 2) * 3)
        #expect(try await admin.client.host("node-plain").allocatable.vcpu == (16 - 2) * 4)
        #expect(try await admin.client.host("node-own").overcommit.cpu == 1.0)
        let derived = try await admin.client.audit().filter { $0.action == "host.policy-derived" }
        #expect(derived.map(\.target) == ["host:node-ssd"])
        #expect(try await admin.client.capacity().hosts.first { $0.id == "node-ssd" }?.allocatable.vcpu == 42)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("N+1: an allocation that leaves the data center unable to absorb the loss of a host is refused with the numbers; an admin forces it, audited")
    func headroom() async throws {
        let (ctl, admin, _) = try await Self.start()
        _ = try await admin.client.addHost(Self.host("node-a"))
        _ = try await admin.client.addHost(Self.host("node-b"))
        // Each host: 56GiB allocatable memory. 30GiB on one: the other can still take it.
        let first = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("db-one", memory: .gib(30))))
        // Another 30GiB does not fit next to it, so goes to the other host: then neither could take the other's 30GiB.
        let before = try await admin.client.audit().count
        let refused = try #require(await apiError { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("db-two", memory: .gib(30)))) })
        #expect(refused.status == 409)
        #expect(refused.detail.code == "headroom")
        #expect(refused.detail.message.contains("placement:headroom"))
        #expect(refused.detail.message.contains("node-a (30GiB of memory allocated there, 26GiB free on the other hosts): 4GiB short"))
        #expect(refused.detail.message.contains("26GiB free on the other hosts"))
        #expect(refused.detail.message.contains("4GiB short"))
        #expect(refused.detail.message.contains("--force"))
        #expect(try await admin.client.listVMs(opd: "dinkes").count == 1)
        #expect(try await admin.client.audit().count == before)

        // Forced by an admin: allocated, and the override is audited naming the rule.
        let forced = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("db-two", memory: .gib(30)), force: true))
        #expect(forced.host != first.host)
        let audit = try await admin.client.audit()
        let override = try #require(audit.last { $0.action == "policy.override" })
        #expect(override.target == "vm:\(forced.id)")
        #expect(override.actor == "user:admin")
        #expect(override.after?.contains("placement:headroom") == true)
        #expect(override.after?.contains("short") == true)
        #expect(override.policyHash == (try await admin.client.policy().hash))
        #expect(audit.contains { $0.action == "vm.allocate" && $0.target == "vm:\(forced.id)" })
        #expect(try await admin.client.verifyAudit().ok)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("UU PDP: a VM tagged data=pribadi goes only to a certified=pdp host, is refused with a sentence when none qualifies, and keeps its tags")
    func pdpConstraint() async throws {
        let (ctl, admin, policies) = try await Self.start()
        _ = try await admin.client.addHost(Self.host("node-a"))
        let none = try #require(
            await apiError { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("rekam-medis", tags: ["data": "pribadi"]))) })
        #expect(none.status == 409)
        #expect(none.detail.message.contains("constraint:data-pribadi-di-host-pdp"))
        #expect(none.detail.message.contains("the VM is tagged data=pribadi, so only hosts labelled certified=pdp"))
        #expect(none.detail.message.contains("certified=pdp"))
        #expect(try await admin.client.listVMs(opd: "dinkes").isEmpty)

        _ = try await admin.client.addHost(Self.host("node-pdp", labels: ["certified": "pdp"]))
        _ = try await admin.client.addHost(Self.host("node-c"))
        for i in 0..<3 {
            let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("rekam-medis-\(i)", tags: ["data": "pribadi"])))
            #expect(vm.host == "node-pdp")
            #expect(vm.spec.tags == ["data": "pribadi"])
            #expect(vm.spec.requiredLabels.isEmpty)  // the constraint is applied at placement, not stored
        }
        // Untagged VMs are free to go elsewhere (binpack fills node-pdp too, so only check they are placed).
        _ = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("web-portal")))

        // Tags survive a restart (stored in the v4 column).
        let dir = ctl.directory
        await admin.shutdown()
        await ctl.stop()
        let again = try await TestController.start(directory: dir) { $0.policyDirectory = policies }
        let admin2 = try await again.adminClient()
        let tagged = try await admin2.client.listVMs(opd: "dinkes").filter { $0.spec.tags["data"] == "pribadi" }
        #expect(tagged.count == 3)
        #expect(tagged.allSatisfy { $0.host == "node-pdp" })
        await admin2.shutdown()
        await again.stop()
    }

    @Test("limits: every broken limit is named on VM and volume create and resize; nothing changes")
    func limits() async throws {
        let (ctl, admin, _) = try await Self.start()
        _ = try await admin.client.addHost(Self.host("node-a"))
        _ = try await admin.client.addHost(Self.host("node-b"))
        let before = try await admin.client.audit().count
        let big = VMBody(name: "ab", vcpu: 40, memory: .gib(200), disk: .tib(3), pool: "ssd", image: "windows-11")
        let vm = try #require(await apiError { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: big)) })
        #expect(vm.status == 409)
        #expect(vm.detail.code == "limit_exceeded")
        for sentence in [
            "limits:vm.max_vcpu: the VM asks for 40 vCPU; the largest VM allowed has 32 vCPU",
            "limits:vm.max_memory: the VM asks for 200GiB of memory; the largest VM allowed has 128GiB",
            "limits:vm.max_disk", "limits:images: image windows-11 is not allowed; allowed: debian-12",
            "limits:name_pattern: VM name 'ab' does not match",
        ] {
            #expect(vm.detail.message.contains(sentence), "\(sentence) in \(vm.detail.message)")
        }
        let volume = try #require(
            await apiError { try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .tib(5), pool: "ssd"))) })
        #expect(volume.detail.code == "limit_exceeded")
        #expect(volume.detail.message.contains("limits:volume.max_size: the volume asks for 5TiB; the largest volume allowed is 4TiB"))
        #expect(try await admin.client.audit().count == before)

        // Resizes past the limits.
        let ok = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: Self.vm("app-server")))
        let grow = try #require(await apiError { try await admin.client.resizeVM(ok.id.rawValue, ResizeVMBody(vcpu: 33)) })
        #expect(grow.detail.code == "limit_exceeded")
        #expect(grow.detail.message.contains("limits:vm.max_vcpu"))
        let v = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .gib(100), pool: "ssd")))
        let growVolume = try #require(await apiError { try await admin.client.resizeVolume(v.id.rawValue, ResizeVolumeBody(size: .tib(5))) })
        #expect(growVolume.detail.code == "limit_exceeded")
        #expect(try await admin.client.vm(ok.id.rawValue).spec.vcpu == 2)
        #expect(try await admin.client.listVolumes(opd: "dinkes").first?.spec.size == .gib(100))
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("dry run: says which rules applied, which hosts were filtered out and why, the chosen host and its score; changes nothing")
    func dryRun() async throws {
        let (ctl, admin, _) = try await Self.start()
        _ = try await admin.client.addHost(Self.host("node-a", labels: ["tier": "ssd"]))
        _ = try await admin.client.addHost(Self.host("node-pdp", labels: ["certified": "pdp"]))
        _ = try await admin.client.addHost(Self.host("node-z"))
        let member = try await ctl.user("sari", role: .member, opd: "dinkes", admin: admin)
        let before = try await admin.client.audit().count

        // A member may omit the OPD: their own.
        let answer = try await member.client.placeVM(PlaceVMBody(opd: nil, vm: Self.vm("dry-run", vcpu: 4, memory: .gib(8), tags: ["data": "pribadi"])))
        #expect(answer.placeable)
        #expect(answer.host == "node-pdp")
        #expect(answer.strategy == "binpack")
        let score = try #require(answer.score)
        #expect(score > 0 && score < 1)
        #expect(Set(answer.excluded.map(\.host)) == ["node-a", "node-z"])
        let text = answer.sentences.joined(separator: "\n")
        #expect(text.contains("constraint:data-pribadi-di-host-pdp: the VM is tagged data=pribadi, so only hosts labelled certified=pdp"))
        #expect(text.contains("filtered out: host node-a"))
        #expect(text.contains("certified=pdp"))
        #expect(text.contains("limits: the VM keeps every limit"))
        #expect(text.contains("overcommit:effective: host node-pdp: cpu 4.0"))
        #expect(text.contains("placement:headroom"))
        #expect(text.contains("chosen host node-pdp with score \(String(format: "%.3f", score))"))

        // On a tier=ssd host the label's ratio is named.
        let plain = try await admin.client.placeVM(PlaceVMBody(opd: "dinkes", vm: Self.vm("dry-run", vcpu: 4, memory: .gib(8))))
        #expect(plain.placeable)
        if plain.host == "node-a" { #expect(plain.sentences.contains { $0.contains("overcommit:tier=ssd") }) }

        // A refused one is still explained.
        let tooBig = try await admin.client.placeVM(PlaceVMBody(opd: "dinkes", vm: Self.vm("dry-run", vcpu: 64)))
        #expect(!tooBig.placeable)
        #expect(tooBig.sentences.contains { $0.contains("limits:vm.max_vcpu") })

        #expect(try await admin.client.listVMs(opd: "dinkes").isEmpty)
        #expect(try await admin.client.audit().count == before)
        await member.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("retention: the policy's volume retention is sent to agents in the desired state, and follows a reload")
    func retention() async throws {
        let (ctl, admin, policies) = try await Self.start()
        // The shipped classes must fit in the data center for a reload to be accepted.
        _ = try await admin.client.addHost(Self.bigHost)
        let agent = try await ctl.agent("node-a", admin: admin)
        let desired = try await agent.client.desired(host: "node-a", after: nil)
        let week: Int64 = 7 * 86_400
        #expect((desired.volumeRetentionSeconds ?? -1) == week)
        try PolicyReloadTests.edit(policies + "/retention.yaml", "volume_days: 7", "volume_days: 3")
        _ = try await admin.client.reloadPolicy()
        let threeDays: Int64 = 3 * 86_400
        #expect((try await agent.client.desired(host: "node-a", after: nil).volumeRetentionSeconds ?? -1) == threeDays)
        await agent.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("retention: an agent purges a deleted volume after the policy's retention, not its own default")
    func agentUsesPolicyRetention() async throws {
        let (ctl, admin, policies) = try await Self.start()
        try PolicyReloadTests.edit(policies + "/retention.yaml", "volume_days: 7", "volume_days: 0")
        _ = try await admin.client.reloadPolicy()
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)])))
        let token = try await admin.client.hostToken("node-01")
        let stateDir = makeTempDirectory("lumbung-agent")
        let state = AgentStateDirectory(stateDir)
        _ = try await Enrollment.join(controller: ctl.baseURL, token: token.joinToken, state: state)
        let driver = SimulatedHostDriver(capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)]))
        // The agent's own setting (7 days) would keep the data; the policy says 0 days.
        let agent = try AgentEndToEndTests.makeAgent(ctl.baseURL, host: "node-01", state: state, driver: driver, heartbeat: .milliseconds(200))
        let running = Task { await agent.run() }
        defer { running.cancel() }
        let volume = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .gib(100), pool: "ssd")))
        try await AgentEndToEndTests.eventually("volume ready") { try await admin.client.volume(volume.id.rawValue).state == .ready }
        #expect(try await driver.snapshot().observation.volumes[volume.id] != nil)
        _ = try await admin.client.deleteVolume(volume.id.rawValue)
        try await AgentEndToEndTests.eventually("volume purged by the agent") { try await driver.snapshot().observation.volumes[volume.id] == nil }
        #expect(agent.desired?.volumeRetentionSeconds == 0)
        running.cancel()
        await admin.shutdown()
        await ctl.stop()
    }
}
