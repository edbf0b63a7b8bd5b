import Foundation
import Testing
import LumbungAPI
import LumbungPKI

/// Where the built executables are: `$LUMBUNG_BIN_DIR`, else `.build/debug` of this package.
func binDirectory() -> String {
    if let dir = ProcessInfo.processInfo.environment["LUMBUNG_BIN_DIR"], !dir.isEmpty { return dir }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug").path
}

/// A free TCP port on loopback (bound, then released).
/// The built `lumbung-agent`, or nil after recording an issue when it is missing.
func builtAgentBinary() -> String? {
    let path = binDirectory() + "/lumbung-agent"
    guard FileManager.default.isExecutableFile(atPath: path) else {
        Issue.record("lumbung-agent is not built at \(binDirectory()) (swift build --build-tests)")
        return nil
    }
    return path
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Runs a command to completion on its own thread (so the blocking wait never starves Swift's
/// cooperative pool, which the in-process controllers of other tests need) and returns its exit
/// code and output.
@discardableResult
func runCommand(_ path: String, _ args: [String], environment: [String: String] = [:]) async throws -> (code: Int32, out: String, err: String) {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do {
                continuation.resume(returning: try runCommandBlocking(path, args, environment: environment))
            } catch {
                continuation.resume(throwing: error)
            }
        }
        thread.start()
    }
}

func runCommandBlocking(_ path: String, _ args: [String], environment: [String: String] = [:]) throws -> (code: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// A `lumbungd` process.
final class ControllerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    let host: String
    let log: String

    /// Starts `lumbungd run` on `host:port` (loopback unless told otherwise).
    init(state: String, port: Int, host: String = "127.0.0.1", extraArgs: [String] = []) throws {
        self.port = port
        self.host = host
        self.log = state + "/lumbungd-\(UUID().uuidString.prefix(6)).log"
        process.executableURL = URL(fileURLWithPath: binDirectory() + "/lumbungd")
        process.arguments = ["run", "--state", state, "--listen", "\(host):\(port)", "--log-level", "warning"] + extraArgs
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var baseURL: String { "https://\(host):\(port)" }

    /// Waits until the controller answers TLS on its port.
    func waitUntilReady(caPEM: String) async throws {
        let client = try LumbungClient(baseURL: baseURL, caPEM: caPEM)
        defer { Task { try? await client.shutdown() } }
        for _ in 0..<200 {
            if (try? await client.fetchCA()) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessTestError("lumbungd did not start; log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

struct ProcessTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Enrolls with a one-time token, like `lumbung login`.
func enrollClient(baseURL: String, caPEM: String, token: String) async throws -> TestClient {
    let parsed = try EnrollmentToken.parse(token)
    let key = ClientKey.generate()
    let bootstrap = try LumbungClient(baseURL: baseURL, caPEM: caPEM)
    let response: EnrollResponse
    do {
        response = try await bootstrap.enroll(EnrollRequest(token: parsed.secret, csr: try key.makeCSR(commonName: "test")))
        try? await bootstrap.shutdown()
    } catch {
        try? await bootstrap.shutdown()
        throw error
    }
    let creds = ClientCredentials(certificatePEM: response.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: response.ca)
    return TestClient(client: try LumbungClient(baseURL: baseURL, credentials: creds), credentials: creds)
}

/// `promtool check metrics` reports nothing about `text` (written to `scratch`/metrics.txt).
func expectPromtoolClean(_ text: String, scratch: String) async throws {
    guard let promtool = ["/usr/bin/promtool", "/bin/promtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        Issue.record("promtool is missing: .ci/run installs it (apt-get install prometheus)")
        return
    }
    let file = scratch + "/metrics.txt"
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    let check = try await runCommand("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"])
    #expect(check.code == 0, "promtool: \(check.out)\(check.err)")
    #expect((check.out + check.err).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool reports: \(check.out)\(check.err)")
}
