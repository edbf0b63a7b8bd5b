import Foundation
import LumbungCore
import LumbungPolicy
import Testing

/// A request against the shipped rules and the decision it must get.
struct ApprovalCase: Sendable, CustomTestStringConvertible {
    var label: String
    var payload: RequestPayload
    var usage: ResourceVector
    var decision: ApprovalDecision
    var testDescription: String { label }
}

@Suite struct ApprovalTests {
    static let sedang = ResourceVector(vcpu: 48, memory: .gib(128), storage: ["ssd": .tib(1), "hdd": .tib(4)], vms: 24, volumes: 48)

    static func vm(_ vcpu: Int, _ memory: ByteSize, disk: ByteSize = .gib(50)) -> RequestPayload {
        .vm(VMSpec(name: "simpus", vcpu: vcpu, memory: memory, disk: disk, pool: "ssd"))
    }

    static let cases: [ApprovalCase] = [
        ApprovalCase(
            label: "zero levels: small VM within quota", payload: vm(4, .gib(8)), usage: .zero,
            decision: .automatic(rule: "vm-kecil-otomatis")),
        ApprovalCase(
            label: "zero levels: small volume within quota", payload: .volume(VolumeSpec(name: "arsip", size: .gib(500), pool: "hdd")),
            usage: .zero, decision: .automatic(rule: "volume-kecil-otomatis")),
        ApprovalCase(
            label: "one level: medium VM within quota", payload: vm(8, .gib(16)), usage: .zero,
            decision: .needs(levels: [.approver], rule: "vm-volume-dalam-kuota")),
        ApprovalCase(
            label: "one level: small VM with a large disk", payload: vm(2, .gib(4), disk: .gib(500)), usage: .zero,
            decision: .needs(levels: [.approver], rule: "vm-volume-dalam-kuota")),
        ApprovalCase(
            label: "two levels: small VM beyond the remaining quota", payload: vm(4, .gib(8)), usage: ResourceVector(vcpu: 46),
            decision: .needs(levels: [.approver, .admin], rule: "vm-volume-besar")),
        ApprovalCase(
            label: "two levels: large VM", payload: vm(24, .gib(96)), usage: .zero,
            decision: .needs(levels: [.approver, .admin], rule: "vm-volume-besar")),
        ApprovalCase(
            label: "one level (admin): quota increase", payload: .quota(ResourceVector(vcpu: 8)), usage: .zero,
            decision: .needs(levels: [.admin], rule: "kuota-oleh-admin")),
    ]

    @Test(arguments: cases)
    func shippedRules(c: ApprovalCase) throws {
        let policy = try shippedSet().approval
        let query = ApprovalQuery(payload: c.payload, opd: "dinkes", opdClass: "sedang", quota: Self.sedang, usage: c.usage)
        #expect(policy.approvalDecision(for: query) == c.decision)
        let evaluation = policy.evaluate(query)
        #expect(evaluation.decision == c.decision)
        #expect(evaluation.reasons.last?.rule == "approval:\(c.decision.rule)")
    }

    /// Class-specific automatic approval, large VMs to both levels, giant VMs refused.
    static let strict = ApprovalPolicy(
        rules: [
            ApprovalRule(name: "besar-otomatis", match: ApprovalMatch(opdClasses: ["besar"], withinQuota: true), outcome: .automatic),
            ApprovalRule(name: "vm-sampai-32", match: ApprovalMatch(kinds: [.vm], maxVCPU: 32), outcome: .needs([.approver, .admin])),
            ApprovalRule(
                name: "tolak-vm-raksasa", match: ApprovalMatch(kinds: [.vm]),
                outcome: .refuse("VMs above 32 vCPU are not served; split the application")),
        ], requestExpiryDays: 7)

    @Test func refusalNamesTheRuleAndItsReason() {
        let giant = ApprovalQuery(kind: .vm, opd: "dinkes", opdClass: "sedang", vcpu: 64, memory: .gib(8), disk: .gib(10))
        let d = Self.strict.approvalDecision(for: giant)
        #expect(d == .refused(rule: "tolak-vm-raksasa", reason: "VMs above 32 vCPU are not served; split the application"))
        #expect(d.rule == "tolak-vm-raksasa")
        #expect(d.description == "refused: VMs above 32 vCPU are not served; split the application")
        #expect(d.refusal == PolicyRefusal(code: .approvalRefused, reasons: [
            PolicyReason(rule: "approval:tolak-vm-raksasa", sentence: "VMs above 32 vCPU are not served; split the application")
        ]))
        #expect(ApprovalDecision.automatic(rule: "x").refusal == nil)
        #expect(Self.strict.evaluate(giant).reasons.map(\.description) == [
            "approval:besar-otomatis: does not apply: dinkes is of class sedang, the rule covers class besar",
            "approval:vm-sampai-32: does not apply: the VM asks for 64 vCPU, the rule covers at most 32 vCPU",
            "approval:tolak-vm-raksasa: applies: refused: VMs above 32 vCPU are not served; split the application",
        ])
        let big = ApprovalQuery(kind: .vm, opd: "dinkes", opdClass: "sedang", vcpu: 32, memory: .gib(8), disk: .gib(10))
        #expect(Self.strict.approvalDecision(for: big) == .needs(levels: [.approver, .admin], rule: "vm-sampai-32"))
        #expect(Self.strict.approvalDecision(for: big).description == "needs the OPD's approver, then an admin")
    }

    @Test func classRulesAndTheFallback() {
        let policy = Self.strict
        let besar = ApprovalQuery(kind: .volume, opd: "dinkes", opdClass: "besar", size: .tib(1))
        #expect(policy.approvalDecision(for: besar) == .automatic(rule: "besar-otomatis"))

        // No rule matches: an admin decides, under the reserved rule name.
        let kecil = ApprovalQuery(kind: .volume, opd: "kecamatan-a", opdClass: "kecil", size: .gib(10))
        #expect(policy.approvalDecision(for: kecil) == .needs(levels: [.admin], rule: ApprovalPolicy.fallbackRuleName))
        #expect(policy.evaluate(kecil).reasons == [
            PolicyReason(rule: "approval:besar-otomatis", sentence: "does not apply: kecamatan-a is of class kecil, the rule covers class besar"),
            PolicyReason(rule: "approval:vm-sampai-32", sentence: "does not apply: it covers vm requests, this is a volume request"),
            PolicyReason(rule: "approval:tolak-vm-raksasa", sentence: "does not apply: it covers vm requests, this is a volume request"),
            PolicyReason(rule: "approval:no-rule-matched", sentence: "no rule applies, so needs an admin"),
        ])
        let noClass = ApprovalQuery(kind: .volume, opd: "bappeda", size: .gib(10))
        #expect(policy.evaluate(noClass).reasons[0].sentence == "does not apply: bappeda has no class, the rule covers class besar")
    }

    @Test func explainListsEveryRuleTried() throws {
        let policy = try shippedSet().approval
        let query = ApprovalQuery(payload: Self.vm(8, .gib(16)), opd: "dinkes", opdClass: "sedang", quota: Self.sedang, usage: .zero)
        let reasons = policy.evaluate(query).reasons.map(\.description)
        #expect(reasons == [
            "approval:vm-kecil-otomatis: does not apply: the VM asks for 8 vCPU, the rule covers at most 4 vCPU",
            "approval:volume-kecil-otomatis: does not apply: it covers volume requests, this is a vm request",
            "approval:vm-volume-dalam-kuota: applies: needs the OPD's approver",
        ])

        let beyond = ApprovalQuery(
            payload: Self.vm(4, .gib(8)), opd: "dinkes", opdClass: "sedang", quota: Self.sedang, usage: ResourceVector(vcpu: 46))
        let first = try #require(policy.evaluate(beyond).reasons.first)
        #expect(first.sentence == "does not apply: the rule covers requests within quota, this one is not (quota: dinkes has 2 vCPU left, the request asks for 4 vCPU)")
        #expect(policy.evaluate(beyond).reasons.last?.sentence == "applies: needs the OPD's approver, then an admin")
    }

    @Test func quotaRequestsAreWithinQuotaOnlyInsideTheirClass() {
        let current = ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .gib(512)], vms: 10, volumes: 10)
        let raise8 = RequestPayload.quota(ResourceVector(vcpu: 8, storage: ["ssd": .gib(100), "hdd": .gib(-50)]))
        let inside = ApprovalQuery(payload: raise8, opd: "dinkes", opdClass: "sedang", quota: current, usage: .zero, classQuota: Self.sedang)
        #expect(inside.withinQuota)
        #expect(inside.vcpu == 8 && inside.size == .gib(100) && inside.memory == .zero)

        let raise20 = RequestPayload.quota(ResourceVector(vcpu: 20))
        let beyond = ApprovalQuery(payload: raise20, opd: "dinkes", opdClass: "sedang", quota: current, usage: .zero, classQuota: Self.sedang)
        #expect(!beyond.withinQuota)
        #expect(beyond.quotaShortfall?.left == 16)
        let match = ApprovalMatch(kinds: [.quota], withinQuota: true)
        #expect(match.mismatch(beyond) == "the rule covers requests within quota, this one is not: it adds 20 vCPU where 16 vCPU would stay within it")

        // Without a class only a request that raises nothing is within quota.
        let lower = ApprovalQuery(payload: .quota(ResourceVector(vcpu: -4)), opd: "dinkes", opdClass: nil, quota: current, usage: .zero)
        #expect(lower.withinQuota && lower.vcpu == 0)
        let raise = ApprovalQuery(payload: .quota(ResourceVector(vcpu: 1)), opd: "dinkes", opdClass: nil, quota: current, usage: .zero)
        #expect(!raise.withinQuota)
    }

    @Test func coversAndNeverMatches() {
        let wide = ApprovalMatch(kinds: [.vm, .volume], maxVCPU: 8)
        #expect(ApprovalMatch().covers(wide))
        #expect(wide.covers(ApprovalMatch(kinds: [.vm], maxVCPU: 4, withinQuota: true)))
        #expect(!wide.covers(ApprovalMatch(kinds: [.vm])))
        #expect(!wide.covers(ApprovalMatch(kinds: [.quota], maxVCPU: 1)))
        #expect(!ApprovalMatch(withinQuota: true).covers(ApprovalMatch(withinQuota: false)))
        #expect(ApprovalMatch(opdClasses: ["a", "b"]).covers(ApprovalMatch(opdClasses: ["a"])))
        #expect(!ApprovalMatch(opdClasses: ["a"]).covers(ApprovalMatch()))

        #expect(ApprovalMatch(kinds: [.vm], maxMemory: .zero).neverMatches != nil)
        #expect(ApprovalMatch(kinds: [.volume], maxSize: .zero).neverMatches != nil)
        #expect(ApprovalMatch(kinds: [.vm, .quota], maxVCPU: 0).neverMatches == nil)
        #expect(ApprovalMatch(kinds: []).neverMatches == "it covers no request kind")
    }

    @Test func expiry() throws {
        let policy = try shippedSet().approval
        #expect(policy.expiresAt(createdAt: t0) == t0.addingTimeInterval(14 * 86_400))
        #expect(Self.strict.expiresAt(createdAt: t0) == t0.addingTimeInterval(7 * 86_400))
    }
}
