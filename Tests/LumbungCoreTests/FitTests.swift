#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore

struct FitCase: Sendable, CustomTestStringConvertible {
    var dimension: Dimension
    var quota: ResourceVector
    var usage: ResourceVector
    var adding: ResourceVector
    var asked: Int64
    var left: Int64
    var sentence: String
    var testDescription: String { dimension.key }
}

@Suite struct FitTests {
    static let cases: [FitCase] = [
        FitCase(
            dimension: .vcpu, quota: ResourceVector(vcpu: 10), usage: ResourceVector(vcpu: 4), adding: ResourceVector(vcpu: 8),
            asked: 8, left: 6, sentence: "quota: dinkes has 6 vCPU left, the request asks for 8 vCPU"),
        FitCase(
            dimension: .memory, quota: ResourceVector(memory: .gib(16)), usage: ResourceVector(memory: .gib(12)),
            adding: ResourceVector(memory: .gib(8)), asked: 8 * ByteSize.gib, left: 4 * ByteSize.gib,
            sentence: "quota: dinkes has 4GiB of memory left, the request asks for 8GiB"),
        FitCase(
            dimension: .storage("ssd"), quota: ResourceVector(storage: ["ssd": .tib(1)]), usage: ResourceVector(storage: ["ssd": .gib(824)]),
            adding: ResourceVector(storage: ["ssd": .gib(500)]), asked: 500 * ByteSize.gib, left: 200 * ByteSize.gib,
            sentence: "quota: dinkes has 200GiB of storage in pool ssd left, the request asks for 500GiB"),
        FitCase(
            dimension: .vms, quota: ResourceVector(vms: 3), usage: ResourceVector(vms: 3), adding: ResourceVector(vms: 1),
            asked: 1, left: 0, sentence: "quota: dinkes has no VMs left, the request asks for 1 VM"),
        FitCase(
            dimension: .volumes, quota: ResourceVector(volumes: 5), usage: ResourceVector(volumes: 6), adding: ResourceVector(volumes: 2),
            asked: 2, left: -1, sentence: "quota: dinkes has no volumes left (already 1 volume over), the request asks for 2 volumes"),
        FitCase(
            dimension: .storage("hdd"), quota: ResourceVector(storage: ["ssd": .tib(1)]), usage: .zero,
            adding: ResourceVector(storage: ["hdd": .gib(10)]), asked: 10 * ByteSize.gib, left: 0,
            sentence: "quota: dinkes has no storage in pool hdd left, the request asks for 10GiB"),
    ]

    @Test(arguments: cases)
    func eachDimension(c: FitCase) throws {
        let s = try #require(quotaShortfall(quota: c.quota, usage: c.usage, adding: c.adding, opd: "dinkes"))
        #expect(s.scope == .quota("dinkes"))
        #expect(s.dimension == c.dimension)
        #expect(s.asked == c.asked)
        #expect(s.left == c.left)
        #expect(s.description == c.sentence)
        // The fast single-pool path used by decisions agrees with the general one.
        let pool = c.adding.storage.keys.first ?? "ssd"
        let fast = QuotaFit.shortfall(
            quota: c.quota, usage: c.usage, vcpu: c.adding.vcpu, memory: c.adding.memory.bytes, pool: pool,
            storage: c.adding.storage(pool).bytes, vms: c.adding.vms, volumes: c.adding.volumes, opd: "dinkes")
        #expect(fast == s)
    }

    @Test func exactFitPasses() {
        let quota = ResourceVector(vcpu: 8, memory: .gib(16), storage: ["ssd": .gib(100)], vms: 2, volumes: 1)
        let ask = ResourceVector(vcpu: 4, memory: .gib(8), storage: ["ssd": .gib(50)], vms: 1)
        #expect(quotaShortfall(quota: quota, usage: ask, adding: ask, opd: "dinkes") == nil)
        #expect(quotaShortfalls(quota: quota, usage: ask, adding: ask, opd: "dinkes").isEmpty)
    }

    @Test func firstInStableOrderAndAll() {
        let quota = ResourceVector(vcpu: 4, memory: .gib(4), storage: ["a": .gib(1), "b": .gib(1)], vms: 1)
        let ask = ResourceVector(vcpu: 8, memory: .gib(8), storage: ["b": .gib(2), "a": .gib(2)], vms: 2)
        #expect(quotaShortfall(quota: quota, usage: .zero, adding: ask, opd: "dinkes")?.dimension == .vcpu)
        let all = quotaShortfalls(quota: quota, usage: .zero, adding: ask, opd: "dinkes").map(\.dimension)
        #expect(all == [.vcpu, .memory, .storage("a"), .storage("b"), .vms])
    }

    @Test func overInAnUntouchedDimensionDoesNotBlock() {
        let quota = ResourceVector(vcpu: 4, memory: .gib(8), storage: ["ssd": .gib(100)], volumes: 2)
        let usage = ResourceVector(vcpu: 6, memory: .gib(4))  // over on vCPU after a forced lowering
        let volume = ResourceVector(storage: ["ssd": .gib(10)], volumes: 1)
        #expect(quotaShortfall(quota: quota, usage: usage, adding: volume, opd: "dinkes") == nil)
    }

    @Test func hostSentenceAndCodable() throws {
        let s = Shortfall(scope: .host("node-01"), dimension: .memory, asked: 8 * ByteSize.gib, left: 4 * ByteSize.gib, subject: .vm)
        #expect(s.description == "host node-01 has 4GiB of memory left, the VM asks for 8GiB")
        let data = try JSONEncoder().encode(s)
        let json = String(decoding: data, as: UTF8.self)
        #expect(json.contains("\"scope\":\"host:node-01\""))
        #expect(json.contains("\"dimension\":\"memory\""))
        #expect(try JSONDecoder().decode(Shortfall.self, from: data) == s)
    }
}
