import Foundation
import LumbungCore

/// The rate of one timed operation over several rounds (the median round is reported).
struct Rate: Codable, Sendable {
    /// Operations per round.
    var perRound: Int
    /// Operations per second of every round, in the order run.
    var rounds: [Double]
    /// The median round's operations per second.
    var perSecond: Double
    /// Microseconds per operation at the median rate.
    var microsecondsPerOp: Double

    init(perRound: Int, seconds: [Double]) {
        self.perRound = perRound
        rounds = seconds.map { Double(perRound) / $0 }
        let sorted = rounds.sorted()
        perSecond = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        microsecondsPerOp = perSecond > 0 ? 1e6 / perSecond : 0
    }
}

/// (a) Placement decisions in process, against a `DataCenter` snapshot.
struct PlacementResult: Codable, Sendable {
    var hosts: Int
    var schedulableHosts: Int
    var opds: Int
    var prepopulatedVMs: Int
    /// Mean allocated fraction of the hosts' allocatable vCPU and memory after pre-population.
    var meanVCPUFill: Double
    var meanMemoryFill: Double
    /// Building the snapshot and its placement index from the objects (what the ledger does at start).
    var snapshotBuildMilliseconds: Double
    var strategy: String
    /// `DataCenter.decideVM`: validation, OPD, name, quota and placement.
    var decideVM: Rate
    /// `DataCenter.placeVM` without `explain`: the placement filter and score only.
    var placeVM: Rate
    /// Asks refused in one pass over the ask set (expected 0; a refusal builds the full explanation).
    var refusedAsks: Int
    /// Mean number of hosts that could take an ask.
    var meanCandidates: Double
    /// Folded from every decision so the optimizer cannot drop the work.
    var checksum: UInt64
}

enum InProcessBench {
    /// The asks cycle through a fixed, varied set (a power of two so the index is a mask).
    static let askCount = 4096

    struct Ask {
        var spec: VMSpec
        var opd: OPDID
    }

    /// Builds the data center: hosts from ``Fixtures/hostShapes(count:seed:)``, `opds` OPDs with
    /// large quotas, and running VMs filling each host to a random 15–70% of its vCPU or memory.
    static func makeDataCenter(hosts count: Int, opds opdCount: Int, seed: UInt64) -> (
        hosts: [LumbungCore.Host], opds: [OPD], vms: [VM], vcpuFill: Double, memFill: Double
    ) {
        let epoch = Date(timeIntervalSince1970: 1_764_000_000)
        let shapes = Fixtures.hostShapes(count: count, seed: seed)
        let hosts = shapes.map { s in
            Host(
                id: s.id, declared: s.capacity, reserved: s.reserved, labels: s.labels,
                connectivity: s.unreachable ? .unreachable : .ready, cordoned: s.cordoned, createdAt: epoch)
        }
        let opds = (0..<opdCount).map { i in
            OPD(id: Fixtures.opdID(i), displayName: "OPD \(i + 1)", quota: Fixtures.largeQuota, createdAt: epoch)
        }
        var rng = SplitMix64(seed: seed ^ 0x564D_7321)
        var vms: [VM] = []
        vms.reserveCapacity(count * 12)
        var vcpuFill = 0.0
        var memFill = 0.0
        for host in hosts {
            let a = host.allocatable
            let target = Double.random(in: 0.15...0.70, using: &rng)
            var vcpu = 0
            var mem: Int64 = 0
            var pools: [PoolName: Int64] = [:]
            var apps = Set<String>()
            while Double(vcpu) < target * Double(a.vcpu) && Double(mem) < target * Double(a.memory.bytes) {
                let opd = opds[Int.random(in: 0..<opds.count, using: &rng)].id
                var spec = Fixtures.vmSpec(name: "pre-\(vms.count)", rng: &rng)
                spec.requiredLabels = [:]
                spec.forbiddenLabels = [:]
                if a.storage[spec.pool] == nil { spec.pool = Fixtures.ssd }
                let poolFree = (a.storage[spec.pool]?.bytes ?? 0) - (pools[spec.pool] ?? 0)
                guard vcpu + spec.vcpu <= a.vcpu, mem + spec.memory.bytes <= a.memory.bytes, spec.disk.bytes <= poolFree else { break }
                if let app = spec.app {
                    // Keep anti-affinity true in the fixture: one VM per (OPD, app) per host.
                    if !apps.insert("\(opd)/\(app)").inserted { spec.app = nil }
                }
                vcpu += spec.vcpu
                mem += spec.memory.bytes
                pools[spec.pool, default: 0] += spec.disk.bytes
                vms.append(
                    VM(id: VMID(rawValue: "vm-pre-\(vms.count)"), opd: opd, spec: spec, host: host.id, state: .running, createdAt: epoch))
            }
            vcpuFill += a.vcpu > 0 ? Double(vcpu) / Double(a.vcpu) : 0
            memFill += a.memory.bytes > 0 ? Double(mem) / Double(a.memory.bytes) : 0
        }
        let n = Double(max(1, hosts.count))
        return (hosts, opds, vms, vcpuFill / n, memFill / n)
    }

    static func makeAsks(opds: [OPD], seed: UInt64) -> [Ask] {
        var rng = SplitMix64(seed: seed ^ 0x4173_6B73)
        return (0..<askCount).map { i in
            Ask(spec: Fixtures.vmSpec(name: "bench-\(i)", rng: &rng), opd: opds[Int.random(in: 0..<opds.count, using: &rng)].id)
        }
    }

    static func run(
        hosts count: Int, opds opdCount: Int, placements: Int, rounds: Int, strategy: PlacementStrategy, seed: UInt64,
        progress: (String) -> Void
    ) -> PlacementResult {
        let clock = ContinuousClock()
        let built = makeDataCenter(hosts: count, opds: opdCount, seed: seed)
        let buildStart = clock.now
        let dc = DataCenter(hosts: built.hosts, opds: built.opds, vms: built.vms, volumes: [])
        let buildTime = clock.now - buildStart
        let asks = makeAsks(opds: built.opds, seed: seed)
        progress("  \(count) hosts: \(built.vms.count) VMs pre-populated, snapshot built in \(format(ms: buildTime.seconds * 1000)) ms")

        // One checked pass: refusals and candidate counts (also warms caches and branch predictors).
        var refused = 0
        var candidates = 0
        var checksum: UInt64 = 0
        for ask in asks {
            switch dc.decideVM(ask.spec, opd: ask.opd, strategy: strategy) {
            case .success(let d):
                candidates += d.candidates
                checksum &+= fold(d)
            case .failure:
                refused += 1
            }
        }

        let mask = askCount - 1
        // Warm-up: a tenth of a round of each.
        checksum &+= decideLoop(dc, asks, mask, max(1, placements / 10), strategy)
        checksum &+= placeLoop(dc, asks, mask, max(1, placements / 10), strategy)

        var decideSeconds: [Double] = []
        var placeSeconds: [Double] = []
        for round in 0..<rounds {
            var start = clock.now
            checksum &+= decideLoop(dc, asks, mask, placements, strategy)
            decideSeconds.append((clock.now - start).seconds)
            start = clock.now
            checksum &+= placeLoop(dc, asks, mask, placements, strategy)
            placeSeconds.append((clock.now - start).seconds)
            progress(
                "  \(count) hosts, round \(round + 1)/\(rounds): decideVM \(format(rate: Double(placements) / decideSeconds.last!))/s, placeVM \(format(rate: Double(placements) / placeSeconds.last!))/s"
            )
        }
        return PlacementResult(
            hosts: count,
            schedulableHosts: built.hosts.filter { !$0.cordoned && $0.connectivity != .unreachable }.count,
            opds: opdCount,
            prepopulatedVMs: built.vms.count,
            meanVCPUFill: built.vcpuFill,
            meanMemoryFill: built.memFill,
            snapshotBuildMilliseconds: buildTime.seconds * 1000,
            strategy: strategy.rawValue,
            decideVM: Rate(perRound: placements, seconds: decideSeconds),
            placeVM: Rate(perRound: placements, seconds: placeSeconds),
            refusedAsks: refused,
            meanCandidates: Double(candidates) / Double(max(1, asks.count - refused)),
            checksum: checksum)
    }

    @inline(__always)
    static func fold(_ d: PlacementDecision) -> UInt64 {
        UInt64(truncatingIfNeeded: d.candidates) &+ d.score.bitPattern &+ UInt64(truncatingIfNeeded: d.host.rawValue.utf8.count)
    }

    @inline(never)
    static func decideLoop(_ dc: DataCenter, _ asks: [Ask], _ mask: Int, _ n: Int, _ strategy: PlacementStrategy) -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<n {
            let ask = asks[i & mask]
            switch dc.decideVM(ask.spec, opd: ask.opd, strategy: strategy) {
            case .success(let d): sum &+= fold(d)
            case .failure: sum &+= 1
            }
        }
        return sum
    }

    @inline(never)
    static func placeLoop(_ dc: DataCenter, _ asks: [Ask], _ mask: Int, _ n: Int, _ strategy: PlacementStrategy) -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<n {
            let ask = asks[i & mask]
            switch dc.placeVM(ask.spec, opd: ask.opd, strategy: strategy, explain: false) {
            case .success(let d): sum &+= fold(d)
            case .failure: sum &+= 1
            }
        }
        return sum
    }
}

extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
