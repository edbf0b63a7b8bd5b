import AsyncHTTPClient
import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import NIOSSL
import NIOCore
import Testing

/// The real `lumbung-agent` executable (simulated driver) against a controller: join, run,
/// report, and `/metrics` that `promtool check metrics` accepts.
@Suite("lumbung-agent process", .serialized)
struct AgentProcessTests {
    @Test("join, run with the simulated driver, VM reported running, /metrics over mutual TLS passes promtool")
    func joinRunMetrics() async throws {
        guard let agentBinary = builtAgentBinary() else { return }
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 16, memory: .gib(32), storage: ["ssd": .tib(1)], vms: 10)))
        let added = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 8, memory: .gib(32), pools: ["ssd": .tib(2)])))
        let dir = makeTempDirectory("lumbung-agent-proc")
        let config = dir + "/agent.yaml"
        let metricsPort = freePort()
        // HTTPS on /metrics with client certificates from the data center's CA (the test reuses
        // the controller's 127.0.0.1 server certificate for the agent's endpoint).
        let paths = StatePaths(ctl.directory)
        try """
            controller: \(ctl.baseURL)
            driver: simulated
            heartbeat_seconds: 1
            metrics_listen: 127.0.0.1:\(metricsPort)
            metrics_tls_certificate: \(paths.serverCertificate)
            metrics_tls_key: \(paths.serverKey)
            metrics_tls_client_ca: \(paths.caCertificate)
            simulated:
              cpus: 8
              memory: 32GiB
              pools: {ssd: 2TiB}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        // A user login token is refused by join; the host token works.
        let wrong = try await admin.client.addUser(AddUserBody(name: "budi", role: .member, opd: "dinkes"))
        var r = try await runCommand(agentBinary, ["join", "--controller", ctl.baseURL, "--token", wrong.token, "--config", config, "--state", dir + "/state", "--driver", "simulated"])
        #expect(r.code == 1)
        #expect(r.err.contains("token"))
        r = try await runCommand(agentBinary, ["join", "--controller", ctl.baseURL, "--token", added.joinToken, "--config", config, "--state", dir + "/state", "--driver", "simulated"])
        #expect(r.code == 0, "\(r.err)")
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/state/agent.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: agentBinary)
        process.arguments = ["run", "--config", config, "--log-level", "warning"]
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 2, memory: .gib(4), disk: .gib(10), pool: "ssd")))
        var state = VMState.scheduled
        for _ in 0..<200 where state != .running {
            try await Task.sleep(for: .milliseconds(50))
            state = try await admin.client.vm(vm.id.rawValue).state
        }
        #expect(state == .running)
        #expect(try await admin.client.host("node-01").driver == "simulated")

        // Scrape /metrics once the VM's series are there, as a scraper with a certificate of the CA.
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ctl.caPEM.utf8)))
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(admin.credentials.certificatePEM.utf8)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(admin.credentials.privateKeyPEM.utf8), format: .pem))
        let scraper = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        var text = ""
        for _ in 0..<100 {
            let request = HTTPClientRequest(url: "https://127.0.0.1:\(metricsPort)/metrics")
            if let response = try? await scraper.execute(request, timeout: .seconds(5)),
                let body = try? await response.body.collect(upTo: 4 << 20)
            {
                text = String(buffer: body)
                if text.contains("lumbung_vm_memory_limit_bytes") { break }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        // 10 s after its start the agent released its mappings of start-up code (CodePages).
        var released = ""
        for _ in 0..<300 where !released.contains("lumbung_agent_code_page_releases_total 1") {
            let request = HTTPClientRequest(url: "https://127.0.0.1:\(metricsPort)/metrics")
            if let response = try? await scraper.execute(request, timeout: .seconds(5)), let body = try? await response.body.collect(upTo: 4 << 20) {
                released = String(buffer: body)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(released.contains("lumbung_agent_code_page_releases_total 1"))
        let releasedBytes = released.split(separator: "\n").first { $0.hasPrefix("lumbung_agent_code_page_released_bytes ") }
            .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
        #expect(releasedBytes > 1_048_576, "the first release dropped \(releasedBytes) bytes of code mappings")
        try await expectPromtoolClean(released, scratch: dir)
        try await scraper.shutdown()
        // Without a client certificate, or over plain HTTP, nothing is served.
        var anonymousTLS = TLSConfiguration.makeClientConfiguration()
        anonymousTLS.trustRoots = tls.trustRoots
        let anonymous = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: anonymousTLS))
        let refused = try? await anonymous.execute(HTTPClientRequest(url: "https://127.0.0.1:\(metricsPort)/metrics"), timeout: .seconds(5))
        #expect(refused == nil, "a scraper without a client certificate was served")
        try await anonymous.shutdown()
        let plain = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"), timeout: .seconds(5))
        #expect(plain == nil, "plain HTTP was served on the TLS port")
        #expect(text.contains("lumbung_agent_heartbeats_total"))
        #expect(text.contains("lumbung_vm_memory_limit_bytes"))
        #expect(text.contains(vm.id.rawValue))
        #expect(text.contains("lumbung_agent_build_info"))
        #expect(text.contains("lumbung_host_cpus"))
        try await expectPromtoolClean(text, scratch: dir)
        process.terminate()
        process.waitUntilExit()
        await admin.shutdown()
        await ctl.stop()
    }

    /// Foundation and ICU cost the agent ~9 MiB of RSS (BENCHMARKS.md, "Host agent footprint"):
    /// the agent's modules use FoundationEssentials only, and a stray `import Foundation` in any
    /// of them (or a dependency that brings it) must fail here rather than in a benchmark.
    @Test("lumbung-agent links neither Foundation nor ICU")
    func agentLinksNoFoundation() async throws {
        guard let agentBinary = builtAgentBinary() else { return }
        let r = try await runCommand("/usr/bin/readelf", ["-d", agentBinary])
        #expect(r.code == 0, "\(r.err)")
        let needed = r.out.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(needed.contains { $0.contains("libswiftCore") }, "readelf shows no Swift runtime: \(r.out.prefix(400))")
        for library in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            #expect(!needed.contains { $0.contains("[\(library)]") }, "lumbung-agent links \(library)")
        }
    }
}
