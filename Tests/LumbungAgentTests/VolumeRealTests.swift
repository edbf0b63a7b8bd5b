import Foundation
import LumbungAgent
import LumbungCore
import Testing

/// Why the real volume tests cannot run here, or nil when they can: root, `losetup`,
/// `mkfs.xfs`, `xfs_growfs` and `/dev/loop-control`. CI runs as root, so there they must run.
enum VolumeReal {
    static let skipReason: String? = {
        if getuid() != 0 {
            return "real volume tests need root for losetup and mount (running as uid \(getuid())); CI runs them as root"
        }
        for tool in ["losetup", "mkfs.xfs", "xfs_growfs", "mount", "umount"] where ProcessCommandRunner.resolve(tool) == nil {
            return "real volume tests need \(tool) in /usr/sbin, /sbin, /usr/bin or /bin (packages util-linux, xfsprogs)"
        }
        if !FileManager.default.fileExists(atPath: "/dev/loop-control") {
            return "real volume tests need loop devices (/dev/loop-control is missing)"
        }
        return nil
    }()

    static var enabled: Bool { skipReason == nil }
}

/// A unique temp pool with a real driver. ``cleanup()`` (called in `defer`) lazily unmounts
/// everything under the pool, detaches every loop device backed by a file in it and removes
/// the directory, then reports any loop device still pointing into it.
final class VolumeSandbox {
    let pool: VolumeTempDir
    let driver: LoopVolumeDriver
    let runner = ProcessCommandRunner()

    init() throws {
        pool = try VolumeTempDir("lumbung-vol-real")
        driver = LoopVolumeDriver(pools: ["test": pool.path])
    }

    func spec(_ id: String, size: ByteSize) -> VolumeSpecOnHost {
        VolumeSpecOnHost(id: VolumeID(rawValue: id), opd: "dinkes", size: size, poolPath: pool.path)
    }

    func cleanup() {
        let probe = LinuxVolumeProbe()
        for m in ((try? probe.mounts()) ?? []).reversed() where m.mountPoint.hasPrefix(pool.path + "/") {
            _ = try? runner.run("umount", ["-l", m.mountPoint])
        }
        for loop in (try? probe.loopDevices()) ?? [] where loop.backingFile.hasPrefix(pool.path + "/") {
            _ = try? runner.run("losetup", ["-d", loop.device])
        }
        pool.remove()
        let left = (try? runner.run("losetup", ["-a"]))?.stdout ?? ""
        #expect(!left.contains(pool.path), "loop devices left behind: \(left)")
    }

    /// Writes 1 MiB blocks into `path` until a write fails; returns the bytes written and the errno.
    static func fill(_ path: String, limit: Int64) -> (written: Int64, errno: Int32) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return (0, errno) }
        defer { close(fd) }
        let block = [UInt8](repeating: 0xA5, count: Int(ByteSize.mib))
        var written: Int64 = 0
        while written <= limit {
            let n = block.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            if n < 0 { return (written, errno) }
            written += Int64(n)
            if n < block.count {  // a short write: the next one says why
                continue
            }
        }
        if fsync(fd) != 0 { return (written, errno) }
        return (written, 0)
    }
}

/// The volume driver for real: sparse image, XFS, loop device, mount. Serialized so at most
/// one scratch volume exists at a time.
@Suite(.serialized, .enabled(if: VolumeReal.enabled, "\(VolumeReal.skipReason ?? "")"))
struct VolumeRealTests {
    @Test func createEnospcGrowRetainPurge() throws {
        let box = try VolumeSandbox()
        defer { box.cleanup() }
        let spec = box.spec("vol-real-1", size: .mib(300))
        try box.driver.create(spec)
        try box.driver.create(spec)  // idempotent

        var v = try #require(try box.driver.observe().first)
        #expect(v.mounted && v.size == .mib(300) && v.managed)
        let device = try #require(v.loopDevice)
        #expect(device.hasPrefix("/dev/loop"))
        #expect(try #require(v.used) < .mib(64))

        // Writing past the size fails with ENOSPC, and never more than the size got in.
        let first = VolumeSandbox.fill(v.mountPoint + "/fill-1", limit: 2 * 300 * ByteSize.mib)
        #expect(first.errno == ENOSPC, "expected 'No space left on device', got \(String(cString: strerror(first.errno)))")
        #expect(String(cString: strerror(first.errno)).contains("No space left"))
        #expect(first.written <= 300 * ByteSize.mib)
        #expect(first.written >= 150 * ByteSize.mib, "only \(first.written) bytes fit in a 300MiB volume")
        v = try #require(try box.driver.observe().first)
        #expect(try #require(v.used) >= ByteSize(bytes: first.written))

        // Online grow: same mount, same loop device; more can be written.
        let mountsBefore = try LinuxVolumeProbe().mounts().filter { $0.mountPoint == v.mountPoint }
        try box.driver.grow(spec, to: .mib(600))
        let mountsAfter = try LinuxVolumeProbe().mounts().filter { $0.mountPoint == v.mountPoint }
        #expect(mountsBefore == mountsAfter && mountsAfter.count == 1)
        v = try #require(try box.driver.observe().first)
        #expect(v.size == .mib(600) && v.loopDevice == device && v.mounted)
        let second = VolumeSandbox.fill(v.mountPoint + "/fill-2", limit: 2 * 600 * ByteSize.mib)
        #expect(second.errno == ENOSPC)
        #expect(second.written >= 250 * ByteSize.mib, "only \(second.written) more bytes after growing by 300MiB")
        #expect(first.written + second.written <= 600 * ByteSize.mib)
        #expect(FileManager.default.fileExists(atPath: v.mountPoint + "/fill-1"), "data survives the grow")

        #expect(throws: VolumeError.self) { try box.driver.grow(spec, to: .mib(300)) }
        #expect(throws: VolumeError.self) { try box.driver.purge(spec.id) }

        // Retain: unmounted, loop detached, image kept.
        let at = Date()
        try box.driver.retain(spec.id, at: at)
        v = try #require(try box.driver.observe().first)
        #expect(!v.mounted && v.loopDevice == nil && abs(v.deletedAt!.timeIntervalSince(at)) < 0.001)
        #expect(try LinuxVolumeProbe().loopDevices().allSatisfy { $0.backingFile != v.imagePath })
        #expect(FileManager.default.fileExists(atPath: v.imagePath))

        try box.driver.purge(spec.id)
        #expect(!FileManager.default.fileExists(atPath: v.imagePath))
        #expect(try box.driver.observe().isEmpty)
    }

    @Test func adoptionAfterRestartKeepsMountAndLoopDevice() throws {
        let box = try VolumeSandbox()
        defer { box.cleanup() }
        let spec = box.spec("vol-real-2", size: .mib(300))
        try box.driver.create(spec)
        let before = try #require(try box.driver.observe().first)
        let marker = before.mountPoint + "/marker"
        #expect(FileManager.default.createFile(atPath: marker, contents: Data("kept".utf8)))
        let mountsBefore = try LinuxVolumeProbe().mounts().filter { $0.mountPoint == before.mountPoint }

        let restarted = LoopVolumeDriver(pools: ["test": box.pool.path])
        let adopted = try restarted.adopt()
        #expect(adopted.count == 1)
        let v = try #require(adopted.first)
        #expect(v.mounted && v.managed && v.loopDevice == before.loopDevice && v.size == .mib(300))
        try restarted.mount(spec)  // already mounted: nothing happens
        let mountsAfter = try LinuxVolumeProbe().mounts().filter { $0.mountPoint == before.mountPoint }
        #expect(mountsAfter == mountsBefore && mountsAfter.count == 1, "not remounted")
        #expect(FileManager.default.contents(atPath: marker) == Data("kept".utf8))

        try restarted.retain(spec.id, at: Date())
        try restarted.purge(spec.id)
        #expect(try restarted.observe().isEmpty)
    }
}
