import Foundation
import LumbungAPI
import LumbungCore

/// Builds the API's views from committed ledger state.
extension LedgerState {
    func opdView(_ opd: OPD) -> OPDView {
        let usage = dc.usage(of: opd.id)
        return OPDView(
            id: opd.id, displayName: opd.displayName, quota: opd.quota, usage: usage.normalized, left: (opd.quota - usage).normalized,
            createdAt: opd.createdAt, quotaClass: opd.quotaClass)
    }

    func hostView(_ host: LumbungCore.Host) -> HostView {
        let allocated = dc.allocated(on: host.id)
        let allocatable = host.allocatable
        return HostView(
            id: host.id, state: host.state, driver: host.driver, declared: host.declared, reported: host.reported,
            reserved: host.reserved, overcommit: host.overcommit, labels: host.labels, allocatable: allocatable,
            allocated: allocated.normalized, free: (allocatable - allocated).normalized,
            vms: dc.vms.values.filter { $0.host == host.id && $0.state != .deleted }.count,
            volumes: dc.volumes.values.filter { $0.host == host.id && $0.state != .deleted }.count,
            lastReportAt: host.lastReportAt, desiredVersion: host.desiredVersion, differences: factDifferences(host),
            images: host.images?.sorted())
    }

    func factDifferences(_ host: LumbungCore.Host) -> [String] {
        guard let reported = host.reported else { return [] }
        var out: [String] = []
        if reported.cpus != host.declared.cpus {
            out.append("declared \(host.declared.cpus) CPUs, agent reports \(reported.cpus)")
        }
        if reported.memory != host.declared.memory {
            out.append("declared \(host.declared.memory) memory, agent reports \(reported.memory)")
        }
        for pool in Set(reported.pools.keys).union(host.declared.pools.keys).sorted() {
            let d = host.declared.pools[pool]
            let r = reported.pools[pool]
            if d != r {
                out.append("pool \(pool): declared \(d.map(\.description) ?? "none"), agent reports \(r.map(\.description) ?? "none")")
            }
        }
        return out
    }

    func capacityView() -> CapacityView {
        var rows: [CapacityHostRow] = []
        var allocatable = ResourceVector.zero
        var allocated = ResourceVector.zero
        var schedAllocatable = ResourceVector.zero
        var schedAllocated = ResourceVector.zero
        for host in dc.hosts.values.sorted(by: { $0.id < $1.id }) {
            let a = host.allocatable
            let used = dc.allocated(on: host.id)
            rows.append(
                CapacityHostRow(
                    id: host.id, state: host.state, driver: host.driver, allocatable: a, allocated: used.normalized,
                    free: (a - used).normalized))
            allocatable += a
            allocated += used
            if host.state == .ready || host.state == .enrolled {
                schedAllocatable += a
                schedAllocated += used
            }
        }
        var promised = ResourceVector.zero
        for opd in dc.opds.values { promised += opd.quota }
        let schedulable = CapacityHostRow(
            id: HostID(rawValue: "schedulable"), state: .ready, driver: nil, allocatable: schedAllocatable,
            allocated: schedAllocated.normalized, free: (schedAllocatable - schedAllocated).normalized)
        return CapacityView(
            hosts: rows, schedulable: schedulable, allocatable: allocatable, allocated: allocated.normalized,
            free: (allocatable - allocated).normalized, quotaPromised: promised.normalized,
            opds: dc.opds.values.sorted(by: { $0.id < $1.id }).map(opdView))
    }

    func desiredState(for host: HostID) -> DesiredState {
        let version = dc.hosts[host]?.desiredVersion ?? 0
        let vms = dc.vms.values
            .filter { $0.host == host && ($0.state == .scheduled || $0.state == .running || $0.state == .stopped) }
            .sorted { $0.id < $1.id }
            .map {
                DesiredVM(
                    id: $0.id, opd: $0.opd, name: $0.spec.name, vcpu: $0.spec.vcpu, memory: $0.spec.memory, disk: $0.spec.disk,
                    pool: $0.spec.pool, image: $0.spec.image, power: $0.desiredPower)
            }
        let volumes = dc.volumes.values
            .filter { $0.host == host && ($0.state == .scheduled || $0.state == .ready) }
            .sorted { $0.id < $1.id }
            .map { DesiredVolume(id: $0.id, opd: $0.opd, name: $0.spec.name, size: $0.spec.size, pool: $0.spec.pool) }
        return DesiredState(
            host: host, version: version, vms: vms, volumes: volumes, volumeRetentionSeconds: Int64(policy.retention.volumeRetentionDays) * 86_400)
    }
}
