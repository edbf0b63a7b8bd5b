import Foundation
import LumbungAPI
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A minimal HTTPS/1.1 keep-alive client for the load generator: ONE TLS connection with its own
/// client certificate, one request in flight at a time, built directly on SwiftNIO and NIOSSL.
///
/// AsyncHTTPClient costs several times more CPU per call (connection pool, request state
/// machines, task hops); in this benchmark the clients share the two cores with the controller,
/// so their cost is subtracted from what the controller gets. What the controller sees is the
/// same: a mutual-TLS connection per client, HTTP/1.1 `POST` with a JSON body, one call after
/// the other, each answered only after its commit is durable.
final class RawHTTPSClient: Sendable {
    struct Reply: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    private let channel: any Channel
    private let host: String

    private init(channel: any Channel, host: String) {
        self.channel = channel
        self.host = host
    }

    /// Connects to `127.0.0.1:port` and completes the TLS handshake with `credentials`.
    static func connect(port: Int, credentials: ClientCredentials, group: any EventLoopGroup) async throws -> RawHTTPSClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(credentials.caPEM.utf8)))
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem))
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The controller's certificate names localhost and 127.0.0.1.
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(CallHandler())
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawHTTPSClient(channel: channel, host: "127.0.0.1:\(port)")
    }

    /// `POST path` with a JSON body; the status and body of the answer.
    func post(_ path: String, json: ByteBuffer) async throws -> Reply {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "host", value: host)
        head.headers.add(name: "accept", value: "application/json")
        head.headers.add(name: "content-type", value: "application/json")
        head.headers.add(name: "content-length", value: String(json.readableBytes))
        let promise = channel.eventLoop.makePromise(of: Reply.self)
        channel.writeAndFlush(CallHandler.Call(head: head, body: json, reply: promise), promise: nil)
        return try await promise.futureResult.get()
    }

    /// The body of `POST /v1/vms`, formatted directly (what `StrictJSON.encode` gives for these
    /// bodies, without the encoder; the benchmark's names, labels and pools are plain ASCII).
    static func json(_ body: CreateVMBody) -> String {
        func quoted(_ s: String) -> String { "\"" + s + "\"" }
        func map(_ m: [String: String]) -> String {
            "{" + m.keys.sorted().map { quoted($0) + ":" + quoted(m[$0]!) }.joined(separator: ",") + "}"
        }
        let vm = body.vm
        var fields = [
            "\"disk\":\(vm.disk.bytes)", "\"memory\":\(vm.memory.bytes)", "\"name\":" + quoted(vm.name), "\"vcpu\":\(vm.vcpu)",
        ]
        if let app = vm.app { fields.append("\"app\":" + quoted(app)) }
        if let labels = vm.forbidLabels { fields.append("\"forbidLabels\":" + map(labels)) }
        if let pool = vm.pool { fields.append("\"pool\":" + quoted(pool.rawValue)) }
        if let labels = vm.requireLabels { fields.append("\"requireLabels\":" + map(labels)) }
        if let force = body.force { return "{\"force\":\(force),\"opd\":" + quoted(body.opd.rawValue) + ",\"vm\":{" + fields.joined(separator: ",") + "}}" }
        return "{\"opd\":" + quoted(body.opd.rawValue) + ",\"vm\":{" + fields.joined(separator: ",") + "}}"
    }

    func close() async {
        try? await channel.close()
    }
}

/// Writes a request and completes its promise with the answer (responses come in order).
private final class CallHandler: ChannelDuplexHandler {
    struct Call: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var reply: EventLoopPromise<RawHTTPSClient.Reply>
    }
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Call
    typealias OutboundOut = HTTPClientRequestPart

    private var waiting = CircularBuffer<EventLoopPromise<RawHTTPSClient.Reply>>()
    private var status = 0
    private var body: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        waiting.append(call.reply)
        context.write(wrapOutboundOut(.head(call.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(call.body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            body = nil
        case .body(var part):
            if body == nil { body = part } else { body!.writeBuffer(&part) }
        case .end:
            let reply = RawHTTPSClient.Reply(status: status, body: body ?? ByteBuffer())
            body = nil
            waiting.popFirst()?.succeed(reply)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let p = waiting.popFirst() { p.fail(error) }
    }
}
