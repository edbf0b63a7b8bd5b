import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import LumbungAgent
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SwiftASN1
import Testing
import X509

// MARK: - Helpers

private let testLogger: Logger = {
    var logger = Logger(label: "metrics-http-tests")
    logger.logLevel = .warning
    return logger
}()

private struct TimeoutError: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "timed out after \(seconds) s" }
}

/// Runs `operation`, failing with `TimeoutError` if it takes longer than `seconds`.
private func withTimeout<T: Sendable>(
    seconds: Double,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TimeoutError(seconds: seconds)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A server running inside a `ServiceGroup`, as in the agent.
private struct RunningServer {
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, Error>

    static func start(
        host: String = "127.0.0.1",
        tls: MetricsServer.TLS? = nil,
        idleTimeout: TimeAmount = .seconds(120),
        body: @escaping @Sendable () -> [UInt8]
    ) async throws -> RunningServer {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = MetricsServer(
            host: host,
            port: 0,
            tls: tls,
            logger: testLogger,
            idleTimeout: idleTimeout,
            onListening: { port in
                continuation.yield(port)
                continuation.finish()
            },
            body: body
        )
        let group = ServiceGroup(configuration: .init(services: [server], logger: testLogger))
        let task = Task { try await group.run() }
        let port = try await withTimeout(seconds: 10) {
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TimeoutError(seconds: 0) }
            return port
        }
        return RunningServer(port: port, group: group, task: task)
    }

    func stop() async throws {
        await self.group.triggerGracefulShutdown()
        let task = self.task
        try await withTimeout(seconds: 5) { try await task.value }
    }
}

/// A raw TCP (NIO) client, to control exactly what goes over one connection.
private final class RawConnection: Sendable {
    private struct State {
        var text = ""
        var closed = false
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.state.withLockedValue { $0.text += String(buffer: buffer) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.state.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }

    private let channel: Channel
    private let state: NIOLockedValueBox<State>

    private init(channel: Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    static func connect(port: Int) async throws -> RawConnection {
        let state = NIOLockedValueBox(State())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(state: state))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return RawConnection(channel: channel, state: state)
    }

    func send(_ text: String) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Waits until `done(receivedSoFar)` holds or the peer closed; returns all received text.
    func read(timeout: Double = 5, until done: @Sendable (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            let (text, closed) = self.state.withLockedValue { ($0.text, $0.closed) }
            if done(text) || closed { return text }
            guard ContinuousClock.now < deadline else { throw TimeoutError(seconds: timeout) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until the server closes the connection; returns all received text.
    @discardableResult
    func waitForClose(timeout: Double = 5) async throws -> String {
        let text = try await self.read(timeout: timeout) { _ in false }
        guard self.state.withLockedValue({ $0.closed }) else { throw TimeoutError(seconds: timeout) }
        return text
    }

    func close() async {
        try? await self.channel.close().get()
    }
}

private func occurrences(of needle: String, in haystack: String) -> Int {
    haystack.components(separatedBy: needle).count - 1
}

private func makeHTTPClient(tls: TLSConfiguration? = nil) -> HTTPClient {
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.timeout = .init(connect: .seconds(10), read: .seconds(10))
    configuration.httpVersion = .http1Only
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}

private struct Scrape {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: String
}

private func scrape(
    _ client: HTTPClient,
    _ url: String,
    method: HTTPMethod = .GET,
    body: String? = nil
) async throws -> Scrape {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if let body {
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await client.execute(request, timeout: .seconds(15))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    return Scrape(status: response.status, headers: response.headers, body: String(buffer: bytes))
}

private final class Counter: Sendable {
    private let box = NIOLockedValueBox(0)
    func next() -> Int { self.box.withLockedValue { $0 += 1; return $0 } }
    var value: Int { self.box.withLockedValue { $0 } }
}

// MARK: - Test PKI (swift-certificates + swift-crypto, P-256)

/// A throw-away CA, server certificate (IP SAN 127.0.0.1) and client certificate, as PEM files.
private struct TestPKI {
    let directory: URL
    let caCertificate: String
    let serverCertificate: String
    let serverKey: String
    let clientCertificate: String
    let clientKey: String
    /// A client certificate from an unrelated CA.
    let strangerCertificate: String
    let strangerKey: String

    var caPath: String { self.directory.appendingPathComponent("ca.pem").path }
    var serverCertificatePath: String { self.directory.appendingPathComponent("server.pem").path }
    var serverKeyPath: String { self.directory.appendingPathComponent("server-key.pem").path }
    var clientKeyPath: String { self.directory.appendingPathComponent("client-key.pem").path }

    static func make() throws -> TestPKI {
        let now = Date()
        let ca = try makeCA(name: "Lumbung Test CA", now: now)
        let stranger = try makeCA(name: "Stranger CA", now: now)

        let serverKey = P256.Signing.PrivateKey()
        let server = try issue(
            commonName: "127.0.0.1",
            key: serverKey,
            usage: .serverAuth,
            sans: [.ipAddress(.init(contentBytes: [127, 0, 0, 1])), .dnsName("localhost")],
            by: ca,
            now: now
        )
        let clientKey = P256.Signing.PrivateKey()
        let client = try issue(commonName: "prometheus", key: clientKey, usage: .clientAuth, sans: [], by: ca, now: now)
        let strangerKey = P256.Signing.PrivateKey()
        let strangerClient = try issue(
            commonName: "intruder",
            key: strangerKey,
            usage: .clientAuth,
            sans: [],
            by: stranger,
            now: now
        )

        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("metrics-http-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pki = TestPKI(
            directory: directory,
            caCertificate: try ca.certificate.serializeAsPEM().pemString,
            serverCertificate: try server.serializeAsPEM().pemString,
            serverKey: serverKey.pemRepresentation,
            clientCertificate: try client.serializeAsPEM().pemString,
            clientKey: clientKey.pemRepresentation,
            strangerCertificate: try strangerClient.serializeAsPEM().pemString,
            strangerKey: strangerKey.pemRepresentation
        )
        try pki.caCertificate.write(toFile: pki.caPath, atomically: true, encoding: .utf8)
        try pki.serverCertificate.write(toFile: pki.serverCertificatePath, atomically: true, encoding: .utf8)
        try pki.serverKey.write(toFile: pki.serverKeyPath, atomically: true, encoding: .utf8)
        try pki.clientKey.write(toFile: pki.clientKeyPath, atomically: true, encoding: .utf8)
        return pki
    }

    func remove() {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Client TLS configuration trusting the test CA, optionally presenting a certificate.
    func clientTLS(certificate: String? = nil, key: String? = nil) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(self.caCertificate.utf8)))
        if let certificate, let key {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
        }
        return tls
    }

    private struct Authority {
        let certificate: Certificate
        let key: P256.Signing.PrivateKey
    }

    private static func makeCA(name: String, now: Date) throws -> Authority {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(name) }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86400,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key)
        )
        return Authority(certificate: certificate, key: key)
    }

    private static func issue(
        commonName: String,
        key: P256.Signing.PrivateKey,
        usage: ExtendedKeyUsage.Usage,
        sans: [GeneralName],
        by authority: Authority,
        now: Date
    ) throws -> Certificate {
        try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86400,
            issuer: authority.certificate.subject,
            subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                if !sans.isEmpty {
                    SubjectAlternativeNames(sans)
                }
            },
            issuerPrivateKey: .init(authority.key)
        )
    }
}

// MARK: - Tests

@Suite("MetricsServer")
struct MetricsServerTests {
    static let exposition = "# TYPE lumbung_up gauge\nlumbung_up 1\n"

    @Test("plain HTTP: GET, HEAD, 404, 405")
    func plainHTTP() async throws {
        let server = try await RunningServer.start { Array(Self.exposition.utf8) }
        let client = makeHTTPClient()
        do {
            let base = "http://127.0.0.1:\(server.port)"

            let get = try await scrape(client, "\(base)/metrics")
            #expect(get.status == .ok)
            #expect(get.body == Self.exposition)
            #expect(get.headers["Content-Type"] == ["text/plain; version=0.0.4; charset=utf-8"])
            #expect(get.headers["Content-Length"] == ["\(Self.exposition.utf8.count)"])

            let withQuery = try await scrape(client, "\(base)/metrics?name[]=up")
            #expect(withQuery.status == .ok)
            #expect(withQuery.body == Self.exposition)

            let head = try await scrape(client, "\(base)/metrics", method: .HEAD)
            #expect(head.status == .ok)
            #expect(head.body.isEmpty)
            #expect(head.headers["Content-Length"] == ["\(Self.exposition.utf8.count)"])
            #expect(head.headers["Content-Type"] == ["text/plain; version=0.0.4; charset=utf-8"])

            let other = try await scrape(client, "\(base)/other")
            #expect(other.status == .notFound)
            #expect(other.body.contains("/other"))
            #expect(other.body.contains("/metrics"))
            #expect(occurrences(of: "\n", in: other.body) == 1)

            let post = try await scrape(client, "\(base)/metrics", method: .POST, body: "x=1")
            #expect(post.status == .methodNotAllowed)
            #expect(post.headers["Allow"] == ["GET, HEAD"])

            // The connection survives a request with a (small) body.
            let afterPost = try await scrape(client, "\(base)/metrics")
            #expect(afterPost.status == .ok)
        } catch {
            try? await client.shutdown()
            try? await server.stop()
            throw error
        }
        try await client.shutdown()
        try await server.stop()
    }

    @Test("keep-alive: two pipelined requests in one write get two responses on one connection")
    func pipelinedKeepAlive() async throws {
        let server = try await RunningServer.start { Array(Self.exposition.utf8) }
        let connection = try await RawConnection.connect(port: server.port)
        let twoRequests =
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            + "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        try await connection.send(twoRequests)
        let text = try await connection.read { text in
            occurrences(of: "HTTP/1.1 200 OK", in: text) == 2 && text.hasSuffix(Self.exposition)
        }
        #expect(occurrences(of: "HTTP/1.1 200 OK", in: text) == 2)
        #expect(occurrences(of: Self.exposition, in: text) == 2)
        #expect(!text.lowercased().contains("connection: close"))

        // Same connection, a third request after a pause; then Connection: close is honoured.
        try await connection.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        let all = try await connection.read { occurrences(of: "HTTP/1.1 200 OK", in: $0) == 3 && $0.hasSuffix(Self.exposition) }
        #expect(occurrences(of: "HTTP/1.1 200 OK", in: all) == 3)
        #expect(all.lowercased().contains("connection: close"))
        try await connection.waitForClose()
        await connection.close()
        try await server.stop()
    }

    @Test("HTTP/1.0 without keep-alive: answered, then closed")
    func http10() async throws {
        let server = try await RunningServer.start { Array(Self.exposition.utf8) }
        let connection = try await RawConnection.connect(port: server.port)
        try await connection.send("GET /metrics HTTP/1.0\r\n\r\n")
        let text = try await connection.waitForClose()
        #expect(text.hasPrefix("HTTP/1.0 200 OK"))
        #expect(text.hasSuffix(Self.exposition))
        await connection.close()
        try await server.stop()
    }

    @Test("oversized request body: connection closed")
    func oversizedBody() async throws {
        let server = try await RunningServer.start { Array(Self.exposition.utf8) }
        let connection = try await RawConnection.connect(port: server.port)
        let size = 200 * 1024
        try await connection.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n")
        // The server may close (and reset) before everything is written.
        try? await connection.send(String(repeating: "a", count: size))
        let text = try await connection.waitForClose()
        #expect(!text.contains("200 OK"))
        await connection.close()
        try await server.stop()
    }

    @Test("body() is called on every scrape")
    func bodyPerScrape() async throws {
        let counter = Counter()
        let server = try await RunningServer.start { Array("scrapes \(counter.next())\n".utf8) }
        let client = makeHTTPClient()
        var bodies: [String] = []
        for _ in 0..<3 {
            bodies.append(try await scrape(client, "http://127.0.0.1:\(server.port)/metrics").body)
        }
        try await client.shutdown()
        try await server.stop()
        #expect(bodies == ["scrapes 1\n", "scrapes 2\n", "scrapes 3\n"])
        #expect(counter.value == 3)
    }

    @Test("TLS: scrape over HTTPS; plain HTTP on the TLS port fails without harm")
    func tls() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let tls = try MetricsServer.TLS(
            certificateChainPEMFile: pki.serverCertificatePath,
            privateKeyPEMFile: pki.serverKeyPath,
            clientCAPEMFile: nil
        )
        #expect(!tls.requiresClientCertificate)
        let server = try await RunningServer.start(tls: tls) { Array(Self.exposition.utf8) }
        let tlsClient = makeHTTPClient(tls: try pki.clientTLS())
        let plainClient = makeHTTPClient()
        do {
            let first = try await scrape(tlsClient, "https://127.0.0.1:\(server.port)/metrics")
            #expect(first.status == .ok)
            #expect(first.body == Self.exposition)

            let port = server.port
            await #expect(throws: (any Error).self) {
                try await withTimeout(seconds: 8) {
                    _ = try await scrape(plainClient, "http://127.0.0.1:\(port)/metrics")
                }
            }
            // Raw plain text on the TLS port: the server drops the connection.
            let raw = try await RawConnection.connect(port: server.port)
            try await raw.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let rawText = try await raw.waitForClose()
            #expect(!rawText.contains("200 OK"))
            await raw.close()

            // A fresh client, so a new TLS connection is made.
            let secondClient = makeHTTPClient(tls: try pki.clientTLS())
            let second = try await scrape(secondClient, "https://127.0.0.1:\(server.port)/metrics")
            try await secondClient.shutdown()
            #expect(second.status == .ok)
            #expect(second.body == Self.exposition)
        } catch {
            try? await tlsClient.shutdown()
            try? await plainClient.shutdown()
            try? await server.stop()
            throw error
        }
        try await tlsClient.shutdown()
        try await plainClient.shutdown()
        try await server.stop()
    }

    @Test("mutual TLS: clients need a certificate from the client CA")
    func mutualTLS() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let tls = try MetricsServer.TLS(
            certificateChainPEMFile: pki.serverCertificatePath,
            privateKeyPEMFile: pki.serverKeyPath,
            clientCAPEMFile: pki.caPath
        )
        #expect(tls.requiresClientCertificate)
        let server = try await RunningServer.start(tls: tls) { Array(Self.exposition.utf8) }
        let url = "https://127.0.0.1:\(server.port)/metrics"

        let anonymous = makeHTTPClient(tls: try pki.clientTLS())
        await #expect(throws: (any Error).self) {
            try await withTimeout(seconds: 8) { _ = try await scrape(anonymous, url) }
        }
        try await anonymous.shutdown()

        let stranger = makeHTTPClient(tls: try pki.clientTLS(certificate: pki.strangerCertificate, key: pki.strangerKey))
        await #expect(throws: (any Error).self) {
            try await withTimeout(seconds: 8) { _ = try await scrape(stranger, url) }
        }
        try await stranger.shutdown()

        let trusted = makeHTTPClient(tls: try pki.clientTLS(certificate: pki.clientCertificate, key: pki.clientKey))
        let result = try await withTimeout(seconds: 8) { try await scrape(trusted, url) }
        try await trusted.shutdown()
        #expect(result.status == .ok)
        #expect(result.body == Self.exposition)

        try await server.stop()
    }

    @Test("TLS.init: errors name the offending file")
    func tlsInitErrors() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let missing = pki.directory.appendingPathComponent("missing.pem").path
        let notPEM = pki.directory.appendingPathComponent("not-pem.pem").path
        try "this is not a PEM file\n".write(toFile: notPEM, atomically: true, encoding: .utf8)

        func description(_ body: () throws -> Void) -> String? {
            do {
                try body()
                return nil
            } catch {
                return "\(error)"
            }
        }

        let cases: [(String, String, String?, String)] = [
            (missing, pki.serverKeyPath, nil, missing),
            (pki.serverCertificatePath, missing, nil, missing),
            (pki.serverCertificatePath, pki.serverKeyPath, missing, missing),
            (notPEM, pki.serverKeyPath, nil, notPEM),
            (pki.serverCertificatePath, notPEM, nil, notPEM),
            (pki.serverCertificatePath, pki.serverKeyPath, notPEM, notPEM),
            // A key that does not belong to the certificate.
            (pki.serverCertificatePath, pki.clientKeyPath, nil, pki.clientKeyPath),
        ]
        for (chain, key, ca, expectedPath) in cases {
            let message = description {
                _ = try MetricsServer.TLS(certificateChainPEMFile: chain, privateKeyPEMFile: key, clientCAPEMFile: ca)
            }
            #expect(message != nil, "no error for chain=\(chain) key=\(key) ca=\(ca ?? "nil")")
            #expect(message?.contains(expectedPath) == true, "\(message ?? "nil") does not name \(expectedPath)")
        }
        let missingMessage = description {
            _ = try MetricsServer.TLS(certificateChainPEMFile: missing, privateKeyPEMFile: pki.serverKeyPath, clientCAPEMFile: nil)
        }
        #expect(missingMessage?.contains("No such file or directory") == true)
    }

    @Test("connections idle for the idle timeout are closed, the server keeps serving")
    func idleConnectionsAreClosed() async throws {
        let server = try await RunningServer.start(idleTimeout: .seconds(2)) { Array(Self.exposition.utf8) }
        // One that scraped once and then went quiet, one that never sent a byte.
        let used = try await RawConnection.connect(port: server.port)
        try await used.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _ = try await used.read(timeout: 10) { $0.hasSuffix(Self.exposition) }
        let silent = try await RawConnection.connect(port: server.port)
        _ = try await used.waitForClose(timeout: 10)
        _ = try await silent.waitForClose(timeout: 10)
        await used.close()
        await silent.close()
        let fresh = try await RawConnection.connect(port: server.port)
        try await fresh.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let reply = try await fresh.read(timeout: 10) { $0.hasSuffix(Self.exposition) }
        #expect(reply.hasPrefix("HTTP/1.1 200 OK"))
        await fresh.close()
        try await server.stop()
    }

    @Test("graceful shutdown does not wait for an open keep-alive connection")
    func gracefulShutdown() async throws {
        let server = try await RunningServer.start { Array(Self.exposition.utf8) }
        let connection = try await RawConnection.connect(port: server.port)
        try await connection.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _ = try await connection.read { $0.hasSuffix(Self.exposition) }

        let clock = ContinuousClock()
        let start = clock.now
        await server.group.triggerGracefulShutdown()
        let task = server.task
        // The server closes idle connections itself (~0.3 s); left to the client, this would
        // never end. The bound is loose: the test suite runs many tests at once on 2 cores.
        try await withTimeout(seconds: 10) { try await task.value }
        let elapsed = clock.now - start
        #expect(elapsed < .seconds(10))
        // The idle keep-alive connection was closed by the server.
        try await connection.waitForClose(timeout: 10)
        await connection.close()
        // And nothing listens any more.
        await #expect(throws: (any Error).self) {
            let again = try await RawConnection.connect(port: server.port)
            await again.close()
        }
    }

    @Test("graceful shutdown does not wait for an open TLS keep-alive connection")
    func gracefulShutdownTLS() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let tls = try MetricsServer.TLS(
            certificateChainPEMFile: pki.serverCertificatePath,
            privateKeyPEMFile: pki.serverKeyPath,
            clientCAPEMFile: nil
        )
        let server = try await RunningServer.start(tls: tls) { Array(Self.exposition.utf8) }
        let client = makeHTTPClient(tls: try pki.clientTLS())
        let first = try await scrape(client, "https://127.0.0.1:\(server.port)/metrics")
        #expect(first.status == .ok)
        // A raw TCP connection that never starts the handshake is open too.
        let idle = try await RawConnection.connect(port: server.port)

        let clock = ContinuousClock()
        let start = clock.now
        await server.group.triggerGracefulShutdown()
        let task = server.task
        try await withTimeout(seconds: 10) { try await task.value }
        #expect(clock.now - start < .seconds(10))
        try await idle.waitForClose(timeout: 10)
        await idle.close()
        try await client.shutdown()
    }

    @Test("task cancellation ends run()")
    func cancellation() async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = MetricsServer(
            host: "",
            port: 0,
            tls: nil,
            logger: testLogger,
            onListening: { continuation.yield($0) },
            body: { Array(Self.exposition.utf8) }
        )
        let task = Task { try await server.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let connection = try await RawConnection.connect(port: port)
        try await connection.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _ = try await connection.read { $0.hasSuffix(Self.exposition) }

        task.cancel()
        try await withTimeout(seconds: 10) { try await task.value }
        try await connection.waitForClose(timeout: 10)
        await connection.close()
    }

    @Test("binding a port in use fails with an error naming the address")
    func portInUse() async throws {
        let first = try await RunningServer.start { [] }
        let second = MetricsServer(host: "127.0.0.1", port: first.port, tls: nil, logger: testLogger) { [] }
        let error = await #expect(throws: MetricsServerError.self) {
            try await withTimeout(seconds: 5) { try await second.run() }
        }
        #expect(error?.description.contains("127.0.0.1:\(first.port)") == true, "\(String(describing: error))")
        #expect(error?.description.contains("in use") == true, "\(String(describing: error))")
        try await first.stop()
    }
}
