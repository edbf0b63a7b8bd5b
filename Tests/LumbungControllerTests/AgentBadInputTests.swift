import Foundation
import Logging
import LumbungAPI
import LumbungAgent
import LumbungController
import LumbungCore
import LumbungPKI
import Testing

/// Desired states a host cannot carry out, through the whole agent: each bad item becomes a
/// reported error (with its code) and nothing else on the host is touched.
@Suite("Agent: bad desired state is reported, nothing else touched", .serialized)
struct AgentBadInputTests {
    static let facts = HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .gib(100), "nvme": .tib(1)])

    @Test("a pool the host lacks, a volume larger than the pool and an image the host lost are reported; the rest runs")
    func throughTheController() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(
                id: "dinkes", displayName: "Dinas Kesehatan",
                quota: ResourceVector(vcpu: 16, memory: .gib(32), storage: ["ssd": .tib(2), "hdd": .tib(2), "nvme": .tib(1)], vms: 10, volumes: 10)))
        // Declared bigger than it really is, with a pool it does not have.
        _ = try await admin.client.addHost(
            AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(2), "hdd": .tib(1), "nvme": .tib(1)])))
        // Placed on the declaration before the agent ever reported.
        let arsip = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .gib(50), pool: "hdd")))
        let besar = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "besar", size: .gib(500), pool: "ssd")))

        let token = try await admin.client.hostToken("node-01")
        let state = AgentStateDirectory(makeTempDirectory("lumbung-agent"))
        _ = try await Enrollment.join(controller: ctl.baseURL, token: token.joinToken, state: state)
        let driver = SimulatedHostDriver(capacity: Self.facts, images: ["debian-12"])
        let agent = try AgentEndToEndTests.makeAgent(ctl.baseURL, host: "node-01", state: state, driver: driver, heartbeat: .milliseconds(200))
        var running = Task { await agent.run() }

        try await AgentEndToEndTests.eventually("unknown pool reported") {
            try await admin.client.volume(arsip.id.rawValue).observed?.message?.hasPrefix("unknown_pool:") == true
        }
        try await AgentEndToEndTests.eventually("insufficient space reported") {
            try await admin.client.volume(besar.id.rawValue).observed?.message?.hasPrefix("insufficient_space:") == true
        }
        #expect(try await admin.client.volume(arsip.id.rawValue).state == .scheduled)
        #expect(try await admin.client.volume(besar.id.rawValue).state == .scheduled)
        let web = try await admin.client.createVM(
            CreateVMBody(opd: "dinkes", vm: VMBody(name: "web", vcpu: 2, memory: .gib(2), disk: .gib(10), pool: "nvme", image: "debian-12")))
        try await AgentEndToEndTests.eventually("web running") { try await admin.client.vm(web.id.rawValue).state == .running }
        let webPID = try #require(try await driver.snapshot().observation.vms[web.id]?.pid)

        // The agent stops; meanwhile the image file disappears from the host and a VM that needs it is placed.
        running.cancel()
        _ = await running.value
        let db = try await admin.client.createVM(
            CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(2), disk: .gib(10), pool: "nvme", image: "debian-12")))
        #expect(db.host == "node-01")
        driver.setImages([])
        let again = try AgentEndToEndTests.makeAgent(ctl.baseURL, host: "node-01", state: state, driver: driver, heartbeat: .milliseconds(200))
        running = Task { await again.run() }
        defer { running.cancel() }
        try await AgentEndToEndTests.eventually("image missing reported") {
            try await admin.client.vm(db.id.rawValue).observed?.message?.hasPrefix("image_missing:") == true
        }
        let shown = try await admin.client.vm(db.id.rawValue)
        #expect(shown.state == .scheduled)
        #expect(shown.observed?.message?.contains("debian-12") == true)

        // Nothing else was touched: the bad items do not exist on the host, the good VM kept running.
        let host = try await driver.snapshot().observation
        #expect(host.vms[db.id] == nil)
        #expect(host.volumes[arsip.id] == nil && host.volumes[besar.id] == nil)
        #expect(host.vms[web.id]?.running == true)
        #expect(host.vms[web.id]?.pid == webPID)
        #expect(try await admin.client.vm(web.id.rawValue).state == .running)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("a persisted desired state with path-escaping names and absurd sizes: errors, and only the valid item is created")
    func persistedDesiredState() async throws {
        let state = AgentStateDirectory(makeTempDirectory("lumbung-agent"))
        try state.saveDesired(
            DesiredState(
                host: "node-01", version: 7,
                vms: [
                    DesiredVM(id: "vm-good", opd: "dinkes", name: "good", vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd", image: nil, power: .running),
                    DesiredVM(id: "../../etc", opd: "dinkes", name: "evil", vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd", image: nil, power: .running),
                    DesiredVM(id: "vm-img", opd: "dinkes", name: "img", vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd", image: "../../etc/shadow", power: .running),
                    DesiredVM(id: "vm-zero", opd: "dinkes", name: "zero", vcpu: 0, memory: .gib(1), disk: .gib(10), pool: "ssd", image: nil, power: .running),
                ],
                volumes: [
                    DesiredVolume(id: "vol-esc", opd: "../dinkes", name: "esc", size: .gib(1), pool: "ssd"),
                    DesiredVolume(id: "vol-pool", opd: "dinkes", name: "pool", size: .gib(1), pool: "tape"),
                ]))
        // The controller is unreachable (nothing listens on port 1): the agent enforces what it persisted.
        let ca = try CertificateAuthority.create(commonName: "test", now: Date())
        let key = ClientKey.generate()
        let issued = try ca.sign(csrPEM: try key.makeCSR(commonName: "node-01"), identity: .host("node-01"), lifetime: .seconds(86400), now: Date())
        try state.save(ClientCredentials(certificatePEM: issued.certificatePEM, privateKeyPEM: key.privateKeyPEM, caPEM: ca.certificatePEM))
        let driver = SimulatedHostDriver(capacity: Self.facts)
        let agent = try AgentEndToEndTests.makeAgent("https://127.0.0.1:1", host: "node-01", state: state, driver: driver, heartbeat: .seconds(60))
        let plan = try #require(await agent.reconcileOnce())
        let codes = Dictionary(plan.errors.map { ($0.subject, $0.code) }, uniquingKeysWith: { a, _ in a })
        #expect(codes[.vm("../../etc")] == .invalidName)
        #expect(codes[.vm("vm-img")] == .invalidName)
        #expect(codes[.vm("vm-zero")] == .invalidAmount)
        #expect(codes[.volume("vol-esc")] == .invalidName)
        #expect(codes[.volume("vol-pool")] == .unknownPool)
        let host = try await driver.snapshot().observation
        #expect(Set(host.vms.keys) == ["vm-good"])
        #expect(host.volumes.isEmpty)
        #expect(host.vms["vm-good"]?.running == true)
    }

    /// Fails the first `failures` actions, then delegates to a simulated host.
    final class FlakyDriver: HostDriver, @unchecked Sendable {
        let inner = SimulatedHostDriver(capacity: AgentBadInputTests.facts)
        let lock = NSLock()
        var failures: Int
        var calls = 0
        init(failures: Int) { self.failures = failures }
        var kind: String { "simulated" }
        func facts() async throws -> HostCapacity { try await inner.facts() }
        func snapshot() async throws -> HostSnapshot { try await inner.snapshot() }
        func perform(_ action: ReconcileAction) async throws {
            let fail = lock.withLock { () -> Bool in
                calls += 1
                if failures > 0 {
                    failures -= 1
                    return true
                }
                return false
            }
            if fail { throw AgentError("qemu-img: disk is busy") }
            try await inner.perform(action)
        }
    }

    @Test("a failed action is retried after a growing, jittered backoff, not on every pass; success clears it")
    func actionBackoff() async throws {
        let state = AgentStateDirectory(makeTempDirectory("lumbung-agent"))
        try state.saveDesired(
            DesiredState(
                host: "node-01", version: 1,
                vms: [DesiredVM(id: "vm-1", opd: "dinkes", name: "one", vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd", image: nil, power: .running)],
                volumes: []))
        let ca = try CertificateAuthority.create(commonName: "test", now: Date())
        let key = ClientKey.generate()
        let issued = try ca.sign(csrPEM: try key.makeCSR(commonName: "node-01"), identity: .host("node-01"), lifetime: .seconds(86400), now: Date())
        try state.save(ClientCredentials(certificatePEM: issued.certificatePEM, privateKeyPEM: key.privateKeyPEM, caPEM: ca.certificatePEM))
        let driver = FlakyDriver(failures: 2)
        let agent = try AgentEndToEndTests.makeAgent("https://127.0.0.1:1", host: "node-01", state: state, driver: driver, heartbeat: .seconds(60)) {
            $0.actionRetry = RetryPolicy(initial: .milliseconds(400), maximum: .milliseconds(400))
        }
        let first = try #require(await agent.reconcileOnce())
        #expect(first.actions.count >= 1)
        #expect(driver.lock.withLock { driver.calls } == 1)
        // Passes inside the backoff window do not touch the driver again; the error stays reported.
        for _ in 0..<3 { _ = await agent.reconcileOnce() }
        // Jitter draws the wait from [0, 400 ms]: three passes within a few milliseconds retry at most once.
        let afterWindow = driver.lock.withLock { driver.calls }
        #expect(afterWindow <= 2, "retried on every pass: \(afterWindow) calls")
        try await Task.sleep(for: .milliseconds(900))
        for _ in 0..<3 {
            _ = await agent.reconcileOnce()
            try await Task.sleep(for: .milliseconds(450))
        }
        let host = try await driver.snapshot().observation
        #expect(host.vms["vm-1"]?.running == true)
        // Converged: a further pass does nothing.
        let calls = driver.lock.withLock { driver.calls }
        let last = try #require(await agent.reconcileOnce())
        #expect(last.actions.isEmpty)
        #expect(driver.lock.withLock { driver.calls } == calls)
    }
}
