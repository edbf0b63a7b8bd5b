import Foundation
import LumbungCore
import Metrics

/// Gauges of the controller's state (hosts, requests, VMs and volumes by state; the data
/// center's allocatable and allocated amounts), refreshed by the sweep service. Counters and
/// timers of decisions come from the ledger and the policy service themselves.
public enum ControllerGauges {
    /// Records every gauge from one consistent read of the ledger's state.
    public static func record(_ state: LedgerState) {
        var hosts: [HostState: Int] = [:]
        for h in state.dc.hosts.values { hosts[h.state, default: 0] += 1 }
        for s in HostState.allCases {
            Gauge(label: "lumbung_hosts", dimensions: [("state", s.rawValue)]).record(hosts[s] ?? 0)
        }
        var requests: [RequestState: Int] = [:]
        for r in state.requests.values { requests[r.state, default: 0] += 1 }
        for s in RequestState.allCases {
            Gauge(label: "lumbung_requests", dimensions: [("state", s.rawValue)]).record(requests[s] ?? 0)
        }
        var vms: [VMState: Int] = [:]
        for v in state.dc.vms.values { vms[v.state, default: 0] += 1 }
        for s in VMState.allCases {
            Gauge(label: "lumbung_vms", dimensions: [("state", s.rawValue)]).record(vms[s] ?? 0)
        }
        var volumes: [VolumeState: Int] = [:]
        for v in state.dc.volumes.values { volumes[v.state, default: 0] += 1 }
        for s in VolumeState.allCases {
            Gauge(label: "lumbung_volumes", dimensions: [("state", s.rawValue)]).record(volumes[s] ?? 0)
        }
        let capacity = state.dc.capacity()
        Gauge(label: "lumbung_datacenter_vcpu", dimensions: [("kind", "allocatable")]).record(capacity.total.allocatable.vcpu)
        Gauge(label: "lumbung_datacenter_vcpu", dimensions: [("kind", "allocated")]).record(capacity.total.allocated.vcpu)
        Gauge(label: "lumbung_datacenter_memory_bytes", dimensions: [("kind", "allocatable")]).record(capacity.total.allocatable.memory.bytes)
        Gauge(label: "lumbung_datacenter_memory_bytes", dimensions: [("kind", "allocated")]).record(capacity.total.allocated.memory.bytes)
        for (pool, size) in capacity.total.allocatable.storage {
            Gauge(label: "lumbung_datacenter_storage_bytes", dimensions: [("pool", pool.rawValue), ("kind", "allocatable")]).record(size.bytes)
            Gauge(label: "lumbung_datacenter_storage_bytes", dimensions: [("pool", pool.rawValue), ("kind", "allocated")])
                .record(capacity.total.allocated.storage(pool).bytes)
        }
        Gauge(label: "lumbung_policy_info", dimensions: [("hash", state.policy.hash)]).record(1)
    }

    /// `# HELP` texts of the controller's metric families.
    public static let help: [String: String] = [
        "lumbung_hosts": "Hosts by state.",
        "lumbung_requests": "Requests by state.",
        "lumbung_vms": "VMs by state.",
        "lumbung_volumes": "Volumes by state.",
        "lumbung_datacenter_vcpu": "vCPU of the whole data center: allocatable (after reserve and overcommit) and allocated.",
        "lumbung_datacenter_memory_bytes": "Memory of the whole data center: allocatable and allocated.",
        "lumbung_datacenter_storage_bytes": "Storage per pool of the whole data center: allocatable and allocated.",
        "lumbung_policy_info": "The policy set in force (its hash); always 1.",
        "lumbung_policy_loaded_timestamp_seconds": "Unix time the policy set in force was loaded.",
        "lumbung_policy_last_reload_success": "1 when the last policy load succeeded, 0 when it was refused (the running set was kept).",
        "lumbung_policy_reloads_total": "Policy reloads by result.",
        "lumbung_ledger_operations_total": "Ledger operations (allocations, releases, quota changes, reports) by result.",
        "lumbung_ledger_commit_duration_seconds": "Duration of the ledger's group commits (the SQLite transaction; its WAL flush follows on the flusher).",
        "lumbung_ledger_batch_size": "Operations per group commit.",
        "lumbung_ledger_operation_duration_seconds": "Ledger operations from queueing to answer (deciding, committing, waiting for the WAL flush).",
        "lumbung_store_flush_duration_seconds": "Duration of each fdatasync of the store's WAL (what makes a commit durable).",
        "lumbung_store_flush_transactions": "Committed transactions made durable by one WAL flush.",
        "lumbungd_build_info": "Build information of the controller; always 1.",
    ]
}
