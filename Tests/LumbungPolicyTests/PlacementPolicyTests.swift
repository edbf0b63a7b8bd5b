import Foundation
import LumbungCore
import LumbungPolicy
import Testing

@Suite struct PlacementPolicyTests {
    // MARK: overcommit

    @Test func overcommitByLabel() throws {
        let p = try shippedSet().placement
        #expect(p.overcommit(forHostLabels: [:]) == Overcommit(cpu: 4, memory: 1, storage: 1))
        #expect(p.overcommit(forHostLabels: ["tier": "ssd", "zone": "a"]) == Overcommit(cpu: 2, memory: 1, storage: 1))
        #expect(p.overcommit(forHostLabels: ["tier": "hdd"]) == Overcommit(cpu: 4, memory: 1, storage: 1))
        #expect(p.overcommitReasons(forHostLabels: ["tier": "ssd"]).map(\.description) == [
            "overcommit:default: default ratios cpu 4.0, memory 1.0, storage 1.0",
            "overcommit:tier=ssd: the host is labelled tier=ssd: cpu 2.0",
            "overcommit:effective: cpu 2.0, memory 1.0, storage 1.0",
        ])

        // Later overrides win for the ratios they set; others keep earlier values.
        let layered = PlacementPolicy(overcommitOverrides: [
            OvercommitOverride(labelKey: "tier", labelValue: "ssd", cpu: 2.0, memory: 1.5),
            OvercommitOverride(labelKey: "gpu", labelValue: "yes", cpu: 1.0),
        ])
        #expect(layered.overcommit(forHostLabels: ["tier": "ssd", "gpu": "yes"]) == Overcommit(cpu: 1.0, memory: 1.5, storage: 1.0))

        // The ratio reaches a host's allocatable amounts.
        var host = LumbungCore.Host(id: "node-01", declared: HostCapacity(cpus: 32, memory: .gib(256), pools: ["ssd": .tib(2)]), labels: ["tier": "ssd"], createdAt: t0)
        host.reserved = p.hostReserve
        host.overcommit = p.overcommit(forHostLabels: host.labels)
        #expect(host.allocatable.vcpu == 60)  // (32 − 2) × 2.0
        #expect(host.allocatable.memory == .gib(248))
    }

    // MARK: N+1 headroom

    /// node-01 and node-02 with 64 allocatable vCPU, node-03 with 96; 512GiB memory each.
    static func hosts(allocated: [Int], states: [HostState] = [.ready, .ready, .ready]) -> [HeadroomHost] {
        let sizes = [64, 64, 96]
        return (0..<3).map { i in
            HeadroomHost(
                id: HostID(rawValue: "node-0\(i + 1)"), allocatable: ResourceVector(vcpu: sizes[i], memory: .gib(512)),
                allocated: ResourceVector(vcpu: allocated[i], memory: .gib(64)), state: states[i])
        }
    }

    static let vm12 = ResourceVector(vcpu: 12, memory: .gib(16))
    static let rule = HeadroomRule(nPlusOne: true)

    @Test func headroomRefusalSaysWhichHostAndHowMuch() throws {
        let verdict = Self.rule.check(hosts: Self.hosts(allocated: [40, 40, 40]), adding: Self.vm12, on: "node-03")
        #expect(!verdict.isOK)
        let loss = try #require(verdict.worst.first { $0.dimension == .vcpu })
        #expect(loss == HeadroomLoss(host: "node-03", dimension: .vcpu, load: 52, spare: 48))
        #expect(loss.short == 4)
        #expect(verdict.reason.rule == "placement:headroom")
        #expect(
            verdict.reason.sentence
                == "after this VM the data center could not absorb the loss of node-03 (52 vCPU allocated there, 48 vCPU free on the other hosts): 4 vCPU short")
        let refusal = try #require(verdict.refusal)
        #expect(refusal.code == .headroom)
        #expect(refusal.description == verdict.reason.sentence)

        // Already short before: the sentence says so.
        let worse = Self.rule.check(hosts: Self.hosts(allocated: [40, 40, 52]), adding: Self.vm12, on: "node-01")
        #expect(
            worse.reason.sentence
                == "after this VM the data center could not absorb the loss of node-03 (52 vCPU allocated there, 36 vCPU free on the other hosts): 16 vCPU short; already 4 vCPU short before it")
    }

    @Test func headroomOKSaysTheTightestMargin() {
        let verdict = Self.rule.check(hosts: Self.hosts(allocated: [40, 40, 40]), adding: ResourceVector(vcpu: 4, memory: .gib(16)), on: "node-01")
        #expect(verdict.isOK)
        #expect(verdict.refusal == nil)
        #expect(verdict.worst.map(\.margin) == [4, 816 * ByteSize.gib])
        #expect(
            verdict.reason.sentence
                == "after this VM the data center can still absorb the loss of any one host; the tightest: node-03 (40 vCPU allocated there, 44 vCPU free on the other hosts): 4 vCPU to spare; node-01 (80GiB of memory allocated there, 896GiB free on the other hosts): 816GiB to spare")
    }

    @Test func headroomCountsOnlyHostsThatCanAbsorbAndFail() throws {
        let vm4 = ResourceVector(vcpu: 4, memory: .gib(16))
        // All ready: 4 vCPU to spare (see above). With node-02 cordoned its 24 free vCPU cannot
        // take over anything, so losing node-03 is 20 vCPU short.
        let cordoned = Self.rule.check(
            hosts: Self.hosts(allocated: [40, 40, 40], states: [.ready, .cordoned, .ready]), adding: vm4, on: "node-01")
        #expect(!cordoned.isOK)
        #expect(cordoned.worst[0] == HeadroomLoss(host: "node-03", dimension: .vcpu, load: 40, spare: 20))

        // An unreachable host is already lost: its load is not counted, nor its free capacity.
        let unreachable = Self.rule.check(
            hosts: Self.hosts(allocated: [40, 40, 40], states: [.ready, .ready, .unreachable]), adding: vm4, on: "node-01")
        #expect(unreachable.worst[0] == HeadroomLoss(host: "node-01", dimension: .vcpu, load: 44, spare: 24))
        #expect(unreachable.worst[0].short == 20)

        // An enrolled host (agent not reported yet) counts like a ready one.
        let enrolled = Self.rule.check(
            hosts: Self.hosts(allocated: [40, 40, 40], states: [.ready, .enrolled, .ready]), adding: vm4, on: "node-01")
        #expect(enrolled.isOK)
    }

    @Test func headroomOffOrNothingToLose() {
        let off = HeadroomRule(nPlusOne: false).check(hosts: Self.hosts(allocated: [64, 64, 96]), adding: Self.vm12, on: "node-01")
        #expect(off.isOK && off.worst.isEmpty && off.reason.sentence == "the N+1 headroom rule is off")
        let one = [HeadroomHost(id: "solo", allocatable: ResourceVector(vcpu: 64), allocated: .zero, state: .ready)]
        let single = Self.rule.check(hosts: one, adding: Self.vm12, on: "solo")
        #expect(!single.isOK)
        #expect(single.reason.sentence.hasPrefix("after this VM the data center could not absorb the loss of solo (12 vCPU allocated there, 0 vCPU free on the other hosts): 12 vCPU short"))
    }

    // MARK: constraints

    @Test func personalDataGoesOnlyToCertifiedHosts() throws {
        let p = try shippedSet().placement
        let tagged = PlacementSubject(kind: .vm, opd: "dinkes", opdClass: "besar", tags: ["data": "pribadi", "app": "simpus"])
        let result = p.constraints(for: tagged)
        #expect(result.requiredLabels == ["certified": "pdp"])
        #expect(result.forbiddenLabels.isEmpty && result.conflicts.isEmpty)
        #expect(result.reasons == [
            PolicyReason(
                rule: "constraint:data-pribadi-di-host-pdp",
                sentence: "the VM is tagged data=pribadi, so only hosts labelled certified=pdp")
        ])
        let volume = p.constraints(for: PlacementSubject(kind: .volume, opd: "dinkes", tags: ["data": "pribadi"]))
        #expect(volume.requiredLabels == ["certified": "pdp"])
        #expect(p.constraints(for: PlacementSubject(kind: .vm, opd: "dinkes", tags: ["data": "publik"])) == ConstraintResult())

        // Through real placement: the constrained spec lands on the certified host only.
        let spec = VMSpec(name: "simpus-db", vcpu: 2, memory: .gib(4), disk: .gib(20), pool: "ssd")
        let constrained = try p.constrain(spec, opd: "dinkes", opdClass: "besar", tags: ["data": "pribadi"]).get()
        #expect(constrained.spec.requiredLabels == ["certified": "pdp"])
        #expect(constrained.reasons.map(\.rule) == ["constraint:data-pribadi-di-host-pdp"])
        func host(_ id: HostID, _ labels: [String: String]) -> LumbungCore.Host {
            Host(id: id, declared: HostCapacity(cpus: 16, memory: .gib(64), pools: ["ssd": .tib(1)]), labels: labels, connectivity: .ready, createdAt: t0)
        }
        let opd = OPD(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 100, memory: .tib(1), storage: ["ssd": .tib(10)], vms: 10), createdAt: t0)
        let dc = DataCenter(hosts: [host("node-01", [:]), host("node-02", ["certified": "pdp"])], opds: [opd], vms: [], volumes: [])
        // Unconstrained, binpack picks the first host; constrained, only the certified one.
        #expect(dc.placeVM(spec, opd: "dinkes").success?.host == "node-01")
        #expect(dc.placeVM(constrained.spec, opd: "dinkes").success?.host == "node-02")
        let none = DataCenter(hosts: [host("node-01", [:])], opds: [opd], vms: [], volumes: [])
        #expect(none.placeVM(constrained.spec, opd: "dinkes").failure?.description == "no host can take this VM: 1 host lacks label certified=pdp")
    }

    @Test func contradictoryConstraintsAreRefused() throws {
        let p = PlacementPolicy(constraints: [
            PlacementConstraint(name: "pdp", tags: ["data": "pribadi"], requiredLabels: ["certified": "pdp"]),
            PlacementConstraint(name: "bappeda-di-zona-b", kinds: [.vm], opds: ["bappeda"], requiredLabels: ["zone": "b"]),
            PlacementConstraint(name: "besar-bukan-uji", opdClasses: ["besar"], forbiddenLabels: ["certified": "pdp"]),
        ])
        // One OPD constraint applies.
        let bappeda = p.constraints(for: PlacementSubject(kind: .vm, opd: "bappeda"))
        #expect(bappeda.requiredLabels == ["zone": "b"])
        #expect(bappeda.reasons.map(\.sentence) == ["it belongs to bappeda, so only hosts labelled zone=b"])
        #expect(p.constraints(for: PlacementSubject(kind: .volume, opd: "bappeda")).requiredLabels.isEmpty)

        // Required and forbidden by two constraints.
        let clash = p.constraints(for: PlacementSubject(kind: .vm, opd: "dinkes", opdClass: "besar", tags: ["data": "pribadi"]))
        #expect(clash.conflicts == [
            PolicyReason(rule: "constraint:besar-bukan-uji", sentence: "forbids host label certified=pdp, which is also required")
        ])
        #expect(clash.refusal?.code == .constraintConflict)

        // The VM's own selector against a constraint.
        let spec = VMSpec(name: "simpus-db", vcpu: 2, memory: .gib(4), disk: .gib(20), pool: "ssd", requiredLabels: ["certified": "none"])
        let refused = try #require(p.constrain(spec, opd: "dinkes", opdClass: nil, tags: ["data": "pribadi"]).failure)
        #expect(refused.description == "requires host label certified=pdp, but certified=none is also required")
        #expect(refused.reasons.map(\.rule) == ["constraint:pdp"])
    }

    // MARK: limits

    @Test func limitRefusalsNameTheLimitAndWhatIsAccepted() throws {
        let l = try shippedSet().limits
        let ok = VMSpec(name: "simpus-db", vcpu: 8, memory: .gib(32), disk: .gib(200), pool: "ssd", image: "debian-12")
        #expect(l.check(vm: ok, opdClass: "sedang") == nil)

        let big = VMSpec(name: "db", vcpu: 48, memory: .gib(256), disk: .tib(3), pool: "ssd", image: "centos-7")
        let refusal = try #require(l.check(vm: big, opdClass: "kecil"))
        #expect(refusal.code == .limitExceeded)
        #expect(refusal.reasons == [
            PolicyReason(rule: "limits:vm.max_vcpu", sentence: "the VM asks for 48 vCPU; the largest VM allowed has 32 vCPU"),
            PolicyReason(rule: "limits:vm.max_memory", sentence: "the VM asks for 256GiB of memory; the largest VM allowed has 128GiB"),
            PolicyReason(rule: "limits:vm.max_disk", sentence: "the VM asks for a 3TiB disk; the largest VM disk allowed is 2TiB"),
            PolicyReason(
                rule: "limits:images",
                sentence: "image centos-7 is not allowed for class kecil; allowed: debian-12, rocky-9, ubuntu-24.04"),
            PolicyReason(rule: "limits:per_class.kecil.pools", sentence: "pool ssd is not allowed for class kecil; allowed: hdd"),
            PolicyReason(rule: "limits:name_pattern", sentence: "VM name 'db' does not match the name pattern ^[a-z][a-z0-9-]{2,40}$"),
        ])

        let volume = VolumeSpec(name: "arsip", size: .tib(8), pool: "hdd")
        #expect(l.check(volume: volume, opdClass: "kecil")?.description == "the volume asks for 8TiB; the largest volume allowed is 4TiB")
        #expect(l.check(volume: VolumeSpec(name: "arsip", size: .tib(4), pool: "hdd"), opdClass: "kecil") == nil)
        #expect(l.check(volumeResize: .tib(5))?.reasons.map(\.rule) == ["limits:volume.max_size"])
        #expect(l.check(volumeResize: .tib(4)) == nil)
        // No class: the lists for every class apply.
        #expect(l.check(volume: VolumeSpec(name: "arsip", size: .gib(10), pool: "nvme"), opdClass: nil)?.description == "pool nvme is not allowed; allowed: hdd, ssd")
        // No limits at all.
        #expect(Limits().check(vm: big, opdClass: "kecil") == nil)
    }

    // MARK: classes and retention

    @Test func classChangeConflictsListOPDsBelowUse() throws {
        let set = try shippedSet()
        let conflicts = set.classConflicts([
            OPDClassUse(opd: "dinkes", quotaClass: "sedang", usage: ResourceVector(vcpu: 60, memory: .gib(100), vms: 30)),
            OPDClassUse(opd: "bappeda", quotaClass: "kecil", usage: ResourceVector(vcpu: 4)),
            OPDClassUse(opd: "arsip", quotaClass: "raksasa", usage: .zero),
        ])
        #expect(conflicts.map(\.description) == [
            "arsip (class raksasa): the new policy set has no class raksasa",
            "dinkes (class sedang): lowering dinkes's vCPU quota to 48 is below its use of 60; lowering dinkes's VM quota to 24 is below its use of 30",
        ])
    }

    @Test func retentionTimes() {
        let r = RetentionPolicy()
        #expect(r.volumeRetentionDays == 7 && r.auditRetentionDays == 3650)
        #expect(RetentionPolicy.legalMinimumAuditDays == 3650)
        #expect(r.volumePurgeTime(deletedAt: t0) == t0.addingTimeInterval(7 * 86_400))
        #expect(r.auditKeepSince(now: t0) == t0.addingTimeInterval(-3650 * 86_400))
    }
}
