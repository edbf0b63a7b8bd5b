#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungCore

/// A volume as the agent must make it on this host: the controller's intent with the pool
/// already resolved to the directory configured for it.
public struct VolumeSpecOnHost: Hashable, Sendable {
    /// The volume's id; names its image and mount point (never the user-facing name).
    public var id: VolumeID
    /// The OPD owning it; its mount point is under `<pool>/<opd>/`.
    public var opd: OPDID
    /// Its size: the image's length and the file system's hard limit.
    public var size: ByteSize
    /// The pool's directory (absolute), one of the driver's configured pools.
    public var poolPath: String

    /// Creates a spec.
    public init(id: VolumeID, opd: OPDID, size: ByteSize, poolPath: String) {
        self.id = id
        self.opd = opd
        self.size = size
        self.poolPath = poolPath
    }
}

/// One volume found on the host (its image and metadata exist on a configured pool).
public struct VolumeObservation: Hashable, Sendable {
    /// The volume's id.
    public var id: VolumeID
    /// The OPD owning it, from its metadata file.
    public var opd: OPDID
    /// The configured pool it lives on.
    public var pool: PoolName
    /// The image's length, which is the file system's size.
    public var size: ByteSize
    /// Bytes used in its file system (`statvfs`), when mounted.
    public var used: ByteSize?
    /// True while its file system is mounted at ``mountPoint`` from one of its loop devices.
    public var mounted: Bool
    /// The loop device attached to its image, if any.
    public var loopDevice: String?
    /// The image file.
    public var imagePath: String
    /// Where it is (or would be) mounted: `<pool>/<opd>/<id>`.
    public var mountPoint: String
    /// When it was retained (no longer desired); its data is purged after the retention period.
    public var deletedAt: Date?
    /// True once this driver instance created, mounted or adopted it.
    public var managed: Bool

    /// Creates an observation.
    public init(
        id: VolumeID, opd: OPDID, pool: PoolName, size: ByteSize, used: ByteSize?, mounted: Bool, loopDevice: String?,
        imagePath: String, mountPoint: String, deletedAt: Date?, managed: Bool
    ) {
        self.id = id
        self.opd = opd
        self.pool = pool
        self.size = size
        self.used = used
        self.mounted = mounted
        self.loopDevice = loopDevice
        self.imagePath = imagePath
        self.mountPoint = mountPoint
        self.deletedAt = deletedAt
        self.managed = managed
    }

    /// The reconciler's view of it.
    public var observed: ObservedVolume {
        ObservedVolume(
            id: id, opd: opd, pool: pool, size: size, mounted: mounted && deletedAt == nil, deletedAt: deletedAt,
            managed: managed)
    }
}

/// Makes fixed-size volumes real on this host: a sparse image file per volume on its pool
/// (`<pool>/.lumbung/images/<id>.img` with a JSON metadata file beside it), formatted XFS,
/// attached to a free loop device and mounted at `<pool>/<opd>/<id>`. The file system's size is
/// a hard limit: writing past it fails with ENOSPC.
///
/// Every method is idempotent and validates ids and OPD names before building any path.
/// Data is only ever deleted by ``purge(_:)`` of a retained volume.
public protocol VolumeDriver: Sendable {
    /// Creates the volume (sparse image of exactly `spec.size`, `mkfs.xfs`, `losetup -f`,
    /// mount). When it exists already it is only mounted if needed (never reformatted).
    /// Refuses a size larger than the pool's free space.
    func create(_ spec: VolumeSpecOnHost) throws
    /// Grows the mounted volume online to `size` (image, `losetup -c`, `xfs_growfs`).
    /// A smaller size is refused with ``VolumeError/Code/shrinkRefused``.
    func grow(_ spec: VolumeSpecOnHost, to size: ByteSize) throws
    /// Mounts a present volume (reusing a loop device already attached to its image) and
    /// clears its retention mark; does nothing when it is mounted already.
    func mount(_ spec: VolumeSpecOnHost) throws
    /// Every volume on the configured pools, with size, use, mount state and loop device.
    /// Runs no command.
    func observe() throws -> [VolumeObservation]
    /// Unmounts the volume, detaches its loop device and records `at` as its deletion time.
    /// The data is kept. Retaining a retained volume keeps its first deletion time.
    func retain(_ id: VolumeID, at: Date) throws
    /// Deletes a retained volume's image and metadata. Refuses a volume that is not retained;
    /// does nothing when the volume is gone already.
    func purge(_ id: VolumeID) throws
    /// After an agent restart: takes over every volume found (with its existing loop device and
    /// mount, without remounting) and returns them, all marked managed.
    func adopt() throws -> [VolumeObservation]
    /// The free bytes of each configured pool that exists.
    func poolFree() throws -> [PoolName: ByteSize]
}
