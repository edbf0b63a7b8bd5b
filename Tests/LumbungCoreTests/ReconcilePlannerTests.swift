#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import LumbungCore

// Builders for reconcile tests. "want…" is what the controller desires, "has…" what the
// host has; defaults describe one small healthy VM and volume on pool `ssd`.

let hour: TimeInterval = 3600
let day: TimeInterval = 24 * hour

func wantVM(
    _ id: VMID = "vm-1", opd: OPDID = "dinkes", name: String? = nil, vcpu: Int = 2, memory: ByteSize = .gib(4),
    disk: ByteSize = .gib(20), pool: PoolName = "ssd", image: String? = "debian-12", power: PowerState = .running
) -> VMIntent {
    VMIntent(
        id: id, opd: opd, name: name ?? "app-\(id)", vcpu: vcpu, memory: memory, disk: disk, pool: pool, image: image,
        power: power)
}

func hasVM(
    _ id: VMID = "vm-1", opd: OPDID = "dinkes", vcpu: Int = 2, memory: ByteSize = .gib(4), disk: ByteSize = .gib(20),
    pool: PoolName = "ssd", running: Bool = true, pid: Int32? = 4242, managed: Bool = true
) -> ObservedVM {
    ObservedVM(
        id: id, opd: opd, pool: pool, running: running, vcpu: vcpu, memory: memory, disk: disk, pid: running ? pid : nil,
        managed: managed)
}

func wantVolume(
    _ id: VolumeID = "vol-1", opd: OPDID = "dinkes", name: String? = nil, size: ByteSize = .gib(100), pool: PoolName = "ssd"
) -> VolumeIntent {
    VolumeIntent(id: id, opd: opd, name: name ?? "data-\(id)", size: size, pool: pool)
}

func hasVolume(
    _ id: VolumeID = "vol-1", opd: OPDID = "dinkes", size: ByteSize = .gib(100), pool: PoolName = "ssd", mounted: Bool = true,
    deletedAt: Date? = nil, managed: Bool = true
) -> ObservedVolume {
    ObservedVolume(id: id, opd: opd, pool: pool, size: size, mounted: mounted, deletedAt: deletedAt, managed: managed)
}

func observe(
    vms: [ObservedVM] = [], volumes: [ObservedVolume] = [], pools: [PoolName: ByteSize] = ["ssd": .tib(1)],
    images: Set<String> = ["debian-12"]
) -> HostObservation {
    HostObservation(vms: vms, volumes: volumes, poolFree: pools, images: images)
}

func want(vms: [VMIntent] = [], volumes: [VolumeIntent] = []) -> DesiredHost {
    DesiredHost(vms: vms, volumes: volumes)
}

func plan(_ desired: DesiredHost, _ actual: HostObservation, now: Date = t0, retention: Duration? = nil) -> ReconcilePlan {
    let planner = retention.map { ReconcilePlanner(retention: $0) } ?? ReconcilePlanner()
    return planner.plan(desired: desired, actual: actual, now: now)
}

/// `subject code` of every error (messages may mention amounts that change).
func codes(_ plan: ReconcilePlan) -> [String] {
    plan.errors.map { "\($0.subject) \($0.code.rawValue)" }
}

/// The host after every action of `plan` succeeded.
func applied(_ plan: ReconcilePlan, to actual: HostObservation) -> HostObservation {
    var after = actual
    after.apply(plan.actions)
    return after
}

/// One row of a planning table.
struct PlanCase: Sendable, CustomTestStringConvertible {
    var name: String
    var desired: DesiredHost
    var actual: HostObservation
    var now: Date = t0
    var expected: [ReconcileAction]
    var testDescription: String { name }
}

// MARK: - Every action kind

@Suite struct ReconcileActionKindTests {
    static let cases: [PlanCase] = [
        PlanCase(
            name: "absent, desired stopped → create", desired: want(vms: [wantVM(power: .stopped)]), actual: observe(),
            expected: [.createVM(wantVM(power: .stopped))]),
        PlanCase(
            name: "absent, desired running → create, start", desired: want(vms: [wantVM()]), actual: observe(),
            expected: [.createVM(wantVM()), .startVM(wantVM())]),
        PlanCase(
            name: "blank disk needs no image", desired: want(vms: [wantVM(image: nil, power: .stopped)]),
            actual: observe(images: []), expected: [.createVM(wantVM(image: nil, power: .stopped))]),
        PlanCase(
            name: "stopped, desired running → start", desired: want(vms: [wantVM()]),
            actual: observe(vms: [hasVM(running: false)]), expected: [.startVM(wantVM())]),
        PlanCase(
            name: "running, desired stopped → stop", desired: want(vms: [wantVM(power: .stopped)]),
            actual: observe(vms: [hasVM()]), expected: [.stopVM(hasVM())]),
        PlanCase(
            name: "vCPU changed → resize limits", desired: want(vms: [wantVM(vcpu: 4)]), actual: observe(vms: [hasVM()]),
            expected: [.resizeVMLimits(wantVM(vcpu: 4))]),
        PlanCase(
            name: "disk bigger → grow disk", desired: want(vms: [wantVM(disk: .gib(40))]), actual: observe(vms: [hasVM()]),
            expected: [.growVMDisk(wantVM(disk: .gib(40)), from: .gib(20))]),
        PlanCase(
            name: "stopped, not desired → delete", desired: want(), actual: observe(vms: [hasVM(running: false)]),
            expected: [.deleteVM(hasVM(running: false))]),
        PlanCase(
            name: "running, not desired → stop, delete", desired: want(), actual: observe(vms: [hasVM()]),
            expected: [.stopVM(hasVM()), .deleteVM(hasVM())]),
        PlanCase(
            name: "running unmanaged, matching → adopt", desired: want(vms: [wantVM()]),
            actual: observe(vms: [hasVM(managed: false)]), expected: [.adoptVM(wantVM(), pid: 4242)]),
        PlanCase(
            name: "volume absent → create, mount", desired: want(volumes: [wantVolume()]), actual: observe(),
            expected: [.createVolume(wantVolume()), .mountVolume(wantVolume())]),
        PlanCase(
            name: "volume bigger → grow", desired: want(volumes: [wantVolume(size: .gib(200))]),
            actual: observe(volumes: [hasVolume()]), expected: [.growVolume(wantVolume(size: .gib(200)), from: .gib(100))]),
        PlanCase(
            name: "volume unmounted → mount", desired: want(volumes: [wantVolume()]),
            actual: observe(volumes: [hasVolume(mounted: false)]), expected: [.mountVolume(wantVolume())]),
        PlanCase(
            name: "volume unmounted and bigger → mount, then grow online", desired: want(volumes: [wantVolume(size: .gib(150))]),
            actual: observe(volumes: [hasVolume(mounted: false)]),
            expected: [.mountVolume(wantVolume(size: .gib(150))), .growVolume(wantVolume(size: .gib(150)), from: .gib(100))]),
        PlanCase(
            name: "volume not desired → retain", desired: want(), actual: observe(volumes: [hasVolume()]),
            expected: [.retainVolume(hasVolume(), at: t0)]),
        PlanCase(
            name: "unmounted volume not desired → retain", desired: want(),
            actual: observe(volumes: [hasVolume(mounted: false)]), expected: [.retainVolume(hasVolume(mounted: false), at: t0)]),
        PlanCase(
            name: "retained past retention → purge", desired: want(),
            actual: observe(volumes: [hasVolume(mounted: false, deletedAt: t0)]), now: t0 + 8 * day,
            expected: [.purgeVolume(hasVolume(mounted: false, deletedAt: t0))]),
        PlanCase(
            name: "retained volume desired again → mount (data kept)", desired: want(volumes: [wantVolume()]),
            actual: observe(volumes: [hasVolume(mounted: false, deletedAt: t0)]), now: t0 + day,
            expected: [.mountVolume(wantVolume())]),
        PlanCase(
            name: "mounted unmanaged → adopt", desired: want(volumes: [wantVolume()]),
            actual: observe(volumes: [hasVolume(managed: false)]), expected: [.adoptVolume(wantVolume())]),
        PlanCase(
            name: "converged → nothing", desired: want(vms: [wantVM()], volumes: [wantVolume()]),
            actual: observe(vms: [hasVM()], volumes: [hasVolume()]), expected: []),
    ]

    @Test(arguments: cases)
    func plansTheAction(c: PlanCase) {
        let p = plan(c.desired, c.actual, now: c.now)
        #expect(p.actions == c.expected)
        #expect(p.errors.isEmpty)
    }

    @Test(arguments: cases)
    func applyingThePlanConverges(c: PlanCase) {
        let first = plan(c.desired, c.actual, now: c.now)
        let again = plan(c.desired, applied(first, to: c.actual), now: c.now)
        #expect(again.isEmpty, "left: \(again.actions) \(again.errors)")
    }

    @Test func theTableCoversEveryActionKind() {
        let kinds = Set(Self.cases.flatMap { $0.expected.map(\.kind) })
        let all: Set<String> = [
            "create_vm", "start_vm", "stop_vm", "resize_vm_limits", "grow_vm_disk", "delete_vm", "adopt_vm", "create_volume",
            "grow_volume", "mount_volume", "retain_volume", "purge_volume", "adopt_volume",
        ]
        #expect(kinds == all)
        #expect(Set(Self.cases.flatMap { $0.expected.map(\.phase) }) == Set(ReconcilePhase.allCases))
    }

    @Test func onlyPurgeDestroysVolumeData() {
        let destroying = Self.cases.flatMap(\.expected).filter(\.destroysVolumeData)
        #expect(!destroying.isEmpty)
        #expect(destroying.allSatisfy { $0.kind == "purge_volume" })
    }
}

// MARK: - Adoption, power, resize

@Suite struct ReconcileAdoptionTests {
    @Test func afterARestartMatchingItemsAreOnlyAdopted() {
        let desired = want(
            vms: [wantVM("vm-1"), wantVM("vm-2", vcpu: 8), wantVM("vm-3", power: .stopped)],
            volumes: [wantVolume("vol-1"), wantVolume("vol-2", size: .gib(5))])
        let actual = observe(
            vms: [
                hasVM("vm-1", pid: 101, managed: false), hasVM("vm-2", vcpu: 8, pid: 102, managed: false),
                hasVM("vm-3", running: false, managed: false),
            ],
            volumes: [hasVolume("vol-1", managed: false), hasVolume("vol-2", size: .gib(5), managed: false)])
        let p = plan(desired, actual)
        #expect(p.errors.isEmpty)
        #expect(
            p.actions == [
                .adoptVM(wantVM("vm-1"), pid: 101), .adoptVM(wantVM("vm-2", vcpu: 8), pid: 102),
                .adoptVM(wantVM("vm-3", power: .stopped), pid: nil), .adoptVolume(wantVolume("vol-1")),
                .adoptVolume(wantVolume("vol-2", size: .gib(5))),
            ])
        #expect(p.actions.allSatisfy { $0.phase == .adopt })
        #expect(plan(desired, applied(p, to: actual)).isEmpty)
    }

    @Test func aDriftedVMIsAdoptedThenCorrectedNeverRecreated() {
        let p = plan(want(vms: [wantVM(vcpu: 4)]), observe(vms: [hasVM(managed: false)]))
        #expect(p.actions == [.adoptVM(wantVM(vcpu: 4), pid: 4242), .resizeVMLimits(wantVM(vcpu: 4))])
    }

    @Test func anUnmanagedStoppedVMDesiredRunningIsAdoptedAndStarted() {
        let p = plan(want(vms: [wantVM()]), observe(vms: [hasVM(running: false, managed: false)]))
        #expect(p.actions == [.adoptVM(wantVM(), pid: nil), .startVM(wantVM())])
    }

    struct PowerCase: Sendable, CustomTestStringConvertible {
        var power: PowerState
        var running: Bool
        var expected: [String]
        var testDescription: String { "desired \(power), running \(running) → \(expected)" }
    }

    @Test(arguments: [
        PowerCase(power: .running, running: true, expected: []),
        PowerCase(power: .running, running: false, expected: ["start_vm"]),
        PowerCase(power: .stopped, running: true, expected: ["stop_vm"]),
        PowerCase(power: .stopped, running: false, expected: []),
    ])
    func powerChanges(c: PowerCase) {
        let actual = observe(vms: [hasVM(running: c.running)])
        let desired = want(vms: [wantVM(power: c.power)])
        let p = plan(desired, actual)
        #expect(p.actions.map(\.kind) == c.expected)
        #expect(plan(desired, applied(p, to: actual)).isEmpty)
    }

    struct ResizeCase: Sendable, CustomTestStringConvertible {
        var vcpu: Int
        var memory: ByteSize
        var resizes: Bool
        var testDescription: String { "2 vCPU 4GiB → \(vcpu) vCPU \(memory)" }
    }

    @Test(arguments: [
        ResizeCase(vcpu: 2, memory: .gib(4), resizes: false),
        ResizeCase(vcpu: 4, memory: .gib(4), resizes: true),
        ResizeCase(vcpu: 1, memory: .gib(4), resizes: true),
        ResizeCase(vcpu: 2, memory: .gib(8), resizes: true),
        ResizeCase(vcpu: 2, memory: .gib(2), resizes: true),
        ResizeCase(vcpu: 8, memory: .gib(16), resizes: true),
    ])
    func resizeChangesLimitsWithoutARestart(c: ResizeCase) {
        let v = wantVM(vcpu: c.vcpu, memory: c.memory)
        let actual = observe(vms: [hasVM()])
        let p = plan(want(vms: [v]), actual)
        #expect(p.actions == (c.resizes ? [.resizeVMLimits(v)] : []))
        let after = applied(p, to: actual)
        #expect(after.vms["vm-1"]?.vcpu == c.vcpu)
        #expect(after.vms["vm-1"]?.memory == c.memory)
        #expect(after.vms["vm-1"]?.running == true)
        #expect(plan(want(vms: [v]), after).isEmpty)
    }
}

// MARK: - Errors

@Suite struct ReconcileErrorTests {
    struct ErrorCase: Sendable, CustomTestStringConvertible {
        var name: String
        var vms: [VMIntent] = []
        var volumes: [VolumeIntent] = []
        var actual: HostObservation = observe()
        var subject: ReconcileSubject
        var code: ReconcileError.Code
        var testDescription: String { "\(name) → \(code.rawValue)" }
    }

    static let cases: [ErrorCase] = [
        ErrorCase(name: "image missing", vms: [wantVM("vm-bad", image: "centos-7")], subject: .vm("vm-bad"), code: .imageMissing),
        ErrorCase(name: "VM on a pool the host lacks", vms: [wantVM("vm-bad", pool: "nvme")], subject: .vm("vm-bad"), code: .unknownPool),
        ErrorCase(
            name: "volume on a pool the host lacks", volumes: [wantVolume("vol-bad", pool: "hdd")], subject: .volume("vol-bad"),
            code: .unknownPool),
        ErrorCase(
            name: "volume larger than the pool", volumes: [wantVolume("vol-bad", size: .tib(2))], subject: .volume("vol-bad"),
            code: .insufficientSpace),
        ErrorCase(
            name: "disk larger than the pool", vms: [wantVM("vm-bad", disk: .gib(1025))], subject: .vm("vm-bad"),
            code: .insufficientSpace),
        ErrorCase(
            name: "growth larger than the pool", volumes: [wantVolume("vol-bad", size: .gib(1200))],
            actual: observe(volumes: [hasVolume("vol-bad")]), subject: .volume("vol-bad"), code: .insufficientSpace),
        ErrorCase(name: "path-escaping VM id", vms: [wantVM("../../etc")], subject: .vm("../../etc"), code: .invalidName),
        ErrorCase(name: "VM id with a slash", vms: [wantVM("vm/1")], subject: .vm("vm/1"), code: .invalidName),
        ErrorCase(name: "empty VM id", vms: [wantVM("")], subject: .vm(""), code: .invalidName),
        ErrorCase(
            name: "VM id of 64 characters", vms: [wantVM(VMID(rawValue: String(repeating: "a", count: 64)))],
            subject: .vm(VMID(rawValue: String(repeating: "a", count: 64))), code: .invalidName),
        ErrorCase(name: "upper-case OPD", vms: [wantVM("vm-bad", opd: "Dinkes")], subject: .vm("vm-bad"), code: .invalidName),
        ErrorCase(name: "path-escaping VM name", vms: [wantVM("vm-bad", name: "../x")], subject: .vm("vm-bad"), code: .invalidName),
        ErrorCase(name: "path-escaping image", vms: [wantVM("vm-bad", image: "../../etc/shadow")], subject: .vm("vm-bad"), code: .invalidName),
        ErrorCase(name: "path-escaping pool", vms: [wantVM("vm-bad", pool: "..")], subject: .vm("vm-bad"), code: .invalidName),
        ErrorCase(
            name: "path-escaping volume name", volumes: [wantVolume("vol-bad", name: "a/../../b")], subject: .volume("vol-bad"),
            code: .invalidName),
        ErrorCase(name: "path-escaping volume id", volumes: [wantVolume("../vol")], subject: .volume("../vol"), code: .invalidName),
        ErrorCase(name: "zero vCPU", vms: [wantVM("vm-bad", vcpu: 0)], subject: .vm("vm-bad"), code: .invalidAmount),
        ErrorCase(
            name: "memory not whole MiB", vms: [wantVM("vm-bad", memory: ByteSize(bytes: 1000))], subject: .vm("vm-bad"),
            code: .invalidAmount),
        ErrorCase(
            name: "zero-size volume", volumes: [wantVolume("vol-bad", size: .zero)], subject: .volume("vol-bad"),
            code: .invalidAmount),
        ErrorCase(
            name: "volume shrink", volumes: [wantVolume("vol-bad", size: .gib(50))], actual: observe(volumes: [hasVolume("vol-bad")]),
            subject: .volume("vol-bad"), code: .shrinkRefused),
        ErrorCase(
            name: "unmounted volume shrink", volumes: [wantVolume("vol-bad", size: .gib(50))],
            actual: observe(volumes: [hasVolume("vol-bad", mounted: false, managed: false)]), subject: .volume("vol-bad"),
            code: .shrinkRefused),
        ErrorCase(
            name: "disk shrink", vms: [wantVM("vm-bad", disk: .gib(10), power: .stopped)],
            actual: observe(vms: [hasVM("vm-bad", managed: false)]), subject: .vm("vm-bad"), code: .shrinkRefused),
        ErrorCase(
            name: "VM of another OPD", vms: [wantVM("vm-bad", opd: "bappeda")], actual: observe(vms: [hasVM("vm-bad")]),
            subject: .vm("vm-bad"), code: .moveRefused),
        ErrorCase(
            name: "volume on another pool", volumes: [wantVolume("vol-bad", pool: "hdd")],
            actual: observe(volumes: [hasVolume("vol-bad")], pools: ["ssd": .tib(1), "hdd": .tib(1)]), subject: .volume("vol-bad"),
            code: .moveRefused),
        ErrorCase(
            name: "VM id desired twice", vms: [wantVM("vm-bad"), wantVM("vm-bad", vcpu: 9)], subject: .vm("vm-bad"),
            code: .duplicateID),
    ]

    /// A healthy VM and volume planned next to every bad item.
    static let healthyVM = wantVM("vm-ok", disk: .gib(1))
    static let healthyVolume = wantVolume("vol-ok", size: .gib(1))

    @Test(arguments: cases)
    func anErrorIsReportedAndBlocksOnlyItsItem(c: ErrorCase) {
        let desired = want(vms: c.vms + [Self.healthyVM], volumes: c.volumes + [Self.healthyVolume])
        let p = plan(desired, c.actual)
        #expect(p.errors(for: c.subject).map(\.code) == [c.code])
        #expect(p.errors.allSatisfy { $0.subject == c.subject })
        #expect(p.errors.allSatisfy { !$0.message.isEmpty })
        if c.code == .duplicateID {
            // The first occurrence is still acted on; nothing acts on the second.
            #expect(p.actions(for: c.subject) == [.createVM(c.vms[0]), .startVM(c.vms[0])])
        } else {
            #expect(p.actions(for: c.subject).isEmpty)
        }
        #expect(p.actions(for: .vm("vm-ok")) == [.createVM(Self.healthyVM), .startVM(Self.healthyVM)])
        #expect(
            p.actions(for: .volume("vol-ok")) == [.createVolume(Self.healthyVolume), .mountVolume(Self.healthyVolume)])
        // Nothing the host has is touched because of a bad desired item.
        #expect(!p.actions.contains { if case .deleteVM = $0 { true } else { false } })
        #expect(!p.actions.contains { if case .retainVolume = $0 { true } else { false } })
    }

    @Test(arguments: cases)
    func errorsStayUntilTheInputChanges(c: ErrorCase) {
        let desired = want(vms: c.vms + [Self.healthyVM], volumes: c.volumes + [Self.healthyVolume])
        let first = plan(desired, c.actual)
        let again = plan(desired, applied(first, to: c.actual))
        #expect(codes(again) == codes(first))
        #expect(again.actions.isEmpty)
    }

    @Test func freeSpaceIsCountedDownAcrossItems() {
        let desired = want(
            vms: [wantVM("vm-a", disk: .gib(300))],
            volumes: [wantVolume("vol-a", size: .gib(600)), wantVolume("vol-b", size: .gib(600))])
        let p = plan(desired, observe())
        #expect(p.actions(for: .volume("vol-a")).map(\.kind) == ["create_volume", "mount_volume"])
        #expect(p.errors(for: .volume("vol-b")).map(\.code) == [.insufficientSpace])
        #expect(p.actions(for: .vm("vm-a")).map(\.kind) == ["create_vm", "start_vm"])
        #expect(p.errors.count == 1)
    }

    @Test func spaceFreedByDeletionsIsUsedOnTheNextPass() {
        let old = hasVM("vm-old", disk: .gib(800), running: false)
        let desired = want(vms: [wantVM("vm-new", disk: .gib(800))])
        let actual = observe(vms: [old], pools: ["ssd": .gib(300)])
        let first = plan(desired, actual)
        #expect(first.actions == [.deleteVM(old)])
        #expect(first.errors.map(\.code) == [.insufficientSpace])
        #expect(first.errors.allSatisfy { !$0.isTerminal })
        let second = plan(desired, applied(first, to: actual))
        #expect(second.actions.map(\.kind) == ["create_vm", "start_vm"])
        #expect(second.errors.isEmpty)
    }

    @Test func aPathEscapingItemFoundOnTheHostIsLeftAlone() {
        let odd = hasVM("../evil", running: false)
        let p = plan(want(), observe(vms: [odd], volumes: [hasVolume("vol/x")]))
        #expect(p.actions.isEmpty)
        #expect(p.errors.map(\.code) == [.invalidName, .invalidName])
    }

    @Test func messagesSayWhatWasWrong() {
        let p = plan(
            want(vms: [wantVM("vm-1", image: "centos-7"), wantVM("vm-2", pool: "nvme")], volumes: [wantVolume(size: .gib(50))]),
            observe(volumes: [hasVolume()]))
        let text = p.errors.map(\.description).joined(separator: "\n")
        #expect(text.contains("vm:vm-1: image_missing"))
        #expect(text.contains("centos-7"))
        #expect(text.contains("no pool 'nvme' (it has: ssd)"))
        #expect(text.contains("100GiB and cannot shrink to 50GiB"))
        let moved = plan(want(vms: [wantVM(opd: "bappeda")]), observe(vms: [hasVM()]))
        #expect(moved.errors.map(\.message) == [
            "VM vm-1 exists on this host for OPD dinkes on pool 'ssd' and is desired for OPD bappeda on pool 'ssd'; it is never moved"
        ])
    }
}

// MARK: - Retention

@Suite struct ReconcileRetentionTests {
    @Test func aVolumeThatLeavesTheDesiredStateIsOnlyRetained() {
        let actual = observe(volumes: [hasVolume()])
        let p = plan(want(), actual)
        #expect(p.actions == [.retainVolume(hasVolume(), at: t0)])
        let after = applied(p, to: actual)
        #expect(after.volumes["vol-1"]?.hostState == .retained)
        #expect(after.volumes["vol-1"]?.deletedAt == t0)
        #expect(after.volumes["vol-1"]?.size == .gib(100))
        #expect(plan(want(), after, now: t0 + 1 * day).isEmpty)
    }

    struct RetentionCase: Sendable, CustomTestStringConvertible {
        var after: TimeInterval
        var retention: Duration?
        var purges: Bool
        var testDescription: String {
            let period = retention.map { "\($0)" } ?? "default"
            return "\(after / hour) h after deletion, retention \(period) → \(purges ? "purge" : "keep")"
        }
    }

    @Test(arguments: [
        RetentionCase(after: 0, retention: nil, purges: false),
        RetentionCase(after: 1 * day, retention: nil, purges: false),
        RetentionCase(after: 6 * day + 23 * hour, retention: nil, purges: false),
        RetentionCase(after: 7 * day - 1, retention: nil, purges: false),
        RetentionCase(after: 7 * day, retention: nil, purges: true),
        RetentionCase(after: 30 * day, retention: nil, purges: true),
        RetentionCase(after: 23 * hour, retention: .seconds(86_400), purges: false),
        RetentionCase(after: 1 * day, retention: .seconds(86_400), purges: true),
        RetentionCase(after: 0, retention: .zero, purges: true),
    ])
    func purgedOnlyAfterRetention(c: RetentionCase) {
        let retained = hasVolume(mounted: false, deletedAt: t0)
        let p = plan(want(), observe(volumes: [retained]), now: t0 + c.after, retention: c.retention)
        #expect(p.actions == (c.purges ? [.purgeVolume(retained)] : []))
    }

    @Test func retainThenPurgeOverAWeek() {
        var host = observe(volumes: [hasVolume()])
        let retain = plan(want(), host, now: t0)
        host.apply(retain.actions)
        #expect(plan(want(), host, now: t0 + 6 * day + 23 * hour).isEmpty)
        let purge = plan(want(), host, now: t0 + 7 * day)
        #expect(purge.actions.map(\.kind) == ["purge_volume"])
        host.apply(purge.actions)
        #expect(host.volumes.isEmpty)
        #expect(host.poolFree["ssd"] == .tib(1) + .gib(100))
        #expect(ReconcilePlanner().purgeTime(deletedAt: t0) == t0 + 7 * day)
    }

    @Test func aRetainedVolumeKeepsItsFirstDeletionTime() {
        var host = observe(volumes: [hasVolume(mounted: false, deletedAt: t0)])
        host.apply(.retainVolume(hasVolume(), at: t0 + 3 * day))
        #expect(host.volumes["vol-1"]?.deletedAt == t0)
    }

    @Test func aVolumeDesiredAgainIsNeverPurged() {
        let p = plan(want(volumes: [wantVolume()]), observe(volumes: [hasVolume(mounted: false, deletedAt: t0)]), now: t0 + 30 * day)
        #expect(p.actions == [.mountVolume(wantVolume())])
    }
}

// MARK: - Ordering and properties

@Suite struct ReconcileOrderingTests {
    static let mixedDesired = want(
        vms: [wantVM("vm-new"), wantVM("vm-keep", vcpu: 4), wantVM("vm-halt", power: .stopped)],
        volumes: [wantVolume("vol-new"), wantVolume("vol-big", size: .gib(200))])
    static let mixedActual = observe(
        vms: [hasVM("vm-gone"), hasVM("vm-keep", managed: false), hasVM("vm-halt")],
        volumes: [
            hasVolume("vol-big"), hasVolume("vol-old"), hasVolume("vol-expired", mounted: false, deletedAt: t0 - 8 * day),
        ])

    @Test func deletionsAndStopsComeBeforeCreationsVolumesBeforeVMsPurgesLast() {
        let p = plan(Self.mixedDesired, Self.mixedActual)
        #expect(p.errors.isEmpty)
        #expect(
            p.actions.map(\.description) == [
                "adopt_vm vm:vm-keep",
                "stop_vm vm:vm-gone", "stop_vm vm:vm-halt",
                "delete_vm vm:vm-gone",
                "retain_volume volume:vol-old",
                "resize_vm_limits vm:vm-keep",
                "create_volume volume:vol-new",
                "mount_volume volume:vol-new",
                "grow_volume volume:vol-big",
                "create_vm vm:vm-new",
                "start_vm vm:vm-new",
                "purge_volume volume:vol-expired",
            ])
        #expect(zip(p.actions, p.actions.dropFirst()).allSatisfy { $0.phase <= $1.phase })
        #expect(plan(Self.mixedDesired, applied(p, to: Self.mixedActual)).isEmpty)
    }

    @Test func thePlanDoesNotDependOnInputOrder() {
        let reversed = DesiredHost(vms: Self.mixedDesired.vms.reversed(), volumes: Self.mixedDesired.volumes.reversed())
        #expect(plan(reversed, Self.mixedActual) == plan(Self.mixedDesired, Self.mixedActual))
    }

    /// Random desired/actual pairs: the plan is ordered by phase, converges in one pass, never
    /// destroys a volume's data early or at all when desired, and keeps its errors.
    @Test(arguments: 0..<200 as Range<UInt64>)
    func randomPairsConvergeInOnePass(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let (desired, actual, now) = randomPair(&rng)
        let p = plan(desired, actual, now: now)
        #expect(zip(p.actions, p.actions.dropFirst()).allSatisfy { $0.phase <= $1.phase })
        #expect(Set(p.actions).count == p.actions.count)
        let desiredVolumes = Set(desired.volumes.map(\.id))
        for case .purgeVolume(let o) in p.actions {
            #expect(!desiredVolumes.contains(o.id))
            #expect(o.deletedAt.map { now >= $0 + 7 * day } == true)
        }
        let again = plan(desired, applied(p, to: actual), now: now)
        #expect(again.actions.isEmpty, "seed \(seed): \(again.actions)")
        #expect(codes(again) == codes(p))
    }

    func randomPair(_ rng: inout SplitMix64) -> (DesiredHost, HostObservation, Date) {
        let now = t0 + Double(Int.random(in: 0...20, using: &rng)) * day
        var vms: [VMIntent] = []
        var hasVMs: [ObservedVM] = []
        for i in 0..<Int.random(in: 0...6, using: &rng) {
            let id = VMID(rawValue: "vm-\(i)")
            let disk = ByteSize.gib(Int64.random(in: 1...4, using: &rng) * 10)
            let image = ["debian-12", "missing", nil].randomElement(using: &rng)!
            let pool: PoolName = Int.random(in: 0..<10, using: &rng) == 0 ? "nvme" : "ssd"
            let isDesired = Bool.random(using: &rng)
            let isPresent = Bool.random(using: &rng)
            if isDesired {
                vms.append(
                    wantVM(
                        id, vcpu: Int.random(in: 1...4, using: &rng), memory: .gib(Int64.random(in: 1...4, using: &rng)), disk: disk,
                        pool: pool, image: image, power: Bool.random(using: &rng) ? .running : .stopped))
            }
            if isPresent {
                hasVMs.append(
                    hasVM(
                        id, vcpu: Int.random(in: 1...4, using: &rng), memory: .gib(Int64.random(in: 1...4, using: &rng)),
                        disk: ByteSize.gib(Int64.random(in: 1...4, using: &rng) * 10), running: Bool.random(using: &rng),
                        managed: Bool.random(using: &rng)))
            }
        }
        var volumes: [VolumeIntent] = []
        var hasVolumes: [ObservedVolume] = []
        for i in 0..<Int.random(in: 0...6, using: &rng) {
            let id = VolumeID(rawValue: "vol-\(i)")
            if Bool.random(using: &rng) {
                volumes.append(wantVolume(id, size: .gib(Int64.random(in: 1...4, using: &rng) * 50)))
            }
            if Bool.random(using: &rng) {
                let retained = Bool.random(using: &rng)
                hasVolumes.append(
                    hasVolume(
                        id, size: .gib(Int64.random(in: 1...4, using: &rng) * 50), mounted: !retained && Bool.random(using: &rng),
                        deletedAt: retained ? t0 + Double(Int.random(in: 0...10, using: &rng)) * day : nil,
                        managed: Bool.random(using: &rng)))
            }
        }
        return (want(vms: vms, volumes: volumes), observe(vms: hasVMs, volumes: hasVolumes, pools: ["ssd": .tib(100)]), now)
    }
}
