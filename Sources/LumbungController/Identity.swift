import Foundation
import Hummingbird
import LumbungCore
import LumbungPKI
import LumbungStore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import X509

/// The request context: Hummingbird's core storage, the connection's channel (for the peer
/// certificate), and the authenticated caller once the auth middleware has run.
public struct LumbungContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel
    public var caller: Authenticated?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// Request bodies larger than this are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }
}

/// A verified caller.
public struct Authenticated: Sendable, Hashable {
    public var principal: Principal
    public var serial: String
    public var notAfter: Date

    var caller: Caller { Caller(principal) }
}

/// What the TLS handshake proved about a connection's client certificate (cached per connection).
struct PeerCertificate: Sendable {
    var serial: String
    var identity: PKIIdentity?
    var notAfter: Date
}

/// Caches each connection's peer certificate, evicted when the connection closes.
final class ChannelIdentityCache: Sendable {
    private let entries = NIOLockedValueBox([ObjectIdentifier: PeerCertificate?]())

    func peer(of channel: any Channel) async throws -> PeerCertificate? {
        let key = ObjectIdentifier(channel)
        if let cached = entries.withLockedValue({ $0[key] }) { return cached }
        let nio = try await channel.nioSSL_peerCertificate().get()
        var peer: PeerCertificate?
        if let nio {
            let der = try nio.toDERBytes()
            let cert = try Certificate(derEncoded: der)
            peer = PeerCertificate(serial: PKIIdentity.serialHex(of: cert), identity: try? PKIIdentity.of(certificate: cert), notAfter: cert.notValidAfter)
        }
        entries.withLockedValue { $0[key] = .some(peer) }
        channel.closeFuture.whenComplete { [entries] _ in
            entries.withLockedValue { _ = $0.removeValue(forKey: key) }
        }
        return peer
    }
}

/// Authenticates every request except enrollment: the client certificate (already verified
/// against our CA by the TLS handshake) must map to a principal in the store that is neither
/// revoked nor expired. Revocation takes effect on the next request.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = LumbungContext
    let store: Store
    let cache: ChannelIdentityCache
    let principals = PrincipalCache()
    let now: @Sendable () -> Date

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/v1/enroll") || request.uri.path == "/healthz" {
            return try await next(request, context)
        }
        guard let peer = try await cache.peer(of: context.channel) else {
            throw APIError.unauthenticated
        }
        let at = now()
        if peer.notAfter <= at {
            throw APIError(.unauthorized, "certificate_expired", "the client certificate expired on \(iso(peer.notAfter)); log in again with a new token")
        }
        let principal = try principals.principal(serial: peer.serial, store: store, now: at)
        var context = context
        context.caller = Authenticated(principal: principal, serial: peer.serial, notAfter: peer.notAfter)
        context.logger[metadataKey: "principal"] = "\(principal)"
        return try await next(request, context)
    }
}

/// Serial → principal answers of the store, kept while the store's
/// ``Store/identityGeneration`` is unchanged (any write to certificates, users, tokens or a host
/// removal invalidates all of them), so a revocation still takes effect on the next request.
/// Only found principals are cached; expiry is checked on the peer certificate before.
final class PrincipalCache: Sendable {
    private struct Entry {
        var principal: Principal
        var generation: UInt64
    }
    private let entries = NIOLockedValueBox([String: Entry]())
    /// Bounded: cleared when it grows past this many serials.
    static let capacity = 10_000

    func principal(serial: String, store: Store, now: Date) throws -> Principal {
        let generation = store.identityGeneration
        if let hit = entries.withLockedValue({ $0[serial] }), hit.generation == generation { return hit.principal }
        let principal = try resolvePrincipal(store: store, serial: serial, now: now)
        entries.withLockedValue {
            if $0.count >= Self.capacity { $0.removeAll(keepingCapacity: true) }
            $0[serial] = Entry(principal: principal, generation: generation)
        }
        return principal
    }
}
