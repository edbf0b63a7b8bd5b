/// `# HELP` texts for every metric family the agent exposes (Prometheus requires them), and a
/// helper that adds them to the registry's text output.
public enum MetricHelp {
    /// Help text per metric family.
    public static let texts: [String: String] = [
        "lumbung_agent_build_info": "Build information of the agent (version, driver); always 1.",
        "lumbung_agent_reconcile_total": "Reconcile passes by result.",
        "lumbung_agent_reconcile_duration_seconds": "Duration of reconcile passes.",
        "lumbung_agent_heartbeats_total": "Heartbeat reports sent to the controller, by result.",
        "lumbung_agent_last_heartbeat_success_timestamp_seconds": "Unix time of the last report the controller accepted.",
        "lumbung_agent_controller_connected": "1 when the last call to the controller succeeded, else 0.",
        "lumbung_agent_certificate_revoked": "1 when the controller refused this host's certificate as revoked or unknown.",
        "lumbung_agent_certificate_expiry_timestamp_seconds": "Unix time when this host's client certificate expires.",
        "lumbung_agent_certificate_renewals_total": "Certificate renewals by result.",
        "lumbung_host_cpus": "CPUs of this host.",
        "lumbung_host_memory_bytes": "Memory of this host.",
        "lumbung_host_pool_size_bytes": "Size of each storage pool of this host.",
        "lumbung_host_pool_free_bytes": "Free space of each storage pool of this host.",
        "lumbung_host_allocated_vcpus": "vCPUs of the VMs on this host.",
        "lumbung_host_allocated_memory_bytes": "Memory allocated to the VMs on this host.",
        "lumbung_host_used_memory_bytes": "Memory used by the VMs on this host.",
        "lumbung_host_vms": "VMs on this host by state.",
        "lumbung_host_desired_version": "Version of the desired state this host enforces.",
        "lumbung_vm_cpu_seconds": "CPU time used by the VM since it started.",
        "lumbung_vm_memory_bytes": "Memory used by the VM.",
        "lumbung_vm_memory_limit_bytes": "Memory limit of the VM's cgroup (VM memory plus QEMU overhead).",
        "lumbung_vm_vcpus": "vCPUs of the VM.",
        "lumbung_vm_disk_size_bytes": "Allocated disk size of the VM.",
        "lumbung_vm_disk_used_bytes": "Disk space the VM's disk actually uses.",
        "lumbung_opd_cpu_seconds": "CPU time used by the OPD's VMs on this host.",
        "lumbung_opd_memory_bytes": "Memory used by the OPD's VMs on this host.",
        "lumbung_opd_memory_limit_bytes": "Memory limit of the OPD's cgroup on this host (sum of its VMs).",
        "lumbung_volume_size_bytes": "Size of the volume.",
        "lumbung_volume_used_bytes": "Space used on the volume.",
    ]

    /// Inserts `# HELP` lines before each `# TYPE` line that has none, from `texts` (default:
    /// the agent's), else a generic sentence.
    public static func annotate(_ text: String, texts: [String: String] = MetricHelp.texts) -> String {
        var out: [Substring] = []
        var lastHelp: Substring?
        var extra: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# HELP ") {
                lastHelp = line.split(separator: " ").dropFirst(2).first
            } else if line.hasPrefix("# TYPE ") {
                let name = line.split(separator: " ").dropFirst(2).first ?? ""
                if lastHelp != name {
                    let help = texts[String(name)] ?? "Lumbung metric \(name)."
                    extra.append("# HELP \(name) \(help)")
                    out.append(Substring(extra.last!))
                }
                lastHelp = nil
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }
}
