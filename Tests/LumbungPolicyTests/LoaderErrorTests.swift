import Foundation
import LumbungCore
import LumbungPolicy
import Testing

/// One expected problem: its line and a part of its message.
struct Expected: Sendable {
    var file: String?
    var line: Int?
    var text: String

    init(_ line: Int?, _ text: String, file: String? = nil) {
        self.line = line
        self.text = text
        self.file = file
    }
}

/// A policy file (replacing the shipped one of that name) and every problem it must produce.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    var label: String
    var file: String
    var text: String
    var expected: [Expected]
    var testDescription: String { label }
}

@Suite struct LoaderErrorTests {
    static let cases: [ErrorCase] = [
        ErrorCase(
            label: "unknown key names the allowed ones", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: a
                      kind: vm
                      max_cpu: 4
                      decision: automatic
                """,
            expected: [
                Expected(
                    5,
                    "unknown key 'max_cpu' in approval rule 'a'; allowed keys: name, kind, opd_class, max_vcpu, max_memory, max_disk, max_size, within_quota, decision, reason"
                )
            ]),
        ErrorCase(
            label: "unknown section", file: "retention.yaml",
            text: """
                retensi:
                  volume_days: 7
                """,
            expected: [
                Expected(nil, "no file defines section 'retention'; add a file with a top-level 'retention:'", file: "policy set"),
                Expected(1, "unknown key 'retensi' in a policy file's top level; allowed keys: classes, approval, placement, limits, retention"),
            ]),
        ErrorCase(
            label: "wrong type", file: "approval.yaml",
            text: """
                approval:
                  request_expiry_days: [14]
                  rules:
                    - name: a
                      max_vcpu: empat
                      within_quota: kadang
                      decision: automatic
                """,
            expected: [
                Expected(2, "request_expiry_days must be a whole number from 1 to 365, e.g. 14; got a list"),
                Expected(5, "max_vcpu of rule a must be a whole number from 0 to 4096, e.g. 4; got 'empat'"),
                Expected(6, "within_quota of rule a must be true or false; got 'kadang'"),
            ]),
        ErrorCase(
            label: "a mapping where a list belongs", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    name: a
                    decision: admin
                """,
            expected: [Expected(2, "approval rules must be a list of rules, each starting with '- name:'; got a mapping")]),
        ErrorCase(
            label: "section of the wrong type", file: "approval.yaml",
            text: """
                approval: yes
                """,
            expected: [Expected(1, "approval must be a mapping with keys request_expiry_days, rules; got 'yes'")]),
        ErrorCase(
            label: "bad units", file: "limits.yaml",
            text: """
                limits:
                  vm:
                    max_vcpu: 2.5
                    max_memory: 8GB
                    max_disk: 100
                  volume:
                    max_size: 0
                """,
            expected: [
                Expected(3, "max_vcpu of limits.vm must be a whole number of vCPUs, e.g. 4; got '2.5'"),
                Expected(4, "max_memory of limits.vm '8GB' has an unknown or ambiguous unit"),
                Expected(5, "max_disk of limits.vm '100' has no unit; write a whole or decimal number with a binary unit"),
                Expected(7, "max_size of limits.volume '0' has no unit"),
            ]),
        ErrorCase(
            label: "zero vCPU limit", file: "limits.yaml",
            text: """
                limits:
                  vm:
                    max_vcpu: 0
                """,
            expected: [Expected(3, "max_vcpu of limits.vm 0 must be at least 1")]),
        ErrorCase(
            label: "ratio at or below zero", file: "placement.yaml",
            text: """
                placement:
                  strategy: binpack
                  overcommit:
                    cpu: 0
                    memory: -1.5
                    storage: banyak
                  overcommit_by_label:
                    - label: tier=ssd
                      cpu: 0.0
                """,
            expected: [
                Expected(4, "cpu ratio of overcommit is 0; a ratio must be above 0"),
                Expected(5, "memory ratio of overcommit is -1.5; a ratio must be above 0"),
                Expected(6, "storage ratio of overcommit must be a number above 0, e.g. 4.0; got 'banyak'"),
                Expected(9, "cpu ratio of tier=ssd is 0.0; a ratio must be above 0"),
            ]),
        ErrorCase(
            label: "unknown placement strategy", file: "placement.yaml",
            text: """
                placement:
                  strategy: firstfit
                """,
            expected: [Expected(2, "placement strategy must be one of binpack, spread; got 'firstfit'")]),
        ErrorCase(
            label: "rule that can never match: zero ceiling", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: nol
                      kind: vm
                      max_vcpu: 0
                      decision: automatic
                    - name: nol-kuota
                      kind: quota
                      max_vcpu: 0
                      decision: automatic
                """,
            expected: [Expected(3, "approval rule 'nol' can never match: it covers only VMs and allows at most 0 vCPU")]),
        ErrorCase(
            label: "rule after a catch-all", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: semua
                      decision: admin
                    - name: kecil
                      kind: vm
                      max_vcpu: 2
                      decision: automatic
                """,
            expected: [
                Expected(
                    5,
                    "approval rule 'kecil' can never match: rule 'semua' (line 3) comes first and matches every request; move this rule above it or narrow that one"
                )
            ]),
        ErrorCase(
            label: "rule shadowed by a wider rule", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: vm-sampai-8
                      kind: [vm, volume]
                      max_vcpu: 8
                      decision: approver
                    - name: vm-sampai-4
                      kind: vm
                      max_vcpu: 4
                      within_quota: true
                      decision: automatic
                """,
            expected: [Expected(7, "rule 'vm-sampai-8' (line 3) comes first and matches every request this one would")]),
        ErrorCase(
            label: "unknown class", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: a
                      opd_class: [sedang, raksasa]
                      decision: admin
                """,
            expected: [
                Expected(4, "opd_class of rule a names class 'raksasa', which classes.yaml does not define; known classes: besar, kecil, sedang")
            ]),
        ErrorCase(
            label: "duplicate names", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: a
                      kind: vm
                      decision: admin
                    - name: a
                      kind: quota
                      decision: admin
                """,
            expected: [Expected(6, "approval rule name 'a' is used twice (first at line 3); give each rule its own name")]),
        ErrorCase(
            label: "duplicate key", file: "retention.yaml",
            text: """
                retention:
                  volume_days: 7
                  volume_days: 8
                """,
            expected: [Expected(2, "key 'volume_days' appears more than once in one mapping")]),
        ErrorCase(
            label: "refuse without reason and bad decision", file: "approval.yaml",
            text: """
                approval:
                  rules:
                    - name: tolak
                      kind: vm
                      decision: refuse
                    - name: terbalik
                      kind: quota
                      decision: admin+approver
                """,
            expected: [
                Expected(3, "approval rule 'tolak' refuses but gives no reason"),
                Expected(8, "decision of rule terbalik must be one of automatic, approver, admin, approver+admin, refuse; got 'admin+approver'"),
                Expected(8, "decision of rule terbalik puts admin first; the OPD's approver decides first, then an admin: write approver+admin"),
            ]),
        ErrorCase(
            label: "audit retention below the legal minimum", file: "retention.yaml",
            text: """
                retention:
                  volume_days: 7
                  audit_days: 365
                """,
            expected: [Expected(3, "audit_days is 365; audit entries must be kept at least 3650 days")]),
        ErrorCase(
            label: "invalid regex", file: "limits.yaml",
            text: """
                limits:
                  name_pattern: '^[a-z('
                """,
            expected: [Expected(2, "name_pattern '^[a-z(' is not a valid regular expression")]),
        ErrorCase(
            label: "constraint contradictions and bad labels", file: "placement.yaml",
            text: """
                placement:
                  constraints:
                    - name: mustahil
                      require_host_labels:
                        certified: pdp
                      forbid_host_labels:
                        certified: pdp
                    - name: kosong
                      when:
                        tags: {data: pribadi}
                        opd_class: rahasia
                    - name: label-buruk
                      require_host_labels:
                        Zone: a
                """,
            expected: [
                Expected(3, "constraint mustahil can never be satisfied: it requires and forbids certified=pdp"),
                Expected(8, "constraint kosong demands nothing; add require_host_labels or forbid_host_labels"),
                Expected(11, "opd_class of constraint kosong names class 'rahasia', which classes.yaml does not define"),
                Expected(14, "require_host_labels of constraint label-buruk key 'Zone' is not accepted"),
            ]),
        ErrorCase(
            label: "class with a pool its limits forbid", file: "classes.yaml",
            text: """
                classes:
                  kecil:
                    vcpu: 16
                    memory: 32GiB
                    storage:
                      ssd: 200GiB
                    vms: 8
                    volumes: 16
                """,
            expected: [
                Expected(6, "class kecil gives 200GiB in pool ssd, but limits:per_class.kecil.pools allows it only pools hdd")
            ]),
        ErrorCase(
            label: "class fields", file: "classes.yaml",
            text: """
                classes:
                  kecil:
                    vcpu: -1
                    memory: 32GiB
                    vms: 8
                  Besar_1:
                    vcpu: 1
                """,
            expected: [
                Expected(2, "class kecil lacks 'volumes'; it needs 'vcpu', 'memory', 'vms', 'volumes'"),
                Expected(3, "vcpu of class kecil is -1; it must be a whole number from 0 to 1000000, e.g. 16"),
                Expected(6, "class name 'Besar_1' contains a character other than a–z, 0–9 or '-'"),
            ]),
        ErrorCase(
            label: "section defined twice", file: "zz-extra.yaml",
            text: """
                # a second retention section
                retention:
                  audit_days: 3650
                """,
            expected: [Expected(2, "section 'retention' is also defined at retention.yaml:")]),
        ErrorCase(
            label: "not YAML", file: "approval.yaml",
            text: """
                approval:
                  rules: [
                    - name: a
                """,
            expected: [Expected(3, "is not valid YAML: did not find expected node content (while parsing a flow node, from line 3)")]),
    ]

    @Test(arguments: cases)
    func reportsEveryErrorAtItsLine(c: ErrorCase) throws {
        let check = PolicyLoader.check(files: try shipped(replacing: c.file, with: c.text))
        #expect(check.set == nil)
        let errors = check.errors.errors
        #expect(errors.count == c.expected.count, "got:\n\(check.errors)")
        for (error, want) in zip(errors, c.expected) {
            #expect(error.file == (want.file ?? c.file), "\(error)")
            #expect(error.line == want.line, "\(error)")
            #expect(error.message.contains(want.text), "\(error)")
        }
    }

    @Test func manyErrorsInManyFilesAreAllReportedInOrder() throws {
        var files = try shipped(
            replacing: "retention.yaml",
            with: """
                retention:
                  volume_days: lama
                  audit_days: 30
                """)
        files = files.filter { $0.name != "placement.yaml" } + [
            PolicyFile(
                name: "placement.yaml",
                text: """
                    placement:
                      strategy: acak
                      headroom:
                        n_plus_two: true
                    """)
        ]
        let errors = try #require(PolicyLoader.load(files: files).failure)
        #expect(
            errors.description == """
                placement.yaml:2: placement strategy must be one of binpack, spread; got 'acak'
                placement.yaml:4: unknown key 'n_plus_two' in headroom; allowed keys: n_plus_one
                retention.yaml:2: volume_days must be a whole number from 0 to 3650, e.g. 7; got 'lama'
                retention.yaml:3: audit_days is 30; audit entries must be kept at least 3650 days (10 years, the archival minimum documented in policies/README.md); write 3650 or more
                """)
    }

    @Test func classLargerThanTheDataCenter() throws {
        let totals = DataCenterTotals(allocatable: ResourceVector(vcpu: 100, memory: .gib(1024), storage: ["ssd": .tib(2), "hdd": .tib(100)]))
        let check = PolicyLoader.check(files: try shippedFiles(), totals: totals)
        let vcpuLine = try shippedLine("classes.yaml", startingWith: "    vcpu: 128")
        let ssdLine = try shippedLine("classes.yaml", startingWith: "      ssd: 4TiB")
        #expect(check.errors.errors.map(\.description) == [
            "classes.yaml:\(vcpuLine): class besar gives 128 vCPU, but the whole data center has 100 vCPU allocatable; a class must fit in the data center",
            "classes.yaml:\(ssdLine): class besar gives 4TiB of storage in pool ssd, but the whole data center has 2TiB allocatable; a class must fit in the data center",
        ])
        #expect(check.notes.isEmpty)

        // A pool no host has.
        let noHDD = DataCenterTotals(allocatable: ResourceVector(vcpu: 1000, memory: .tib(10), storage: ["ssd": .tib(100)]))
        let messages = PolicyLoader.check(files: try shippedFiles(), totals: noHDD).errors.errors.map(\.message)
        #expect(messages.count == 3)
        #expect(messages.allSatisfy { $0.contains("of storage in pool hdd, but no host of the data center has pool hdd") })

        // Offline: the comparison is skipped and the check says so.
        let offline = PolicyLoader.check(files: try shippedFiles())
        #expect(offline.errors.errors.isEmpty)
        #expect(offline.notes == ["classes were not compared with the data center's totals: this is an offline check (no data center given)"])
    }

    @Test func directoryProblems() throws {
        let missing = try #require(PolicyLoader.load(directory: "/nonexistent/policies").failure)
        #expect(missing.description == "/nonexistent/policies: is not a directory; give the policy directory, e.g. /etc/lumbung/policies")

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let empty = try #require(PolicyLoader.load(directory: dir).failure)
        #expect(empty.description == "\(dir): holds no *.yaml policy files; start from the shipped policies/ folder")

        try copyShipped(to: dir)
        try "retention: {audit_days: 10}\n".write(toFile: dir + "/retention.yaml", atomically: true, encoding: .utf8)
        try Data([0xFF, 0xFE]).write(to: URL(fileURLWithPath: dir + "/zz.yaml"))
        let broken = try #require(PolicyLoader.load(directory: dir).failure)
        #expect(broken.errors.map(\.description) == [
            "retention.yaml:1: audit_days is 10; audit entries must be kept at least 3650 days (10 years, the archival minimum documented in policies/README.md); write 3650 or more",
            "zz.yaml: is not UTF-8 text; save it as UTF-8",
        ])
    }
}
