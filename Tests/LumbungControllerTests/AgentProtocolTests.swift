import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import Testing

@Suite("Agent protocol: long-poll, reports, unreachable hosts")
struct AgentProtocolTests {
    @Test("long-poll returns at once on a new version, waits otherwise, and wakes on a change")
    func longPoll() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let agent = try await ctl.agent("node-01", admin: admin)
        let first = try await agent.client.desired(host: "node-01", after: nil)
        #expect(first.vms.isEmpty)
        // Same version: waits for the timeout (1 s) and returns the same version.
        let started = ContinuousClock.now
        let same = try await agent.client.desired(host: "node-01", after: first.version, timeout: .seconds(1))
        #expect(same.version == first.version)
        #expect(ContinuousClock.now - started >= .milliseconds(900))
        // A change wakes a waiting long-poll well before its timeout.
        async let woken = agent.client.desired(host: "node-01", after: first.version, timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(200))
        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(4), disk: .gib(20), pool: "ssd")))
        let changed = try await woken
        #expect(changed.version > first.version)
        #expect(changed.vms.map(\.id) == [vm.id])
        #expect(changed.vms.first?.power == .running)
        await agent.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("a controller shutting down answers a waiting long-poll at once with 503 shutting_down, and stops without waiting for its timeout")
    func longPollAtShutdown() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        let agent = try await ctl.agent("node-01", admin: admin)
        let first = try await agent.client.desired(host: "node-01", after: nil)
        let clock = ContinuousClock()
        let started = clock.now
        let waiting = Task { await apiError { try await agent.client.desired(host: "node-01", after: first.version, timeout: .seconds(60)) } }
        try await Task.sleep(for: .milliseconds(300))
        await ctl.stop()
        let stopped = clock.now - started
        let answer = await waiting.value
        // Answered (not cut off): the agent hears the controller is going away; the 60 s poll
        // did not hold the shutdown.
        #expect(answer?.status == 503)
        #expect(answer?.detail.code == "shutting_down")
        #expect(stopped < .seconds(30), "stopping took \(stopped)")
        await agent.shutdown()
        await admin.shutdown()
    }

    @Test("reports move VMs to running, facts win over the declaration, deletion completes on 'absent'")
    func reports() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let agent = try await ctl.agent("node-01", cpus: 16, admin: admin)
        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(4), disk: .gib(20), pool: "ssd")))
        let facts = HostCapacity(cpus: 8, memory: .gib(32), pools: ["ssd": .tib(1)])
        _ = try await agent.client.report(
            AgentReport(host: "node-01", driver: "simulated", facts: facts, vms: [VMReport(id: vm.id, state: "running", cpuSeconds: 1.5, memoryUsed: .mib(512))]))
        let shown = try await admin.client.vm(vm.id.rawValue)
        #expect(shown.state == .running)
        #expect(shown.observed?.memoryUsed == .mib(512))
        let host = try await admin.client.host("node-01")
        #expect(host.state == .ready)
        #expect(host.driver == "simulated")
        #expect(host.reported == facts)
        #expect(host.allocatable.vcpu == 32)  // 8 reported CPUs × 4.0, not 16 × 4.0
        #expect(host.differences.contains { $0.contains("16") && $0.contains("8") })
        // Delete: host capacity stays held until the agent reports the VM absent.
        _ = try await admin.client.deleteVM(vm.id.rawValue)
        #expect(try await admin.client.host("node-01").allocated.vcpu == 2)
        #expect(try await admin.client.quota(opd: "dinkes").usage.vcpu == 0)
        let desired = try await agent.client.desired(host: "node-01", after: nil)
        #expect(desired.vms.isEmpty)
        _ = try await agent.client.report(AgentReport(host: "node-01", driver: "simulated", vms: [VMReport(id: vm.id, state: "absent")]))
        #expect(try await admin.client.host("node-01").allocated.vcpu == 0)
        #expect(await errorCode { try await admin.client.vm(vm.id.rawValue) } == "not_found")
        // Reporting the same again returns nothing twice.
        _ = try await agent.client.report(AgentReport(host: "node-01", driver: "simulated", vms: [VMReport(id: vm.id, state: "absent")]))
        #expect(try await admin.client.host("node-01").allocated.vcpu == 0)
        await agent.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("the image catalogue is what agents report: unknown images are refused, VMs go only where their image is")
    func imageCatalogue() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let one = try await ctl.agent("node-01", admin: admin)
        let two = try await ctl.agent("node-02", admin: admin)
        func vm(_ name: String, image: String) -> CreateVMBody {
            CreateVMBody(opd: "dinkes", vm: VMBody(name: name, vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd", image: image))
        }
        // Before any agent reported images, no image is known.
        #expect(await errorCode { try await admin.client.createVM(vm("early", image: "debian-12")) } == "unknown_image")
        _ = try await one.client.report(AgentReport(host: "node-01", driver: "simulated", images: ["debian-12"]))
        _ = try await two.client.report(AgentReport(host: "node-02", driver: "simulated", images: ["debian-12", "ubuntu-24.04"]))
        #expect(try await admin.client.host("node-02").images == ["debian-12", "ubuntu-24.04"])
        let before = try await admin.client.quota(opd: "dinkes").usage
        let refused = try #require(await apiError { try await admin.client.createVM(vm("old", image: "centos-7")) })
        #expect(refused.detail.code == "unknown_image")
        #expect(refused.detail.message.contains("centos-7") && refused.detail.message.contains("debian-12, ubuntu-24.04"))
        #expect(try await admin.client.quota(opd: "dinkes").usage == before)  // nothing charged
        for i in 0..<3 {
            let placed = try await admin.client.createVM(vm("web-\(i)", image: "ubuntu-24.04"))
            #expect(placed.host == "node-02")
        }
        // A report with a path-escaping image name is refused and changes nothing.
        #expect(await errorCode {
            _ = try await one.client.report(AgentReport(host: "node-01", driver: "simulated", images: ["../../etc"]))
        } == "invalid_name")
        #expect(try await admin.client.host("node-01").images == ["debian-12"])
        // The host drops the image: it no longer qualifies.
        _ = try await two.client.report(AgentReport(host: "node-02", driver: "simulated", images: ["debian-12"]))
        #expect(await errorCode { try await admin.client.createVM(vm("web-9", image: "ubuntu-24.04")) } == "unknown_image")
        await one.shutdown()
        await two.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("resizing a VM charges the growth to the quota, checks its host, refuses a smaller disk, and changes the host's desired state")
    func resizeVM() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 12, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let agent = try await ctl.agent("node-01", cpus: 4, admin: admin)  // 4 CPUs × 4.0 = 16 vCPU allocatable
        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(4), disk: .gib(20), pool: "ssd")))
        let before = try await agent.client.desired(host: "node-01", after: nil)

        let grown = try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody(vcpu: 8, disk: .gib(40)))
        #expect(grown.spec.vcpu == 8 && grown.spec.disk == .gib(40) && grown.spec.memory == .gib(4))
        let usage = try await admin.client.quota(opd: "dinkes").usage
        #expect(usage.vcpu == 8 && usage.storage["ssd"] == .gib(40))
        #expect(try await admin.client.host("node-01").allocated.vcpu == 8)
        let after = try await agent.client.desired(host: "node-01", after: before.version, timeout: .seconds(5))
        #expect(after.version > before.version)
        #expect(after.vms.first { $0.id == vm.id }?.vcpu == 8)
        #expect(after.vms.first { $0.id == vm.id }?.disk == .gib(40))

        // Quota: 12 vCPU, 8 used → growing to 16 asks 8 more, 4 left.
        let quota = try #require(await apiError { try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody(vcpu: 16)) })
        #expect(quota.detail.code == "quota_exceeded")
        #expect(quota.detail.message.contains("4") && quota.detail.message.contains("8"))
        // Shrinking the disk is refused; vCPU may go down and is returned to the quota.
        #expect(await errorCode { try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody(disk: .gib(10))) } == "invalid_amount")
        #expect(await errorCode { try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody()) } == "invalid_amount")
        #expect(await errorCode { try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody(vcpu: 0)) } == "invalid_amount")
        let shrunk = try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody(vcpu: 1))
        #expect(shrunk.spec.vcpu == 1)
        #expect(try await admin.client.quota(opd: "dinkes").usage.vcpu == 1)
        // Host: raise the quota so only the host (16 vCPU) limits.
        _ = try await admin.client.setQuota("dinkes", SetQuotaBody(quota: ResourceVector(vcpu: 64, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let host = try #require(await apiError { try await admin.client.resizeVM("db", opd: "dinkes", ResizeVMBody(vcpu: 20)) })
        #expect(host.detail.code == "no_host_fits")
        #expect(host.detail.message.contains("node-01"))
        #expect(try await admin.client.vm("db", opd: "dinkes").spec.vcpu == 1)
        await agent.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("a silent host becomes unreachable, is excluded from placement, and comes back on its next report")
    func unreachable() async throws {
        let clock = ManualClock()
        // The sweeper runs often in real time; the controller's notion of time moves only by hand.
        let ctl = try await TestController.start(heartbeatTimeout: .seconds(40), sweepInterval: .milliseconds(50), clock: clock)
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let agent = try await ctl.agent("node-01", admin: admin)
        _ = try await agent.client.report(AgentReport(host: "node-01", driver: "simulated"))
        #expect(try await admin.client.host("node-01").state == .ready)
        clock.advance(39)
        try await ctl.services.ledger.sweep()
        #expect(try await admin.client.host("node-01").state == .ready, "39 s of silence is within the 40 s timeout")
        clock.advance(2)
        var state = HostState.ready
        for _ in 0..<100 where state != .unreachable {
            try await Task.sleep(for: .milliseconds(20))
            state = try await admin.client.host("node-01").state
        }
        #expect(state == .unreachable, "the sweeper marks it without help")
        #expect(await errorCode { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"))) } == "no_host_fits")
        let audit = try await admin.client.audit(limit: 1000)
        #expect(audit.contains { $0.action == "host.unreachable" && $0.target == "host:node-01" })
        _ = try await agent.client.report(AgentReport(host: "node-01", driver: "simulated"))
        #expect(try await admin.client.host("node-01").state == .ready)
        _ = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd")))
        await agent.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }
}
