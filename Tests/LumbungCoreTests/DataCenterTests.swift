#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore

struct RefusalCase: Sendable, CustomTestStringConvertible {
    var label: String
    var spec: VMSpec
    var opd: OPDID = "dinkes"
    var code: String
    var testDescription: String { label }
}

@Suite struct DataCenterDecisionTests {
    func smallDC() -> DataCenter {
        let quota = ResourceVector(vcpu: 10, memory: .gib(32), storage: ["ssd": .gib(200)], vms: 3, volumes: 2)
        return makeDC(
            hosts: [makeHost("node-01", cpus: 8, memory: .gib(16))],
            opds: [makeOPD("dinkes", quota: quota)],
            vms: [makeVM("vm-1", spec: vmSpec("simpus-db", vcpu: 4, memory: .gib(8), disk: .gib(50)), host: "node-01")])
    }

    static let refusals: [RefusalCase] = [
        RefusalCase(label: "bad name", spec: vmSpec("Simpus"), code: "invalid_name"),
        RefusalCase(label: "zero vcpu", spec: vmSpec("a", vcpu: 0), code: "invalid_amount"),
        RefusalCase(label: "zero memory", spec: vmSpec("a", memory: .zero), code: "invalid_amount"),
        RefusalCase(label: "odd disk", spec: vmSpec("a", disk: ByteSize(bytes: 1000)), code: "invalid_amount"),
        RefusalCase(label: "bad app", spec: vmSpec("a", app: "Bad App"), code: "invalid_name"),
        RefusalCase(label: "bad label", spec: vmSpec("a", required: ["Zone": "a"]), code: "invalid_label"),
        RefusalCase(label: "bad pool name", spec: vmSpec("a", pool: "../x"), code: "invalid_name"),
        RefusalCase(label: "unknown pool", spec: vmSpec("a", pool: "nvme"), code: "unknown_pool"),
        RefusalCase(label: "unknown OPD", spec: vmSpec("a"), opd: "bappeda", code: "not_found"),
        RefusalCase(label: "name taken", spec: vmSpec("simpus-db"), code: "conflict"),
        RefusalCase(label: "quota vcpu", spec: vmSpec("a", vcpu: 8), code: "quota_exceeded"),
        RefusalCase(label: "host memory", spec: vmSpec("a", vcpu: 2, memory: .gib(12)), code: "no_host_fits"),
    ]

    @Test(arguments: refusals)
    func decideVMRefuses(c: RefusalCase) throws {
        let refusal = try #require(smallDC().decideVM(c.spec, opd: c.opd).failure)
        #expect(refusal.code == c.code, "\(refusal)")
    }

    @Test func refusalSentences() throws {
        let dc = smallDC()
        #expect(dc.decideVM(vmSpec("a", vcpu: 8), opd: "dinkes").failure?.description
            == "quota: dinkes has 6 vCPU left, the request asks for 8 vCPU")
        #expect(dc.decideVM(vmSpec("a", vcpu: 2, memory: .gib(12)), opd: "dinkes").failure?.description
            == "no host can take this VM: 1 host lacks memory (most free: 8GiB, asked 12GiB)")
        #expect(dc.decideVM(vmSpec("simpus-db"), opd: "dinkes").failure?.description
            == "dinkes already has a VM named simpus-db (vm-1, running)")
        #expect(dc.decideVM(vmSpec("a", pool: "nvme"), opd: "dinkes").failure?.description == "pool nvme exists on no host; pools: ssd")
        let ok = try #require(dc.decideVM(vmSpec("simpus-web", vcpu: 2, memory: .gib(4)), opd: "dinkes").success)
        #expect(ok.host == "node-01")
    }

    @Test func nameIsFreeAgainOnceDeleted() throws {
        var dc = smallDC()
        var vm = try #require(dc.vm("vm-1"))
        vm.state = .deleting
        dc.upsertVM(vm)
        #expect(dc.decideVM(vmSpec("simpus-db"), opd: "dinkes").failure?.code == "conflict")
        #expect(dc.vm(named: "simpus-db", in: "dinkes")?.id == "vm-1")
        vm.state = .deleted
        dc.upsertVM(vm)
        #expect(dc.vm(named: "simpus-db", in: "dinkes") == nil)
        #expect(dc.decideVM(vmSpec("simpus-db"), opd: "dinkes").success != nil)
        // Names are per OPD.
        dc.upsertOPD(makeOPD("disdukcapil"))
        dc.upsertVM(makeVM("vm-2", opd: "disdukcapil", spec: vmSpec("simpus-db"), host: "node-01"))
        #expect(dc.vm(named: "simpus-db", in: "disdukcapil")?.id == "vm-2")
        #expect(dc.decideVM(vmSpec("simpus-db"), opd: "dinkes").success != nil)
    }

    @Test func decideVolume() throws {
        var dc = smallDC()
        #expect(dc.decideVolume(VolumeSpec(name: "data", size: .gib(100), pool: "ssd"), opd: "dinkes").success?.host == "node-01")
        #expect(dc.decideVolume(VolumeSpec(name: "data", size: .gib(200), pool: "ssd"), opd: "dinkes").failure?.description
            == "quota: dinkes has 150GiB of storage in pool ssd left, the request asks for 200GiB")
        #expect(dc.decideVolume(VolumeSpec(name: "Data", size: .gib(1), pool: "ssd"), opd: "dinkes").failure?.code == "invalid_name")
        #expect(dc.decideVolume(VolumeSpec(name: "data", size: .zero, pool: "ssd"), opd: "dinkes").failure?.code == "invalid_amount")
        dc.upsertVolume(makeVolume("vol-1", name: "data", size: .gib(10), host: "node-01"))
        #expect(dc.volume(named: "data", in: "dinkes")?.id == "vol-1")
        #expect(dc.decideVolume(VolumeSpec(name: "data", size: .gib(1), pool: "ssd"), opd: "dinkes").failure?.code == "conflict")
        dc.upsertVolume(makeVolume("vol-2", name: "logs", size: .gib(10), host: "node-01"))
        #expect(dc.decideVolume(VolumeSpec(name: "more", size: .gib(1), pool: "ssd"), opd: "dinkes").failure?.description
            == "quota: dinkes has no volumes left, the request asks for 1 volume")
    }

    @Test func quotaLoweringRefusedWithNumbersUnlessForced() throws {
        let usage = [
            makeVM("vm-1", spec: vmSpec("a", vcpu: 8, memory: .gib(8)), host: "node-01"),
            makeVM("vm-2", spec: vmSpec("b", vcpu: 6, memory: .gib(4)), host: "node-01"),
        ]
        let dc = makeDC(hosts: [makeHost("node-01", cpus: 64)], vms: usage)
        #expect(dc.usage(of: "dinkes").vcpu == 14)
        let lower = ResourceVector(vcpu: 10, memory: .gib(8), storage: ["ssd": .gib(100)], vms: 10, volumes: 0)
        let refusal = try #require(dc.decideQuotaChange(opd: "dinkes", newQuota: lower).failure)
        #expect(refusal.code == "quota_below_use")
        #expect(refusal.description
            == "lowering dinkes's vCPU quota to 10 is below its use of 14; lowering dinkes's memory quota to 8GiB is below its use of 12GiB")
        guard case .quotaBelowUse(let shortfalls) = refusal else {
            Issue.record("expected quotaBelowUse")
            return
        }
        #expect(shortfalls.map(\.dimension) == [.vcpu, .memory])
        #expect(shortfalls[0].asked == 14 && shortfalls[0].left == 10)
        #expect(dc.decideQuotaChange(opd: "dinkes", newQuota: lower, force: true).success != nil)
        // A quota without the pool in use is below use too (an absent pool is zero).
        let noPool = ResourceVector(vcpu: 20, memory: .gib(20), vms: 5)
        #expect(dc.decideQuotaChange(opd: "dinkes", newQuota: noPool).failure?.description
            == "lowering dinkes's storage quota in pool ssd to 0B is below its use of 40GiB")
        // Raising is fine; negatives are refused even when forced.
        #expect(dc.decideQuotaChange(opd: "dinkes", newQuota: generous).success != nil)
        let negative = ResourceVector(vcpu: -1)
        #expect(dc.decideQuotaChange(opd: "dinkes", newQuota: negative, force: true).failure?.code == "invalid_amount")
        #expect(dc.decideQuotaChange(opd: "dinkes", newQuota: ResourceVector(storage: ["ssd": .gib(-1)]), force: true).failure?.code
            == "invalid_amount")
        #expect(dc.decideQuotaChange(opd: "bappeda", newQuota: generous).failure?.code == "not_found")
    }

    @Test func volumeResize() throws {
        let quota = ResourceVector(vcpu: 10, memory: .gib(32), storage: ["ssd": .gib(500)], vms: 3, volumes: 3)
        var dc = makeDC(
            hosts: [makeHost("node-01", pools: ["ssd": .gib(300)])], opds: [makeOPD("dinkes", quota: quota)],
            volumes: [makeVolume("vol-1", size: .gib(100), host: "node-01")])
        #expect(dc.decideVolumeResize(id: "vol-1", newSize: .gib(150)).success != nil)
        #expect(dc.decideVolumeResize(id: "vol-1", newSize: .gib(100)).success != nil)
        let shrink = try #require(dc.decideVolumeResize(id: "vol-1", newSize: .gib(50)).failure)
        #expect(shrink.code == "invalid_amount")
        #expect(shrink.description == "volume vol-1 is 100GiB; shrinking it to 50GiB is refused, volumes only grow")
        let host = try #require(dc.decideVolumeResize(id: "vol-1", newSize: .gib(350)).failure)
        #expect(host.code == "no_host_fits")
        #expect(host.description
            == "cannot grow this volume: host node-01 has 200GiB of storage in pool ssd left, the volume asks for 250GiB")
        dc.upsertHost(makeHost("node-01", pools: ["ssd": .tib(2)]))
        let quotaRefusal = try #require(dc.decideVolumeResize(id: "vol-1", newSize: .gib(700)).failure)
        #expect(quotaRefusal.description == "quota: dinkes has 400GiB of storage in pool ssd left, the request asks for 600GiB")
        #expect(dc.decideVolumeResize(id: "vol-9", newSize: .gib(700)).failure?.code == "not_found")
        #expect(dc.decideVolumeResize(id: "vol-1", newSize: .zero).failure?.code == "invalid_amount")
        var vol = try #require(dc.volume("vol-1"))
        vol.state = .deleting
        dc.upsertVolume(vol)
        #expect(dc.decideVolumeResize(id: "vol-1", newSize: .gib(150)).failure?.code == "conflict")
    }

    @Test func capacityReport() throws {
        let dc = makeDC(
            hosts: [
                makeHost("node-02", cpus: 8, memory: .gib(32), pools: ["ssd": .gib(500), "hdd": .tib(2)], cordoned: true),
                makeHost("node-01", cpus: 16, memory: .gib(64), pools: ["ssd": .tib(1)]),
            ],
            vms: [makeVM("vm-1", spec: vmSpec("a", vcpu: 4, memory: .gib(8), disk: .gib(100)), host: "node-01")],
            volumes: [makeVolume("vol-1", size: .gib(50), pool: "hdd", host: "node-02")])
        let report = dc.capacity()
        #expect(report.hosts.map(\.host) == ["node-01", "node-02"])
        let n1 = report.hosts[0]
        #expect(n1.state == .ready)
        #expect(n1.allocated == ResourceVector(vcpu: 4, memory: .gib(8), storage: ["ssd": .gib(100)], vms: 1))
        #expect(n1.free == ResourceVector(vcpu: 12, memory: .gib(56), storage: ["ssd": .gib(924)]))
        #expect(report.hosts[1].state == .cordoned)
        #expect(report.hosts[1].allocated == ResourceVector(storage: ["hdd": .gib(50)], volumes: 1))
        #expect(report.total.allocatable.vcpu == 24)
        #expect(report.total.free.memory == .gib(88))
        #expect(report.pools.map(\.pool) == ["hdd", "ssd"])
        #expect(report.pools[0] == CapacityReport.PoolLine(pool: "hdd", hosts: 1, allocatable: .tib(2), allocated: .gib(50), free: .gib(1998)))
        #expect(report.pools[1] == CapacityReport.PoolLine(pool: "ssd", hosts: 2, allocatable: .gib(1524), allocated: .gib(100), free: .gib(1424)))
        let data = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(CapacityReport.self, from: data) == report)
    }
}

@Suite struct DataCenterIndexTests {
    /// New hosts are inserted in the index at their place in id order instead of rebuilding it.
    /// Declared one by one in a shuffled order, across word boundaries (64, 128 hosts), with
    /// labels, images and apps already indexed, the index must stay equal to one rebuilt from
    /// scratch after every insertion, and ties still go to the smallest id.
    @Test(arguments: [1, 7, 99] as [UInt64])
    func newHostsAreInsertedLikeARebuild(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var dc = makeDC(hosts: [makeHost("node-065", labels: ["zone": "a"])])
        dc.upsertVM(makeVM("vm-web", spec: vmSpec("web", app: "simpus"), host: "node-065", state: .running))
        // A VM may name a host before the host is declared: its app must be indexed on arrival.
        dc.upsertVM(makeVM("vm-early", spec: vmSpec("early", app: "sikda"), host: "node-100", state: .scheduled))
        let apps: [AppKey: [HostID: Int]] = [
            AppKey(opd: "dinkes", app: "simpus"): ["node-065": 1], AppKey(opd: "dinkes", app: "sikda"): ["node-100": 1],
        ]
        var order = (0...140).filter { $0 != 65 }
        order.shuffle(using: &rng)
        for i in order {
            var host = makeHost(HostID(rawValue: "node-" + String(1000 + i).dropFirst()), labels: ["zone": i % 2 == 0 ? "a" : "b"])
            if i % 3 == 0 { host.images = ["debian-12"] }
            dc.upsertHost(host)
            let fresh = PlacementIndex(hosts: dc.hosts.values, allocated: dc.allocated(on:), apps: apps)
            let diffs = dc.index.differences(from: fresh)
            #expect(diffs.isEmpty, "seed \(seed), after inserting \(host.id): \(diffs)")
        }
        #expect(dc.index.ids == (0...140).map { HostID(rawValue: "node-" + String(1000 + $0).dropFirst()) })
        // Equal empty hosts: the tie goes to the smallest id; the app already on node-065 keeps
        // a second VM of it away, and the VM that named node-100 early does the same there.
        #expect(dc.placeVM(vmSpec("web-2", app: "simpus"), opd: "dinkes", strategy: .spread).success?.host == "node-000")
        let zoneA = vmSpec("web-3", app: "simpus", required: ["zone": "a"], forbidden: [:])
        #expect(dc.placeVM(zoneA, opd: "dinkes", strategy: .spread).success?.host == "node-000")
        #expect(dc.placeVM(vmSpec("early-2", app: "sikda"), opd: "dinkes", strategy: .spread).success?.host == "node-000")
    }

    @Test func insertingABitShiftsTheRestAcrossWords() {
        var bits: [UInt64] = [1 << 63 | 0b1011, 1 << 62 | 1, 0]
        PlacementIndex.insertZeroBit(&bits, at: 1)
        #expect(bits == [0b10101, 1 << 63 | 0b11, 0])
        PlacementIndex.insertZeroBit(&bits, at: 64)
        #expect(bits == [0b10101, 0b110, 1])
        PlacementIndex.insertZeroBit(&bits, at: 0)
        #expect(bits == [0b101010, 0b1100, 2])
    }

    @Test func bumpingTheDesiredVersionLeavesPlacementAlone() throws {
        var dc = makeDC(hosts: [makeHost("node-01"), makeHost("node-02")])
        let before = dc.index
        #expect(dc.bumpDesiredVersion(of: "node-02") == 2)
        #expect(dc.bumpDesiredVersion(of: "node-02") == 3)
        #expect(dc.hosts["node-02"]?.desiredVersion == 3)
        #expect(dc.hosts["node-01"]?.desiredVersion == 1)
        #expect(dc.bumpDesiredVersion(of: "node-99") == nil)
        #expect(dc.index.differences(from: before).isEmpty)
    }

    @Test func deleteReturnsResourcesExactlyOnce() throws {
        let spec = vmSpec("a", vcpu: 4, memory: .gib(8), disk: .gib(100))
        var dc = makeDC(hosts: [makeHost("node-01")])
        let full = ResourceVector(vcpu: 4, memory: .gib(8), storage: ["ssd": .gib(100)], vms: 1)

        var vm = makeVM("vm-1", spec: spec, host: nil, state: .pending)
        dc.upsertVM(vm)
        #expect(dc.usage(of: "dinkes") == full)
        #expect(dc.allocated(on: "node-01") == .zero)

        for state in [VMState.scheduled, .running, .stopped, .running] {
            vm.host = "node-01"
            vm.state = state
            dc.upsertVM(vm)
            dc.upsertVM(vm)  // idempotent
            #expect(dc.usage(of: "dinkes") == full)
            #expect(dc.allocated(on: "node-01") == full)
        }
        vm.state = .deleting
        dc.upsertVM(vm)
        #expect(dc.usage(of: "dinkes") == .zero, "quota returns when deletion starts")
        #expect(dc.allocated(on: "node-01") == full, "capacity stays until the agent confirms")
        vm.state = .deleted
        dc.upsertVM(vm)
        dc.upsertVM(vm)
        #expect(dc.usage(of: "dinkes") == .zero)
        #expect(dc.allocated(on: "node-01") == .zero)
        try dc.removeVM("vm-1")
        #expect(dc.vm("vm-1") == nil)
        #expect(dc.usage(of: "dinkes") == .zero)
        #expect(dc.allocated(on: "node-01") == .zero)
        #expect(try dc.removeVM("vm-1") == nil)

        var vol = makeVolume("vol-1", size: .gib(10), host: nil, state: .pending)
        dc.upsertVolume(vol)
        #expect(dc.usage(of: "dinkes") == ResourceVector(storage: ["ssd": .gib(10)], volumes: 1))
        vol.host = "node-01"
        vol.state = .ready
        dc.upsertVolume(vol)
        #expect(dc.allocated(on: "node-01") == ResourceVector(storage: ["ssd": .gib(10)], volumes: 1))
        vol.state = .deleting
        dc.upsertVolume(vol)
        #expect(dc.usage(of: "dinkes") == .zero)
        #expect(dc.allocated(on: "node-01") == ResourceVector(storage: ["ssd": .gib(10)], volumes: 1))
        vol.state = .deleted
        dc.upsertVolume(vol)
        #expect(dc.allocated(on: "node-01") == .zero)
        try dc.removeVolume("vol-1")
        #expect(dc.volume("vol-1") == nil)
    }

    @Test func movingAVMMovesItsAllocation() {
        let spec = vmSpec("a", vcpu: 4, memory: .gib(8), disk: .gib(100))
        var dc = makeDC(hosts: [makeHost("node-01"), makeHost("node-02")])
        var vm = makeVM("vm-1", spec: spec, host: "node-01")
        dc.upsertVM(vm)
        vm.host = "node-02"
        vm.spec.vcpu = 6
        dc.upsertVM(vm)
        #expect(dc.allocated(on: "node-01") == .zero)
        #expect(dc.allocated(on: "node-02").vcpu == 6)
        #expect(dc.usage(of: "dinkes").vcpu == 6)
    }

    @Test func removeRefusesWhatIsStillHeld() throws {
        var dc = makeDC(hosts: [makeHost("node-01"), makeHost("node-02")])
        var vm = makeVM("vm-1", spec: vmSpec(), host: "node-01", state: .deleting)
        dc.upsertVM(vm)
        dc.upsertVolume(makeVolume("vol-1", host: "node-01", state: .scheduled))
        #expect {
            try dc.removeHost("node-01")
        } throws: { error in
            (error as? CoreError)?.code == .illegalTransition
                && (error as? CoreError)?.message.hasPrefix("host node-01 still holds 1 VM and 1 volume") == true
        }
        #expect(throws: CoreError.self) { try dc.removeVM("vm-1") }
        #expect(throws: CoreError.self) { try dc.removeVolume("vol-1") }
        vm.state = .deleted
        dc.upsertVM(vm)
        var vol = try #require(dc.volume("vol-1"))
        vol.state = .deleted
        dc.upsertVolume(vol)
        #expect(try dc.removeHost("node-01")?.id == "node-01")
        #expect(dc.host("node-01") == nil)
        #expect(dc.placeVM(vmSpec(), opd: "dinkes").success?.host == "node-02")
        #expect(try dc.removeHost("node-01") == nil)
    }
}
