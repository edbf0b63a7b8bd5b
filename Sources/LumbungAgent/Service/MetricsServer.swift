#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// An error thrown by ``MetricsServer`` and ``MetricsServer/TLS``.
///
/// The ``description`` is a complete, human-readable sentence that names the
/// file or address involved and what went wrong.
public struct MetricsServerError: Error, CustomStringConvertible, Sendable {
    /// A human-readable explanation of the failure.
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Serves `GET /metrics` over HTTP/1.1 (optionally HTTPS) until graceful shutdown.
///
/// - `GET /metrics` (any query string is ignored) answers `200` with the bytes
///   returned by `body`, as `text/plain; version=0.0.4; charset=utf-8`.
/// - `HEAD /metrics` answers the same headers without a body.
/// - Any other path answers `404`; any other method on `/metrics` answers `405`
///   with `Allow: GET, HEAD`.
///
/// Connections are kept alive (and pipelined requests answered in order) unless
/// the client sends `Connection: close` or speaks HTTP/1.0 without keep-alive.
/// Responses are produced directly on the connection's event loop.
///
/// `run()` returns once graceful shutdown is triggered (see `ServiceGroup`) or
/// the calling task is cancelled, after closing the listening socket and all
/// open connections.
public struct MetricsServer: Service {
    /// Optional HTTPS for the metrics endpoint, with optional client-certificate
    /// verification (mutual TLS).
    public struct TLS: Sendable {
        /// The validated TLS context shared by all connections.
        let sslContext: NIOSSLContext
        /// Whether clients must present a certificate signed by the client CA.
        public let requiresClientCertificate: Bool

        /// Loads and validates the TLS material now, so that configuration
        /// mistakes surface at start-up rather than on the first scrape.
        ///
        /// The server accepts TLS 1.2 and newer.
        ///
        /// - Parameters:
        ///   - certificateChainPEMFile: PEM file holding the server certificate,
        ///     optionally followed by intermediate certificates.
        ///   - privateKeyPEMFile: PEM file holding the (unencrypted) private key
        ///     of the server certificate.
        ///   - clientCAPEMFile: When set, PEM file holding the CA certificate(s)
        ///     that client certificates must chain to; clients without such a
        ///     certificate are refused during the handshake. When `nil`, no
        ///     client certificate is requested.
        /// - Throws: ``MetricsServerError`` naming the file and what is wrong
        ///   with it (unreadable, not PEM, key not matching the certificate...).
        public init(certificateChainPEMFile: String, privateKeyPEMFile: String, clientCAPEMFile: String?) throws {
            let chainBytes = try readSmallFile(certificateChainPEMFile, what: "TLS certificate chain")
            let chain: [NIOSSLCertificate]
            do {
                chain = try NIOSSLCertificate.fromPEMBytes(chainBytes)
            } catch {
                throw MetricsServerError(
                    "TLS certificate chain file '\(certificateChainPEMFile)' does not contain a PEM certificate (\(error))"
                )
            }
            guard !chain.isEmpty else {
                throw MetricsServerError(
                    "TLS certificate chain file '\(certificateChainPEMFile)' does not contain a PEM certificate"
                )
            }

            let keyBytes = try readSmallFile(privateKeyPEMFile, what: "TLS private key")
            let key: NIOSSLPrivateKey
            do {
                key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
            } catch {
                throw MetricsServerError(
                    "TLS private key file '\(privateKeyPEMFile)' does not contain an unencrypted PEM private key (\(error))"
                )
            }

            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key)
            )
            configuration.minimumTLSVersion = .tlsv12
            // Do not let a silent peer hold a connection open during shutdown.
            configuration.shutdownTimeout = .milliseconds(500)

            if let clientCAPEMFile {
                let caBytes = try readSmallFile(clientCAPEMFile, what: "TLS client CA")
                let cas: [NIOSSLCertificate]
                do {
                    cas = try NIOSSLCertificate.fromPEMBytes(caBytes)
                } catch {
                    throw MetricsServerError(
                        "TLS client CA file '\(clientCAPEMFile)' does not contain a PEM certificate (\(error))"
                    )
                }
                guard !cas.isEmpty else {
                    throw MetricsServerError("TLS client CA file '\(clientCAPEMFile)' does not contain a PEM certificate")
                }
                configuration.certificateVerification = .noHostnameVerification
                configuration.trustRoots = .certificates(cas)
                configuration.sendCANameList = true
            } else {
                configuration.certificateVerification = .none
            }

            do {
                self.sslContext = try NIOSSLContext(configuration: configuration)
            } catch {
                throw MetricsServerError(
                    "cannot use TLS certificate chain '\(certificateChainPEMFile)' with private key '\(privateKeyPEMFile)'"
                        + " (does the key belong to the certificate?): \(error)"
                )
            }
            self.requiresClientCertificate = clientCAPEMFile != nil
        }
    }

    private let host: String
    private let port: Int
    private let tls: TLS?
    private let logger: Logger
    private let onListening: @Sendable (Int) -> Void
    private let body: @Sendable () -> [UInt8]
    private let idleTimeout: TimeAmount

    /// Creates a metrics server; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - host: Address to listen on; empty means `0.0.0.0`.
    ///   - port: TCP port; `0` picks a free port (reported to `onListening`).
    ///   - tls: HTTPS settings, or `nil` for plain HTTP.
    ///   - logger: Receives the listen address at `info` and failures at
    ///     `debug`/`warning`. Scrapes themselves are never logged at `info`.
    ///   - idleTimeout: A connection that sends nothing for this long (no request, or a TLS
    ///     handshake never finished) is closed, so idle or stalled clients cannot pile up.
    ///   - onListening: Called once with the bound port after the socket listens.
    ///   - body: Produces the exposition text for each `GET /metrics`. It is
    ///     called on an event loop, so it must be cheap and thread-safe.
    public init(
        host: String,
        port: Int,
        tls: TLS?,
        logger: Logger,
        idleTimeout: TimeAmount = .seconds(120),
        onListening: @escaping @Sendable (Int) -> Void = { _ in },
        body: @escaping @Sendable () -> [UInt8]
    ) {
        self.idleTimeout = idleTimeout
        self.host = host
        self.port = port
        self.tls = tls
        self.logger = logger
        self.onListening = onListening
        self.body = body
    }

    /// Binds the listening socket and serves until graceful shutdown or task
    /// cancellation, then closes the listener and all open connections (within
    /// about one second) and returns.
    ///
    /// - Throws: ``MetricsServerError`` naming `host:port` and the OS reason when
    ///   the address cannot be bound, or when the listening socket closes on its
    ///   own.
    public func run() async throws {
        let bindHost = self.host.isEmpty ? "0.0.0.0" : self.host
        let address = "\(bindHost):\(self.port)"
        let connections = ConnectionRegistry()
        let sslContext = self.tls?.sslContext
        let logger = self.logger
        let body = self.body
        let idleTimeout = self.idleTimeout

        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 128)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                guard connections.register(channel) else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try pipeline.addHandler(IdleCloser(logger: logger))
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try pipeline.addHandler(MetricsHTTPHandler(body: body, logger: logger))
                }
            }

        let serverChannel: Channel
        do {
            serverChannel = try await bootstrap.bind(host: bindHost, port: self.port).get()
        } catch {
            throw MetricsServerError("cannot listen on \(address): \(describeOSError(error))")
        }

        let boundPort = serverChannel.localAddress?.port ?? self.port
        logger.info(
            "metrics endpoint listening",
            metadata: [
                "address": "\(bindHost):\(boundPort)",
                "scheme": "\(sslContext == nil ? "http" : "https")",
                "client_certificates": "\(self.tls?.requiresClientCertificate == true ? "required" : "not requested")",
            ]
        )
        self.onListening(boundPort)

        let stop: @Sendable () -> Void = {
            if connections.beginShutdown() {
                serverChannel.close(promise: nil)
            }
        }

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                // Completes when `stop` closes the listener (or it fails on its own).
                try? await serverChannel.closeFuture.get()
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }

        let closedOnItsOwn = connections.beginShutdown()
        await Self.closeConnections(connections.snapshot(), on: serverChannel.eventLoop, logger: logger)
        if closedOnItsOwn {
            logger.warning("metrics listener closed unexpectedly", metadata: ["address": "\(bindHost):\(boundPort)"])
            throw MetricsServerError("the metrics listener on \(bindHost):\(boundPort) closed unexpectedly")
        }
        logger.debug("metrics endpoint stopped", metadata: ["address": "\(bindHost):\(boundPort)"])
    }

    /// Asks every open connection to finish its in-flight response and close,
    /// force-closes the stragglers, and waits at most ~900 ms in total.
    private static func closeConnections(_ channels: [Channel], on loop: EventLoop, logger: Logger) async {
        guard !channels.isEmpty else { return }
        logger.debug("closing open metrics connections", metadata: ["count": "\(channels.count)"])
        for channel in channels {
            // HTTPServerPipelineHandler closes idle connections at once and busy
            // ones after their current response.
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            channel.eventLoop.scheduleTask(in: .milliseconds(300)) {
                channel.close(promise: nil)
            }
        }
        let done = loop.makePromise(of: Void.self)
        EventLoopFuture.andAllComplete(channels.map { $0.closeFuture }, on: loop).cascade(to: done)
        let deadline = loop.scheduleTask(in: .milliseconds(900)) {
            done.succeed(())
        }
        try? await done.futureResult.get()
        deadline.cancel()
    }
}

extension MetricsServer: CustomStringConvertible {
    /// A short description for logs (for example ServiceLifecycle's), such as
    /// `MetricsServer(https://0.0.0.0:9465/metrics)`.
    public var description: String {
        let scheme = self.tls == nil ? "http" : "https"
        let host = self.host.isEmpty ? "0.0.0.0" : self.host
        return "MetricsServer(\(scheme)://\(host):\(self.port)/metrics)"
    }
}

// MARK: - Connection bookkeeping

/// Tracks accepted connections so that shutdown can close them; refuses new
/// ones once shutdown began.
private final class ConnectionRegistry: Sendable {
    private struct State {
        var shuttingDown = false
        var channels: [ObjectIdentifier: Channel] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Returns `false` (and the caller must drop the channel) after shutdown began.
    func register(_ channel: Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = self.state.withLockedValue { state -> Bool in
            guard !state.shuttingDown else { return false }
            state.channels[id] = channel
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { _ in
                self.state.withLockedValue { _ = $0.channels.removeValue(forKey: id) }
            }
        }
        return accepted
    }

    /// Marks shutdown; returns `true` only for the first caller.
    func beginShutdown() -> Bool {
        self.state.withLockedValue { state in
            defer { state.shuttingDown = true }
            return !state.shuttingDown
        }
    }

    func snapshot() -> [Channel] {
        self.state.withLockedValue { Array($0.channels.values) }
    }
}

/// Closes a connection when ``IdleStateHandler`` reports that nothing was read for the idle
/// timeout (it sits before TLS, so a handshake that never completes counts as idle too).
private final class IdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            logger.debug("metrics connection idle; closing", metadata: ["remote": "\(context.remoteAddress?.description ?? "?")"])
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

// MARK: - HTTP handling

/// Answers each request on the event loop. Sits behind NIOHTTP1's server
/// pipeline (with pipelining assistance), so it sees one request at a time.
private final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Request bodies are not expected; up to this many bytes are discarded,
    /// beyond that the connection is closed.
    static let maxDiscardedBodyBytes = 64 * 1024
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private enum State {
        case idle
        case receiving(HTTPRequestHead, bodyBytes: Int)
        case closing
    }

    private let body: @Sendable () -> [UInt8]
    private let logger: Logger
    private var state = State.idle

    init(body: @escaping @Sendable () -> [UInt8], logger: Logger) {
        self.body = body
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.unwrapInboundIn(data), self.state) {
        case (_, .closing):
            return
        case (.head(let head), _):
            self.state = .receiving(head, bodyBytes: 0)
        case (.body(let chunk), .receiving(let head, let bodyBytes)):
            let total = bodyBytes + chunk.readableBytes
            guard total <= Self.maxDiscardedBodyBytes else {
                self.logger.debug(
                    "metrics request body too large; closing connection",
                    metadata: ["remote": "\(context.remoteAddress?.description ?? "?")", "bytes": "\(total)"]
                )
                self.state = .closing
                context.close(promise: nil)
                return
            }
            self.state = .receiving(head, bodyBytes: total)
        case (.end, .receiving(let head, _)):
            self.state = .idle
            self.respond(to: head, context: context)
        case (.body, .idle), (.end, .idle):
            // Cannot happen behind HTTPRequestDecoder; be defensive.
            return
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = Self.path(of: request.uri)
        let keepAlive = request.isKeepAlive
        var headers = HTTPHeaders()
        let status: HTTPResponseStatus
        var payload: ByteBuffer
        var sendPayload = true

        if path == "/metrics" {
            switch request.method {
            case .GET, .HEAD:
                status = .ok
                payload = context.channel.allocator.buffer(bytes: self.body())
                headers.add(name: "Content-Type", value: Self.contentType)
                sendPayload = request.method == .GET
            default:
                status = .methodNotAllowed
                payload = context.channel.allocator.buffer(
                    string: "Method \(request.method.rawValue) is not allowed on /metrics; use GET or HEAD.\n"
                )
                headers.add(name: "Allow", value: "GET, HEAD")
                headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            }
        } else {
            status = .notFound
            payload = context.channel.allocator.buffer(
                string: "Not found: \(Self.printable(path)); this server only serves /metrics.\n"
            )
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            sendPayload = request.method != .HEAD
        }
        headers.add(name: "Content-Length", value: String(payload.readableBytes))
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if request.version.major == 1 && request.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }

        let responseVersion = request.version.major == 1 && request.version.minor == 0 ? request.version : .http1_1
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: responseVersion, status: status, headers: headers))),
            promise: nil
        )
        if sendPayload {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(payload))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            self.state = .closing
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // TLS handshake failures (plain HTTP on the TLS port, missing or
        // untrusted client certificates), resets, malformed requests: the
        // client's problem, so only debug.
        self.logger.debug(
            "metrics connection error; closing",
            metadata: ["remote": "\(context.remoteAddress?.description ?? "?")", "error": "\(error)"]
        )
        self.state = .closing
        context.close(promise: nil)
    }

    /// The path of an origin-form request target, without query or fragment.
    static func path(of uri: String) -> Substring {
        let utf8 = uri.utf8
        if let end = utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            return uri[..<end]
        }
        return uri[...]
    }

    /// Caps the echoed path so the 404 stays one short line.
    static func printable(_ path: Substring) -> String {
        path.count > 200 ? path.prefix(200) + "..." : String(path)
    }
}

// MARK: - Small helpers (no Foundation)

/// Reads a (small) file with POSIX calls; errors name the file and the OS reason.
private func readSmallFile(_ path: String, what: String, limit: Int = 1 << 20) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        let code = errno
        throw MetricsServerError("cannot read \(what) file '\(path)': \(strerrorString(code))")
    }
    defer { _ = close(fd) }

    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            let code = errno
            if code == EINTR { continue }
            throw MetricsServerError("cannot read \(what) file '\(path)': \(strerrorString(code))")
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        guard bytes.count <= limit else {
            throw MetricsServerError("\(what) file '\(path)' is larger than \(limit) bytes; is it really a PEM file?")
        }
    }
    guard !bytes.isEmpty else {
        throw MetricsServerError("\(what) file '\(path)' is empty")
    }
    return bytes
}

private func strerrorString(_ code: CInt) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}

/// Turns a bind failure into "OS reason (errno N)" where possible.
private func describeOSError(_ error: Error) -> String {
    if let ioError = error as? IOError {
        return strerrorString(ioError.errnoCode)
    }
    return "\(error)"
}
