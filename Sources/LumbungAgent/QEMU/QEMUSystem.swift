import Foundation

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

/// The real OS layer: Foundation `Process`, `/proc`, `kill(2)` and ``QMPClient``.
public struct LinuxQEMUSystem: QEMUSystem {
    /// Creates the real OS layer.
    public init() {}

    public func run(_ executable: String, _ arguments: [String], input: String?, timeout: Duration) throws -> QEMUCommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        let inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let collected = Collected()
        let group = DispatchGroup()
        for (index, pipe) in [out, err].enumerated() {
            DispatchQueue.global().async(group: group) {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.set(index, data)
            }
        }
        do {
            try process.run()
        } catch {
            out.fileHandleForWriting.closeFile()
            err.fileHandleForWriting.closeFile()
            throw VMRuntimeError(.launchFailed, "cannot run \(executable): \(error)")
        }
        if let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            inPipe.fileHandleForWriting.closeFile()
        }
        if done.wait(timeout: .now() + timeout.qemuDispatchInterval) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            _ = group.wait(timeout: .now() + 2)
            throw VMRuntimeError(.launchFailed, "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout); killed")
        }
        process.waitUntilExit()
        _ = group.wait(timeout: .now() + 5)
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return QEMUCommandResult(status: status, stdout: collected.string(0), stderr: collected.string(1))
    }

    /// Spawns with `posix_spawn` (not Foundation `Process`, which watches a descriptor the
    /// daemonized QEMU would inherit and so never sees the launcher exit): standard input from
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
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal dispositions and an empty mask, whatever the agent's are.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw VMRuntimeError(.launchFailed, "cannot run \(executable): \(String(cString: strerror(rc)))")
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

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np` (not in Swift's Glibc module),
    /// so QEMU inherits no descriptor of the agent's; nil on older libcs (the agent's own
    /// descriptors are close-on-exec anyway).
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(
            symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    public func commandLine(of pid: Int32) -> [String]? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        // The state follows the parenthesised command name: "123 (qemu) S …".
        if let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
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

/// Output gathered by reader threads.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var data: [Int: Data] = [:]
    func set(_ index: Int, _ value: Data) { lock.withLock { data[index] = value } }
    func string(_ index: Int) -> String { lock.withLock { String(decoding: data[index] ?? Data(), as: UTF8.self) } }
}

extension Duration {
    /// The duration for Dispatch waits.
    var qemuDispatchInterval: DispatchTimeInterval {
        let c = components
        return .nanoseconds(Int(clamping: c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000))
    }

    /// The duration in seconds.
    var qemuSeconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
