import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import NIOConcurrencyHelpers
@_spi(Testing) import LumbungStore
import Synchronization
import Testing

@Suite("Durability of acknowledged allocations", .serialized)
struct DurabilityTests {
    @Test("a lumbungd killed with SIGKILL while clients allocate loses nothing it acknowledged")
    func sigkill() async throws {
        guard FileManager.default.isExecutableFile(atPath: binDirectory() + "/lumbungd") else {
            Issue.record("lumbungd is not built at \(binDirectory()); run 'swift build --build-tests' first")
            return
        }
        let dir = makeTempDirectory("lumbung-kill")
        let initialized = try StateDirectory.initialize(directory: dir, name: "kill-test", addresses: ["127.0.0.1"])
        let caPEM = try String(contentsOfFile: StatePaths(dir).caCertificate, encoding: .utf8)
        let port = freePort()
        let first = try ControllerProcess(state: dir, port: port)
        defer { first.terminate() }
        try await first.waitUntilReady(caPEM: caPEM)
        let admin = try await enrollClient(baseURL: first.baseURL, caPEM: caPEM, token: initialized.adminToken)
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 100_000, memory: .tib(100), storage: ["ssd": .tib(1000)], vms: 100_000)))
        _ = try await admin.client.addHost(
            AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 4096, memory: .tib(64), pools: ["ssd": .tib(1000)]), overcommit: Overcommit(cpu: 16)))

        let acknowledged = NIOLockedValueBox<[VMID]>([])
        let clients = [admin] + (try await (0..<7).asyncMap { _ in
            let added = try await admin.client.addUser(AddUserBody(name: UserID(rawValue: "ops-\(UUID().uuidString.prefix(6).lowercased())"), role: .admin, opd: nil))
            return try await enrollClient(baseURL: first.baseURL, caPEM: caPEM, token: added.token)
        })
        let workers = Task {
            await withTaskGroup(of: Void.self) { group in
                for (w, c) in clients.enumerated() {
                    group.addTask {
                        var i = 0
                        while !Task.isCancelled {
                            i += 1
                            do {
                                let vm = try await c.client.createVM(
                                    CreateVMBody(opd: "dinkes", vm: VMBody(name: "w\(w)-\(i)", vcpu: 1, memory: .mib(64), disk: .gib(1), pool: "ssd")))
                                acknowledged.withLockedValue { $0.append(vm.id) }
                            } catch {
                                return
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(2))
        first.kill9()
        await workers.value
        for c in clients { await c.shutdown() }
        let acked = acknowledged.withLockedValue { $0 }
        #expect(acked.count > 20, "clients should have allocated for two seconds")

        let second = try ControllerProcess(state: dir, port: port)
        defer { second.terminate() }
        try await second.waitUntilReady(caPEM: caPEM)
        let admin2 = TestClient(client: try LumbungClient(baseURL: second.baseURL, credentials: admin.credentials), credentials: admin.credentials)
        let vms = try await admin2.client.listVMs()
        let present = Set(vms.map(\.id))
        let lost = acked.filter { !present.contains($0) }
        #expect(lost.isEmpty, "acknowledged but lost: \(lost.count)")
        let quota = try await admin2.client.quota(opd: "dinkes")
        #expect(quota.usage.vcpu == vms.reduce(0) { $0 + $1.spec.vcpu })
        #expect(quota.usage.vms == vms.count)
        let host = try await admin2.client.host("node-01")
        #expect(host.allocated.vcpu == vms.count)
        #expect(try await admin2.client.verifyAudit().ok)
        await admin2.shutdown()
    }
}

extension DurabilityTests {
    /// A controller with the OPD `dinkes` and the host `node-01`, and its admin.
    private func controllerWithOneHost() async throws -> (TestController, TestClient) {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 64, memory: .gib(256), storage: ["ssd": .tib(10)], vms: 100)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": .tib(10)])))
        return (ctl, admin)
    }

    @Test("an allocation is answered, its host's agent woken and a read served only after the WAL flush covering it")
    func answeredAfterFlush() async throws {
        let (ctl, admin) = try await controllerWithOneHost()
        let versionBefore = try await admin.client.host("node-01").desiredVersion

        // The next flush waits for the test to let it go (the flusher's own thread blocks).
        let gate = DispatchSemaphore(value: 0)
        let flushStarted = Atomic<Bool>(false)
        ctl.services.store.replaceFlushCallForTesting { fd in
            flushStarted.store(true, ordering: .sequentiallyConsistent)
            gate.wait()
            return fdatasync(fd)
        }
        let answered = Atomic<Bool>(false)
        let allocation = Task {
            defer { answered.store(true, ordering: .sequentiallyConsistent) }
            return try await admin.client.createVM(
                CreateVMBody(opd: "dinkes", vm: VMBody(name: "simpus-db", vcpu: 4, memory: .gib(8), disk: .gib(100), pool: "ssd")))
        }
        while !flushStarted.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(5)) }
        // The transaction is committed (another connection sees it) but the flush has not returned.
        #expect(try ctl.services.store.loadState().vms.filter { $0.spec.name == "simpus-db" }.count == 1)
        let read = Task { try await admin.client.quota(opd: "dinkes") }
        try await Task.sleep(for: .milliseconds(300))
        let answeredEarly = answered.load(ordering: .sequentiallyConsistent)
        #expect(!answeredEarly, "answered before its flush returned")
        #expect(ctl.services.hub.version(of: "node-01") == versionBefore, "the agent was woken before the flush")
        gate.signal()
        let vm = try await allocation.value
        #expect(vm.spec.name == "simpus-db")
        // The read that waited shows the allocation (it read the state that held it).
        #expect(try await read.value.usage.vcpu == 4)
        #expect(try await admin.client.host("node-01").desiredVersion > versionBefore)
        ctl.services.store.replaceFlushCallForTesting { fdatasync($0) }
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("a failed WAL flush: the waiting allocation fails with commit_failed, later changes are refused, reads still work")
    func failedFlush() async throws {
        let (ctl, admin) = try await controllerWithOneHost()
        ctl.services.store.replaceFlushCallForTesting { _ in
            errno = EIO
            return -1
        }
        let first = await apiError {
            try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "web", vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd")))
        }
        #expect(first?.status == 500)
        #expect(first?.detail.code == "commit_failed")
        #expect(first?.detail.message.contains("could not be made durable") == true)
        #expect(first?.detail.message.contains("Input/output error") == true)
        // The disk works again, but nothing since the failed flush may be called durable: refused.
        ctl.services.store.replaceFlushCallForTesting { fdatasync($0) }
        let second = await apiError {
            try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 1, memory: .gib(1), disk: .gib(10), pool: "ssd")))
        }
        #expect(second?.detail.code == "commit_failed")
        let quota = try await admin.client.quota(opd: "dinkes")
        #expect(quota.quota.vcpu == 64)
        await admin.shutdown()
        await ctl.stop()
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
