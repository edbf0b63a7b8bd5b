import Foundation
import LumbungAgent
import LumbungCore

/// A pretend host for the volume driver's unit tests: records every command and simulates
/// just enough of the kernel (loop devices handed out from `/dev/loop7` up, mounts) for the
/// probe to see the commands' effects. Thread-safe.
final class FakeVolumeHost: CommandRunner, VolumeProbe, @unchecked Sendable {
    private let lock = NSLock()
    private var _commands: [[String]] = []
    private var _loops: [LoopDevice] = []
    private var _mounts: [MountEntry] = []
    private var nextLoop = 7
    /// Free bytes reported for any path that is not a mount point.
    var poolAvailable: Int64 = 100 * ByteSize.gib
    /// Failures to return for a command, keyed by executable.
    var failures: [String: VolumeCommandResult] = [:]

    var commands: [[String]] { lock.withLock { _commands } }
    var mountList: [MountEntry] { lock.withLock { _mounts } }
    var loopList: [LoopDevice] { lock.withLock { _loops } }

    func resetCommands() { lock.withLock { _commands = [] } }

    func run(_ executable: String, _ args: [String]) throws -> VolumeCommandResult {
        try lock.withLock {
            _commands.append([executable] + args)
            if let failure = failures[executable] { return failure }
            switch (executable, args.first) {
            case ("losetup", "-f"):
                let device = "/dev/loop\(nextLoop)"
                nextLoop += 1
                _loops.append(LoopDevice(device: device, backingFile: args[2]))
                return VolumeCommandResult(stdout: device + "\n")
            case ("losetup", "-d"):
                _loops.removeAll { $0.device == args[1] }
            case ("mount", _):
                _mounts.append(MountEntry(mountPoint: args[5], source: args[4], fsType: args[1]))
            case ("umount", _):
                _mounts.removeAll { $0.mountPoint == args[0] }
            case ("losetup", "-c"), ("mkfs.xfs", _), ("xfs_growfs", _):
                break
            default:
                throw VolumeError(.commandFailed, "fake host does not know \(executable) \(args)")
            }
            return VolumeCommandResult()
        }
    }

    func mounts() throws -> [MountEntry] { mountList }
    func loopDevices() throws -> [LoopDevice] { loopList }
    func space(_ path: String) throws -> FileSystemSpace {
        if mountList.contains(where: { $0.mountPoint == path }) {
            return FileSystemSpace(total: 300 * ByteSize.mib, available: 280 * ByteSize.mib, used: 20 * ByteSize.mib)
        }
        return FileSystemSpace(total: 1000 * ByteSize.gib, available: poolAvailable, used: 0)
    }
}

/// A unique temporary directory (canonical path), removed by ``remove()``.
struct VolumeTempDir {
    let path: String

    init(_ prefix: String = "lumbung-vol-test") throws {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw VolumeError(.io, "mkdtemp failed") }
        let raw = String(cString: made)
        guard let resolved = realpath(raw, nil) else { throw VolumeError(.io, "realpath failed") }
        path = String(cString: resolved)
        free(resolved)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Everything under the directory, relative, sorted.
    func contents() -> [String] {
        ((FileManager.default.subpaths(atPath: path)) ?? []).sorted()
    }
}

func volumeFileSize(_ path: String) -> Int64? {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
}
