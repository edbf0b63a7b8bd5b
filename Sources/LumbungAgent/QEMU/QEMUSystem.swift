#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The result of a finished command.
public struct QEMUCommandResult: Sendable, Hashable {
    /// The exit status (128 + signal when killed by a signal).
    public var status: Int32
    /// What it wrote to standard output.
    public var stdout: String
    /// What it wrote to standard error.
    public var stderr: String
    /// Creates a result.
    public init(status: Int32, stdout: String = "", stderr: String = "") {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// The narrow OS layer of ``QEMUDriver``: running `qemu-img` and the KVM probe, launching QEMU,
/// looking at and signalling processes, and opening QMP sessions. Unit tests pass a fake to
/// check exact argument lists and orderings without QEMU; ``LinuxQEMUSystem`` is the real one.
public protocol QEMUSystem: Sendable {
    /// Runs a command to completion, feeding `input` on standard input; kills it after `timeout`.
    func run(_ executable: String, _ arguments: [String], input: String?, timeout: Duration) throws -> QEMUCommandResult
    /// Launches QEMU with `-daemonize`: returns when the launching process exits (QEMU is then
    /// initialised, its pidfile written and its QMP socket listening). Standard output and error
    /// of the launch go to `logFile`.
    func launch(_ executable: String, _ arguments: [String], logFile: String, timeout: Duration) throws -> QEMUCommandResult
    /// The argument vector of a live process; nil when there is none (or it is a zombie).
    func commandLine(of pid: Int32) -> [String]?
    /// Sends a signal to a process.
    func signal(_ pid: Int32, _ signal: Int32)
    /// Opens a QMP session on a Unix socket (capabilities negotiated).
    func connectQMP(socket: String, timeout: Duration) throws -> any QMPSession
    /// True when `/dev/kvm` exists and this process may open it read-write.
    func kvmDeviceUsable() -> Bool
}

/// The real OS layer: `posix_spawn` (``Subprocess``), `/proc`, `kill(2)` and ``QMPClient``.
public struct LinuxQEMUSystem: QEMUSystem {
    /// Creates the real OS layer.
    public init() {}

    public func run(_ executable: String, _ arguments: [String], input: String?, timeout: Duration) throws -> QEMUCommandResult {
        let result: SubprocessResult
        do {
            result = try Subprocess.run(executable, arguments, input: input.map { Array($0.utf8) }, timeout: timeout)
        } catch {
            throw VMRuntimeError(.launchFailed, error.description)
        }
        if result.timedOut {
            throw VMRuntimeError(.launchFailed, "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout); killed")
        }
        return QEMUCommandResult(
            status: result.status, stdout: String(decoding: result.stdout, as: UTF8.self), stderr: String(decoding: result.stderr, as: UTF8.self))
    }

    /// Spawns with `posix_spawn` (not ``Subprocess``, whose output pipes the daemonized QEMU
    /// would inherit, so it would never see the launcher exit): standard input from
    /// `/dev/null`, output and errors to `logFile`, every other descriptor closed, then `waitpid`.
    public func launch(_ executable: String, _ arguments: [String], logFile: String, timeout: Duration) throws -> QEMUCommandResult {
        let logFD = open(logFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard logFD >= 0 else {
            throw VMRuntimeError(.io, "cannot open QEMU's log file \(logFile): \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(logFD) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        let pid: pid_t
        do {
            pid = try Subprocess.spawn(executable, arguments, environment: nil, actions: &actions)
        } catch {
            throw VMRuntimeError(.launchFailed, error.description)
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR {
                throw VMRuntimeError(.launchFailed, "cannot wait for \(executable): \(String(cString: strerror(errno)))")
            }
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw VMRuntimeError(.launchFailed, "\(executable) did not daemonize within \(timeout); killed")
            }
            usleep(20_000)
        }
        let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros).
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return QEMUCommandResult(status: exitStatus, stdout: "", stderr: text)
    }

    public func commandLine(of pid: Int32) -> [String]? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        // The state follows the parenthesised command name: "123 (qemu) S …".
        if let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].trimmed().first
            if state == "Z" || state == "X" { return nil }
        }
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .dropLast(data.last == 0 ? 1 : 0).map { $0 }
    }

    public func signal(_ pid: Int32, _ signal: Int32) {
        guard pid > 0 else { return }
        _ = kill(pid, signal)
    }

    public func connectQMP(socket: String, timeout: Duration) throws -> any QMPSession {
        try QMPClient.connect(path: socket, timeout: timeout)
    }

    public func kvmDeviceUsable() -> Bool {
        access("/dev/kvm", R_OK | W_OK) == 0
    }
}

extension Duration {
    /// The duration in seconds.
    var qemuSeconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
