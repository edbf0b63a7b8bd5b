import Foundation
import LumbungCore
import LumbungStore
import Testing

@Suite("Ledger commits")
struct LedgerTests {
    @Test("every Core type survives commit and loadState unchanged")
    func roundTrip() async throws {
        try await withStore { store, _ in
            let opd = makeOPD()
            var host = makeHost()
            host.reported = HostCapacity(cpus: 48, memory: .gib(384), pools: ["ssd": .tib(3), "nvme": .gib(1500)])
            host.connectivity = .ready
            host.cordoned = true
            host.lastReportAt = at(9)
            host.driver = "simulated"
            host.desiredVersion = 7
            let bare = LumbungCore.Host(id: "node-02", declared: HostCapacity(cpus: 8, memory: .gib(32)), createdAt: t0)
            var vm = makeVM()
            vm.observed = Observation(
                state: "running", cpuSeconds: 12.5, memoryUsed: .mib(3000), memoryLimit: .gib(8), diskUsed: .gib(7),
                message: "ok ✓", at: at(10))
            let pendingVM = VM(
                id: "vm-00000001", opd: "dinkes", spec: VMSpec(name: "db", vcpu: 2, memory: .gib(4), disk: .gib(20), pool: "ssd"),
                host: nil, state: .pending, desiredPower: .stopped, createdAt: at(4))
            var volume = makeVolume()
            volume.observed = Observation(state: "mounted", diskUsed: .gib(1), at: at(11))
            let pendingVolume = Volume(
                id: "vol-00000001", opd: "dinkes", spec: VolumeSpec(name: "logs", size: .gib(10), pool: "ssd"), host: nil,
                state: .pending, createdAt: at(5))
            var decided = makeRequest(2, payload: .volume(VolumeSpec(name: "data", size: .gib(200), pool: "hdd")), state: .fulfilled)
            decided.decidedBy = "user:admin"
            decided.decidedAt = at(20)
            decided.decisionReason = "ok"
            decided.result = "vol-8d2e11b0"
            let quota = makeRequest(3, payload: .quota(ResourceVector(vcpu: 8, memory: .gib(-4), storage: ["ssd": .gib(-100)], vms: 1)))

            try await store.commit(
                [
                    .opdCreated(opd), .hostDeclared(host), .hostDeclared(bare), .vmAllocated(vm), .vmAllocated(pendingVM),
                    .volumeAllocated(volume), .volumeAllocated(pendingVolume), .requestFiled(makeRequest(1)),
                    .requestFiled(decided), .requestFiled(quota),
                ],
                audit: [audit("bootstrap", target: "opd:dinkes", opd: "dinkes")])

            let state = try store.loadState()
            #expect(state.opds == [opd])
            #expect(state.hosts == [host, bare])
            #expect(state.vms == [pendingVM, vm])
            #expect(state.volumes == [pendingVolume, volume])
            #expect(state.requests == [makeRequest(1), decided, quota])
            #expect(try store.request(id: RequestID(rawValue: 2)) == decided)
            #expect(try store.request(id: RequestID(rawValue: 99)) == nil)
            #expect(try store.nextRequestID() == RequestID(rawValue: 4))
            #expect(try store.requests(opd: "dinkes", state: .pending) == [makeRequest(1), quota])
            #expect(try store.requests(state: .fulfilled) == [decided])
            #expect(try store.requests(opd: "bappeda").isEmpty)

            // Updates replace the rows.
            var newQuota = opd.quota
            newQuota.vcpu = 64
            newQuota.storage = ["nvme": .gib(10)]
            host.cordoned = false
            host.reported = nil
            host.labels = [:]
            host.desiredVersion = 8
            vm.state = .stopped
            vm.desiredPower = .stopped
            vm.observed = nil
            var placed = pendingVM
            placed.host = "node-02"
            placed.state = .scheduled
            volume.state = .deleting
            var approved = makeRequest(1, state: .approved)
            approved.decidedBy = "user:siti"
            approved.decidedAt = at(30)
            try await store.commit(
                [
                    .quotaChanged("dinkes", newQuota), .hostUpdated(host), .vmUpdated(vm), .vmUpdated(placed),
                    .volumeUpdated(volume), .requestUpdated(approved),
                ],
                audit: [])
            let after = try store.loadState()
            #expect(after.opds.first?.quota == newQuota)
            #expect(after.hosts == [host, bare])
            #expect(after.vms == [placed, vm])
            #expect(after.volumes == [pendingVolume, volume])
            #expect(after.requests == [approved, decided, quota])
        }
    }

    @Test("a batch whose last change is refused leaves nothing of the batch")
    func groupCommitIsAllOrNothing() async throws {
        try await withStore { store, _ in
            try await store.commit([.opdCreated(makeOPD("bappeda"))], audit: [audit("opd.create", target: "opd:bappeda")])
            let before = try store.loadState()
            let headBefore = try store.auditHead()

            var changes: [LedgerChange] = [.opdCreated(makeOPD()), .hostDeclared(makeHost())]
            for i in 0..<50 {
                changes.append(.vmAllocated(makeVM(VMID(rawValue: "vm-\(i)"), name: "web-\(i)")))
                changes.append(.requestFiled(makeRequest(Int64(i + 1))))
            }
            changes.append(.vmAllocated(makeVM("vm-clash", name: "web-7")))  // duplicate live name
            let audits = (0..<10).map { audit("vm.allocate", target: "vm:vm-\($0)", opd: "dinkes") }

            let error = await storeError { try await store.commit(changes, audit: audits) }
            #expect(error?.code == .constraint)
            #expect(error?.message.contains("already has a VM named 'web-7' (vm-7)") == true)

            #expect(try store.loadState() == before)
            #expect(try store.auditHead() == headBefore)
            #expect(try store.auditEntries().count == 1)
            #expect(try store.verifyAudit().ok)

            // The same batch without the clash commits completely.
            changes.removeLast()
            try await store.commit(changes, audit: audits)
            let state = try store.loadState()
            #expect(state.vms.count == 50)
            #expect(state.requests.count == 50)
            #expect(try store.auditEntries(limit: 1000).count == 11)
        }
    }

    @Test("negative amounts are refused by CHECK constraints")
    func negativeAmounts() async throws {
        try await withStore { store, _ in
            var opd = makeOPD()
            opd.quota.vcpu = -1
            var error = await storeError { try await store.commit([.opdCreated(opd)], audit: []) }
            #expect(error?.code == .constraint)
            #expect(error?.message.contains("quota_vcpu >= 0") == true)

            opd = makeOPD()
            opd.quota.storage["ssd"] = .gib(-1)
            error = await storeError { try await store.commit([.opdCreated(opd)], audit: []) }
            #expect(error?.code == .constraint)
            #expect(error?.message.contains("bytes >= 0") == true)

            try await store.commit([.opdCreated(makeOPD()), .hostDeclared(makeHost())], audit: [])
            var vm = makeVM()
            vm.spec.memory = ByteSize(bytes: -5)
            error = await storeError { try await store.commit([.vmAllocated(vm)], audit: []) }
            #expect(error?.code == .constraint)
            #expect(error?.message.contains("memory >= 0") == true)

            var host = makeHost("node-09")
            host.reserved.pools["ssd"] = .gib(-1)
            error = await storeError { try await store.commit([.hostDeclared(host)], audit: []) }
            #expect(error?.code == .constraint)

            var quota = makeOPD().quota
            quota.vms = -3
            error = await storeError { try await store.commit([.quotaChanged("dinkes", quota)], audit: []) }
            #expect(error?.code == .constraint)
            #expect(try store.loadState().opds == [makeOPD()])
        }
    }

    @Test("VM and volume names are unique among the live ones of one OPD")
    func uniqueLiveNames() async throws {
        try await withStore { store, _ in
            try await store.commit(
                [.opdCreated(makeOPD()), .opdCreated(makeOPD("bappeda")), .hostDeclared(makeHost()), .vmAllocated(makeVM("vm-1"))],
                audit: [])

            // Same name, same OPD: refused, naming the clash.
            let error = await storeError { try await store.commit([.vmAllocated(makeVM("vm-2"))], audit: []) }
            #expect(error?.code == .constraint)
            #expect(error?.message == "allocating VM 'web' (vm-2) of OPD 'dinkes' was refused: OPD 'dinkes' already has a VM named 'web' (vm-1)")

            // Same name in another OPD: fine.
            try await store.commit([.vmAllocated(makeVM("vm-2", opd: "bappeda"))], audit: [])

            // Same id: refused.
            let dupID = await storeError { try await store.commit([.vmAllocated(makeVM("vm-1", name: "other"))], audit: []) }
            #expect(dupID?.message.contains("a VM with id vm-1 already exists") == true)

            // Once deleted, the name can be reused.
            var gone = makeVM("vm-1")
            gone.state = .deleted
            try await store.commit([.vmUpdated(gone), .vmAllocated(makeVM("vm-3"))], audit: [])
            // … even twice.
            var gone3 = makeVM("vm-3")
            gone3.state = .deleted
            try await store.commit([.vmUpdated(gone3), .vmAllocated(makeVM("vm-4"))], audit: [])
            #expect(try store.loadState().vms.filter { $0.spec.name == "web" && $0.opd == "dinkes" }.count == 3)

            // Volumes follow the same rule.
            try await store.commit([.volumeAllocated(makeVolume("vol-1"))], audit: [])
            let volError = await storeError { try await store.commit([.volumeAllocated(makeVolume("vol-2"))], audit: []) }
            #expect(volError?.message.contains("OPD 'dinkes' already has a volume named 'data' (vol-1)") == true)
            try await store.commit([.volumeAllocated(makeVolume("vol-2", opd: "bappeda"))], audit: [])
        }
    }

    @Test("references to unknown OPDs or hosts are refused by foreign keys")
    func foreignKeys() async throws {
        try await withStore { store, _ in
            try await store.commit([.opdCreated(makeOPD()), .hostDeclared(makeHost())], audit: [])

            var error = await storeError { try await store.commit([.vmAllocated(makeVM(opd: "ghost"))], audit: []) }
            #expect(error?.code == .constraint)
            #expect(error?.message.hasSuffix("was refused: OPD 'ghost' does not exist") == true)

            error = await storeError { try await store.commit([.vmAllocated(makeVM(host: "node-99"))], audit: []) }
            #expect(error?.message.hasSuffix("was refused: host 'node-99' does not exist") == true)

            error = await storeError { try await store.commit([.requestFiled(makeRequest(1, opd: "ghost"))], audit: []) }
            #expect(error?.message.contains("OPD 'ghost' does not exist") == true)

            error = await storeError { try await store.commit([.volumeAllocated(makeVolume(opd: "ghost"))], audit: []) }
            #expect(error?.message.contains("OPD 'ghost' does not exist") == true)

            // A running VM must be on a host.
            error = await storeError { try await store.commit([.vmAllocated(makeVM(host: nil, state: .running))], audit: []) }
            #expect(error?.code == .constraint)
        }
    }

    @Test("updates of rows that do not exist are not_found; duplicates of OPDs and hosts are named")
    func notFoundAndDuplicates() async throws {
        try await withStore { store, _ in
            try await store.commit([.opdCreated(makeOPD()), .hostDeclared(makeHost())], audit: [])
            let missing: [(LedgerChange, String)] = [
                (.vmUpdated(makeVM()), "cannot update VM vm-3f9a0c21: it does not exist"),
                (.volumeUpdated(makeVolume()), "cannot update volume vol-8d2e11b0: it does not exist"),
                (.hostUpdated(makeHost("node-99")), "cannot update host 'node-99': it does not exist"),
                (.hostRemoved("node-99"), "cannot remove host 'node-99': it does not exist"),
                (.requestUpdated(makeRequest(5)), "cannot update request 5: it does not exist"),
                (.quotaChanged("ghost", .zero), "cannot change the quota of OPD 'ghost': no such OPD"),
            ]
            for (change, message) in missing {
                let error = await storeError { try await store.commit([change], audit: []) }
                #expect(error?.code == .notFound)
                #expect(error?.message == message)
            }

            let opd = await storeError { try await store.commit([.opdCreated(makeOPD())], audit: []) }
            #expect(opd?.message == "creating OPD 'dinkes' was refused: an OPD with id 'dinkes' already exists")
            let hostError = await storeError { try await store.commit([.hostDeclared(makeHost())], audit: []) }
            #expect(hostError?.message == "declaring host 'node-01' was refused: a host with id 'node-01' already exists")
            try await store.commit([.requestFiled(makeRequest(1))], audit: [])
            let request = await storeError { try await store.commit([.requestFiled(makeRequest(1))], audit: []) }
            #expect(request?.message.contains("a request with id 1 already exists") == true)
        }
    }

    @Test("a host is removed only when nothing live is on it; its certificates are revoked")
    func hostRemoval() async throws {
        try await withStore { store, _ in
            try await store.commit(
                [.opdCreated(makeOPD()), .hostDeclared(makeHost()), .vmAllocated(makeVM()), .volumeAllocated(makeVolume())],
                audit: [])
            try store.recordCertificate(
                CertificateRecord(serial: "0A1B", kind: .host, subject: "node-01", notBefore: t0, notAfter: at(30 * 86400), issuedAt: t0),
                audit: audit("cert.issue", target: "host:node-01"))
            #expect(try store.principal(forSerial: "0a1b", now: at(60)) == .found(.host("node-01")))

            let error = await storeError { try await store.commit([.hostRemoved("node-01")], audit: []) }
            #expect(error?.code == .constraint)
            #expect(error?.message == "cannot remove host 'node-01': it still holds 1 VM(s) (vm-3f9a0c21) and 1 volume(s) (vol-8d2e11b0); move or delete them first")

            var vm = makeVM()
            vm.state = .deleted
            var volume = makeVolume()
            volume.state = .deleted
            try await store.commit(
                [.vmUpdated(vm), .volumeUpdated(volume), .hostRemoved("node-01")],
                audit: [audit("host.remove", target: "host:node-01", at: at(100))])

            let state = try store.loadState()
            #expect(state.hosts.isEmpty)
            #expect(state.vms.map(\.host) == [nil])
            #expect(state.volumes.map(\.host) == [nil])
            #expect(try store.certificate(serial: "0A1B")?.revokedAt == at(100))
            #expect(try store.principal(forSerial: "0a1b", now: at(200)) == .revoked(at: at(100)))
        }
    }
}
