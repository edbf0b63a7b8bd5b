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
        "lumbung_agent_code_page_releases_total": "Releases of the agent's mappings of code pages unchanged from their files (code_trim_seconds).",
        "lumbung_agent_code_page_released_bytes": "Resident bytes of code page mappings the last release dropped.",
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
        String(decoding: annotate(utf8: Array(text.utf8), texts: texts), as: UTF8.self)
    }

    /// The same on UTF-8 bytes (what the registry emits and the server sends). Works on bytes,
    /// not `Character`s: with 500 VMs the text has ~3,000 lines and a `String` split plus
    /// `hasPrefix` per line made up most of a scrape's time.
    public static func annotate(utf8 text: [UInt8], texts: [String: String] = MetricHelp.texts) -> [UInt8] {
        let newline = UInt8(ascii: "\n")
        let space = UInt8(ascii: " ")
        let help = Array("# HELP ".utf8)
        let type = Array("# TYPE ".utf8)
        /// The metric name of a `# HELP name …` or `# TYPE name …` line.
        func name(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
            line.dropFirst(help.count).drop { $0 == space }.prefix { $0 != space }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 4096)
        var lastHelp: ArraySlice<UInt8>?
        var start = text.startIndex
        while true {
            let end = text[start...].firstIndex(of: newline) ?? text.endIndex
            let line = text[start..<end]
            if line.starts(with: help) {
                lastHelp = name(line)
            } else if line.starts(with: type) {
                let metric = name(line)
                if lastHelp.map({ !$0.elementsEqual(metric) }) ?? true {
                    let family = String(decoding: metric, as: UTF8.self)
                    out.append(contentsOf: "# HELP \(family) \(texts[family] ?? "Lumbung metric \(family).")\n".utf8)
                }
                lastHelp = nil
            }
            out.append(contentsOf: line)
            guard end < text.endIndex else { break }
            out.append(newline)
            start = text.index(after: end)
        }
        return out
    }
}
