import NIOConcurrencyHelpers
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
import LumbungCore

/// The Linux volume driver: sparse image + XFS + loop device + mount (see ``VolumeDriver``).
///
/// Layout on a pool directory `P`:
/// - `P/.lumbung/images/<id>.img` — the image (sparse, length = volume size);
/// - `P/.lumbung/images/<id>.json` — metadata: owner OPD, creation and deletion time. It is
///   written after `mkfs.xfs` succeeded, so an image without it is an interrupted create
///   (never mounted, holds no data) and is recreated;
/// - `P/<opd>/<id>` — the mount point.
///
/// Mutating operations are serialised by one lock; ``observe()`` reads only the mount table,
/// `/sys/block` and `statvfs`.
public final class LoopVolumeDriver: VolumeDriver, @unchecked Sendable {
    /// Pool name → directory.
    public let pools: [PoolName: String]
    private let runner: any CommandRunner
    private let probe: any VolumeProbe
    private let operationLock = NIOLock()
    private let stateLock = NIOLock()
    private var managedIDs: Set<VolumeID> = []

    /// Options every volume is mounted with.
    public static let mountOptions = "nodev,nosuid"

    /// Creates the driver for the configured pools, with the real command runner and probe by default.
    public init(
        pools: [PoolName: String], runner: any CommandRunner = ProcessCommandRunner(),
        probe: any VolumeProbe = LinuxVolumeProbe()
    ) {
        self.pools = pools
        self.runner = runner
        self.probe = probe
    }

    // MARK: Paths

    /// The files of one volume; built only from validated names.
    struct Paths {
        var pool: PoolName
        var poolPath: String
        var id: VolumeID
        var opd: OPDID
        var imagesDir: String { poolPath + "/.lumbung/images" }
        var image: String { imagesDir + "/" + id.rawValue + ".img" }
        var meta: String { imagesDir + "/" + id.rawValue + ".json" }
        var opdDir: String { poolPath + "/" + opd.rawValue }
        var mountPoint: String { opdDir + "/" + id.rawValue }
    }

    /// What the `.json` file beside an image holds.
    struct Metadata: Codable, Equatable {
        var id: VolumeID
        var opd: OPDID
        var createdAt: Date
        var deletedAt: Date?
    }

    private static func validateID(_ id: VolumeID) throws {
        do { _ = try Name.validate(id.rawValue, what: "volume id") } catch {
            throw VolumeError(.invalidName, "\(error.message); nothing was touched")
        }
    }

    private static func validateOPD(_ opd: OPDID) throws {
        do { _ = try Name.validate(opd.rawValue, what: "OPD name") } catch {
            throw VolumeError(.invalidName, "\(error.message); nothing was touched")
        }
    }

    private static func validateSize(_ size: ByteSize, id: VolumeID) throws {
        do { _ = try ByteSize.validate(size, what: "size of volume \(id)") } catch {
            throw VolumeError(.invalidSize, "\(error.message); nothing was touched")
        }
    }

    /// The configured pools with their canonical paths (symlinks resolved, as the kernel
    /// reports loop backing files), sorted by name.
    private func canonicalPools() -> [(PoolName, String)] {
        pools.sorted { $0.key < $1.key }.map { ($0.key, Self.canonical($0.value)) }
    }

    private static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else {
            return path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Validates the spec and finds its pool among the configured ones.
    private func paths(for spec: VolumeSpecOnHost) throws -> Paths {
        try Self.validateID(spec.id)
        try Self.validateOPD(spec.opd)
        guard spec.poolPath.hasPrefix("/"), !spec.poolPath.split(separator: "/").contains("..") else {
            throw VolumeError(.invalidPool, "pool path '\(spec.poolPath)' of volume \(spec.id) must be absolute and must not contain '..'")
        }
        let wanted = Self.canonical(spec.poolPath)
        guard VolumePosix.isDirectory(wanted) else {
            throw VolumeError(.invalidPool, "pool path \(spec.poolPath) of volume \(spec.id) is not an existing directory")
        }
        guard let (pool, path) = canonicalPools().first(where: { $0.1 == wanted }) else {
            throw VolumeError(
                .invalidPool,
                "pool path \(spec.poolPath) of volume \(spec.id) is not one of this host's configured pools (\(pools.values.sorted().joined(separator: ", ")))")
        }
        return Paths(pool: pool, poolPath: path, id: spec.id, opd: spec.opd)
    }

    /// Finds a volume by id on the configured pools, by its metadata file.
    private func locate(_ id: VolumeID) throws -> (Paths, Metadata)? {
        try Self.validateID(id)
        for (pool, path) in canonicalPools() {
            let metaPath = path + "/.lumbung/images/" + id.rawValue + ".json"
            guard VolumePosix.exists(metaPath) else { continue }
            let meta = try readMetadata(metaPath)
            try Self.validateOPD(meta.opd)
            guard meta.id == id else {
                throw VolumeError(.unexpectedOutput, "metadata file \(metaPath) names volume \(meta.id), not \(id)")
            }
            return (Paths(pool: pool, poolPath: path, id: id, opd: meta.opd), meta)
        }
        return nil
    }

    private func readMetadata(_ path: String) throws -> Metadata {
        let data = try VolumePosix.read(path)
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .secondsSince1970
            return try decoder.decode(Metadata.self, from: data)
        } catch {
            throw VolumeError(.unexpectedOutput, "metadata file \(path) is not valid volume metadata: \(error)")
        }
    }

    private func writeMetadata(_ meta: Metadata, _ path: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try encoder.encode(meta) } catch {
            throw VolumeError(.io, "cannot encode the metadata of volume \(meta.id): \(error)")
        }
        try VolumePosix.writeAtomically(path, data)
    }

    // MARK: Commands

    @discardableResult
    private func command(_ what: String, _ executable: String, _ args: [String]) throws -> VolumeCommandResult {
        let result: VolumeCommandResult
        do { result = try runner.run(executable, args) } catch let error as VolumeError {
            throw VolumeError(error.code, "cannot \(what): \(error.message)")
        } catch {
            throw VolumeError(.commandFailed, "cannot \(what): cannot run \(executable): \(error)")
        }
        guard result.status == 0 else {
            // The first lines say what went wrong; a usage text after them would drown the sentence.
            let lines = result.stderr.split(whereSeparator: \.isNewline).map { $0.trimmed() }
            let stderr = String(lines.filter { !$0.isEmpty }.prefix(3).joined(separator: "; ").prefix(600))
            let code: VolumeError.Code = stderr.lowercased().contains("busy") ? .busy : .commandFailed
            throw VolumeError(
                code,
                "cannot \(what): \(([executable] + args).joined(separator: " ")) exited with status \(result.status)"
                    + (stderr.isEmpty ? "" : ": \(stderr)"))
        }
        return result
    }

    /// `losetup -f --show <image>`: attaches the image to the first free loop device
    /// (found by the kernel, never a fixed number) and returns the device.
    private func attach(_ p: Paths) throws -> String {
        let result = try command("attach volume \(p.id) to a loop device", "losetup", ["-f", "--show", p.image])
        let device = result.stdout.trimmed()
        guard device.hasPrefix("/dev/loop"), !device.contains(" ") else {
            throw VolumeError(.unexpectedOutput, "losetup -f --show \(p.image) printed '\(device)', not a loop device")
        }
        return device
    }

    private func loops(of image: String) throws -> [String] {
        try probe.loopDevices().filter { $0.backingFile == image }.map(\.device)
    }

    private func markManaged(_ id: VolumeID, _ managed: Bool = true) {
        stateLock.lock()
        defer { stateLock.unlock() }
        if managed { managedIDs.insert(id) } else { managedIDs.remove(id) }
    }

    private func isManaged(_ id: VolumeID) -> Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return managedIDs.contains(id)
    }

    // MARK: VolumeDriver

    public func create(_ spec: VolumeSpecOnHost) throws {
        let p = try paths(for: spec)
        try Self.validateSize(spec.size, id: spec.id)
        operationLock.lock()
        defer { operationLock.unlock() }

        if VolumePosix.exists(p.meta) {
            let meta = try readMetadata(p.meta)
            guard meta.opd == spec.opd else {
                throw VolumeError(.wrongOPD, "volume \(spec.id) on \(p.poolPath) belongs to OPD \(meta.opd), not \(spec.opd); nothing was touched")
            }
            if VolumePosix.exists(p.image) {
                try mountLocked(p, meta)
                return
            }
            guard meta.deletedAt != nil else {
                throw VolumeError(.unexpectedOutput, "volume \(spec.id) has metadata \(p.meta) but no image \(p.image); refusing to recreate it over what may be lost data")
            }
            // A purge was interrupted after the image was deleted: finish it, then create afresh.
            try VolumePosix.removeFile(p.meta)
        }
        // Find anything already in another pool under this id: volumes are unique per host.
        if let (other, _) = try locate(spec.id), other.poolPath != p.poolPath {
            throw VolumeError(.invalidPool, "volume \(spec.id) already exists on pool \(other.pool) (\(other.poolPath)); it cannot be created on \(p.poolPath) too")
        }
        let free = try probe.space(p.poolPath).available
        guard spec.size.bytes <= free else {
            throw VolumeError(
                .insufficientSpace,
                "volume \(spec.id) needs \(spec.size) (\(spec.size.bytes) bytes) but pool \(p.pool) at \(p.poolPath) has only \(ByteSize(bytes: free)) (\(free) bytes) free; nothing was touched")
        }
        try VolumePosix.mkdirs(p.imagesDir, mode: 0o700)
        if VolumePosix.exists(p.image) {
            // An interrupted create (no metadata yet): it was never mounted and holds no data.
            guard try loops(of: p.image).isEmpty else {
                throw VolumeError(.busy, "image \(p.image) of an unfinished create is attached to a loop device; detach it first")
            }
            try VolumePosix.removeFile(p.image)
        }
        try VolumePosix.createSparse(p.image, size: spec.size.bytes)
        do {
            try command("format volume \(spec.id)", "mkfs.xfs", ["-q", p.image])
        } catch {
            try? VolumePosix.removeFile(p.image)
            throw error
        }
        let meta = Metadata(id: spec.id, opd: spec.opd, createdAt: Date(), deletedAt: nil)
        try writeMetadata(meta, p.meta)
        try mountLocked(p, meta)
    }

    public func mount(_ spec: VolumeSpecOnHost) throws {
        let p = try paths(for: spec)
        operationLock.lock()
        defer { operationLock.unlock() }
        let meta = try existing(p)
        try mountLocked(p, meta)
    }

    /// The metadata of an existing volume, checked against the spec's OPD.
    private func existing(_ p: Paths) throws -> Metadata {
        guard VolumePosix.exists(p.meta), VolumePosix.exists(p.image) else {
            throw VolumeError(.notFound, "volume \(p.id) does not exist on pool \(p.pool) (\(p.image))")
        }
        let meta = try readMetadata(p.meta)
        guard meta.opd == p.opd else {
            throw VolumeError(.wrongOPD, "volume \(p.id) on \(p.poolPath) belongs to OPD \(meta.opd), not \(p.opd); nothing was touched")
        }
        return meta
    }

    /// Mounts (if needed) and returns the loop device. Caller holds the operation lock.
    @discardableResult
    private func mountLocked(_ p: Paths, _ meta: Metadata) throws -> String {
        if meta.deletedAt != nil {
            var cleared = meta
            cleared.deletedAt = nil
            try writeMetadata(cleared, p.meta)
        }
        let devices = try loops(of: p.image)
        if let entry = try probe.mounts().last(where: { $0.mountPoint == p.mountPoint }) {
            if devices.contains(entry.source) {
                markManaged(p.id)
                return entry.source
            }
            throw VolumeError(.busy, "cannot mount volume \(p.id): \(entry.source) is already mounted at \(p.mountPoint)")
        }
        var attached: String?
        let device: String
        if let existing = devices.first {
            device = existing
        } else {
            device = try attach(p)
            attached = device
        }
        do {
            try VolumePosix.mkdirs(p.opdDir, mode: 0o755)
            try VolumePosix.mkdirs(p.mountPoint, mode: 0o755)
            try command(
                "mount volume \(p.id)", "mount", ["-t", "xfs", "-o", Self.mountOptions, device, p.mountPoint])
        } catch {
            if let attached { _ = try? runner.run("losetup", ["-d", attached]) }
            throw error
        }
        markManaged(p.id)
        return device
    }

    public func grow(_ spec: VolumeSpecOnHost, to size: ByteSize) throws {
        let p = try paths(for: spec)
        try Self.validateSize(size, id: spec.id)
        operationLock.lock()
        defer { operationLock.unlock() }
        let meta = try existing(p)
        let current = try VolumePosix.fileSize(p.image)
        guard size.bytes >= current else {
            throw VolumeError(
                .shrinkRefused,
                "volume \(spec.id) is \(ByteSize(bytes: current)) and cannot shrink to \(size); volumes only grow. Nothing was touched")
        }
        if size.bytes > current {
            let free = try probe.space(p.poolPath).available
            guard size.bytes - current <= free else {
                throw VolumeError(
                    .insufficientSpace,
                    "growing volume \(spec.id) from \(ByteSize(bytes: current)) to \(size) needs \(ByteSize(bytes: size.bytes - current)) (\(size.bytes - current) bytes) but pool \(p.pool) at \(p.poolPath) has only \(ByteSize(bytes: free)) (\(free) bytes) free; nothing was touched")
            }
        }
        let device = try mountLocked(p, meta)
        if size.bytes > current { try VolumePosix.truncate(p.image, size: size.bytes) }
        // Both are idempotent, so a grow interrupted after the truncate is finished by a retry.
        try command("tell \(device) that volume \(spec.id) grew", "losetup", ["-c", device])
        try command("grow the file system of volume \(spec.id)", "xfs_growfs", [p.mountPoint])
    }

    public func retain(_ id: VolumeID, at: Date) throws {
        try Self.validateID(id)
        operationLock.lock()
        defer { operationLock.unlock() }
        guard let (p, meta) = try locate(id), VolumePosix.exists(p.image) else {
            throw VolumeError(.notFound, "volume \(id) does not exist on any pool; nothing to retain")
        }
        try unmountAndDetach(p, what: "retain")
        if meta.deletedAt == nil {
            var marked = meta
            marked.deletedAt = at
            try writeMetadata(marked, p.meta)
        }
        // Only empty directories go; anything written into a bare mount point stays.
        _ = rmdir(p.mountPoint)
        _ = rmdir(p.opdDir)
    }

    /// Unmounts every mount of the image's loop devices (its own mount point first) and
    /// detaches them.
    private func unmountAndDetach(_ p: Paths, what: String) throws {
        let devices = try loops(of: p.image)
        let mounts = try probe.mounts()
        var points: [String] = []
        if let own = mounts.last(where: { $0.mountPoint == p.mountPoint }), devices.contains(own.source) {
            points.append(own.mountPoint)
        }
        for m in mounts where devices.contains(m.source) && !points.contains(m.mountPoint) {
            points.append(m.mountPoint)
        }
        for point in points {
            try command("unmount volume \(p.id) to \(what) it", "umount", [point])
        }
        for device in devices {
            try command("detach \(device) from volume \(p.id) to \(what) it", "losetup", ["-d", device])
        }
    }

    public func purge(_ id: VolumeID) throws {
        try Self.validateID(id)
        operationLock.lock()
        defer { operationLock.unlock() }
        guard let (p, meta) = try locate(id) else {
            for (_, path) in canonicalPools() where VolumePosix.exists(path + "/.lumbung/images/" + id.rawValue + ".img") {
                throw VolumeError(.notRetained, "volume \(id) has an image but no metadata (an unfinished create); it is not retained and is not purged")
            }
            return  // gone already
        }
        guard meta.deletedAt != nil else {
            throw VolumeError(.notRetained, "volume \(id) is not retained; only a retained volume is purged, and its data was not touched")
        }
        let devices = try loops(of: p.image)
        if let m = try probe.mounts().first(where: { devices.contains($0.source) || $0.mountPoint == p.mountPoint }) {
            throw VolumeError(.busy, "volume \(id) is retained but mounted at \(m.mountPoint) (from \(m.source)); it is not purged while mounted")
        }
        for device in devices {
            try command("detach \(device) from volume \(id) to purge it", "losetup", ["-d", device])
        }
        if VolumePosix.exists(p.image) { try VolumePosix.removeFile(p.image) }
        try VolumePosix.removeFile(p.meta)
        _ = rmdir(p.mountPoint)
        _ = rmdir(p.opdDir)
        markManaged(id, false)
    }

    public func observe() throws -> [VolumeObservation] {
        let loops = try probe.loopDevices()
        let mounts = try probe.mounts()
        var result: [VolumeObservation] = []
        for (pool, path) in canonicalPools() {
            let imagesDir = path + "/.lumbung/images"
            for name in VolumePosix.list(imagesDir).sorted() where name.hasSuffix(".json") {
                let id = VolumeID(rawValue: String(name.dropLast(".json".count)))
                guard Name.isValid(id.rawValue) else { continue }
                let image = imagesDir + "/" + id.rawValue + ".img"
                guard VolumePosix.exists(image) else { continue }  // an interrupted purge
                // A damaged metadata file hides only its own volume here; create/mount of that id
                // then fail with the reason, reported per volume.
                guard let meta = try? readMetadata(imagesDir + "/" + name), Name.isValid(meta.opd.rawValue), meta.id == id
                else { continue }
                let p = Paths(pool: pool, poolPath: path, id: id, opd: meta.opd)
                let devices = loops.filter { $0.backingFile == image }.map(\.device)
                let mount = mounts.last(where: { $0.mountPoint == p.mountPoint && devices.contains($0.source) })
                let used = try mount.map { _ in ByteSize(bytes: try probe.space(p.mountPoint).used) }
                result.append(
                    VolumeObservation(
                        id: id, opd: meta.opd, pool: pool, size: ByteSize(bytes: try VolumePosix.fileSize(image)), used: used,
                        mounted: mount != nil, loopDevice: mount?.source ?? devices.first, imagePath: image,
                        mountPoint: p.mountPoint, deletedAt: meta.deletedAt, managed: isManaged(id)))
            }
        }
        return result
    }

    public func adopt() throws -> [VolumeObservation] {
        operationLock.lock()
        defer { operationLock.unlock() }
        var found = try observe()
        for i in found.indices {
            markManaged(found[i].id)
            found[i].managed = true
        }
        return found
    }

    public func poolFree() throws -> [PoolName: ByteSize] {
        var result: [PoolName: ByteSize] = [:]
        for (pool, path) in canonicalPools() where VolumePosix.isDirectory(path) {
            result[pool] = ByteSize(bytes: try probe.space(path).available)
        }
        return result
    }
}

/// Thin POSIX file helpers that turn errno into ``VolumeError``.
enum VolumePosix {
    static func exists(_ path: String) -> Bool {
        var s = stat()
        return lstat(path, &s) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var s = stat()
        return stat(path, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR
    }

    static func fileSize(_ path: String) throws -> Int64 {
        var s = stat()
        guard stat(path, &s) == 0 else { throw VolumeError.system("stat", path: path, errno: errno) }
        return Int64(s.st_size)
    }

    static func list(_ path: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    }

    /// `mkdir -p` for a path under an existing directory.
    static func mkdirs(_ path: String, mode: mode_t) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw VolumeError.system("create the directory", path: current, errno: errno)
            }
        }
        guard isDirectory(path) else { throw VolumeError.system("create the directory", path: path, errno: ENOTDIR) }
    }

    static func createSparse(_ path: String, size: Int64) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VolumeError.system("create the image", path: path, errno: errno) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let err = errno
            unlink(path)
            throw VolumeError.system("size the image", path: path, errno: err)
        }
    }

    static func truncate(_ path: String, size: Int64) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw VolumeError.system("open the image", path: path, errno: errno) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw VolumeError.system("grow the image", path: path, errno: errno) }
    }

    static func removeFile(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw VolumeError.system("delete", path: path, errno: errno)
        }
    }

    static func read(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VolumeError(.io, "cannot read \(path)")
        }
        return data
    }

    /// Writes to `<path>.tmp`, fsyncs, renames over `path`.
    static func writeAtomically(_ path: String, _ data: Data) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VolumeError.system("write", path: temporary, errno: errno) }
        var ok = true
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { ok = false; break }
                offset += n
            }
        }
        let err = errno
        if !ok || fsync(fd) != 0 {
            close(fd)
            throw VolumeError.system("write", path: temporary, errno: ok ? errno : err)
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw VolumeError.system("rename \(temporary) to", path: path, errno: errno) }
    }
}
