import Foundation
import Logging
import LumbungAPI
import LumbungAgent
import LumbungController
import LumbungCore
import LumbungPKI
import NIOConcurrencyHelpers
import Testing

/// A real controller and a real agent (its loops, persistence and reports) over real mTLS, with
/// the **simulated** host driver standing in for the host (no processes or cgroups).
@Suite("Agent and controller end to end (simulated host driver)", .serialized)
struct AgentEndToEndTests {
    static func agent(_ ctl: TestController, host: String, admin: TestClient, stateDir: String, heartbeat: Duration = .milliseconds(200)) async throws -> Agent {
        let token = try await admin.client.hostToken(HostID(rawValue: host))
        let state = AgentStateDirectory(stateDir)
        let joined = try await Enrollment.join(controller: ctl.baseURL, token: token.joinToken, state: state)
        #expect(joined.host.rawValue == host)
        return try makeAgent(ctl.baseURL, host: host, state: state, driver: SimulatedHostDriver(capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)])), heartbeat: heartbeat)
    }

    static func makeAgent(
        _ url: String, host: String, state: AgentStateDirectory, driver: any HostDriver, heartbeat: Duration,
        configure: (inout AgentSettings) -> Void = { _ in }
    ) throws -> Agent {
        var settings = AgentSettings(host: HostID(rawValue: host))
        settings.heartbeat = heartbeat
        settings.longPollTimeout = .seconds(5)
        settings.reconcileInterval = .milliseconds(200)
        settings.retry = RetryPolicy(initial: .milliseconds(50), maximum: .milliseconds(300))
        configure(&settings)
        var logger = Logger(label: "test.agent")
        logger.logLevel = .critical
        return Agent(client: try LumbungClient(baseURL: url, credentials: try state.credentials()), driver: driver, state: state, settings: settings, logger: logger)
    }

    static func eventually(_ what: String, timeout: Duration = .seconds(15), _ check: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await check()) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting for: \(what)")
    }

    @Test("the run loop renews the certificate at 2/3 of its life, keeps working with the new one, and not before")
    func automaticRenewal() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)])))
        let token = try await admin.client.hostToken("node-01")
        let state = AgentStateDirectory(makeTempDirectory("lumbung-agent"))
        _ = try await Enrollment.join(controller: ctl.baseURL, token: token.joinToken, state: state)
        let first = try state.credentials().certificatePEM
        // The agent's clock: 29 days after enrolment (a 30-day certificate is due at day 20).
        let skew = NIOLockedValueBox<TimeInterval>(29 * 86400)
        let agent = try Self.makeAgent(
            ctl.baseURL, host: "node-01", state: state,
            driver: SimulatedHostDriver(capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)])),
            heartbeat: .milliseconds(200)
        ) { settings in
            settings.renewalCheck = .milliseconds(200)
            settings.now = { Date() + skew.withLockedValue { $0 } }
        }
        let running = Task { await agent.run() }
        defer { running.cancel() }
        try await Self.eventually("certificate renewed") { try state.credentials().certificatePEM != first }
        skew.withLockedValue { $0 = 0 }
        try await Task.sleep(for: .milliseconds(300))
        let renewed = try state.credentials().certificatePEM
        let cert = try #require(try PEM.certificates(fromPEM: renewed).first)
        #expect(cert.notValidAfter > Date() + 29 * 86400)
        // Not due any more: several checks later it is still the same certificate.
        try await Task.sleep(for: .milliseconds(1000))
        #expect(try state.credentials().certificatePEM == renewed)
        // The agent keeps reporting with the renewed certificate.
        let seen = try await admin.client.host("node-01").lastReportAt ?? .distantPast
        try await Self.eventually("report after renewal") { (try await admin.client.host("node-01").lastReportAt ?? .distantPast) > seen }
        let perms = try FileManager.default.attributesOfItem(atPath: state.path + "/agent.key")[.posixPermissions] as? Int
        #expect(perms == 0o600)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("approve a VM → the agent runs it → reported running with usage → delete → released")
    func lifecycle() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 16, memory: .gib(32), storage: ["ssd": .tib(1)], vms: 10, volumes: 10)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)])))
        let stateDir = makeTempDirectory("lumbung-agent")
        let agent = try await Self.agent(ctl, host: "node-01", admin: admin, stateDir: stateDir)
        let running = Task { await agent.run() }
        defer { running.cancel() }
        try await Self.eventually("host ready") { try await admin.client.host("node-01").state == .ready }
        #expect(try await admin.client.host("node-01").driver == "simulated")

        let budi = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin)
        let request = try await budi.client.fileRequest(
            FileRequestBody(reason: "SIKDA", vm: VMBody(name: "sikda-web", vcpu: 2, memory: .gib(4), disk: .gib(40), pool: "ssd")))
        let approved = try await admin.client.approve(request.id)
        let vmID = try #require(approved.result)
        try await Self.eventually("VM running") { try await budi.client.vm(vmID).state == .running }
        try await Self.eventually("usage reported") { (try await budi.client.vm(vmID).observed?.memoryUsed?.bytes ?? 0) > 0 }
        let shown = try await budi.client.vm(vmID)
        #expect(shown.observed?.memoryLimit == .gib(4))
        #expect(FileManager.default.fileExists(atPath: stateDir + "/desired.json"), "the desired state is persisted")

        // Stop and start converge the same way.
        _ = try await budi.client.stopVM(vmID)
        try await Self.eventually("VM stopped") { try await budi.client.vm(vmID).state == .stopped }
        _ = try await budi.client.startVM(vmID)
        try await Self.eventually("VM running again") { try await budi.client.vm(vmID).state == .running }

        // Volumes too.
        let volume = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .gib(100), pool: "ssd")))
        try await Self.eventually("volume ready") { try await admin.client.volume(volume.id.rawValue).state == .ready }

        _ = try await admin.client.deleteVM(vmID)
        try await Self.eventually("VM gone and host capacity released") {
            try await admin.client.host("node-01").allocated.vcpu == 0
        }
        #expect(await errorCode { try await admin.client.vm(vmID) } == "not_found")
        _ = try await admin.client.deleteVolume(volume.id.rawValue)
        try await Self.eventually("volume released") { try await admin.client.host("node-01").allocated.storage["ssd"] == nil }
        running.cancel()
        await budi.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("controller stopped: the agent keeps its VMs, persists the desired state, and reconnects alone")
    func controllerOutage() async throws {
        let dir = makeTempDirectory("lumbung-outage")
        let ctl = try await TestController.start(directory: dir)
        let port = ctl.port
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 16, memory: .gib(32), storage: ["ssd": .tib(1)], vms: 10)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)])))
        let stateDir = makeTempDirectory("lumbung-agent")
        let driver = SimulatedHostDriver(capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2)]))
        let token = try await admin.client.hostToken("node-01")
        _ = try await Enrollment.join(controller: ctl.baseURL, token: token.joinToken, state: AgentStateDirectory(stateDir))
        let agent = try Self.makeAgent(ctl.baseURL, host: "node-01", state: AgentStateDirectory(stateDir), driver: driver, heartbeat: .milliseconds(200))
        let running = Task { await agent.run() }
        defer { running.cancel() }
        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(4), disk: .gib(10), pool: "ssd")))
        try await Self.eventually("VM running") { try await admin.client.vm(vm.id.rawValue).state == .running }
        await admin.shutdown()
        await ctl.stop()

        // Controller down: the VM keeps running; an agent restarted now enforces the persisted state.
        try await Task.sleep(for: .milliseconds(600))
        #expect(try await driver.snapshot().observation.vms[vm.id]?.running == true)
        running.cancel()
        let restarted = try Self.makeAgent("https://127.0.0.1:\(port)", host: "node-01", state: AgentStateDirectory(stateDir), driver: driver, heartbeat: .milliseconds(200))
        #expect(restarted.desired?.vms.map(\.id) == [vm.id])
        let plan = await restarted.reconcileOnce()
        #expect(plan?.actions.contains { $0.kind == "create_vm" || $0.kind == "start_vm" } == false, "nothing is recreated after a restart")
        let second = Task { await restarted.run() }
        defer { second.cancel() }

        // Controller back on the same address: the agent reports again without help.
        let ctl2 = try await TestController.start(directory: dir, port: port)
        let admin2 = try await ctl2.adminClient()
        let before = try await admin2.client.host("node-01").lastReportAt
        try await Self.eventually("agent reconnected") {
            let now = try await admin2.client.host("node-01").lastReportAt
            return now != nil && now != before
        }
        #expect(try await admin2.client.vm(vm.id.rawValue).state == .running)
        second.cancel()
        await admin2.shutdown()
        await ctl2.stop()
    }
}
