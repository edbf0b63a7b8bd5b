import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import NIOConcurrencyHelpers
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

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
