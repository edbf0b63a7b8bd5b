#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one error type of the volume driver.
///
/// Every error carries a stable machine-readable ``Code`` and a sentence naming the volume,
/// the path or the command involved, e.g.
/// `cannot grow volume vol-1: mkfs.xfs /pool/.lumbung/images/vol-1.img exited with status 1: …`.
public struct VolumeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes. Never rename a case's raw value: reports and clients match on it.
    public enum Code: String, Sendable, Codable, Hashable {
        /// A volume id or OPD name is not a safe name (`/`, `..`, characters outside `[a-z0-9-]`). Nothing was touched.
        case invalidName = "volume_invalid_name"
        /// The size is not positive, not a whole number of MiB, or absurd. Nothing was touched.
        case invalidSize = "volume_invalid_size"
        /// The pool path is not an absolute path to an existing directory, or is not a configured pool.
        case invalidPool = "volume_invalid_pool"
        /// The pool has less free space than the volume (or its growth) needs. Nothing was touched.
        case insufficientSpace = "volume_insufficient_space"
        /// A smaller size than the volume's current one was asked for; volumes only grow.
        case shrinkRefused = "volume_shrink_refused"
        /// The volume's image does not exist on any configured pool.
        case notFound = "volume_not_found"
        /// The image exists but belongs to another OPD than the one asked for.
        case wrongOPD = "volume_wrong_opd"
        /// `purge` of a volume that is not retained: only retained volumes are ever deleted.
        case notRetained = "volume_not_retained"
        /// The volume is in use (umount said busy, or a retained volume is mounted again).
        case busy = "volume_busy"
        /// An external command (mkfs.xfs, losetup, mount, umount, xfs_growfs) failed or could not be started.
        case commandFailed = "volume_command_failed"
        /// A command's output or a metadata file is not what the driver expects.
        case unexpectedOutput = "volume_unexpected_output"
        /// A file system call on the pool failed.
        case io = "volume_io"
    }

    /// The stable code.
    public var code: Code
    /// A sentence for people: what failed, on which volume, path or command, and why.
    public var message: String

    /// Creates an error with a code and a readable message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The error for a failed system call on `path`.
    static func system(_ operation: String, path: String, errno err: Int32) -> VolumeError {
        let text = strerror(err).map { String(cString: $0) } ?? "errno \(err)"
        return VolumeError(.io, "cannot \(operation) \(path): \(text) (errno \(err))")
    }
}
