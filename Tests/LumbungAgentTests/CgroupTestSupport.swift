import Foundation
import LumbungAgent
import LumbungCore
import Testing

/// A temporary directory removed when the value is released (call `remove()` in a defer).
struct CgroupTempTree {
    let path: String

    init(_ label: String) throws {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/lumbung-\(label)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes a file (creating its directory), as the kernel would have it.
    func put(_ relative: String, _ contents: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try contents.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: path + "/" + relative, withIntermediateDirectories: true)
    }

    /// The content of a file, nil when it does not exist.
    func get(_ relative: String) -> String? {
        try? String(contentsOfFile: path + "/" + relative, encoding: .utf8)
    }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path + "/" + relative) }

    /// Every path below the tree with its content ("<dir>/" for directories), to prove nothing changed.
    func snapshot() -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path + "/" + relative, isDirectory: &isDir)
            result[relative] = isDir.boolValue ? "<dir>" : (get(relative) ?? "<unreadable>")
        }
        return result
    }
}

/// A directory-tree file layer that also records every write and rmdir, in order.
final class CgroupRecordingFS: CgroupFS, @unchecked Sendable {
    private let inner = DirectoryCgroupFS()
    private let lock = NSLock()
    private var _log: [String] = []
    private let root: String

    init(root: String) { self.root = root }

    /// "write <path relative to root> = <value>" and "rmdir <path>", in order.
    var log: [String] {
        lock.lock()
        defer { lock.unlock() }
        return _log
    }

    func clearLog() {
        lock.lock()
        _log = []
        lock.unlock()
    }

    private func record(_ entry: String) {
        lock.lock()
        _log.append(entry)
        lock.unlock()
    }

    private func relative(_ path: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    func read(_ path: String) throws -> String { try inner.read(path) }
    func write(_ path: String, _ contents: String) throws {
        record("write \(relative(path)) = \(contents)")
        try inner.write(path, contents)
    }
    func mkdir(_ path: String) throws { try inner.mkdir(path) }
    func rmdir(_ path: String) throws {
        record("rmdir \(relative(path))")
        try inner.rmdir(path)
    }
    func list(_ path: String) throws -> [String] { try inner.list(path) }
    func exists(_ path: String) -> Bool { inner.exists(path) }
}

let cgroupMiB: Int64 = 1024 * 1024
