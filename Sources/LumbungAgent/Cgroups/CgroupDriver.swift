#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import LumbungCore

/// The Linux compute-limits driver: cgroup v2 or cgroup v1, detected by ``detect(root:mountsFile:)``.
///
/// Groups live at `<mount>/<subPath>/<opd>/<vm>` (in v1, under each controller's mount).
/// `subPath` defaults to `lumbung`; under systemd the agent passes the subtree delegated to its
/// unit, e.g. `system.slice/lumbung-agent.service/vms` (see ``moveProcesses(outOf:into:)``).
///
/// Files written:
///
/// | | cgroup v2 | cgroup v1 |
/// |---|---|---|
/// | CPU | `cpu.max` = `"<quota> <period>"` | `cpu.cfs_period_us`, `cpu.cfs_quota_us` |
/// | memory | `memory.max` | `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`, set to the same, when present) |
/// | tasks | `pids.max` | `pids.max` (when the pids controller is mounted) |
/// | attach | `cgroup.procs` | `cgroup.procs` in every hierarchy |
/// | usage | `cpu.stat` `usage_usec`, `memory.current`, `pids.current` | `cpuacct.usage` (ns), `memory.usage_in_bytes`, `pids.current` |
///
/// In v2 the driver enables `+cpu +memory +pids` in `cgroup.subtree_control` of every group
/// from the mount down to each OPD group, writing only controllers not yet enabled.
///
/// **Ordering.** cgroup v1 refuses a child's CPU quota above its parent's (and some setups a
/// child's memory limit above its parent's), so the driver raises the OPD group's limits
/// before writing the VM's, and lowers the OPD group's only after the VM's. An unlimited
/// group (`max`, v1 `-1`) counts as larger than any limit.
///
/// A missing limit file reads as the kernel's default (unlimited), so a group created moments
/// ago in a directory tree (``DirectoryCgroupFS``) behaves like a new kernel group.
///
/// All operations of one driver are serialized by a lock; use one driver per host.
public final class CgroupDriver: ComputeLimits, @unchecked Sendable {
    /// The detected or given hierarchy layout.
    public let layout: CgroupLayout
    /// The path below each mount that holds the OPD groups, e.g. `lumbung`.
    public let subPath: String

    private let fs: any CgroupFS
    private let logger: Logger
    private let lock = NIOLock()
    private let subPathComponents: [String]

    /// A logger that drops everything (the default when none is passed in).
    public static let silentLogger = Logger(label: "lumbung.agent.cgroups", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Creates a driver on a known layout.
    ///
    /// - Parameters:
    ///   - layout: where the controllers are mounted (see ``detect(root:mountsFile:)``).
    ///   - subPath: the path below each mount holding the OPD groups (one or more components,
    ///     none of them empty, `.` or `..`). Default `lumbung`.
    ///   - fs: the file layer; ``SysCgroupFS`` for the kernel, ``DirectoryCgroupFS`` for tests.
    ///   - logger: where group creation and removal are logged (debug/info).
    public init(
        layout: CgroupLayout, subPath: String = "lumbung", fs: any CgroupFS = SysCgroupFS(),
        logger: Logger = CgroupDriver.silentLogger
    ) throws {
        self.subPathComponents = try Self.checkedRelativePath(subPath, what: "cgroup sub-path")
        self.subPath = subPathComponents.joined(separator: "/")
        self.layout = layout
        self.fs = fs
        self.logger = logger
    }

    /// Detects the layout under `root` (see ``detect(root:mountsFile:)``) and creates a driver
    /// on the real cgroupfs.
    public convenience init(
        root: String = "/sys/fs/cgroup", mountsFile: String = "/proc/self/mounts", subPath: String = "lumbung",
        logger: Logger = CgroupDriver.silentLogger
    ) throws {
        try self.init(
            layout: Self.detect(root: root, mountsFile: mountsFile), subPath: subPath, fs: SysCgroupFS(),
            logger: logger)
    }

    // MARK: - ComputeLimits

    public func apply(_ spec: VMLimits) throws {
        let (opd, vm) = try Self.checkedNames(opd: spec.opd, vm: spec.vm)
        do {
            _ = try VCPU.validate(spec.vcpus, what: "vCPU count of VM '\(vm)'")
            _ = try ByteSize.validate(spec.memory, what: "memory of VM '\(vm)'")
        } catch {
            throw CgroupError(.invalidLimits, "refusing limits for VM '\(vm)': \(error); nothing was changed")
        }
        let vmLimits = spec.groupLimits
        try locked {
            try ensureGroup([opd, vm])
            let current = try readLimits([opd])
            let target = try sumOfVMs(opd, replacing: (vm, vmLimits))
            // Raise the parent first, write the child, then lower the parent.
            let raiseCPU = Self.exceeds(target.normalizedQuota, current.normalizedQuota)
            let raiseMemory = Self.exceeds(target.memoryLimitBytes, current.memoryLimitBytes)
            let raisePids = Self.exceeds(target.pidsLimit, current.pidsLimit)
            if raiseCPU { try writeCPU([opd], target) }
            if raiseMemory { try writeMemory([opd], target.memoryLimitBytes) }
            if raisePids { try writePids([opd], target.pidsLimit) }
            try writeCPU([opd, vm], vmLimits)
            try writeMemory([opd, vm], vmLimits.memoryLimitBytes)
            try writePids([opd, vm], vmLimits.pidsLimit)
            if !raiseCPU { try writeCPU([opd], target) }
            if !raiseMemory { try writeMemory([opd], target.memoryLimitBytes) }
            if !raisePids { try writePids([opd], target.pidsLimit) }
            logger.debug(
                "Applied VM limits",
                metadata: ["opd.id": "\(opd)", "vm.id": "\(vm)", "cgroup.vm": "\(vmLimits)", "cgroup.opd": "\(target)"])
        }
    }

    public func attach(pid: Int32, to vm: VMID, opd: OPDID) throws {
        let (opd, vm) = try Self.checkedNames(opd: opd, vm: vm)
        guard pid > 0 else {
            throw CgroupError(.invalidLimits, "refusing to attach pid \(pid) to VM '\(vm)': a pid is a positive number")
        }
        try locked {
            let dirs = attachMounts.map { dir($0, [opd, vm]) }
            for dir in dirs where !fs.exists(dir) {
                throw CgroupError(
                    .notFound,
                    "cannot attach pid \(pid): the group of VM '\(vm)' (OPD '\(opd)') does not exist at \(dir); apply the VM's limits first",
                    path: dir)
            }
            for dir in dirs { try fs.write(dir + "/cgroup.procs", String(pid)) }
            logger.debug("Attached process to VM group", metadata: ["opd.id": "\(opd)", "vm.id": "\(vm)", "pid": "\(pid)"])
        }
    }

    public func observe(vm: VMID, opd: OPDID) throws -> VMUsage? {
        let (opd, vm) = try Self.checkedNames(opd: opd, vm: vm)
        return try locked {
            guard fs.exists(dir(primaryMount, [opd, vm])) else { return nil }
            let usage = try readUsage([opd, vm])
            return VMUsage(
                vm: VMID(rawValue: vm), opd: OPDID(rawValue: opd), cpuTimeMicros: usage.cpuMicros,
                memoryBytes: usage.memoryBytes, pids: usage.pids, limits: try readLimits([opd, vm]))
        }
    }

    public func observeOPD(_ opd: OPDID) throws -> OPDUsage? {
        let opd = try Self.checkedName(opd.rawValue, what: "OPD id")
        return try locked {
            let opdDir = dir(primaryMount, [opd])
            guard fs.exists(opdDir) else { return nil }
            let vms = try fs.list(opdDir).filter(Name.isValid).map(VMID.init(rawValue:))
            let usage = try readUsage([opd])
            return OPDUsage(
                opd: OPDID(rawValue: opd), vms: vms, cpuTimeMicros: usage.cpuMicros, memoryBytes: usage.memoryBytes,
                pids: usage.pids, limits: try readLimits([opd]))
        }
    }

    public func remove(vm: VMID, opd: OPDID) throws {
        let (opd, vm) = try Self.checkedNames(opd: opd, vm: vm)
        try locked {
            let dirs = mounts.map { dir($0, [opd, vm]) }.filter(fs.exists)
            var remaining: [(String, [Int32])] = []
            for dir in dirs {
                let pids = try readProcs(dir)
                if !pids.isEmpty { remaining.append((dir, pids)) }
            }
            if let (dir, pids) = remaining.first {
                throw CgroupError(
                    .busy,
                    "cannot remove the group of VM '\(vm)' (OPD '\(opd)'): process\(pids.count == 1 ? "" : "es") "
                        + "\(pids.map(String.init).joined(separator: ", ")) \(pids.count == 1 ? "is" : "are") still in "
                        + "\(dir)/cgroup.procs; stop the VM first. Nothing was removed",
                    path: dir + "/cgroup.procs")
            }
            for dir in dirs { try removeDir(dir) }
            if !dirs.isEmpty {
                logger.info("Removed VM group", metadata: ["opd.id": "\(opd)", "vm.id": "\(vm)"])
            }
            try recomputeLocked(opd)
        }
    }

    public func adopt() throws -> [AdoptedGroup] {
        try locked {
            let base = dir(primaryMount, [])
            guard fs.exists(base) else { return [] }
            var adopted: [AdoptedGroup] = []
            for opd in try fs.list(base) {
                guard Name.isValid(opd) else {
                    logger.info("Skipped a group that is not an OPD", metadata: ["cgroup.path": "\(base)/\(opd)"])
                    continue
                }
                for vm in try fs.list(dir(primaryMount, [opd])) {
                    guard Name.isValid(vm) else {
                        logger.info("Skipped a group that is not a VM", metadata: ["cgroup.path": "\(base)/\(opd)/\(vm)"])
                        continue
                    }
                    adopted.append(
                        AdoptedGroup(
                            opd: OPDID(rawValue: opd), vm: VMID(rawValue: vm), limits: try readLimits([opd, vm]),
                            pids: try readProcs(dir(primaryMount, [opd, vm]))))
                }
            }
            return adopted
        }
    }

    public func recomputeOPD(_ opd: OPDID) throws {
        let opd = try Self.checkedName(opd.rawValue, what: "OPD id")
        try locked { try recomputeLocked(opd) }
    }

    // MARK: - Beyond the protocol

    /// Writes `limits` to the OPD group directly, e.g. to cap an OPD below the sum of its VMs
    /// on this host. It lasts until the next ``apply(_:)``, ``remove(vm:opd:)`` or
    /// ``recomputeOPD(_:)`` of that OPD, which restore the sum. In cgroup v1 the kernel refuses
    /// (``CgroupError/Code/rejected``) a CPU quota below any of its VMs' quotas.
    public func setOPDLimits(_ opd: OPDID, _ limits: GroupLimits) throws {
        let opd = try Self.checkedName(opd.rawValue, what: "OPD id")
        try locked {
            let opdDir = dir(primaryMount, [opd])
            guard fs.exists(opdDir) else {
                throw CgroupError(
                    .notFound, "cannot set the limits of OPD '\(opd)': its group does not exist at \(opdDir); apply a VM first",
                    path: opdDir)
            }
            try writeCPU([opd], limits)
            try writeMemory([opd], limits.memoryLimitBytes)
            try writePids([opd], limits.pidsLimit)
        }
    }

    /// cgroup v2 allows controllers to be enabled only in groups without processes of their own
    /// ("no internal processes"). Under systemd with `Delegate=yes` the agent itself sits in its
    /// delegated group, so before the first ``apply(_:)`` it moves every process of
    /// `relativeGroup` (relative to the v2 mount, e.g. ``ownV2Cgroup(procFile:)``) into the
    /// child group `leaf`, creating it. Returns the pids moved. Does nothing on cgroup v1.
    /// (systemd ≥ 254 can do the same with `DelegateSubgroup=`.)
    @discardableResult
    public func moveProcesses(outOf relativeGroup: String, into leaf: String = "agent") throws -> [Int32] {
        let components = try Self.checkedRelativePath(relativeGroup, what: "delegated cgroup", allowEmpty: true)
        let leaf = try Self.checkedName(leaf, what: "leaf group name")
        guard case .v2(let mount) = layout else { return [] }
        return try locked {
            let groupDir = ([mount] + components).joined(separator: "/")
            let leafDir = groupDir + "/" + leaf
            if !fs.exists(leafDir) { try makeDir(leafDir) }
            var moved: [Int32] = []
            for pid in try readProcs(groupDir) {
                do {
                    try fs.write(leafDir + "/cgroup.procs", String(pid))
                    moved.append(pid)
                } catch let error as CgroupError where error.code == .noSuchProcess {
                    continue  // exited meanwhile
                }
            }
            return moved
        }
    }

    // MARK: - Names and paths

    /// Checks an id the way ``Name/validate(_:what:)`` does before it becomes a path.
    static func checkedName(_ raw: String, what: String) throws -> String {
        do {
            return try Name.validate(raw, what: what)
        } catch {
            throw CgroupError(.invalidName, "refusing \(what) as a cgroup name: \(error.message); nothing was changed")
        }
    }

    static func checkedNames(opd: OPDID, vm: VMID) throws -> (String, String) {
        (try checkedName(opd.rawValue, what: "OPD id"), try checkedName(vm.rawValue, what: "VM id"))
    }

    static func checkedRelativePath(_ path: String, what: String, allowEmpty: Bool = false) throws -> [String] {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if components.isEmpty && !allowEmpty {
            throw CgroupError(.invalidPath, "\(what) '\(path)' is empty; give a path below the cgroup mount such as 'lumbung'")
        }
        for component in components where component == "." || component == ".." || component.contains("\0") {
            throw CgroupError(
                .invalidPath, "\(what) '\(path)' contains '\(component == "." ? "." : component == ".." ? ".." : "NUL")'; "
                    + "give a plain path below the cgroup mount such as 'lumbung'")
        }
        return components
    }

    private enum Controller { case cpu, cpuacct, memory, pids }

    private func mount(of controller: Controller) -> String? {
        switch layout {
        case .v2(let mount): return mount
        case .v1(let m):
            switch controller {
            case .cpu: return m.cpu
            case .cpuacct: return m.cpuacct
            case .memory: return m.memory
            case .pids: return m.pids
            }
        }
    }

    /// The hierarchy whose tree is listed (v2: the mount; v1: the cpu hierarchy).
    private var primaryMount: String { mount(of: .cpu)! }

    /// Every distinct hierarchy holding the groups.
    private var mounts: [String] {
        var seen: [String] = []
        for c in [Controller.cpu, .cpuacct, .memory, .pids] {
            if let m = mount(of: c), !seen.contains(m) { seen.append(m) }
        }
        return seen
    }

    /// The hierarchies in the order a process is attached: memory first, so nothing it
    /// allocates is charged elsewhere.
    private var attachMounts: [String] {
        var seen: [String] = []
        for c in [Controller.memory, .pids, .cpu, .cpuacct] {
            if let m = mount(of: c), !seen.contains(m) { seen.append(m) }
        }
        return seen
    }

    private var isV2: Bool {
        if case .v2 = layout { return true }
        return false
    }

    private func dir(_ mount: String, _ relative: [String]) -> String {
        ([mount] + subPathComponents + relative).joined(separator: "/")
    }

    private func file(_ controller: Controller, _ relative: [String], _ name: String) -> String? {
        mount(of: controller).map { dir($0, relative) + "/" + name }
    }

    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: - Groups

    /// Creates the group `relative` (and its ancestors) in every hierarchy; in v2 enables the
    /// controllers from the mount down to the group's parent.
    private func ensureGroup(_ relative: [String]) throws {
        let path = subPathComponents + relative
        for mount in mounts {
            var current = mount
            if isV2 { try enableControllers(current) }
            for (index, component) in path.enumerated() {
                current += "/" + component
                if !fs.exists(current) {
                    try makeDir(current)
                    logger.debug("Created group", metadata: ["cgroup.path": "\(current)"])
                }
                if isV2 && index < path.count - 1 { try enableControllers(current) }
            }
        }
    }

    private func makeDir(_ path: String) throws {
        do {
            try fs.mkdir(path)
        } catch let error as CgroupError where error.errno == EEXIST {
            return
        }
    }

    private func removeDir(_ path: String) throws {
        do {
            try fs.rmdir(path)
        } catch let error as CgroupError where error.code == .notFound {
            return
        }
    }

    /// Writes `+cpu +memory +pids` (only those missing) to `dir/cgroup.subtree_control`.
    private func enableControllers(_ dir: String) throws {
        let file = dir + "/cgroup.subtree_control"
        let enabled = Set(Self.words(try readOptional(file) ?? "").map { $0.hasPrefix("+") ? String($0.dropFirst()) : $0 })
        let missing = Self.v2Controllers.filter { !enabled.contains($0) }
        guard !missing.isEmpty else { return }
        do {
            try fs.write(file, missing.map { "+" + $0 }.joined(separator: " "))
        } catch let error as CgroupError where error.code == .busy {
            throw CgroupError(
                .busy,
                "cannot enable \(missing.joined(separator: ", ")) in \(file): EBUSY; cgroup v2 lets only a group without "
                    + "processes of its own enable controllers for children — move the processes of \(dir) into a "
                    + "child group first (CgroupDriver.moveProcesses(outOf:into:), or systemd's DelegateSubgroup=)",
                path: file, errno: error.errno)
        }
    }

    private func recomputeLocked(_ opd: String) throws {
        let opdDir = dir(primaryMount, [opd])
        guard fs.exists(opdDir) else { return }
        if try fs.list(opdDir).isEmpty {
            let dirs = mounts.map { dir($0, [opd]) }.filter(fs.exists)
            for dir in dirs where !(try readProcs(dir)).isEmpty {
                logger.info("Kept an OPD group that still has processes", metadata: ["opd.id": "\(opd)", "cgroup.path": "\(dir)"])
                return
            }
            for dir in dirs { try removeDir(dir) }
            logger.info("Removed OPD group", metadata: ["opd.id": "\(opd)"])
            return
        }
        try ensureGroup([opd])
        // The sum is at least each VM's limit, so it may be written before or after them.
        let target = try sumOfVMs(opd, replacing: nil)
        try writeCPU([opd], target)
        try writeMemory([opd], target.memoryLimitBytes)
        try writePids([opd], target.pidsLimit)
    }

    /// The sum of the limits of the VM groups under `opd`, with `replacing`'s limits in place of
    /// what its group holds now (or added, when it is new). Unlimited if any VM is.
    private func sumOfVMs(_ opd: String, replacing: (vm: String, limits: GroupLimits)?) throws -> GroupLimits {
        var all: [GroupLimits] = []
        let opdDir = dir(primaryMount, [opd])
        let names = fs.exists(opdDir) ? try fs.list(opdDir) : []
        for name in names where name != replacing?.vm {
            all.append(try readLimits([opd, name]))
        }
        if let replacing { all.append(replacing.limits) }
        func sum(_ values: [Int64?]) -> Int64? {
            var total: Int64 = 0
            for value in values {
                guard let value else { return nil }
                total += value
            }
            return total
        }
        return GroupLimits(
            cpuQuotaMicros: sum(all.map(\.normalizedQuota)), cpuPeriodMicros: VMLimits.cpuPeriodMicros,
            memoryLimitBytes: sum(all.map(\.memoryLimitBytes)),
            pidsLimit: mount(of: .pids) == nil ? nil : sum(all.map(\.pidsLimit)))
    }

    // MARK: - Reading

    private func readOptional(_ path: String) throws -> String? {
        do {
            return try fs.read(path)
        } catch let error as CgroupError where error.code == .notFound {
            return nil
        }
    }

    private func readProcs(_ dir: String) throws -> [Int32] {
        let path = dir + "/cgroup.procs"
        guard let text = try readOptional(path) else { return [] }
        return try Self.words(text).map { word in
            guard let pid = Int32(word) else {
                throw CgroupError(.unexpectedContent, "\(path) holds '\(word)'; expected one pid per line", path: path)
            }
            return pid
        }.sorted()
    }

    /// Parses a whole number, or `max` (→ nil) when `allowMax`.
    static func parseNumber(_ text: String, path: String, allowMax: Bool) throws -> Int64? {
        let trimmed = text.trimmed()
        if allowMax && trimmed == "max" { return nil }
        guard let value = Int64(trimmed) else {
            throw CgroupError(
                .unexpectedContent,
                "\(path) holds '\(trimmed.prefix(80))'; expected a whole number\(allowMax ? " or 'max'" : "")",
                path: path)
        }
        return value
    }

    /// Memory limits at or above this are the v1 kernel's "unlimited" (9223372036854771712).
    static let v1UnlimitedMemory: Int64 = 1 << 62

    private func readLimits(_ relative: [String]) throws -> GroupLimits {
        var limits = GroupLimits.unlimited
        if isV2 {
            let cpuPath = file(.cpu, relative, "cpu.max")!
            if let text = try readOptional(cpuPath) {
                let fields = Self.words(text)
                guard fields.count == 2, let period = Int64(fields[1]), period > 0,
                    fields[0] == "max" || Int64(fields[0]) != nil
                else {
                    throw CgroupError(
                        .unexpectedContent, "\(cpuPath) holds '\(text.prefix(80))'; expected '<quota|max> <period>'",
                        path: cpuPath)
                }
                limits.cpuQuotaMicros = Int64(fields[0])
                limits.cpuPeriodMicros = period
            }
            let memoryPath = file(.memory, relative, "memory.max")!
            if let text = try readOptional(memoryPath) {
                limits.memoryLimitBytes = try Self.parseNumber(text, path: memoryPath, allowMax: true)
            }
        } else {
            let quotaPath = file(.cpu, relative, "cpu.cfs_quota_us")!
            if let text = try readOptional(quotaPath), let quota = try Self.parseNumber(text, path: quotaPath, allowMax: false) {
                limits.cpuQuotaMicros = quota < 0 ? nil : quota
            }
            let periodPath = file(.cpu, relative, "cpu.cfs_period_us")!
            if let text = try readOptional(periodPath), let period = try Self.parseNumber(text, path: periodPath, allowMax: false),
                period > 0
            {
                limits.cpuPeriodMicros = period
            }
            let memoryPath = file(.memory, relative, "memory.limit_in_bytes")!
            if let text = try readOptional(memoryPath), let limit = try Self.parseNumber(text, path: memoryPath, allowMax: false) {
                limits.memoryLimitBytes = limit >= Self.v1UnlimitedMemory || limit < 0 ? nil : limit
            }
        }
        if let pidsPath = file(.pids, relative, "pids.max"), let text = try readOptional(pidsPath) {
            limits.pidsLimit = try Self.parseNumber(text, path: pidsPath, allowMax: true)
        }
        return limits
    }

    private struct Usage {
        var cpuMicros: Int64
        var memoryBytes: Int64
        var pids: Int
    }

    private func readUsage(_ relative: [String]) throws -> Usage {
        let cpuMicros: Int64
        let memoryBytes: Int64
        if isV2 {
            let statPath = file(.cpu, relative, "cpu.stat")!
            let stat = try fs.read(statPath)
            guard
                let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("usage_usec ") }),
                let value = Int64(line.dropFirst("usage_usec ".count).trimmed())
            else {
                throw CgroupError(
                    .unexpectedContent, "\(statPath) has no 'usage_usec <n>' line; expected the kernel's cpu.stat",
                    path: statPath)
            }
            cpuMicros = value
            let memoryPath = file(.memory, relative, "memory.current")!
            memoryBytes = try Self.parseNumber(try fs.read(memoryPath), path: memoryPath, allowMax: false)!
        } else {
            let usagePath = file(.cpuacct, relative, "cpuacct.usage")!
            cpuMicros = try Self.parseNumber(try fs.read(usagePath), path: usagePath, allowMax: false)! / 1000
            let memoryPath = file(.memory, relative, "memory.usage_in_bytes")!
            memoryBytes = try Self.parseNumber(try fs.read(memoryPath), path: memoryPath, allowMax: false)!
        }
        var pids: Int
        if let pidsPath = file(.pids, relative, "pids.current"), let text = try readOptional(pidsPath) {
            pids = Int(try Self.parseNumber(text, path: pidsPath, allowMax: false)!)
        } else {
            pids = try readProcs(dir(primaryMount, relative)).count
        }
        return Usage(cpuMicros: cpuMicros, memoryBytes: memoryBytes, pids: pids)
    }

    // MARK: - Writing

    /// True when `a` is a larger limit than `b` (nil = unlimited = largest).
    static func exceeds(_ a: Int64?, _ b: Int64?) -> Bool {
        switch (a, b) {
        case (nil, nil): return false
        case (nil, _): return true
        case (_, nil): return false
        case (let a?, let b?): return a > b
        }
    }

    private func writeCPU(_ relative: [String], _ limits: GroupLimits) throws {
        if isV2 {
            try fs.write(
                file(.cpu, relative, "cpu.max")!,
                "\(limits.cpuQuotaMicros.map(String.init) ?? "max") \(limits.cpuPeriodMicros)")
            return
        }
        let quotaPath = file(.cpu, relative, "cpu.cfs_quota_us")!
        let periodPath = file(.cpu, relative, "cpu.cfs_period_us")!
        let currentPeriod = try readOptional(periodPath).flatMap { try Self.parseNumber($0, path: periodPath, allowMax: false) }
        if currentPeriod != limits.cpuPeriodMicros {
            // Unlimited first, so no intermediate quota/period pair can exceed the parent's.
            try fs.write(quotaPath, "-1")
            try fs.write(periodPath, String(limits.cpuPeriodMicros))
        }
        try fs.write(quotaPath, limits.cpuQuotaMicros.map(String.init) ?? "-1")
    }

    private func writeMemory(_ relative: [String], _ limit: Int64?) throws {
        if isV2 {
            try fs.write(file(.memory, relative, "memory.max")!, limit.map(String.init) ?? "max")
            return
        }
        let limitPath = file(.memory, relative, "memory.limit_in_bytes")!
        let value = limit.map(String.init) ?? "-1"
        let memswPath = file(.memory, relative, "memory.memsw.limit_in_bytes")!
        guard fs.exists(memswPath) else {
            try fs.write(limitPath, value)
            return
        }
        // memory+swap must stay ≥ memory: raise it first, lower it last.
        let current = try readLimits(relative).memoryLimitBytes
        if Self.exceeds(limit, current) {
            try fs.write(memswPath, value)
            try fs.write(limitPath, value)
        } else {
            try fs.write(limitPath, value)
            try fs.write(memswPath, value)
        }
    }

    private func writePids(_ relative: [String], _ limit: Int64?) throws {
        guard let path = file(.pids, relative, "pids.max") else { return }
        try fs.write(path, limit.map(String.init) ?? "max")
    }
}
