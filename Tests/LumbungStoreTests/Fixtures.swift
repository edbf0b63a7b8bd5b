import Foundation
import LumbungCore
import LumbungStore
import Testing

/// A fresh folder under the system temp directory, removed by `cleanup()`.
struct TempDir {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("lumbung-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// A database path in a subfolder that does not exist yet (the store creates it).
    var dbPath: String { url.appendingPathComponent("state/lumbung.sqlite").path }

    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// Runs `body` with a store on a fresh file; closes it and removes the folder afterwards.
func withStore<T>(_ body: (Store, String) async throws -> T) async throws -> T {
    let dir = try TempDir()
    defer { dir.cleanup() }
    let store = try Store(path: dir.dbPath)
    do {
        let result = try await body(store, dir.dbPath)
        try store.close()
        return result
    } catch {
        try? store.close()
        throw error
    }
}

/// The `StoreError` thrown by `body`, or nil (recording an issue) when it threw something else or nothing.
func storeError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> StoreError? {
    do {
        try await body()
        Issue.record("expected a StoreError, nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as StoreError {
        return error
    } catch {
        Issue.record("expected a StoreError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

// MARK: - Builders (dates are whole milliseconds: the store keeps millisecond precision)

let t0 = Date(timeIntervalSince1970: 1_764_400_000.123)

func at(_ seconds: Double) -> Date { Date(timeIntervalSince1970: 1_764_400_000.123 + seconds) }

func makeOPD(_ id: OPDID = "dinkes", vcpu: Int = 32, ssd: Int64 = 1024) -> OPD {
    OPD(
        id: id, displayName: "Dinas \(id)",
        quota: ResourceVector(vcpu: vcpu, memory: .gib(64), storage: ["ssd": .gib(ssd), "hdd": .tib(2)], vms: 10, volumes: 20),
        createdAt: t0)
}

func makeHost(_ id: HostID = "node-01") -> LumbungCore.Host {
    LumbungCore.Host(
        id: id,
        declared: HostCapacity(cpus: 32, memory: .gib(256), pools: ["ssd": .tib(4), "hdd": .tib(20)]),
        reserved: HostCapacity(cpus: 2, memory: .gib(8), pools: ["ssd": .gib(100)]),
        overcommit: Overcommit(cpu: 4, memory: 1, storage: 1.5),
        labels: ["rack": "a1", "zone": "dc-1"],
        createdAt: t0)
}

func makeVM(_ id: VMID = "vm-3f9a0c21", opd: OPDID = "dinkes", name: String = "web", host: HostID? = "node-01", state: VMState = .running) -> VM {
    VM(
        id: id, opd: opd,
        spec: VMSpec(
            name: name, vcpu: 4, memory: .gib(8), disk: .gib(50), pool: "ssd", app: "simpus", image: "debian-12",
            requiredLabels: ["zone": "dc-1"], forbiddenLabels: ["gpu": "yes"]),
        host: host, state: state, desiredPower: .running, createdAt: at(1))
}

func makeVolume(_ id: VolumeID = "vol-8d2e11b0", opd: OPDID = "dinkes", name: String = "data", host: HostID? = "node-01", state: VolumeState = .ready) -> Volume {
    Volume(id: id, opd: opd, spec: VolumeSpec(name: name, size: .gib(200), pool: "hdd"), host: host, state: state, createdAt: at(2))
}

func makeRequest(_ id: Int64, opd: OPDID = "dinkes", payload: RequestPayload? = nil, state: RequestState = .pending) -> ResourceRequest {
    ResourceRequest(
        id: RequestID(rawValue: id), opd: opd,
        payload: payload ?? .vm(VMSpec(name: "web", vcpu: 4, memory: .gib(8), disk: .gib(50), pool: "ssd")),
        reason: "SIMPUS untuk puskesmas", requestedBy: "budi", state: state, createdAt: at(3), expiresAt: at(3 + 7 * 86400))
}

func audit(_ action: String, target: String, opd: OPDID? = nil, at date: Date = t0) -> AuditInput {
    AuditInput(at: date, actor: "user:admin", role: "admin", action: action, target: target, opd: opd, before: nil, after: "{}")
}

/// A random-looking 64-hex token hash (distinct per `n`).
func tokenHash(_ n: Int) -> String {
    let s = String(n, radix: 16)
    return String(repeating: "a", count: 64 - s.count) + s
}
