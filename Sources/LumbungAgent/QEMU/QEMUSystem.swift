import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The result of a finished command.
public struct CommandResult: Sendable, Hashable {
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
    func run(_ executable: String, _ arguments: [String], input: String?, timeout: Duration) throws -> CommandResult
    /// Launches QEMU with `-daemonize`: returns when the launching process exits (QEMU is then
    /// initialised, its pidfile written and its QMP socket listening). Standard output and error
    /// of the launch go to `logFile`.
    func launch(_ executable: String, _ arguments: [String], logFile: String, timeout: Duration) throws -> CommandResult
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

    public func run(_ executable: String, _ arguments: [String], input: String?, timeout: Duration) throws -> CommandResult {
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
        return CommandResult(status: status, stdout: collected.string(0), stderr: collected.string(1))
    }

    public func launch(_ executable: String, _ arguments: [String], logFile: String, timeout: Duration) throws -> CommandResult {
        guard FileManager.default.createFile(atPath: logFile, contents: nil) || FileManager.default.fileExists(atPath: logFile),
            let log = FileHandle(forWritingAtPath: logFile)
        else {
            throw VMRuntimeError(.io, "cannot open QEMU's log file \(logFile)")
        }
        defer { log.closeFile() }
        log.truncateFile(atOffset: 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do {
            try process.run()
        } catch {
            throw VMRuntimeError(.launchFailed, "cannot run \(executable): \(error)")
        }
        if done.wait(timeout: .now() + timeout.qemuDispatchInterval) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw VMRuntimeError(.launchFailed, "\(executable) did not daemonize within \(timeout); killed")
        }
        process.waitUntilExit()
        let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return CommandResult(status: status, stdout: "", stderr: text)
    }

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
