import LumbungCore


/// One VM size of the catalogue the benchmark draws from.
struct Flavor: Sendable {
    var name: String
    var vcpu: Int
    var memoryGiB: Int64
    var diskGiB: Int64
    var weight: Int
}

/// The shape of the data center and of the VMs asked for; deterministic for a given seed.
enum Fixtures {
    /// Typical VM sizes of a regional-government data center (mean ≈ 2.4 vCPU, 4.3 GiB, 62 GiB disk).
    static let flavors: [Flavor] = [
        Flavor(name: "xs", vcpu: 1, memoryGiB: 1, diskGiB: 20, weight: 25),
        Flavor(name: "s", vcpu: 2, memoryGiB: 2, diskGiB: 40, weight: 30),
        Flavor(name: "m", vcpu: 2, memoryGiB: 4, diskGiB: 60, weight: 25),
        Flavor(name: "l", vcpu: 4, memoryGiB: 8, diskGiB: 100, weight: 15),
        Flavor(name: "xl", vcpu: 8, memoryGiB: 16, diskGiB: 200, weight: 4),
        Flavor(name: "xxl", vcpu: 16, memoryGiB: 64, diskGiB: 500, weight: 1),
    ]
    static let totalWeight = flavors.reduce(0) { $0 + $1.weight }

    static let ssd = PoolName(rawValue: "ssd")
    static let hdd = PoolName(rawValue: "hdd")
    /// Apps per OPD used for anti-affinity groups.
    static let appsPerOPD = 10
    /// Hosts per rack label.
    static let hostsPerRack = 40

    static func flavor(_ rng: inout SplitMix64) -> Flavor {
        var pick = Int.random(in: 0..<totalWeight, using: &rng)
        for f in flavors {
            if pick < f.weight { return f }
            pick -= f.weight
        }
        return flavors[0]
    }

    /// `node-00042`: zero-padded so id order is numeric order.
    static func hostID(_ i: Int, of count: Int) -> HostID {
        let width = max(5, String(count).count)
        let digits = String(i + 1)
        return HostID(rawValue: "node-" + String(repeating: "0", count: width - digits.count) + digits)
    }

    static func opdID(_ i: Int) -> OPDID {
        let digits = String(i + 1)
        return OPDID(rawValue: "opd-" + String(repeating: "0", count: max(0, 2 - digits.count)) + digits)
    }

    /// What a host declares: 48–96 CPUs, 256–512 GiB, ssd 4–8 TiB, hdd 20–40 TiB on 90% of hosts.
    struct HostShape: Sendable {
        var id: HostID
        var capacity: HostCapacity
        var reserved: HostCapacity
        var labels: [String: String]
        var cordoned: Bool
        var unreachable: Bool
    }

    static func hostShapes(count: Int, seed: UInt64) -> [HostShape] {
        var rng = SplitMix64(seed: seed ^ 0x486F_7374)
        return (0..<count).map { i in
            let cpus = [48, 64, 64, 64, 96].randomElement(using: &rng)!
            let memory = [256, 384, 512].randomElement(using: &rng)!
            var pools: [PoolName: ByteSize] = [ssd: .tib([4, 8].randomElement(using: &rng)!)]
            if rng.chance(0.9) { pools[hdd] = .tib([20, 40].randomElement(using: &rng)!) }
            var labels = ["rack": "r\(i / hostsPerRack + 1)", "zone": i % 2 == 0 ? "a" : "b"]
            if i % 20 == 0 { labels["gpu"] = "true" }
            return HostShape(
                id: hostID(i, of: count),
                capacity: HostCapacity(cpus: cpus, memory: .gib(Int64(memory)), pools: pools),
                reserved: HostCapacity(cpus: 2, memory: .gib(8)),
                labels: labels,
                cordoned: rng.chance(0.02),
                unreachable: rng.chance(0.01))
        }
    }

    /// A quota large enough never to be the limit (the benchmark measures placement and commits).
    static var largeQuota: ResourceVector {
        ResourceVector(
            vcpu: 200_000, memory: .tib(2048), storage: [ssd: .tib(20_000), hdd: .tib(20_000)], vms: 100_000, volumes: 100_000)
    }

    /// A VM ask: a catalogue size, ssd (80%) or hdd; 30% in an anti-affinity app group, 10% require
    /// `zone=a`, 10% forbid `gpu=true`.
    static func vmSpec(name: String, rng: inout SplitMix64) -> VMSpec {
        let f = flavor(&rng)
        let pool = rng.chance(0.8) ? ssd : hdd
        let app: String? = rng.chance(0.3) ? "app-\(Int.random(in: 0..<appsPerOPD, using: &rng))" : nil
        var required: [String: String] = [:]
        var forbidden: [String: String] = [:]
        let r = Double.random(in: 0..<1, using: &rng)
        if r < 0.1 {
            required["zone"] = "a"
        } else if r < 0.2 {
            forbidden["gpu"] = "true"
        }
        return VMSpec(
            name: name, vcpu: f.vcpu, memory: .gib(f.memoryGiB), disk: .gib(f.diskGiB), pool: pool, app: app,
            requiredLabels: required, forbiddenLabels: forbidden)
    }
}
