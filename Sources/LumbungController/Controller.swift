import Foundation
import Hummingbird
import HummingbirdTLS
import LumbungCore
import LumbungPKI
import LumbungStore
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// Assembles the controller: store, ledger, HTTPS application with mutual TLS, heartbeat monitor.
public enum Controller {
    /// The services to run, in start order (the store first, so it stops last).
    public struct Assembly: Sendable {
        public var services: ControllerServices
        public var app: Application<RouterResponder<LumbungContext>>
        /// Run these in a `ServiceGroup`: store keeper, sweeper, HTTPS server.
        public var all: [any Service]
        /// Every route as `METHOD /path/{param}` (checked against `openapi.yaml` by a test).
        public var routes: [String]
    }

    /// Opens the state directory and builds the application. `onListening` gets the bound port.
    public static func assemble(
        config: ControllerConfig, logger: Logger, now: @escaping @Sendable () -> Date = { Date() },
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> Assembly {
        let paths = StatePaths(config.stateDirectory)
        let ca = try StateDirectory.loadCA(paths)
        let store = try Store(path: paths.database)
        let services = try ControllerServices(config: config, store: store, ca: ca, logger: logger, now: now)

        let router = Router(context: LumbungContext.self)
        router.add(middleware: AuthMiddleware(store: store, cache: ChannelIdentityCache(), now: now))
        Routes(services: services).register(on: router)

        let tls = try serverTLS(paths: paths, ca: ca)
        let app = Application(
            router: router,
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "lumbungd"),
            onServerRunning: { channel in
                await onListening(channel.localAddress?.port ?? config.port)
            },
            logger: logger)
        let keeper = StoreKeeper(store: store, logger: logger)
        let sweeper = SweepService(ledger: services.ledger, interval: config.sweepInterval, logger: logger)
        let routes = router.routes.map { "\($0.method.rawValue) \($0.path.description)" }
        return Assembly(services: services, app: app, all: [keeper, sweeper, app], routes: routes.sorted())
    }

    /// Server TLS: our certificate, client certificates optional at the handshake (enrollment
    /// has none) but verified against our CA when present; TLS 1.2 minimum.
    static func serverTLS(paths: StatePaths, ca: CertificateAuthority) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(paths.serverCertificate)
        let key = try NIOSSLPrivateKey(file: paths.serverKey, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.certificatePEM.utf8)))
        tls.certificateVerification = .optionalVerification
        tls.minimumTLSVersion = .tlsv12
        tls.shutdownTimeout = .milliseconds(300)
        return tls
    }
}

/// Keeps the store open while the controller runs and closes it (checkpointing the WAL) at shutdown.
struct StoreKeeper: Service {
    let store: Store
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        do {
            try store.close()
        } catch {
            logger.error("store close failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Marks silent hosts unreachable and expires old requests, every `interval`.
struct SweepService: Service {
    let ledger: Ledger
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await ledger.read { ControllerGauges.record($0) }
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                await ledger.read { ControllerGauges.record($0) }
                do {
                    let result = try await ledger.sweep()
                    for host in result.unreachable {
                        logger.warning("host unreachable", metadata: ["host.id": "\(host)"])
                    }
                    for request in result.expired {
                        logger.info("request expired", metadata: ["request.id": "\(request)"])
                    }
                } catch {
                    logger.error("sweep failed", metadata: ["error": "\(error)"])
                }
                do {
                    if let pruned = try await ledger.pruneAudit() {
                        logger.notice(
                            "audit entries past the retention pruned",
                            metadata: [
                                "audit.from": "\(pruned.from)", "audit.to": "\(pruned.to)", "audit.count": "\(pruned.count)",
                                "audit.retention_days": "\(pruned.retentionDays)",
                            ])
                    }
                } catch {
                    logger.error("audit pruning failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
