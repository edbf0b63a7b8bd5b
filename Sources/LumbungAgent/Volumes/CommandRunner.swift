#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What an external command did: its exit status and its output.
public struct VolumeCommandResult: Hashable, Sendable {
    /// The exit status (or 128 + signal when it was killed by a signal).
    public var status: Int32
    /// Everything it wrote to standard output.
    public var stdout: String
    /// Everything it wrote to standard error.
    public var stderr: String

    /// Creates a result.
    public init(status: Int32 = 0, stdout: String = "", stderr: String = "") {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// The narrow OS layer of the volume driver: every external command (`mkfs.xfs`, `losetup`,
/// `mount`, `umount`, `xfs_growfs`) goes through it, so tests can record the exact sequence.
///
/// `run` throws only when the command could not be started; a non-zero exit status is
/// returned in the result for the caller to judge.
public protocol CommandRunner: Sendable {
    /// Runs `executable` (a bare name such as `losetup`) with `args` and waits for it.
    func run(_ executable: String, _ args: [String]) throws -> VolumeCommandResult
}

/// Runs commands with `posix_spawn` (``Subprocess``). Executables are resolved only from the
/// fixed system directories `/usr/sbin`, `/sbin`, `/usr/bin`, `/bin` (never from `PATH`), with
/// `LC_ALL=C` so their messages are stable English.
public struct ProcessCommandRunner: CommandRunner {
    /// The directories searched, in order.
    public static let searchPath = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]

    /// Creates the real runner.
    public init() {}

    /// The absolute path of `executable`, or nil when none of ``searchPath`` has it.
    public static func resolve(_ executable: String) -> String? {
        if executable.hasPrefix("/") { return access(executable, X_OK) == 0 ? executable : nil }
        for dir in searchPath {
            let path = dir + "/" + executable
            if access(path, X_OK) == 0 { return path }
        }
        return nil
    }

    public func run(_ executable: String, _ args: [String]) throws -> VolumeCommandResult {
        guard let path = Self.resolve(executable) else {
            throw VolumeError(
                .commandFailed,
                "cannot run \(executable): not found in \(Self.searchPath.joined(separator: ", ")); install it (xfsprogs provides mkfs.xfs and xfs_growfs, util-linux provides losetup, mount and umount)")
        }
        var environment = ["LC_ALL": "C", "PATH": Self.searchPath.joined(separator: ":")]
        if let home = getenv("HOME") { environment["HOME"] = String(cString: home) }
        let result: SubprocessResult
        do {
            result = try Subprocess.run(path, args, environment: environment)
        } catch {
            throw VolumeError(.commandFailed, "cannot start \(path): \(error)")
        }
        return VolumeCommandResult(
            status: result.status, stdout: String(decoding: result.stdout, as: UTF8.self),
            stderr: String(decoding: result.stderr, as: UTF8.self))
    }
}
