import Foundation
import LumbungAPI
import LumbungCore
import Testing

@testable import LumbungController

/// `FastJSON.vm` must write exactly what `StrictJSON.encode` writes (the audit entry of every
/// allocation and the answer to `POST /v1/vms` use it), or decline.
@Suite("Fast VM JSON")
struct FastJSONTests {
    static func vm(_ i: Int) -> VM {
        var g = SystemRandomNumberGenerator()
        let names = ["a", "db-01", "web.x_y", "n/slash", #"q"uote"#, #"back\slash"#, "Z9"]
        let labelKeys = ["zone", "Zone", "a10", "a9", "_x", "gpu", "rack/1", "B"]
        func labels(_ n: Int) -> [String: String] {
            var m: [String: String] = [:]
            for _ in 0..<n { m[labelKeys.randomElement(using: &g)!] = names.randomElement(using: &g)! }
            return m
        }
        let spec = VMSpec(
            name: names[i % names.count], vcpu: Int.random(in: 1...64, using: &g), memory: .gib(Int64.random(in: 1...256, using: &g)),
            disk: .gib(Int64.random(in: 1...4096, using: &g)), pool: i % 2 == 0 ? "ssd" : "hdd", app: i % 3 == 0 ? "app-\(i)" : nil,
            image: i % 5 == 0 ? "debian-12" : nil, requiredLabels: labels(i % 3), forbiddenLabels: labels(i % 2),
            tags: i % 4 == 0 ? labels(2) : [:])
        let at = Date(timeIntervalSince1970: Double.random(in: 0..<4_102_444_800, using: &g))
        return VM(
            id: VMID(rawValue: newID("vm")), opd: "dinkes", spec: spec, host: i % 7 == 0 ? nil : HostID(rawValue: "node-\(i)"),
            state: VMState.allCases[i % VMState.allCases.count], desiredPower: i % 2 == 0 ? .running : .stopped, createdAt: at)
    }

    @Test("byte for byte the encoder's output")
    func same() throws {
        for i in 0..<2000 {
            let vm = Self.vm(i)
            let expected = String(decoding: try StrictJSON.encode(vm), as: UTF8.self)
            let fast = try #require(FastJSON.vm(vm), "declined \(expected)")
            #expect(fast == expected)
            if fast != expected { break }
        }
        // Dates: whole seconds rounded down, around leap days and year ends.
        for t in [0.0, 0.999, 951_782_400.5, 951_868_799.9, 1_709_164_800, 1_767_225_599.999, 4_102_444_799] {
            var vm = Self.vm(1)
            vm.createdAt = Date(timeIntervalSince1970: t)
            #expect(FastJSON.vm(vm) == String(decoding: try StrictJSON.encode(vm), as: UTF8.self), "\(t)")
        }
    }

    @Test("declines what it does not write: non-ASCII, control characters, observations")
    func declines() {
        var vm = Self.vm(1)
        vm.spec.requiredLabels = ["zone": "é"]
        #expect(FastJSON.vm(vm) == nil)
        vm = Self.vm(1)
        vm.spec.name = "a\nb"
        #expect(FastJSON.vm(vm) == nil)
        vm = Self.vm(1)
        vm.observed = Observation(state: "running", at: Date())
        #expect(FastJSON.vm(vm) == nil)
    }
}
