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

/// A JSON value as QMP sends and receives it.
public enum QMPValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([QMPValue])
    case object([String: QMPValue])

    /// The member `key` of an object, nil otherwise.
    public subscript(key: String) -> QMPValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The string, nil for other values.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The boolean, nil for other values.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// Parses one JSON text, nil when it is not JSON.
    public static func parse(_ text: some StringProtocol) -> QMPValue? {
        try? JSONDecoder().decode(QMPValue.self, from: Data(text.utf8))
    }

    /// The compact JSON text of the value.
    public var json: String {
        (try? String(decoding: JSONEncoder().encode(self), as: UTF8.self)) ?? "null"
    }
}

extension QMPValue: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([QMPValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: QMPValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// One QMP connection: commands in, answers out. Not thread-safe; open one per operation.
public protocol QMPSession: AnyObject {
    /// Runs a command and returns its `return` value; a QMP `error` becomes ``VMRuntimeError/Code/qmpFailed``.
    func execute(_ command: String, arguments: [String: QMPValue]) throws -> QMPValue
    /// Closes the connection (idempotent).
    func close()
}

extension QMPSession {
    /// Runs a command without arguments.
    public func execute(_ command: String) throws -> QMPValue { try execute(command, arguments: [:]) }
}

/// A QMP client over a Unix stream socket: reads the greeting, negotiates `qmp_capabilities`,
/// then sends one JSON command per line and reads lines until the matching `return`/`error`,
/// skipping asynchronous events. Every read and write is bounded by the timeout.
///
/// QEMU serves one QMP client at a time per socket: keep sessions short and close them.
public final class QMPClient: QMPSession {
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let timeout: Duration
    private let path: String
    /// Events received while waiting for answers (`SHUTDOWN`, `POWERDOWN`…), oldest first.
    public private(set) var events: [QMPValue] = []

    private init(fd: Int32, path: String, timeout: Duration) {
        self.fd = fd
        self.path = path
        self.timeout = timeout
    }

    deinit { close() }

    /// Connects to the socket at `path`, retrying while it does not exist or refuses
    /// (QEMU still starting) until `timeout`, then negotiates capabilities.
    public static func connect(path: String, timeout: Duration) throws -> QMPClient {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            throw VMRuntimeError(.invalidSpec, "QMP socket path \(path) is \(pathBytes.count) bytes; Unix sockets allow at most \(capacity - 1)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var lastErrno: Int32 = 0
        while true {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                throw VMRuntimeError(.qmpFailed, "cannot create a Unix socket for QMP: \(String(cString: strerror(errno)))")
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if result == 0 {
                let client = QMPClient(fd: fd, path: path, timeout: timeout)
                let greeting = try client.readMessage(deadline: ContinuousClock.now.advanced(by: timeout))
                guard greeting["QMP"] != nil else {
                    throw VMRuntimeError(.qmpFailed, "\(path) did not greet as QMP (got \(greeting))")
                }
                _ = try client.execute("qmp_capabilities")
                return client
            }
            lastErrno = errno
            Glibc.close(fd)
            if ContinuousClock.now >= deadline { break }
            usleep(50_000)
        }
        throw VMRuntimeError(
            .qmpFailed,
            "cannot connect to QMP socket \(path) within \(timeout): \(String(cString: strerror(lastErrno))); is QEMU running?")
    }

    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    public func execute(_ command: String, arguments: [String: QMPValue] = [:]) throws -> QMPValue {
        guard fd >= 0 else { throw VMRuntimeError(.qmpFailed, "QMP connection to \(path) is closed") }
        var message: [String: QMPValue] = ["execute": .string(command)]
        if !arguments.isEmpty { message["arguments"] = .object(arguments) }
        var data = Data(QMPValue.object(message).json.utf8)
        data.append(UInt8(ascii: "\n"))
        try send(data, command: command)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let answer: QMPValue
            do {
                answer = try readMessage(deadline: deadline)
            } catch let error as VMRuntimeError where command == "quit" && error.message.contains("closed the connection") {
                return .object([:])  // QEMU may exit before answering `quit`.
            }
            if let value = answer["return"] { return value }
            if let error = answer["error"] {
                let desc = error["desc"]?.stringValue ?? "\(error)"
                throw VMRuntimeError(.qmpFailed, "QMP command '\(command)' on \(path) failed: \(desc)")
            }
            if answer["event"] != nil { events.append(answer) }
        }
    }

    private func send(_ data: Data, command: String) throws {
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw VMRuntimeError(
                        .qmpFailed, "cannot send QMP command '\(command)' to \(path): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }

    /// Reads the next JSON line.
    private func readMessage(deadline: ContinuousClock.Instant) throws -> QMPValue {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[..<newline]
                buffer.removeSubrange(...newline)
                let text = String(decoding: line, as: UTF8.self).trimmed()
                if text.isEmpty { continue }
                guard let value = QMPValue.parse(text) else {
                    throw VMRuntimeError(.qmpFailed, "QMP on \(path) sent a line that is not JSON: \(text.prefix(200))")
                }
                return value
            }
            let remaining = ContinuousClock.now.duration(to: deadline)
            let ms = max(0, Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, ms)
            if ready < 0 {
                if errno == EINTR { continue }
                throw VMRuntimeError(.qmpFailed, "cannot read from QMP socket \(path): \(String(cString: strerror(errno)))")
            }
            if ready == 0 {
                throw VMRuntimeError(.qmpFailed, "QMP socket \(path) did not answer within \(timeout)")
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw VMRuntimeError(.qmpFailed, "cannot read from QMP socket \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw VMRuntimeError(.qmpFailed, "QEMU closed the connection on \(path)") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }
}
