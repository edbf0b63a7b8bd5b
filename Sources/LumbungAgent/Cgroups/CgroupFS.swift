#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The narrowest OS layer of the cgroup driver: the handful of file operations it does on
/// cgroupfs. ``SysCgroupFS`` is the real one; ``DirectoryCgroupFS`` is a plain directory tree
/// standing in for `/sys/fs/cgroup` in tests (the "fake sysfs").
///
/// Paths are absolute. Every failure throws a ``CgroupError`` naming the path and the errno.
public protocol CgroupFS: Sendable {
    /// The whole content of a file.
    func read(_ path: String) throws -> String
    /// Writes `contents` to a file in one `write(2)` (the kernel takes each write as one value).
    func write(_ path: String, _ contents: String) throws
    /// Creates one directory (a cgroup). Throws with `EEXIST` when it already exists.
    func mkdir(_ path: String) throws
    /// Removes one directory (a cgroup). The kernel refuses with `EBUSY` while it has processes.
    func rmdir(_ path: String) throws
    /// The names of the subdirectories (child cgroups) of a directory, sorted.
    func list(_ path: String) throws -> [String]
    /// True when something exists at `path`.
    func exists(_ path: String) -> Bool
}

/// The real cgroupfs: files are opened without `O_CREAT` (the kernel provides every interface
/// file of a group; a missing one means the controller is not enabled there).
public struct SysCgroupFS: CgroupFS {
    /// Creates the real file layer.
    public init() {}

    public func read(_ path: String) throws -> String { try CgroupPosixFiles.read(path) }
    public func write(_ path: String, _ contents: String) throws {
        try CgroupPosixFiles.write(path, contents, create: false)
    }
    public func mkdir(_ path: String) throws { try CgroupPosixFiles.mkdir(path) }
    public func rmdir(_ path: String) throws { try CgroupPosixFiles.rmdir(path) }
    public func list(_ path: String) throws -> [String] { try CgroupPosixFiles.subdirectories(path) }
    public func exists(_ path: String) -> Bool { CgroupPosixFiles.exists(path) }
}

/// A plain directory tree standing in for cgroupfs (tests and dry runs), behaving like a plain
/// directory: writes create or replace regular files, `mkdir` creates an empty directory (the
/// kernel's interface files are *not* conjured up — tests create the ones the kernel would),
/// and `rmdir` first deletes the regular files inside, as the kernel's interface files vanish
/// with their group. It refuses (`ENOTEMPTY`) while child directories remain, like the kernel.
public struct DirectoryCgroupFS: CgroupFS {
    /// Creates the directory-tree file layer.
    public init() {}

    public func read(_ path: String) throws -> String { try CgroupPosixFiles.read(path) }
    public func write(_ path: String, _ contents: String) throws {
        try CgroupPosixFiles.write(path, contents, create: true)
    }
    public func mkdir(_ path: String) throws { try CgroupPosixFiles.mkdir(path) }
    public func rmdir(_ path: String) throws {
        if try !CgroupPosixFiles.subdirectories(path).isEmpty {
            throw CgroupError.system("remove the group", path: path, errno: ENOTEMPTY)
        }
        for file in try CgroupPosixFiles.entries(path) where !file.isDirectory {
            let filePath = path + "/" + file.name
            if unlink(filePath) != 0 {
                throw CgroupError.system("remove the file", path: filePath, errno: errno)
            }
        }
        try CgroupPosixFiles.rmdir(path)
    }
    public func list(_ path: String) throws -> [String] { try CgroupPosixFiles.subdirectories(path) }
    public func exists(_ path: String) -> Bool { CgroupPosixFiles.exists(path) }
}

/// Thin POSIX wrappers that turn errno into ``CgroupError``.
enum CgroupPosixFiles {
    static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw CgroupError.system("read", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { cRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CgroupError.system("read", path: path, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            if bytes.count > 16 * 1024 * 1024 {
                throw CgroupError(.unexpectedContent, "\(path) is larger than 16 MiB; a cgroup file never is", path: path)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ path: String, _ contents: String, create: Bool) throws {
        let flags = O_WRONLY | O_CLOEXEC | (create ? (O_CREAT | O_TRUNC) : 0)
        let fd = open(path, flags, 0o644)
        if fd < 0 { throw CgroupError.system("write '\(contents)' to", path: path, errno: errno) }
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        var offset = 0
        repeat {
            let n = bytes.withUnsafeBytes { cWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CgroupError.system("write '\(contents)' to", path: path, errno: errno)
            }
            offset += n
        } while offset < bytes.count
    }

    static func mkdir(_ path: String) throws {
        if cMkdir(path, 0o755) != 0 {
            throw CgroupError.system("create the group", path: path, errno: errno)
        }
    }

    static func rmdir(_ path: String) throws {
        if cRmdir(path) != 0 {
            throw CgroupError.system("remove the group", path: path, errno: errno)
        }
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    struct Entry {
        var name: String
        var isDirectory: Bool
    }

    static func entries(_ path: String) throws -> [Entry] {
        guard let dir = opendir(path) else {
            throw CgroupError.system("list", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var result: [Entry] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var isDirectory = Int32(entry.pointee.d_type) == Int32(DT_DIR)
            if Int32(entry.pointee.d_type) == Int32(DT_UNKNOWN) {
                var st = stat()
                isDirectory = lstat(path + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
            }
            result.append(Entry(name: name, isDirectory: isDirectory))
        }
        return result
    }

    static func subdirectories(_ path: String) throws -> [String] {
        try entries(path).filter(\.isDirectory).map(\.name).sorted()
    }
}

// The module's own `read`/`write`/`mkdir`/`rmdir` names shadow the C functions inside the
// wrappers above; these aliases reach the C ones.
@inline(__always) private func cRead(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buf, count)
}
@inline(__always) private func cWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buf, count)
}
@inline(__always) private func cMkdir(_ path: String, _ mode: mode_t) -> Int32 { mkdir(path, mode) }
@inline(__always) private func cRmdir(_ path: String) -> Int32 { rmdir(path) }
