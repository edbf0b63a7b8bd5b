#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one error type of the compute-limits (cgroup) driver.
///
/// Every error carries a stable machine-readable ``Code`` and a sentence that names the
/// file or group involved and what was expected, e.g.
/// `cannot write '200000 100000' to /sys/fs/cgroup/lumbung/dinkes/cpu.max: EINVAL (Invalid argument); …`.
public struct CgroupError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes. Never rename a case's raw value: reports and clients match on it.
    public enum Code: String, Sendable, Codable, Hashable {
        /// An OPD or VM id is not a safe cgroup name (`/`, `..`, characters outside `[a-z0-9-]`). Nothing was touched.
        case invalidName = "cgroup_invalid_name"
        /// The configured sub-path (e.g. `lumbung`) is empty or escapes its root.
        case invalidPath = "cgroup_invalid_path"
        /// The limits asked for are out of range (vCPUs, memory, pid).
        case invalidLimits = "cgroup_invalid_limits"
        /// No usable cgroup v2 or v1 hierarchy was found.
        case unsupported = "cgroup_unsupported"
        /// EACCES, EPERM or EROFS: the agent may not change this file or group.
        case permissionDenied = "cgroup_permission_denied"
        /// ENOENT: a group or file that must exist does not (e.g. `attach` before `apply`).
        case notFound = "cgroup_not_found"
        /// A group still holds processes (or the kernel said EBUSY).
        case busy = "cgroup_busy"
        /// The kernel refused a value (EINVAL, ENOSPC…), e.g. a v1 child CPU quota above its parent's.
        case rejected = "cgroup_rejected"
        /// ESRCH: the process to attach does not exist (any more).
        case noSuchProcess = "cgroup_no_such_process"
        /// A file's content is not what the kernel writes there.
        case unexpectedContent = "cgroup_unexpected_content"
        /// Any other system error.
        case io = "cgroup_io"
    }

    /// The stable code.
    public var code: Code
    /// A sentence for people: what failed, on which file, and what was expected.
    public var message: String
    /// The file or directory involved, when there is one.
    public var path: String?
    /// The `errno` of the failed system call, when there is one.
    public var errno: Int32?

    /// Creates an error with a code and a readable message.
    public init(_ code: Code, _ message: String, path: String? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.errno = errno
    }

    public var description: String { message }

    /// Builds the error for a failed system call: `operation` reads like "write '512' to"
    /// or "create the group"; the errno becomes the code and a hint about what was expected.
    static func system(_ operation: String, path: String, errno err: Int32) -> CgroupError {
        let code: Code
        let hint: String
        switch err {
        case EACCES, EPERM, EROFS:
            code = .permissionDenied
            hint = "the agent needs root or a cgroup subtree delegated to it (systemd Delegate=yes) and a writable cgroupfs"
        case ENOENT:
            code = .notFound
            hint = "the file or group does not exist; is the controller enabled for this group, and was the group created?"
        case EBUSY:
            code = .busy
            hint = "the group is in use: it still has processes (or, on cgroup v2, a group with processes of its own cannot enable controllers for children)"
        case ENOTEMPTY:
            code = .busy
            hint = "the group still has child groups"
        case ESRCH:
            code = .noSuchProcess
            hint = "no such process; it has exited or was never started"
        case EINVAL, ENOSPC, ERANGE, EOPNOTSUPP:
            code = .rejected
            hint = "the kernel refused the value (in cgroup v1 a child's CPU quota may not exceed its parent's, and memory cannot be limited below what the group already uses)"
        default:
            code = .io
            hint = "unexpected system error"
        }
        return CgroupError(
            code, "cannot \(operation) \(path): \(errnoName(err)) (\(errnoText(err))); \(hint)",
            path: path, errno: err)
    }

    /// The symbolic name of an errno value (`EACCES`), or `errno N`.
    static func errnoName(_ err: Int32) -> String {
        switch err {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case EACCES: return "EACCES"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case ERANGE: return "ERANGE"
        case ENOTEMPTY: return "ENOTEMPTY"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        default: return "errno \(err)"
        }
    }

    static func errnoText(_ err: Int32) -> String {
        guard let text = strerror(err) else { return "unknown error" }
        return String(cString: text)
    }
}
