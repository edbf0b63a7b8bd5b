#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore

@Suite struct PlacementTests {
    /// node-01 half full, node-02 empty, both 16 vCPU / 64GiB / 1TiB ssd.
    func twoHosts() -> DataCenter {
        let busy = makeVM("vm-busy", spec: vmSpec("busy", vcpu: 8, memory: .gib(32), disk: .gib(512)), host: "node-01")
        return makeDC(hosts: [makeHost("node-01"), makeHost("node-02")], vms: [busy])
    }

    @Test func binpackAndSpreadPickDifferentHosts() throws {
        let dc = twoHosts()
        let binpack = try #require(dc.placeVM(vmSpec(), opd: "dinkes", strategy: .binpack).success)
        let spread = try #require(dc.placeVM(vmSpec(), opd: "dinkes", strategy: .spread).success)
        #expect(binpack.host == "node-01")
        #expect(spread.host == "node-02")
        #expect(binpack.candidates == 2 && spread.candidates == 2)
        // binpack score: mean allocated fraction after placement on node-01.
        let expected = ((10.0 / 16) + (36.0 / 64) + (532.0 / 1024)) / 3
        #expect(abs(binpack.score - expected) < 1e-12)
        // spread score: mean free fraction after placement on node-02.
        let expectedSpread = ((14.0 / 16) + (60.0 / 64) + (1004.0 / 1024)) / 3
        #expect(abs(spread.score - expectedSpread) < 1e-12)
        #expect(PlacementStrategy.default == .binpack)
    }

    @Test(arguments: PlacementStrategy.allCases)
    func tiesGoToTheSmallestHostID(strategy: PlacementStrategy) throws {
        let dc = makeDC(hosts: [makeHost("node-03"), makeHost("node-01"), makeHost("node-02")])
        #expect(try #require(dc.placeVM(vmSpec(), opd: "dinkes", strategy: strategy).success).host == "node-01")
        let vol = VolumeSpec(name: "data", size: .gib(10), pool: "ssd")
        #expect(try #require(dc.placeVolume(vol, strategy: strategy).success).host == "node-01")
    }

    @Test func requiredAndForbiddenLabels() throws {
        let dc = makeDC(hosts: [
            makeHost("node-01", labels: ["zone": "a", "disk": "nvme"]),
            makeHost("node-02", labels: ["zone": "b"]),
        ])
        #expect(dc.placeVM(vmSpec(required: ["zone": "b"]), opd: "dinkes").success?.host == "node-02")
        #expect(dc.placeVM(vmSpec(required: ["zone": "a", "disk": "nvme"]), opd: "dinkes").success?.host == "node-01")
        #expect(dc.placeVM(vmSpec(forbidden: ["zone": "a"]), opd: "dinkes").success?.host == "node-02")
        #expect(dc.placeVM(vmSpec(forbidden: ["zone": "c"]), opd: "dinkes").success?.candidates == 2)

        let missing = try #require(dc.placeVM(vmSpec(required: ["zone": "c"]), opd: "dinkes").failure)
        #expect(missing.excluded.map(\.reason) == [.missingLabel(key: "zone", value: "c"), .missingLabel(key: "zone", value: "c")])
        #expect(missing.description == "no host can take this VM: 2 hosts lack label zone=c")

        let both = try #require(dc.placeVM(vmSpec(required: ["zone": "a"], forbidden: ["disk": "nvme"]), opd: "dinkes").failure)
        #expect(both.excluded == [
            HostExclusion(host: "node-01", reason: .forbiddenLabel(key: "disk", value: "nvme")),
            HostExclusion(host: "node-02", reason: .missingLabel(key: "zone", value: "a")),
        ])
        #expect(both.description == "no host can take this VM: 1 host has forbidden label disk=nvme, 1 host lacks label zone=a"
            || both.description == "no host can take this VM: 1 host lacks label zone=a, 1 host has forbidden label disk=nvme")
    }

    @Test func antiAffinity() throws {
        var dc = makeDC(hosts: [makeHost("node-01"), makeHost("node-02")])
        let first = try #require(dc.decideVM(vmSpec("simpus-1", app: "simpus"), opd: "dinkes").success)
        dc.upsertVM(makeVM("vm-1", spec: vmSpec("simpus-1", app: "simpus"), host: first.host, state: .scheduled))
        let second = try #require(dc.decideVM(vmSpec("simpus-2", app: "simpus"), opd: "dinkes").success)
        #expect(second.host != first.host)
        dc.upsertVM(makeVM("vm-2", spec: vmSpec("simpus-2", app: "simpus"), host: second.host, state: .running))

        let refusal = try #require(dc.decideVM(vmSpec("simpus-3", app: "simpus"), opd: "dinkes").failure)
        #expect(refusal.code == "no_host_fits")
        guard case .placement(let failure) = refusal else {
            Issue.record("expected a placement refusal, got \(refusal)")
            return
        }
        #expect(failure.excluded.allSatisfy { $0.reason == .antiAffinity(app: "simpus", opd: "dinkes") })
        #expect(failure.description == "no host can take this VM: 2 hosts already run app simpus of dinkes")

        // Another app, or the same app of another OPD, is not affected.
        #expect(dc.placeVM(vmSpec("x", app: "other"), opd: "dinkes").success != nil)
        #expect(dc.placeVM(vmSpec("x", app: "simpus"), opd: "disdukcapil").success != nil)

        // Once a VM is deleted (confirmed), its host is free for the app again.
        var vm1 = try #require(dc.vm("vm-1"))
        vm1.state = .deleting
        dc.upsertVM(vm1)
        #expect(dc.placeVM(vmSpec("simpus-3", app: "simpus"), opd: "dinkes").failure != nil)
        vm1.state = .deleted
        dc.upsertVM(vm1)
        #expect(dc.placeVM(vmSpec("simpus-3", app: "simpus"), opd: "dinkes").success?.host == first.host)
    }

    @Test func cpuOvercommitLetsFourTimesTheVCPUsMemoryDoesNot() throws {
        let host = makeHost("node-01", cpus: 4, memory: .gib(16), overcommit: Overcommit(cpu: 4.0, memory: 1.0, storage: 1.0))
        #expect(host.allocatable.vcpu == 16)
        #expect(host.allocatable.memory == .gib(16))
        var dc = makeDC(hosts: [host])
        for i in 0..<4 {
            let spec = vmSpec("vm-\(i)", vcpu: 4, memory: .gib(1), disk: .gib(1))
            let d = try #require(dc.placeVM(spec, opd: "dinkes").success)
            dc.upsertVM(makeVM("vm-\(i)", spec: spec, host: d.host))
        }
        let fifth = try #require(dc.placeVM(vmSpec("vm-4", vcpu: 4, memory: .gib(1), disk: .gib(1)), opd: "dinkes").failure)
        #expect(fifth.excluded.first?.reason
            == .insufficient(Shortfall(scope: .host("node-01"), dimension: .vcpu, asked: 4, left: 0, subject: .vm)))

        var dc2 = makeDC(hosts: [host])
        for i in 0..<2 {
            let spec = vmSpec("vm-\(i)", vcpu: 1, memory: .gib(8), disk: .gib(1))
            let d = try #require(dc2.placeVM(spec, opd: "dinkes").success)
            dc2.upsertVM(makeVM("vm-\(i)", spec: spec, host: d.host))
        }
        let third = try #require(dc2.placeVM(vmSpec("vm-2", vcpu: 1, memory: .gib(8), disk: .gib(1)), opd: "dinkes").failure)
        #expect(third.description == "no host can take this VM: 1 host lacks memory (most free: none, asked 8GiB)")
    }

    @Test func reservedReducesAllocatable() throws {
        let host = makeHost(
            "node-01", cpus: 16, memory: .gib(64), pools: ["ssd": .gib(100)],
            reserved: HostCapacity(cpus: 4, memory: .gib(8), pools: ["ssd": .gib(10)]))
        #expect(host.allocatable == ResourceVector(vcpu: 12, memory: .gib(56), storage: ["ssd": .gib(90)]))
        let dc = makeDC(hosts: [host])
        #expect(dc.placeVM(vmSpec(vcpu: 12, memory: .gib(56), disk: .gib(90)), opd: "dinkes").success != nil)
        let cpu = try #require(dc.placeVM(vmSpec(vcpu: 13), opd: "dinkes").failure)
        #expect(cpu.description == "no host can take this VM: 1 host lacks vCPU (most free: 12 vCPU, asked 13 vCPU)")
        let mem = try #require(dc.placeVM(vmSpec(memory: .gib(57)), opd: "dinkes").failure)
        #expect(mem.excluded.first?.description == "host node-01 has 56GiB of memory left, the VM asks for 57GiB")
        let disk = try #require(dc.placeVM(vmSpec(disk: .gib(91)), opd: "dinkes").failure)
        #expect(disk.description == "no host can take this VM: 1 host lacks storage in pool ssd (most free: 90GiB, asked 91GiB)")
    }

    @Test func cordonedAndUnreachableExcludedEnrolledIncluded() throws {
        let dc = makeDC(hosts: [
            makeHost("node-01", cordoned: true),
            makeHost("node-02", connectivity: .unreachable),
            makeHost("node-03", connectivity: .enrolled),
        ])
        let d = try #require(dc.placeVM(vmSpec(), opd: "dinkes", explain: true).success)
        #expect(d.host == "node-03")
        #expect(d.candidates == 1)
        #expect(d.excluded == [
            HostExclusion(host: "node-01", reason: .cordoned), HostExclusion(host: "node-02", reason: .unreachable),
        ])
        #expect(dc.placeVM(vmSpec(), opd: "dinkes").success?.excluded == [])

        let onlyBad = makeDC(hosts: [makeHost("node-01", cordoned: true), makeHost("node-02", connectivity: .unreachable)])
        let f = try #require(onlyBad.placeVM(vmSpec(), opd: "dinkes").failure)
        #expect(f.description == "no host can take this VM: 1 host is cordoned, 1 host is unreachable")
    }

    @Test func failureSummaryNamesTheDimensionWithNumbers() throws {
        // The example of the brief: two hosts short of memory, one cordoned, one running the app.
        let simpus = vmSpec("simpus-1", vcpu: 1, memory: .gib(1), disk: .gib(1), app: "simpus")
        let dc = makeDC(
            hosts: [
                makeHost("node-01", memory: .gib(6)),
                makeHost("node-02", memory: .gib(4)),
                makeHost("node-03", cordoned: true),
                makeHost("node-04"),
            ],
            vms: [makeVM("vm-1", spec: simpus, host: "node-04")])
        let f = try #require(dc.placeVM(vmSpec("simpus-2", memory: .gib(8), app: "simpus"), opd: "dinkes").failure)
        #expect(
            f.description
                == "no host can take this VM: 2 hosts lack memory (most free: 6GiB, asked 8GiB), 1 host is cordoned, 1 host already runs app simpus of dinkes")
        #expect(f.excluded.map(\.host) == ["node-01", "node-02", "node-03", "node-04"])
        #expect(f.excluded.map(\.reason.code) == ["insufficient", "insufficient", "cordoned", "anti_affinity"])
        let data = try JSONEncoder().encode(f)
        #expect(try JSONDecoder().decode(PlacementFailure.self, from: data) == f)
    }

    @Test func lacksPoolAndNoHosts() throws {
        let dc = makeDC(hosts: [makeHost("node-01", pools: ["hdd": .tib(1)]), makeHost("node-02")])
        #expect(dc.placeVM(vmSpec(pool: "hdd"), opd: "dinkes").success?.host == "node-01")
        let f = try #require(dc.placeVM(vmSpec(pool: "nvme"), opd: "dinkes").failure)
        #expect(f.description == "no host can take this VM: 2 hosts lack pool nvme")
        let empty = DataCenter()
        #expect(empty.placeVM(vmSpec(), opd: "dinkes").failure?.description == "no host can take this VM: the data center has no hosts")
        #expect(empty.placeVolume(VolumeSpec(name: "v", size: .gib(1), pool: "ssd")).failure?.description
            == "no host can take this volume: the data center has no hosts")
    }

    @Test func volumesUsePoolStorageOnly() throws {
        // node-01 has no vCPU or memory left but plenty of disk; node-02 has less disk.
        let full = makeVM("vm-full", spec: vmSpec("full", vcpu: 16, memory: .gib(64), disk: .gib(10)), host: "node-01")
        let dc = makeDC(
            hosts: [makeHost("node-01", pools: ["ssd": .tib(2)]), makeHost("node-02", pools: ["ssd": .gib(500)])], vms: [full])
        let vol = VolumeSpec(name: "data", size: .gib(400), pool: "ssd")
        #expect(dc.placeVolume(vol, strategy: .binpack).success?.host == "node-02")
        #expect(dc.placeVolume(vol, strategy: .spread).success?.host == "node-01")
        let big = try #require(dc.placeVolume(VolumeSpec(name: "big", size: .tib(3), pool: "ssd")).failure)
        #expect(big.description == "no host can take this volume: 2 hosts lack storage in pool ssd (most free: 2038GiB, asked 3TiB)")
        #expect(big.excluded[1].description == "host node-02 has 500GiB of storage in pool ssd left, the volume asks for 3TiB")
    }

    @Test func hostUpdatesReachPlacement() throws {
        var dc = makeDC(hosts: [makeHost("node-01"), makeHost("node-02")])
        var h1 = try #require(dc.host("node-01"))
        try h1.apply(.cordon)
        dc.upsertHost(h1)
        #expect(dc.placeVM(vmSpec(), opd: "dinkes", strategy: .binpack).success?.host == "node-02")
        var h2 = try #require(dc.host("node-02"))
        h2.labels = ["zone": "b"]
        dc.upsertHost(h2)
        #expect(dc.placeVM(vmSpec(required: ["zone": "b"]), opd: "dinkes").success?.host == "node-02")
        h2.labels = [:]
        dc.upsertHost(h2)
        #expect(dc.placeVM(vmSpec(required: ["zone": "b"]), opd: "dinkes").failure != nil)
        dc.upsertHost(makeHost("node-00", pools: ["ssd": .tib(1), "hdd": .tib(1)]))
        #expect(dc.placeVM(vmSpec(pool: "hdd"), opd: "dinkes").success?.host == "node-00")
        #expect(dc.index.differences(from: PlacementIndex(hosts: dc.hosts.values, allocated: dc.allocated(on:), apps: [:])).isEmpty)
        #expect(dc.pools == ["hdd", "ssd"])
    }
}

@Suite struct ImagePlacementTests {
    func hosts() -> [Host] {
        var a = makeHost("node-01")
        a.images = ["debian-12"]
        var b = makeHost("node-02")
        b.images = ["debian-12", "ubuntu-24.04"]
        let c = makeHost("node-03")  // its agent never reported images
        return [a, b, c]
    }

    func spec(_ image: String?) -> VMSpec {
        var s = vmSpec()
        s.image = image
        return s
    }

    @Test func aVMNamingAnImageGoesOnlyToHostsThatReportedIt() throws {
        let dc = makeDC(hosts: hosts())
        let ubuntu = try #require(dc.placeVM(spec("ubuntu-24.04"), opd: "dinkes", explain: true).success)
        #expect(ubuntu.host == "node-02")
        #expect(ubuntu.candidates == 1)
        #expect(ubuntu.excluded == [
            HostExclusion(host: "node-01", reason: .lacksImage("ubuntu-24.04")),
            HostExclusion(host: "node-03", reason: .imagesUnknown("ubuntu-24.04")),
        ])
        #expect(try #require(dc.placeVM(spec("debian-12"), opd: "dinkes").success).candidates == 2)
        // A blank disk goes anywhere, including the host that has not reported images.
        #expect(try #require(dc.placeVM(spec(nil), opd: "dinkes").success).candidates == 3)
    }

    @Test func anImageNoHostHasIsRefusedWithTheCatalogue() throws {
        let dc = makeDC(hosts: hosts())
        let refusal = try #require(dc.decideVM(spec("centos-7"), opd: "dinkes").failure)
        #expect(refusal.code == "unknown_image")
        #expect(refusal.description == "image centos-7 exists on no host; images: debian-12, ubuntu-24.04")
        let none = makeDC(hosts: [makeHost("node-01")])
        #expect(none.decideVM(spec("debian-12"), opd: "dinkes").failure?.description
            == "image debian-12 exists on no host; no host has reported any image yet")
    }

    @Test func reportedImagesUpdateTheIndexInPlace() throws {
        var dc = makeDC(hosts: hosts())
        var c = try #require(dc.hosts["node-03"])
        c.images = ["centos-7"]
        dc.upsertHost(c)
        #expect(dc.decideVM(spec("centos-7"), opd: "dinkes").success?.host == "node-03")
        var b = try #require(dc.hosts["node-02"])
        b.images = []
        dc.upsertHost(b)
        let failure = try #require(dc.decideVM(spec("ubuntu-24.04"), opd: "dinkes").failure)
        #expect(failure.code == "unknown_image")
        let fresh = makeDC(hosts: Array(dc.hosts.values))
        #expect(dc.index.differences(from: fresh.index).isEmpty)
    }
}
