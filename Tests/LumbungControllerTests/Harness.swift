import Foundation
import Logging
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungPKI
import LumbungStore
import ServiceLifecycle

/// A real controller in this process: a temporary state directory made by `lumbungd init`'s
/// code, a real SQLite file, real HTTPS with mutual TLS on a free loopback port.
final class TestController: @unchecked Sendable {
    let directory: String
    let assembly: Controller.Assembly
    let port: Int
    let group: ServiceGroup
    let runTask: Task<Void, any Error>
    let adminToken: String
    var services: ControllerServices { assembly.services }
    var baseURL: String { "https://127.0.0.1:\(port)" }
    var caPEM: String { services.ca.certificatePEM }

    static func start(
        heartbeatTimeout: Duration = .seconds(40), sweepInterval: Duration = .seconds(5), directory: String? = nil,
        clock: ManualClock? = nil, port: Int = 0, configure: (inout ControllerConfig) -> Void = { _ in }
    ) async throws -> TestController {
        let dir = directory ?? makeTempDirectory("lumbung-ctl")
        var adminToken = ""
        if !FileManager.default.fileExists(atPath: StatePaths(dir).database) {
            let initialized = try StateDirectory.initialize(directory: dir, name: "test-dc", addresses: ["localhost", "127.0.0.1"])
            adminToken = initialized.adminToken
        }
        var config = ControllerConfig(name: "test-dc", stateDirectory: dir)
        config.host = "127.0.0.1"
        config.port = port
        config.ledger.heartbeatTimeout = heartbeatTimeout
        config.sweepInterval = sweepInterval
        configure(&config)
        var logger = Logger(label: "test.lumbungd")
        logger.logLevel = .warning
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        var now: @Sendable () -> Date = { Date() }
        if let clock { now = { clock.now } }
        let assembly = try Controller.assemble(config: config, logger: logger, now: now, onListening: { port in continuation.yield(port) })
        let group = ServiceGroup(services: assembly.all, logger: logger)
        let task = Task { try await group.run() }
        var port = 0
        for await p in stream {
            port = p
            break
        }
        return TestController(directory: dir, assembly: assembly, port: port, group: group, runTask: task, adminToken: adminToken)
    }

    private init(directory: String, assembly: Controller.Assembly, port: Int, group: ServiceGroup, runTask: Task<Void, any Error>, adminToken: String) {
        self.directory = directory
        self.assembly = assembly
        self.port = port
        self.group = group
        self.runTask = runTask
        self.adminToken = adminToken
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await runTask.value
    }

    /// An admin client with credentials issued directly by the controller.
    func adminClient() async throws -> TestClient {
        let creds = try await services.localCredentials(for: "admin")
        return TestClient(client: try LumbungClient(baseURL: baseURL, credentials: creds), credentials: creds)
    }

    /// Enrolls with a one-time token over the API, like `lumbung login` does.
    func enroll(token: String, kind: String? = nil) async throws -> TestClient {
        let parsed = try EnrollmentToken.parse(token)
        let key = ClientKey.generate()
        let csr = try key.makeCSR(commonName: "test")
        let bootstrap = try LumbungClient(baseURL: baseURL, caPEM: caPEM)
        defer { Task { try? await bootstrap.shutdown() } }
        let response = try await bootstrap.enroll(EnrollRequest(token: parsed.secret, csr: csr, kind: kind))
        let creds = ClientCredentials(certificatePEM: response.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: response.ca)
        return TestClient(client: try LumbungClient(baseURL: baseURL, credentials: creds), credentials: creds)
    }

    /// Adds a user through the admin API and enrolls it.
    func user(_ name: String, role: Role, opd: String?, admin: TestClient) async throws -> TestClient {
        let added = try await admin.client.addUser(AddUserBody(name: UserID(rawValue: name), role: role, opd: opd.map(OPDID.init(rawValue:))))
        return try await enroll(token: added.token)
    }

    /// Declares a host through the admin API and enrolls its agent.
    func agent(_ host: String, cpus: Int = 16, memoryGiB: Int64 = 64, pools: [PoolName: ByteSize] = ["ssd": .tib(2)], admin: TestClient) async throws -> TestClient {
        let added = try await admin.client.addHost(
            AddHostBody(id: HostID(rawValue: host), capacity: HostCapacity(cpus: cpus, memory: .gib(memoryGiB), pools: pools)))
        return try await enroll(token: added.joinToken)
    }
}

/// A client and the credentials it holds.
struct TestClient: Sendable {
    let client: LumbungClient
    let credentials: ClientCredentials
    func shutdown() async { try? await client.shutdown() }
}

func makeTempDirectory(_ prefix: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The error code of a refused call, or nil when it succeeded.
func errorCode<T: Sendable>(_ body: () async throws -> T) async -> String? {
    do {
        _ = try await body()
        return nil
    } catch let error as APIClientError {
        return error.code
    } catch {
        return "other: \(error)"
    }
}

/// The status and detail of a refused call, or nil when it succeeded.
func apiError<T: Sendable>(_ body: () async throws -> T) async -> (status: Int, detail: APIErrorDetail)? {
    do {
        _ = try await body()
        return nil
    } catch {
        guard let api = error as? APIClientError, case .api(let status, let detail) = api else { return nil }
        return (status, detail)
    }
}

/// A clock the test moves by hand; the controller reads it wherever it needs "now".
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Date()
    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
}
