import Foundation

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

/// Runs commands with Foundation `Process`. Executables are resolved only from the fixed
/// system directories `/usr/sbin`, `/sbin`, `/usr/bin`, `/bin` (never from `PATH`), with
/// `LC_ALL=C` so their messages are stable English.
public struct ProcessCommandRunner: CommandRunner {
    /// The directories searched, in order.
    public static let searchPath = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]

    /// Creates the real runner.
    public init() {}

    /// The absolute path of `executable`, or nil when none of ``searchPath`` has it.
    public static func resolve(_ executable: String) -> String? {
        if executable.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil }
        for dir in searchPath {
            let path = dir + "/" + executable
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    public func run(_ executable: String, _ args: [String]) throws -> VolumeCommandResult {
        guard let path = Self.resolve(executable) else {
            throw VolumeError(
                .commandFailed,
                "cannot run \(executable): not found in \(Self.searchPath.joined(separator: ", ")); install it (xfsprogs provides mkfs.xfs and xfs_growfs, util-linux provides losetup, mount and umount)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        var environment = ["LC_ALL": "C", "PATH": Self.searchPath.joined(separator: ":")]
        if let home = ProcessInfo.processInfo.environment["HOME"] { environment["HOME"] = home }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            throw VolumeError(.commandFailed, "cannot start \(path): \(error)")
        }
        // Drain stderr on another thread so neither pipe can fill up and block the command.
        let errorBox = OutputBox()
        let reader = Thread {
            errorBox.set(err.fileHandleForReading.readDataToEndOfFile())
        }
        reader.start()
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderrData = errorBox.wait()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return VolumeCommandResult(
            status: status, stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrData, as: UTF8.self))
    }
}

/// Hands the stderr bytes from the reader thread to the caller.
private final class OutputBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var data: Data?

    func set(_ value: Data) {
        condition.lock()
        data = value
        condition.signal()
        condition.unlock()
    }

    func wait() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while data == nil { condition.wait() }
        return data!
    }
}
