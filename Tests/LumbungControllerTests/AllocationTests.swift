import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungStore
import Testing

@Suite("Allocation through the real HTTPS API")
struct AllocationTests {
    @Test("the issue's session: OPD, host, VM, capacity, member request, approval")
    func session() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        let host = try await admin.client.addHost(
            AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": .tib(4), "hdd": .tib(20)]), labels: ["rack": "a"]))
        #expect(host.joinToken.hasPrefix("lmb1."))
        #expect(host.host.state == .enrolled)
        let vm = try await admin.client.createVM(
            CreateVMBody(opd: "dinkes", vm: VMBody(name: "simpus-db", vcpu: 4, memory: .gib(8), disk: .gib(100), pool: "ssd", app: "simpus")))
        #expect(vm.state == .scheduled)
        #expect(vm.host == "node-01")
        let capacity = try await admin.client.capacity()
        #expect(capacity.allocated.vcpu == 4)
        #expect(capacity.hosts.count == 1)

        let budi = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin)
        let filed = try await budi.client.fileRequest(
            FileRequestBody(reason: "SIKDA web", vm: VMBody(name: "sikda-web", vcpu: 2, memory: .gib(4), disk: .gib(40), pool: "ssd", app: "sikda")))
        #expect(filed.state == .pending)
        let quotaRequest = try await budi.client.fileRequest(FileRequestBody(reason: "more", quota: ResourceVector(vcpu: 8)))
        let mine = try await budi.client.listRequests()
        #expect(mine.count == 2)
        let pending = try await admin.client.listRequests(state: .pending)
        #expect(pending.map(\.id) == [filed.id, quotaRequest.id])

        let approved = try await admin.client.approve(filed.id)
        #expect(approved.state == .fulfilled)
        let vms = try await budi.client.listVMs()
        #expect(Set(vms.map(\.spec.name)) == ["simpus-db", "sikda-web"])
        let quota = try await budi.client.quota()
        #expect(quota.usage.vcpu == 6)
        #expect(quota.left.vcpu == 26)

        _ = try await admin.client.approve(quotaRequest.id)
        #expect(try await budi.client.quota().quota.vcpu == 40)

        // Deciding twice is refused and changes nothing.
        #expect(await errorCode { try await admin.client.approve(filed.id) } == "illegal_transition")
        #expect(await errorCode { try await admin.client.reject(filed.id, reason: "late") } == "illegal_transition")

        // The host's desired state moved, so its agent would see both VMs.
        let hostView = try await admin.client.host("node-01")
        #expect(hostView.vms == 2)
        #expect(hostView.desiredVersion >= 3)
        #expect(try await admin.client.verifyAudit().ok)
        await budi.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("race: 200 concurrent approvals of 1-vCPU requests against a 50 vCPU quota → exactly 50")
    func quotaRace() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 50, memory: .gib(1000), storage: ["ssd": .tib(100)], vms: 1000)))
        for i in 1...4 {
            _ = try await admin.client.addHost(AddHostBody(id: HostID(rawValue: "node-0\(i)"), capacity: HostCapacity(cpus: 64, memory: .gib(512), pools: ["ssd": .tib(50)])))
        }
        var members: [TestClient] = []
        for i in 1...4 {
            members.append(try await ctl.user("staff-\(i)", role: .approver, opd: "dinkes", admin: admin))
        }
        // Members file 200 requests (filing checks shape, not quota).
        var ids: [RequestID] = []
        try await withThrowingTaskGroup(of: RequestID.self) { group in
            for i in 0..<200 {
                let m = members[i % members.count]
                group.addTask {
                    try await m.client.fileRequest(
                        FileRequestBody(reason: "load \(i)", vm: VMBody(name: "web-\(i)", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"))).id
                }
            }
            for try await id in group { ids.append(id) }
        }
        #expect(ids.count == 200)
        // Approvers of the OPD approve all 200 at once.
        var outcomes: [String] = []
        await withTaskGroup(of: String.self) { group in
            for (i, id) in ids.enumerated() {
                let m = members[i % members.count]
                group.addTask {
                    do {
                        let r = try await m.client.approve(id)
                        return r.state == .fulfilled ? "ok" : "state:\(r.state)"
                    } catch let error as APIClientError {
                        if case .api(_, let detail) = error, detail.code == "quota_exceeded" {
                            return detail.dimension == "vcpu" && detail.asked == 1 && detail.left == 0 ? "quota" : "quota-wrong-numbers"
                        }
                        return error.code
                    } catch {
                        return "other"
                    }
                }
            }
            for await o in group { outcomes.append(o) }
        }
        #expect(outcomes.filter { $0 == "ok" }.count == 50)
        #expect(outcomes.filter { $0 == "quota" }.count == 150)
        let quota = try await admin.client.quota(opd: "dinkes")
        #expect(quota.usage.vcpu == 50)
        let vms = try await admin.client.listVMs(opd: "dinkes")
        #expect(vms.count == 50)
        #expect(vms.reduce(0) { $0 + $1.spec.vcpu } == quota.usage.vcpu)
        for m in members { await m.shutdown() }
        await admin.shutdown()
        await ctl.stop()

        // The store agrees after a restart.
        let store = try Store(path: StatePaths(ctl.directory).database)
        let state = try store.loadState()
        let live = state.vms.filter { $0.state != .deleted }
        #expect(live.count == 50)
        #expect(state.requests.filter { $0.state == .fulfilled }.count == 50)
        #expect(state.requests.filter { $0.state == .pending }.count == 150)
        try store.close()
    }

    @Test("race: concurrent allocations for a host's last free vCPUs → exactly what is left")
    func hostCapacityRace() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "bappeda", displayName: "Bappeda", quota: ResourceVector(vcpu: 1000, memory: .gib(1000), storage: ["ssd": .tib(10)], vms: 1000)))
        // 12 CPUs, 2 reserved, overcommit 1.0 → 10 allocatable vCPUs.
        _ = try await admin.client.addHost(
            AddHostBody(
                id: "node-01", capacity: HostCapacity(cpus: 12, memory: .gib(256), pools: ["ssd": .tib(5)]), reserved: HostCapacity(cpus: 2),
                overcommit: Overcommit(cpu: 1.0)))
        _ = try await admin.client.createVM(CreateVMBody(opd: "bappeda", vm: VMBody(name: "seed", vcpu: 3, memory: .gib(1), disk: .gib(1), pool: "ssd")))
        let clients = [admin] + [try await ctl.adminClient(), try await ctl.adminClient()]
        var ok = 0
        var refused = 0
        await withTaskGroup(of: String?.self) { group in
            for i in 0..<40 {
                let c = clients[i % clients.count]
                group.addTask {
                    await errorCode {
                        try await c.client.createVM(CreateVMBody(opd: "bappeda", vm: VMBody(name: "vm-\(i)", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd")))
                    }
                }
            }
            for await code in group {
                if code == nil { ok += 1 } else if code == "no_host_fits" { refused += 1 }
            }
        }
        #expect(ok == 7)
        #expect(refused == 33)
        let host = try await admin.client.host("node-01")
        #expect(host.allocated.vcpu == 10)
        #expect(host.free.vcpu == 0)
        for c in clients { await c.shutdown() }
        await ctl.stop()
    }

    @Test("quota changes of some amounts: concurrent changes of different amounts all survive; bad changes are refused")
    func concurrentQuotaChanges() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 8, memory: .gib(16), storage: ["ssd": .tib(1)], vms: 5, volumes: 5)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": .tib(4), "hdd": .tib(8)])))
        let changes: [QuotaChange] = [
            QuotaChange(vcpu: 40), QuotaChange(memory: .gib(128)), QuotaChange(storage: ["hdd": .tib(3)]), QuotaChange(vms: 30),
            QuotaChange(volumes: 12), QuotaChange(storage: ["ssd": .tib(2)]),
        ]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for change in changes {
                group.addTask { _ = try await admin.client.setQuota("dinkes", SetQuotaBody(change: change)) }
            }
            try await group.waitForAll()
        }
        let quota = try await admin.client.opd("dinkes").quota
        #expect(quota.normalized == ResourceVector(vcpu: 40, memory: .gib(128), storage: ["ssd": .tib(2), "hdd": .tib(3)], vms: 30, volumes: 12).normalized)
        #expect(await errorCode { try await admin.client.setQuota("dinkes", SetQuotaBody(change: QuotaChange())) } == "missing_quota")
        #expect(
            await errorCode { try await admin.client.setQuota("dinkes", SetQuotaBody(quota: quota, change: QuotaChange(vcpu: 1))) } == "invalid_quota")
        #expect(await errorCode { try await admin.client.setQuota("dinkes", SetQuotaBody(change: QuotaChange(vcpu: -1))) } == "invalid_amount")
        #expect(try await admin.client.opd("dinkes").quota == quota)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("refusals name the dimension and the numbers; deleting returns resources once")
    func refusalsAndRelease() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 6, memory: .gib(64), storage: ["ssd": .tib(1)], vms: 5)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": .tib(4)])))
        let refusal = await apiError {
            try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "big", vcpu: 8, memory: .gib(8), disk: .gib(10), pool: "ssd")))
        }
        #expect(refusal?.status == 409)
        #expect(refusal?.detail.code == "quota_exceeded")
        #expect(refusal?.detail.dimension == "vcpu")
        #expect(refusal?.detail.asked == 8)
        #expect(refusal?.detail.left == 6)
        #expect(refusal?.detail.message.contains("6 vCPU") == true)
        #expect(refusal?.detail.message.contains("8") == true)
        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 6, memory: .gib(8), disk: .gib(10), pool: "ssd")))
        #expect(try await admin.client.quota(opd: "dinkes").left.vcpu == 0)
        // Lowering the quota below use is refused with numbers, unless forced.
        #expect(await errorCode { try await admin.client.setQuota("dinkes", SetQuotaBody(quota: ResourceVector(vcpu: 2, memory: .gib(64), storage: ["ssd": .tib(1)], vms: 5))) } == "quota_below_use")
        let deleted = try await admin.client.deleteVM(vm.id.rawValue)
        // The host never reported, so the VM is gone at once; deleting again finds nothing.
        #expect(deleted.state == .deleted)
        #expect(await errorCode { try await admin.client.deleteVM(vm.id.rawValue) } == "not_found")
        let quota = try await admin.client.quota(opd: "dinkes")
        #expect(quota.usage.vcpu == 0)
        #expect(quota.left.vcpu == 6)
        #expect(try await admin.client.host("node-01").allocated.vcpu == 0)
        // The name is free again.
        _ = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 6, memory: .gib(8), disk: .gib(10), pool: "ssd")))
        await admin.shutdown()
        await ctl.stop()
    }
}
