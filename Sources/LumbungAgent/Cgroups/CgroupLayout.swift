/// Where the cgroup controllers the driver needs are mounted on this host.
public enum CgroupLayout: Sendable, Hashable, CustomStringConvertible {
    /// The unified hierarchy (cgroup v2) at `mount`, offering `cpu`, `memory` and `pids`.
    case v2(mount: String)
    /// Separate cgroup v1 hierarchies, one mount per controller (or joined, e.g. `cpu,cpuacct`).
    case v1(CgroupV1Mounts)

    public var description: String {
        switch self {
        case .v2(let mount): return "cgroup v2 at \(mount)"
        case .v1(let m):
            return "cgroup v1 (cpu at \(m.cpu), cpuacct at \(m.cpuacct), memory at \(m.memory), pids at \(m.pids ?? "none"))"
        }
    }
}

/// The mount points of the cgroup v1 controllers. `cpu` and `cpuacct` are the same path when
/// they are joined in one hierarchy (`/sys/fs/cgroup/cpu,cpuacct`).
public struct CgroupV1Mounts: Sendable, Hashable {
    /// The hierarchy with the `cpu` controller (`cpu.cfs_quota_us`, `cpu.cfs_period_us`).
    public var cpu: String
    /// The hierarchy with the `cpuacct` controller (`cpuacct.usage`).
    public var cpuacct: String
    /// The hierarchy with the `memory` controller.
    public var memory: String
    /// The hierarchy with the `pids` controller; nil on kernels without it (no pids limit then).
    public var pids: String?

    /// Creates a set of v1 mount points.
    public init(cpu: String, cpuacct: String, memory: String, pids: String?) {
        self.cpu = cpu
        self.cpuacct = cpuacct
        self.memory = memory
        self.pids = pids
    }
}

/// One line of a mounts file (`/proc/self/mounts`).
struct CgroupMountEntry: Hashable {
    var device: String
    var mountPoint: String
    var fsType: String
    var options: [String]

    /// Parses `/proc/self/mounts` (fstab format, octal escapes such as `\040` for a space).
    static func parse(_ text: String) -> [CgroupMountEntry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4 else { return nil }
            return CgroupMountEntry(
                device: unescape(fields[0]), mountPoint: unescape(fields[1]), fsType: String(fields[2]),
                options: fields[3].split(separator: ",").map(String.init))
        }
    }

    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
                utf8[(i + 1)...(i + 3)].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") })
            {
                let digits = utf8[(i + 1)...(i + 3)].map { Int($0 - UInt8(ascii: "0")) }
                bytes.append(UInt8(truncatingIfNeeded: digits[0] * 64 + digits[1] * 8 + digits[2]))
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension CgroupDriver {
    /// The controllers a v2 hierarchy must offer.
    static let v2Controllers = ["cpu", "memory", "pids"]

    /// Finds the cgroup hierarchies under `root`.
    ///
    /// - **v2** when a `cgroup2` mount at or below `root` lists `cpu`, `memory` and `pids` in
    ///   its `cgroup.controllers` (or, when the mounts file names no cgroup mount at all,
    ///   `root/cgroup.controllers` does).
    /// - otherwise **v1** when `cgroup` mounts at or below `root` carry the `cpu`, `cpuacct`
    ///   and `memory` controllers (separate or joined such as `cpu,cpuacct`); `pids` is used
    ///   when mounted. A hybrid host whose `unified` v2 mount has no controllers is v1.
    /// - otherwise throws ``CgroupError/Code/unsupported`` saying what was found.
    public static func detect(
        root: String = "/sys/fs/cgroup", mountsFile: String = "/proc/self/mounts"
    ) throws -> CgroupLayout {
        let fs = SysCgroupFS()
        let root = normalizedRoot(root)
        let mountsText = try fs.read(mountsFile)
        let mounts = CgroupMountEntry.parse(mountsText).filter {
            $0.mountPoint == root || $0.mountPoint.hasPrefix(root == "/" ? "/" : root + "/")
        }

        // v2: prefer the mount at the root itself, then the shallowest.
        var v2Findings: [String] = []
        let v2Mounts = mounts.filter { $0.fsType == "cgroup2" }
            .sorted { ($0.mountPoint.count, $0.mountPoint) < ($1.mountPoint.count, $1.mountPoint) }
        for mount in v2Mounts {
            let controllers = (try? fs.read(mount.mountPoint + "/cgroup.controllers")).map(words) ?? []
            if v2Controllers.allSatisfy(controllers.contains) { return .v2(mount: mount.mountPoint) }
            v2Findings.append("cgroup2 at \(mount.mountPoint) offers '\(controllers.joined(separator: " "))'")
        }

        // v1: one hierarchy per controller (first, shallowest mount wins).
        let v1Mounts = mounts.filter { $0.fsType == "cgroup" }
            .sorted { ($0.mountPoint.count, $0.mountPoint) < ($1.mountPoint.count, $1.mountPoint) }
        func mountPoint(of controller: String) -> String? {
            v1Mounts.first { $0.options.contains(controller) }?.mountPoint
        }
        if let cpu = mountPoint(of: "cpu"), let cpuacct = mountPoint(of: "cpuacct"),
            let memory = mountPoint(of: "memory")
        {
            return .v1(CgroupV1Mounts(cpu: cpu, cpuacct: cpuacct, memory: memory, pids: mountPoint(of: "pids")))
        }

        // No cgroup mount listed at all (some containers): look at the root itself.
        if v2Mounts.isEmpty && v1Mounts.isEmpty,
            let text = try? fs.read(root + "/cgroup.controllers"),
            v2Controllers.allSatisfy(words(text).contains)
        {
            return .v2(mount: root)
        }

        let known = ["cpu", "cpuacct", "memory", "pids", "blkio", "io"]
        let v1Found = known.filter { mountPoint(of: $0) != nil }
        var found = v2Findings
        found.append(v1Found.isEmpty ? "no cgroup v1 controller mounts" : "cgroup v1 mounts for \(v1Found.joined(separator: ", "))")
        throw CgroupError(
            .unsupported,
            "no usable cgroup hierarchy under \(root) (per \(mountsFile)): \(found.joined(separator: "; ")); "
                + "expected a cgroup2 mount whose cgroup.controllers lists cpu, memory and pids, "
                + "or cgroup v1 mounts of cpu, cpuacct and memory",
            path: root)
    }

    /// The current process's own cgroup v2 path relative to the v2 mount (the `0::` line of
    /// `/proc/self/cgroup`), e.g. `system.slice/lumbung-agent.service`, or nil when there is
    /// none. Under systemd this is the subtree delegated to the agent (`Delegate=yes`).
    public static func ownV2Cgroup(procFile: String = "/proc/self/cgroup") -> String? {
        guard let text = try? SysCgroupFS().read(procFile) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            let path = line.dropFirst(3).split(separator: "/").joined(separator: "/")
            return path
        }
        return nil
    }

    static func normalizedRoot(_ root: String) -> String {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        return root
    }

    static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
    }
}
