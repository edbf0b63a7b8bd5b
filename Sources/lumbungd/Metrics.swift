import ArgumentParser
import Foundation
import Hummingbird
import Logging
import LumbungAgent
import LumbungController
import Metrics
import Prometheus
import ServiceLifecycle

/// The controller's `/metrics` (Prometheus text) on its own plain-HTTP listener, so Prometheus
/// scrapes it without a client certificate. Keep it on loopback or a management network.
enum ControllerMetricsServer {
    static func make(listen: String, registry: PrometheusCollectorRegistry, logger: Logger) throws -> some Service {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--metrics-listen '\(listen)' is not ADDR:PORT")
        }
        let host = String(listen[..<colon])
        Gauge(label: "lumbungd_build_info", dimensions: [("version", LumbungAgentModule.version)]).record(1)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            let text = MetricHelp.annotate(String(decoding: buffer, as: UTF8.self), texts: ControllerGauges.help)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host.isEmpty ? "0.0.0.0" : host, port: port), serverName: "lumbungd-metrics"),
            logger: logger)
    }
}

/// Tells systemd (`Type=notify`) the controller is ready once it listens, and pings the watchdog.
struct SystemdNotifier: Service {
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await Systemd.watchdogLoop()  // returns at once when systemd set no watchdog
        }
        try? await gracefulShutdown()
        Systemd.stopping()
    }
}
