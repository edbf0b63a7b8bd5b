import Foundation
import LumbungCore
import LumbungPolicy
import Testing

@Suite struct LoaderTests {
    @Test func shippedPoliciesLoadCleanly() throws {
        let check = PolicyLoader.check(directory: shippedDirectory)
        #expect(check.errors.errors.isEmpty, "\(check.errors)")
        let set = try #require(check.set)
        #expect(set.sources == ["approval.yaml", "classes.yaml", "limits.yaml", "placement.yaml", "retention.yaml"])

        // Classes.
        #expect(set.quotaClasses.keys.sorted() == ["besar", "kecil", "sedang"])
        let sedang = try #require(set.quotaClass("sedang"))
        #expect(sedang.quota == ResourceVector(vcpu: 48, memory: .gib(128), storage: ["ssd": .tib(1), "hdd": .tib(4)], vms: 24, volumes: 48))
        #expect(sedang.description.hasPrefix("Medium OPD"))

        // Approval.
        #expect(set.approval.requestExpiryDays == 14)
        #expect(set.approval.rules.map(\.name) == [
            "vm-kecil-otomatis", "volume-kecil-otomatis", "vm-volume-dalam-kuota", "vm-volume-besar", "kuota-oleh-admin",
        ])
        #expect(set.approval.rules[0].match == ApprovalMatch(kinds: [.vm], maxVCPU: 4, maxMemory: .gib(8), maxDisk: .gib(200), withinQuota: true))
        #expect(set.approval.rules[0].outcome == .automatic)
        #expect(set.approval.rules[3].outcome == .needs([.approver, .admin]))

        // Placement.
        let p = set.placement
        #expect(p.strategy == .binpack)
        #expect(p.overcommit == Overcommit(cpu: 4.0, memory: 1.0, storage: 1.0))
        #expect(p.overcommitOverrides == [OvercommitOverride(labelKey: "tier", labelValue: "ssd", cpu: 2.0)])
        #expect(p.hostReserve == HostCapacity(cpus: 2, memory: .gib(8)))
        #expect(p.headroom.nPlusOne)
        #expect(p.constraints == [
            PlacementConstraint(
                name: "data-pribadi-di-host-pdp", kinds: [.vm, .volume], tags: ["data": "pribadi"], requiredLabels: ["certified": "pdp"])
        ])

        // Limits.
        let l = set.limits
        #expect(l.maxVMVCPU == 32 && l.maxVMMemory == .gib(128) && l.maxVMDisk == .tib(2) && l.maxVolumeSize == .tib(4))
        #expect(l.allowed.pools == ["ssd", "hdd"])
        #expect(l.perClass["kecil"]?.pools == ["hdd"])
        #expect(l.namePattern == "^[a-z][a-z0-9-]{2,40}$")

        // Retention.
        #expect(set.retention == RetentionPolicy(volumeRetentionDays: 7, auditRetentionDays: 3650))

        // The hash is over the files as read.
        #expect(set.hash == PolicyLoader.hash(of: try shippedFiles()))
        #expect(set.hash.count == 64 && set.hash.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func builtinDefaultLoadsAndKeepsThePrePolicyBehaviour() throws {
        let builtin = PolicySet.builtinDefault
        #expect(PolicyLoader.check(files: PolicyLoader.builtinFiles).errors.errors.isEmpty)
        #expect(builtin.hash == PolicyLoader.hash(of: PolicyLoader.builtinFiles))
        #expect(builtin.quotaClasses == (try shippedSet()).quotaClasses)
        #expect(builtin.placement == PlacementPolicy())
        #expect(builtin.limits == Limits())
        #expect(builtin.retention == RetentionPolicy())
        #expect(builtin.approval.requestExpiryDays == 14)
        let vm = ApprovalQuery(kind: .vm, opd: "dinkes", vcpu: 1, memory: .gib(1), disk: .gib(10))
        #expect(builtin.approval.approvalDecision(for: vm) == .needs(levels: [.approver], rule: "vm-volume-oleh-approver"))
        let quota = ApprovalQuery(kind: .quota, opd: "dinkes", vcpu: 8)
        #expect(builtin.approval.approvalDecision(for: quota) == .needs(levels: [.admin], rule: "kuota-oleh-admin"))
    }

    @Test func hashIsStableAndFollowsEveryByte() throws {
        let files = try shippedFiles()
        let h = PolicyLoader.hash(of: files)
        #expect(PolicyLoader.hash(of: files.reversed()) == h)
        #expect(try PolicyLoader.load(files: files.shuffled()).get().hash == h)

        // One byte more in one file.
        var changed = files
        changed[0].bytes.append(0x0A)
        #expect(PolicyLoader.hash(of: changed) != h)
        // The same bytes under another name.
        var renamed = files
        renamed[0].name = "z-" + renamed[0].name
        #expect(PolicyLoader.hash(of: renamed) != h)
        // Moving a byte across a file boundary changes it too (files are framed).
        let a = [PolicyFile(name: "a.yaml", text: "ab"), PolicyFile(name: "b.yaml", text: "c")]
        let b = [PolicyFile(name: "a.yaml", text: "a"), PolicyFile(name: "b.yaml", text: "bc")]
        #expect(PolicyLoader.hash(of: a) != PolicyLoader.hash(of: b))
        // A known value, so the framing cannot change unnoticed: sha256("a.yaml\n2\nab\nb.yaml\n1\nc\n").
        #expect(PolicyLoader.hash(of: a) == "5ea964355dc61361a7894d344b9494b8acc990307b84a979b558116df301f5b6")
    }

    @Test func directoryLoadAndReloadSeesAChangedFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try copyShipped(to: dir)
        // Files that are not *.yaml, and hidden ones, are not part of the set.
        try "notes".write(toFile: dir + "/README.md", atomically: true, encoding: .utf8)
        try "retention: {audit_days: 1}".write(toFile: dir + "/.retention.yaml.swp.yaml", atomically: true, encoding: .utf8)

        let first = try PolicyLoader.load(directory: dir).get()
        #expect(first.hash == (try shippedSet()).hash)

        let path = dir + "/retention.yaml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "volume_days: 7", with: "volume_days: 30").write(toFile: path, atomically: true, encoding: .utf8)
        let second = try PolicyLoader.load(directory: dir).get()
        #expect(second.retention.volumeRetentionDays == 30)
        #expect(second.hash != first.hash)
        // Loading again without a change gives the same hash.
        #expect(try PolicyLoader.load(directory: dir).get().hash == second.hash)
    }

    @Test func sectionsMayBeSplitAnyWay() throws {
        // All five sections in one file load to the same rules as the shipped split.
        let files = try shippedFiles()
        let joined = files.map { String(decoding: $0.bytes, as: UTF8.self) }.joined(separator: "\n")
        let one = try PolicyLoader.load(files: [PolicyFile(name: "semua.yaml", text: joined)]).get()
        let shipped = try shippedSet()
        #expect(one.quotaClasses == shipped.quotaClasses)
        #expect(one.approval == shipped.approval)
        #expect(one.placement == shipped.placement)
        #expect(one.limits == shipped.limits)
        #expect(one.retention == shipped.retention)
        #expect(one.hash != shipped.hash)
    }

    @Test func errorsPrintAsFileLineMessage() {
        let errors = PolicyErrors([
            PolicyError(file: "b.yaml", line: 3, message: "three"),
            PolicyError(file: "a.yaml", line: nil, message: "whole file"),
            PolicyError(file: "a.yaml", line: 10, message: "ten"),
            PolicyError(file: "a.yaml", line: 2, message: "two"),
        ])
        #expect(errors.description == "a.yaml:2: two\na.yaml:10: ten\na.yaml: whole file\nb.yaml:3: three")
    }
}
