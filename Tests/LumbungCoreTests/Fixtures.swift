#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
@testable import LumbungCore

/// A fixed instant for every fixture: tests never read the clock.
let t0 = Date(timeIntervalSince1970: 1_700_000_000)

/// No overcommit, so capacities in tests read as written.
let flat = Overcommit(cpu: 1, memory: 1, storage: 1)

func makeHost(
    _ id: HostID, cpus: Int = 16, memory: ByteSize = .gib(64), pools: [PoolName: ByteSize] = ["ssd": .tib(1)],
    reserved: HostCapacity = HostCapacity(), overcommit: Overcommit = flat, labels: [String: String] = [:],
    connectivity: HostConnectivity = .ready, cordoned: Bool = false
) -> Host {
    Host(
        id: id, declared: HostCapacity(cpus: cpus, memory: memory, pools: pools), reserved: reserved, overcommit: overcommit,
        labels: labels, connectivity: connectivity, cordoned: cordoned, lastReportAt: connectivity == .ready ? t0 : nil,
        createdAt: t0)
}

/// A quota nobody reaches unless a test says so.
let generous = ResourceVector(
    vcpu: 10_000, memory: .tib(100), storage: ["ssd": .tib(100), "hdd": .tib(100)], vms: 1_000, volumes: 1_000)

func makeOPD(_ id: OPDID = "dinkes", quota: ResourceVector = generous) -> OPD {
    OPD(id: id, displayName: "OPD \(id)", quota: quota, createdAt: t0)
}

func vmSpec(
    _ name: String = "simpus-db", vcpu: Int = 2, memory: ByteSize = .gib(4), disk: ByteSize = .gib(20), pool: PoolName = "ssd",
    app: String? = nil, required: [String: String] = [:], forbidden: [String: String] = [:]
) -> VMSpec {
    VMSpec(name: name, vcpu: vcpu, memory: memory, disk: disk, pool: pool, app: app, requiredLabels: required, forbiddenLabels: forbidden)
}

func makeVM(
    _ id: String, opd: OPDID = "dinkes", spec: VMSpec, host: HostID?, state: VMState = .running
) -> VM {
    VM(id: VMID(rawValue: id), opd: opd, spec: spec, host: host, state: state, createdAt: t0)
}

func makeVolume(
    _ id: String, opd: OPDID = "dinkes", name: String? = nil, size: ByteSize = .gib(100), pool: PoolName = "ssd", host: HostID?,
    state: VolumeState = .ready
) -> Volume {
    Volume(
        id: VolumeID(rawValue: id), opd: opd, spec: VolumeSpec(name: name ?? id, size: size, pool: pool), host: host, state: state,
        createdAt: t0)
}

func makeDC(hosts: [Host], opds: [OPD] = [makeOPD()], vms: [VM] = [], volumes: [Volume] = []) -> DataCenter {
    DataCenter(hosts: hosts, opds: opds, vms: vms, volumes: volumes)
}

extension Result {
    var success: Success? {
        if case .success(let s) = self { return s }
        return nil
    }

    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
