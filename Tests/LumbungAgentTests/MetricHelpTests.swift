import LumbungAgent
import Testing

@Suite("MetricHelp.annotate")
struct MetricHelpTests {
    let emitted = """
        # TYPE lumbung_host_cpus gauge
        lumbung_host_cpus 8.0
        # HELP custom_thing Already documented.
        # TYPE custom_thing counter
        custom_thing_total 3
        # TYPE lumbung_unknown_metric gauge
        lumbung_unknown_metric{vm="vm-1",opd="dinkes"} 1.5

        """

    @Test("adds HELP before each TYPE without one, keeps existing HELP and every other byte")
    func annotates() {
        let text = MetricHelp.annotate(emitted)
        #expect(
            text == """
                # HELP lumbung_host_cpus CPUs of this host.
                # TYPE lumbung_host_cpus gauge
                lumbung_host_cpus 8.0
                # HELP custom_thing Already documented.
                # TYPE custom_thing counter
                custom_thing_total 3
                # HELP lumbung_unknown_metric Lumbung metric lumbung_unknown_metric.
                # TYPE lumbung_unknown_metric gauge
                lumbung_unknown_metric{vm="vm-1",opd="dinkes"} 1.5

                """)
        #expect(MetricHelp.annotate(utf8: Array(emitted.utf8)) == Array(text.utf8))
    }

    @Test("empty text and text without a trailing newline")
    func edges() {
        #expect(MetricHelp.annotate("") == "")
        #expect(MetricHelp.annotate("# TYPE a gauge\na 1") == "# HELP a Lumbung metric a.\n# TYPE a gauge\na 1")
        #expect(MetricHelp.annotate("# TYPE a gauge", texts: ["a": "An a."]) == "# HELP a An a.\n# TYPE a gauge")
    }

    @Test("3,000 series (500 VMs) annotate the same by bytes and by String")
    func large() {
        var text = ""
        for family in ["lumbung_vm_cpu_seconds", "lumbung_vm_memory_bytes", "lumbung_vm_vcpus"] {
            text += "# TYPE \(family) gauge\n"
            for i in 0..<1000 { text += "\(family){vm=\"vm-\(i)\",opd=\"opd-\(i % 5)\"} \(i)\n" }
        }
        let annotated = MetricHelp.annotate(utf8: Array(text.utf8))
        let lines = String(decoding: annotated, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 3006)
        #expect(lines.filter { $0.hasPrefix("# HELP ") }.count == 3)
        #expect(lines[0] == "# HELP lumbung_vm_cpu_seconds CPU time used by the VM since it started.")
    }
}
