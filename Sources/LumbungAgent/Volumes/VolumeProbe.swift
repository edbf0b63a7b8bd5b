#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Sizes of a mounted file system, from `statvfs(2)`.
public struct FileSystemSpace: Hashable, Sendable {
    /// Total bytes of the file system's data blocks.
    public var total: Int64
    /// Bytes available to unprivileged writers.
    public var available: Int64
    /// Bytes in use (total − free).
    public var used: Int64

    /// Creates a value.
    public init(total: Int64, available: Int64, used: Int64) {
        self.total = total
        self.available = available
        self.used = used
    }
}

/// A loop device and the file behind it.
public struct LoopDevice: Hashable, Sendable {
    /// `/dev/loopN`.
    public var device: String
    /// The absolute path of the backing file, as the kernel reports it.
    public var backingFile: String

    /// Creates a value.
    public init(device: String, backingFile: String) {
        self.device = device
        self.backingFile = backingFile
    }
}

/// A mounted file system, from `/proc/self/mountinfo`.
public struct MountEntry: Hashable, Sendable {
    /// Where it is mounted (unescaped).
    public var mountPoint: String
    /// What is mounted there, e.g. `/dev/loop3`.
    public var source: String
    /// The file system type, e.g. `xfs`.
    public var fsType: String
    /// The kernel's mount id (first field of mountinfo); a remount gets a new one.
    public var mountID: Int

    /// Creates a value.
    public init(mountPoint: String, source: String, fsType: String, mountID: Int = 0) {
        self.mountPoint = mountPoint
        self.source = source
        self.fsType = fsType
        self.mountID = mountID
    }
}

/// The read-only side of the volume driver's OS layer: what is mounted, which loop devices
/// are attached to which files, and how full a file system is. Reads files and calls
/// `statvfs`, never runs a command, so ``VolumeDriver/observe()`` is cheap.
public protocol VolumeProbe: Sendable {
    /// All current mounts.
    func mounts() throws -> [MountEntry]
    /// All attached loop devices with their backing files.
    func loopDevices() throws -> [LoopDevice]
    /// The space of the file system holding `path`.
    func space(_ path: String) throws -> FileSystemSpace
}

/// The real probe: `/proc/self/mountinfo`, `/sys/block/loop*/loop/backing_file`, `statvfs`.
public struct LinuxVolumeProbe: VolumeProbe {
    /// Where mounts are read from.
    public var mountInfoPath: String
    /// Where loop devices are listed.
    public var sysBlockPath: String

    /// Creates the real probe (the paths are changeable for tests).
    public init(mountInfoPath: String = "/proc/self/mountinfo", sysBlockPath: String = "/sys/block") {
        self.mountInfoPath = mountInfoPath
        self.sysBlockPath = sysBlockPath
    }

    public func mounts() throws -> [MountEntry] {
        guard let text = try? String(contentsOfFile: mountInfoPath, encoding: .utf8) else {
            throw VolumeError(.io, "cannot read the mount table \(mountInfoPath)")
        }
        return Self.parseMountInfo(text)
    }

    public func loopDevices() throws -> [LoopDevice] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sysBlockPath)) ?? []
        var result: [LoopDevice] = []
        for name in names.sorted() where name.hasPrefix("loop") {
            // Only attached devices have loop/backing_file.
            guard let raw = try? String(contentsOfFile: "\(sysBlockPath)/\(name)/loop/backing_file", encoding: .utf8) else {
                continue
            }
            var file = String(raw.reversed().drop(while: { $0 == "\n" || $0 == "\r" }).reversed())
            if file.hasSuffix(" (deleted)") { file.removeLast(" (deleted)".count) }
            if !file.isEmpty { result.append(LoopDevice(device: "/dev/" + name, backingFile: file)) }
        }
        return result
    }

    public func space(_ path: String) throws -> FileSystemSpace {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { throw VolumeError.system("statvfs", path: path, errno: errno) }
        let unit = Int64(s.f_frsize)
        return FileSystemSpace(
            total: Int64(s.f_blocks) * unit, available: Int64(s.f_bavail) * unit,
            used: (Int64(s.f_blocks) - Int64(s.f_bfree)) * unit)
    }

    /// Parses `/proc/<pid>/mountinfo`: mount point is field 5, then after the `-` separator
    /// come the file system type and the source. Octal escapes (`\040`) are undone.
    public static func parseMountInfo(_ text: String) -> [MountEntry] {
        var result: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count else { continue }
            result.append(
                MountEntry(
                    mountPoint: unescape(fields[4]), source: unescape(fields[dash + 2]), fsType: String(fields[dash + 1]),
                    mountID: Int(fields[0]) ?? 0))
        }
        return result
    }

    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count {
                let digits = utf8[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value < 256 {
                        bytes.append(UInt8(value))
                        i += 4
                        continue
                    }
                }
            }
            bytes.append(utf8[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
