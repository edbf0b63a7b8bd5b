#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore


/// Recounts usage and allocation the slow way, from the counting rule.
func recount(_ dc: DataCenter) -> (usage: [OPDID: ResourceVector], allocated: [HostID: ResourceVector]) {
    var usage: [OPDID: ResourceVector] = [:]
    var allocated: [HostID: ResourceVector] = [:]
    for vm in dc.vms.values {
        let counts: Set<VMState> = [.pending, .scheduled, .running, .stopped]
        let holds: Set<VMState> = [.scheduled, .running, .stopped, .deleting]
        if counts.contains(vm.state) { usage[vm.opd, default: .zero] += vm.spec.resources }
        if let h = vm.host, holds.contains(vm.state) { allocated[h, default: .zero] += vm.spec.resources }
    }
    for v in dc.volumes.values {
        let counts: Set<VolumeState> = [.pending, .scheduled, .ready]
        let holds: Set<VolumeState> = [.scheduled, .ready, .deleting]
        if counts.contains(v.state) { usage[v.opd, default: .zero] += v.spec.resources }
        if let h = v.host, holds.contains(v.state) { allocated[h, default: .zero] += v.spec.resources }
    }
    return (usage.mapValues(\.normalized), allocated.mapValues(\.normalized))
}

/// Placement done the obvious way, for comparison with the indexed one: the best free-fraction
/// sum among hosts passing every filter, or nil.
func referencePlacement(_ dc: DataCenter, _ spec: VMSpec, opd: OPDID, strategy: PlacementStrategy) -> (best: Double, candidates: [HostID: Double])? {
    let allocated = recount(dc).allocated
    var candidates: [HostID: Double] = [:]
    for host in dc.hosts.values {
        guard !host.cordoned, host.connectivity != .unreachable else { continue }
        let cap = host.allocatable
        guard let poolCap = cap.storage[spec.pool] else { continue }
        guard spec.requiredLabels.allSatisfy({ host.labels[$0.key] == $0.value }) else { continue }
        guard !spec.forbiddenLabels.contains(where: { host.labels[$0.key] == $0.value }) else { continue }
        if let app = spec.app {
            let clash = dc.vms.values.contains {
                $0.opd == opd && $0.spec.app == app && $0.host == host.id && $0.state.holdsHostCapacity
            }
            if clash { continue }
        }
        let used = allocated[host.id] ?? .zero
        let fv = cap.vcpu - used.vcpu - spec.vcpu
        let fm = cap.memory.bytes - used.memory.bytes - spec.memory.bytes
        let fd = poolCap.bytes - used.storage(spec.pool).bytes - spec.disk.bytes
        guard fv >= 0, fm >= 0, fd >= 0 else { continue }
        func frac(_ free: Int64, _ total: Int64) -> Double { total > 0 ? Double(free) / Double(total) : 0 }
        candidates[host.id] = frac(Int64(fv), Int64(cap.vcpu)) + frac(fm, cap.memory.bytes) + frac(fd, poolCap.bytes)
    }
    guard !candidates.isEmpty else { return nil }
    let best = strategy == .binpack ? candidates.values.min()! : candidates.values.max()!
    return (best, candidates)
}

@Suite struct DataCenterPropertyTests {
    static let hostIDs: [HostID] = (1...6).map { HostID(rawValue: "node-0\($0)") }
    static let opdIDs: [OPDID] = ["dinkes", "disdukcapil", "bappeda"]
    static let pools: [PoolName] = ["ssd", "hdd"]
    static let apps = ["simpus", "sik", "web"]

    func randomHost(_ id: HostID, _ rng: inout SplitMix64) -> Host {
        var pools: [PoolName: ByteSize] = ["ssd": .gib(Int64.random(in: 200...2000, using: &rng))]
        if Bool.random(using: &rng) { pools["hdd"] = .tib(Int64.random(in: 1...8, using: &rng)) }
        let connectivity = [HostConnectivity.enrolled, .ready, .ready, .ready, .unreachable].randomElement(using: &rng)!
        var labels: [String: String] = [:]
        if Bool.random(using: &rng) { labels["zone"] = ["a", "b"].randomElement(using: &rng)! }
        if Int.random(in: 0..<4, using: &rng) == 0 { labels["gpu"] = "yes" }
        return makeHost(
            id, cpus: Int.random(in: 4...64, using: &rng), memory: .gib(Int64.random(in: 16...256, using: &rng)), pools: pools,
            reserved: HostCapacity(cpus: Int.random(in: 0...2, using: &rng), memory: .gib(Int64.random(in: 0...4, using: &rng))),
            overcommit: Overcommit(cpu: [1.0, 2.0, 4.0].randomElement(using: &rng)!, memory: 1, storage: 1), labels: labels,
            connectivity: connectivity, cordoned: Int.random(in: 0..<6, using: &rng) == 0)
    }

    func randomSpec(_ rng: inout SplitMix64) -> VMSpec {
        vmSpec(
            "vm-\(Int.random(in: 0..<30, using: &rng))", vcpu: Int.random(in: 1...16, using: &rng),
            memory: .gib(Int64.random(in: 1...32, using: &rng)), disk: .gib(Int64.random(in: 10...300, using: &rng)),
            pool: Self.pools.randomElement(using: &rng)!, app: Bool.random(using: &rng) ? Self.apps.randomElement(using: &rng)! : nil,
            required: Int.random(in: 0..<4, using: &rng) == 0 ? ["zone": "a"] : [:],
            forbidden: Int.random(in: 0..<4, using: &rng) == 0 ? ["gpu": "yes"] : [:])
    }

    func checkIndexes(_ dc: DataCenter, step: Int, seed: UInt64) {
        let expected = recount(dc)
        for opd in Set(Self.opdIDs).union(expected.usage.keys) {
            #expect(dc.usage(of: opd) == (expected.usage[opd] ?? .zero), "seed \(seed) step \(step) usage of \(opd)")
        }
        for host in Set(Self.hostIDs).union(expected.allocated.keys) {
            #expect(dc.allocated(on: host) == (expected.allocated[host] ?? .zero), "seed \(seed) step \(step) allocation on \(host)")
        }
        var apps: [AppKey: [HostID: Int]] = [:]
        for vm in dc.vms.values where vm.state.holdsHostCapacity {
            if let app = vm.spec.app, let host = vm.host { apps[AppKey(opd: vm.opd, app: app), default: [:]][host, default: 0] += 1 }
        }
        let fresh = PlacementIndex(hosts: dc.hosts.values, allocated: { expected.allocated[$0] ?? .zero }, apps: apps)
        let diffs = dc.index.differences(from: fresh)
        #expect(diffs.isEmpty, "seed \(seed) step \(step): \(diffs)")
    }

    @Test(arguments: [1, 2, 3, 42, 2024] as [UInt64])
    func indexesMatchARecountAfterRandomChanges(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var dc = DataCenter(
            hosts: Self.hostIDs.prefix(3).map { randomHost($0, &rng) }, opds: Self.opdIDs.map { makeOPD($0) }, vms: [], volumes: [])
        var placed = 0
        var refused = 0
        for step in 0..<400 {
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<40:  // a VM appears or changes state, host, spec
                let id = VMID(rawValue: "vm-\(Int.random(in: 0..<40, using: &rng))")
                var vm = dc.vm(id) ?? makeVM(
                    id.rawValue, opd: Self.opdIDs.randomElement(using: &rng)!, spec: randomSpec(&rng), host: nil, state: .pending)
                vm.state = VMState.allCases.randomElement(using: &rng)!
                if Int.random(in: 0..<3, using: &rng) == 0 { vm.host = Bool.random(using: &rng) ? Self.hostIDs.randomElement(using: &rng)! : nil }
                if Int.random(in: 0..<8, using: &rng) == 0 { vm.spec = randomSpec(&rng) }
                if Int.random(in: 0..<10, using: &rng) == 0 { vm.opd = Self.opdIDs.randomElement(using: &rng)! }
                dc.upsertVM(vm)
            case 40..<65:  // a volume appears or changes
                let id = VolumeID(rawValue: "vol-\(Int.random(in: 0..<25, using: &rng))")
                var v = dc.volume(id) ?? makeVolume(
                    id.rawValue, opd: Self.opdIDs.randomElement(using: &rng)!, size: .gib(Int64.random(in: 1...500, using: &rng)),
                    pool: Self.pools.randomElement(using: &rng)!, host: nil, state: .pending)
                v.state = VolumeState.allCases.randomElement(using: &rng)!
                if Int.random(in: 0..<3, using: &rng) == 0 { v.host = Self.hostIDs.randomElement(using: &rng)! }
                if Int.random(in: 0..<6, using: &rng) == 0 { v.spec.size = v.spec.size + .gib(10) }
                dc.upsertVolume(v)
            case 65..<75:  // forget a deleted one
                if let vm = dc.vms.values.sorted(by: { $0.id < $1.id }).first(where: { $0.state == .deleted }) { try dc.removeVM(vm.id) }
                if let v = dc.volumes.values.sorted(by: { $0.id < $1.id }).first(where: { $0.state == .deleted }) {
                    try dc.removeVolume(v.id)
                }
            case 75..<90:  // a host changes (report, cordon, labels, capacity) or a new one appears
                let id = Self.hostIDs.randomElement(using: &rng)!
                if var h = dc.host(id), Bool.random(using: &rng) {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: h.cordoned.toggle()
                    case 1: h.connectivity = [.ready, .unreachable].randomElement(using: &rng)!
                    case 2: h.labels = ["zone": ["a", "b"].randomElement(using: &rng)!]
                    default: h.reported = HostCapacity(cpus: Int.random(in: 2...32, using: &rng), memory: .gib(64), pools: h.declared.pools)
                    }
                    dc.upsertHost(h)
                } else {
                    dc.upsertHost(randomHost(id, &rng))
                }
            case 90..<95:  // remove a host when allowed
                let id = Self.hostIDs.randomElement(using: &rng)!
                _ = try? dc.removeHost(id)
            default:  // compare a placement with the obvious implementation
                let spec = randomSpec(&rng)
                let opd = Self.opdIDs.randomElement(using: &rng)!
                let strategy = PlacementStrategy.allCases.randomElement(using: &rng)!
                let got = dc.placeVM(spec, opd: opd, strategy: strategy, explain: true)
                let reference = referencePlacement(dc, spec, opd: opd, strategy: strategy)
                switch (got, reference) {
                case (.success(let d), .some(let r)):
                    #expect(d.candidates == r.candidates.count, "seed \(seed) step \(step)")
                    #expect(abs((r.candidates[d.host] ?? .nan) - r.best) < 1e-9, "seed \(seed) step \(step): \(d.host) is not best")
                    #expect(d.excluded.count + d.candidates == dc.hosts.count)
                    placed += 1
                case (.failure(let f), .none):
                    #expect(f.excluded.count == dc.hosts.count, "seed \(seed) step \(step)")
                    refused += 1
                default:
                    Issue.record("seed \(seed) step \(step): placement \(got) but reference \(String(describing: reference))")
                }
            }
            checkIndexes(dc, step: step, seed: seed)
        }
        print("seed \(seed): \(placed) placed, \(refused) refused, \(dc.vms.count) VMs, \(dc.volumes.count) volumes, \(dc.hosts.count) hosts")
        #expect(placed > 0 && refused > 0, "the run should exercise both outcomes")
    }
}
