import Foundation
import LumbungAgent
import LumbungCore
import Testing

/// The volume driver against a recording fake runner and a temp pool directory: exact
/// command sequences and refusals. No root needed.
@Suite struct VolumeFakeTests {
    let dir: VolumeTempDir
    let host = FakeVolumeHost()
    let driver: LoopVolumeDriver

    init() throws {
        dir = try VolumeTempDir()
        driver = LoopVolumeDriver(pools: ["ssd": dir.path], runner: host, probe: host)
    }

    func spec(_ id: String = "vol-1", opd: String = "dinkes", size: ByteSize = .mib(300)) -> VolumeSpecOnHost {
        VolumeSpecOnHost(id: VolumeID(rawValue: id), opd: OPDID(rawValue: opd), size: size, poolPath: dir.path)
    }

    var image: String { dir.path + "/.lumbung/images/vol-1.img" }
    var meta: String { dir.path + "/.lumbung/images/vol-1.json" }
    var mountPoint: String { dir.path + "/dinkes/vol-1" }

    func expectCode(_ code: VolumeError.Code, _ body: () throws -> Void) -> VolumeError? {
        do {
            try body()
            Issue.record("expected \(code), nothing was thrown")
            return nil
        } catch let error as VolumeError {
            #expect(error.code == code, "\(error)")
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func createRunsMkfsLosetupMountAndIsIdempotent() throws {
        defer { dir.remove() }
        try driver.create(spec())
        #expect(
            host.commands == [
                ["mkfs.xfs", "-q", image],
                ["losetup", "-f", "--show", image],
                ["mount", "-t", "xfs", "-o", "nodev,nosuid", "/dev/loop7", mountPoint],
            ])
        #expect(volumeFileSize(image) == 300 * ByteSize.mib)
        var s = stat()
        #expect(stat(image, &s) == 0 && s.st_blocks < 100, "image must be sparse")
        #expect(FileManager.default.fileExists(atPath: meta))

        let seen = try driver.observe()
        #expect(seen.count == 1)
        let v = try #require(seen.first)
        #expect(v.id == "vol-1" && v.opd == "dinkes" && v.pool == "ssd")
        #expect(v.size == .mib(300) && v.used == .mib(20) && v.mounted && v.loopDevice == "/dev/loop7")
        #expect(v.deletedAt == nil && v.managed)
        #expect(v.observed == ObservedVolume(id: "vol-1", opd: "dinkes", pool: "ssd", size: .mib(300), mounted: true))

        host.resetCommands()
        try driver.create(spec())
        try driver.mount(spec())
        #expect(host.commands.isEmpty, "create and mount of a mounted volume run nothing")
    }

    @Test func growTruncatesRescansAndGrowsOnline_shrinkRefused() throws {
        defer { dir.remove() }
        try driver.create(spec())
        host.resetCommands()
        try driver.grow(spec(), to: .mib(600))
        #expect(host.commands == [["losetup", "-c", "/dev/loop7"], ["xfs_growfs", mountPoint]])
        #expect(volumeFileSize(image) == 600 * ByteSize.mib)
        #expect(host.mountList.count == 1, "never unmounted")

        host.resetCommands()
        let error = expectCode(.shrinkRefused) { try driver.grow(spec(), to: .mib(300)) }
        #expect(error?.message.contains("600MiB") == true && error?.message.contains("300MiB") == true)
        #expect(host.commands.isEmpty)
        #expect(volumeFileSize(image) == 600 * ByteSize.mib)
    }

    @Test func retainUnmountsDetachesKeepsDataThenPurgeDeletes() throws {
        defer { dir.remove() }
        try driver.create(spec())
        host.resetCommands()
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        try driver.retain("vol-1", at: at)
        #expect(host.commands == [["umount", mountPoint], ["losetup", "-d", "/dev/loop7"]])
        #expect(FileManager.default.fileExists(atPath: image))
        #expect(!FileManager.default.fileExists(atPath: mountPoint), "the empty mount point is removed")
        var v = try #require(try driver.observe().first)
        #expect(!v.mounted && v.loopDevice == nil && v.deletedAt == at && v.used == nil)
        #expect(v.observed.hostState == .retained)

        host.resetCommands()
        try driver.retain("vol-1", at: at.addingTimeInterval(3600))
        #expect(host.commands.isEmpty)
        v = try #require(try driver.observe().first)
        #expect(v.deletedAt == at, "a second retain keeps the first deletion time")

        try driver.purge("vol-1")
        #expect(host.commands.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: image) && !FileManager.default.fileExists(atPath: meta))
        #expect(try driver.observe().isEmpty)
        try driver.purge("vol-1")  // gone already: nothing to do
    }

    @Test func mountOfRetainedVolumeClearsRetention() throws {
        defer { dir.remove() }
        try driver.create(spec())
        try driver.retain("vol-1", at: Date())
        host.resetCommands()
        try driver.mount(spec())
        #expect(
            host.commands == [
                ["losetup", "-f", "--show", image],
                ["mount", "-t", "xfs", "-o", "nodev,nosuid", "/dev/loop8", mountPoint],
            ])
        let v = try #require(try driver.observe().first)
        #expect(v.mounted && v.deletedAt == nil)
    }

    @Test func purgeOfNonRetainedVolumeRefused() throws {
        defer { dir.remove() }
        try driver.create(spec())
        host.resetCommands()
        let error = expectCode(.notRetained) { try driver.purge("vol-1") }
        #expect(error?.message.contains("not retained") == true)
        #expect(host.commands.isEmpty)
        #expect(FileManager.default.fileExists(atPath: image))
    }

    @Test(arguments: ["../etc", "a/b", "..", "Vol-1", "vol_1", "", "-x", String(repeating: "a", count: 64)])
    func badNamesRefusedWithNothingTouched(bad: String) throws {
        defer { dir.remove() }
        _ = expectCode(.invalidName) { try driver.create(spec(bad)) }
        _ = expectCode(.invalidName) { try driver.create(spec(opd: bad)) }
        _ = expectCode(.invalidName) { try driver.mount(spec(bad)) }
        _ = expectCode(.invalidName) { try driver.grow(spec(opd: bad), to: .mib(600)) }
        _ = expectCode(.invalidName) { try driver.retain(VolumeID(rawValue: bad), at: Date()) }
        _ = expectCode(.invalidName) { try driver.purge(VolumeID(rawValue: bad)) }
        #expect(host.commands.isEmpty)
        #expect(dir.contents().isEmpty, "nothing created in the pool")
    }

    @Test func tooLargeRefusedNamingBothNumbers() throws {
        defer { dir.remove() }
        host.poolAvailable = 100 * ByteSize.mib
        let error = expectCode(.insufficientSpace) { try driver.create(spec()) }
        #expect(error?.message.contains("300MiB") == true, "\(String(describing: error))")
        #expect(error?.message.contains("100MiB") == true, "\(String(describing: error))")
        #expect(host.commands.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: image))

        host.poolAvailable = 400 * ByteSize.mib
        try driver.create(spec())
        host.poolAvailable = 100 * ByteSize.mib
        host.resetCommands()
        _ = expectCode(.insufficientSpace) { try driver.grow(spec(), to: .mib(600)) }
        #expect(host.commands.isEmpty)
        #expect(volumeFileSize(image) == 300 * ByteSize.mib)
    }

    @Test func adoptAfterRestartTakesOverWithoutCommands() throws {
        defer { dir.remove() }
        try driver.create(spec())
        try driver.create(spec("vol-2", opd: "bappeda"))
        try driver.retain("vol-2", at: Date(timeIntervalSince1970: 1_700_000_000))
        host.resetCommands()

        let restarted = LoopVolumeDriver(pools: ["ssd": dir.path], runner: host, probe: host)
        #expect(try restarted.observe().allSatisfy { !$0.managed })
        let adopted = try restarted.adopt()
        #expect(host.commands.isEmpty, "adoption runs no command: no remount, no new loop device")
        #expect(adopted.map(\.id) == ["vol-1", "vol-2"])
        #expect(adopted[0].mounted && adopted[0].loopDevice == "/dev/loop7" && adopted[0].managed)
        #expect(!adopted[1].mounted && adopted[1].deletedAt == Date(timeIntervalSince1970: 1_700_000_000))
        try restarted.mount(spec())
        #expect(host.commands.isEmpty)
        #expect(try restarted.observe().allSatisfy(\.managed))
    }

    @Test func mountReusesAnAttachedLoopDevice() throws {
        defer { dir.remove() }
        try driver.create(spec())
        _ = try host.run("umount", [mountPoint])  // e.g. unmounted by hand; the loop device stays
        host.resetCommands()
        try driver.mount(spec())
        #expect(host.commands == [["mount", "-t", "xfs", "-o", "nodev,nosuid", "/dev/loop7", mountPoint]])
    }

    @Test func unconfiguredPoolAndWrongOPDRefused() throws {
        defer { dir.remove() }
        let other = try VolumeTempDir()
        defer { other.remove() }
        _ = expectCode(.invalidPool) {
            try driver.create(VolumeSpecOnHost(id: "vol-1", opd: "dinkes", size: .mib(300), poolPath: other.path))
        }
        _ = expectCode(.invalidPool) {
            try driver.create(VolumeSpecOnHost(id: "vol-1", opd: "dinkes", size: .mib(300), poolPath: "relative/pool"))
        }
        _ = expectCode(.invalidSize) { try driver.create(spec(size: ByteSize(bytes: 1000))) }
        #expect(host.commands.isEmpty)
        try driver.create(spec())
        host.resetCommands()
        _ = expectCode(.wrongOPD) { try driver.create(spec(opd: "bappeda")) }
        _ = expectCode(.notFound) { try driver.mount(spec("vol-9")) }
        _ = expectCode(.notFound) { try driver.retain("vol-9", at: Date()) }
        #expect(host.commands.isEmpty)
    }

    @Test func failedMkfsNamesCommandAndStderrAndLeavesNothing() throws {
        defer { dir.remove() }
        host.failures["mkfs.xfs"] = VolumeCommandResult(status: 1, stderr: "Filesystem must be larger than 300MB.\nUsage: mkfs.xfs\n...")
        let error = expectCode(.commandFailed) { try driver.create(spec(size: .mib(200))) }
        #expect(error?.message.contains("mkfs.xfs -q \(image) exited with status 1") == true, "\(String(describing: error))")
        #expect(error?.message.contains("Filesystem must be larger than 300MB.") == true)
        #expect(host.commands.count == 1)
        #expect(!FileManager.default.fileExists(atPath: image))
        #expect(try driver.observe().isEmpty)
    }

    @Test func busyUnmountLeavesVolumeNotRetained() throws {
        defer { dir.remove() }
        try driver.create(spec())
        host.failures["umount"] = VolumeCommandResult(status: 32, stderr: "umount: \(mountPoint): target is busy.")
        let error = expectCode(.busy) { try driver.retain("vol-1", at: Date()) }
        #expect(error?.message.contains("target is busy") == true)
        let v = try #require(try driver.observe().first)
        #expect(v.deletedAt == nil && v.mounted)
    }

    @Test func mountInfoParsing() {
        defer { dir.remove() }
        let text = """
            22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
            98 22 7:3 / /srv/pool\\040a/dinkes/vol-1 rw,nosuid,nodev,relatime shared:50 - xfs /dev/loop3 rw,attr2
            """
        let entries = LinuxVolumeProbe.parseMountInfo(text)
        #expect(entries.count == 2)
        #expect(entries[1] == MountEntry(mountPoint: "/srv/pool a/dinkes/vol-1", source: "/dev/loop3", fsType: "xfs", mountID: 98))
    }
}
