import Foundation
import Testing
@testable import LumbungAgent

@Suite struct AgentConfigTests {
    func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID().uuidString.prefix(8)).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theShippedExampleLoads() throws {
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("agent/agent.yaml").path
        let config = try AgentConfig.load(path: shipped)
        #expect(config.driver == "real")
        #expect(config.cgroupSubpath == "auto")
        #expect(config.accel == "auto")
        #expect(config.pools.keys.sorted() == ["hdd", "ssd"])
    }

    @Test func unknownKeysAreRefusedWithTheAcceptedOnes() throws {
        let path = try write("controller: https://127.0.0.1:7443\nheartbeat: 5\npoolz: {}\n")
        let error = #expect(throws: AgentError.self) { try AgentConfig.load(path: path) }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("heartbeat, poolz"))
        #expect(text.contains("heartbeat_seconds"))
        #expect(text.contains(path))
    }

    @Test func badValuesNameTheField() throws {
        let driver = try write("controller: https://127.0.0.1:7443\ndriver: fake\n")
        #expect("\(#expect(throws: AgentError.self) { try AgentConfig.load(path: driver) }.map { "\($0)" } ?? "")".contains("driver must be real or simulated"))
        let beat = try write("controller: https://127.0.0.1:7443\nheartbeat_seconds: 0\n")
        #expect("\(#expect(throws: AgentError.self) { try AgentConfig.load(path: beat) }.map { "\($0)" } ?? "")".contains("heartbeat_seconds"))
        let simulated = "controller: https://127.0.0.1:7443\ndriver: simulated\nsimulated: {cpus: 4, memory: 8GiB, pools: {ssd: 1TiB}}\n"
        for bad in ["-1", "30", "86401"] {
            let trim = try write(simulated + "code_trim_seconds: \(bad)\n")
            let text = "\(#expect(throws: AgentError.self) { try AgentConfig.load(path: trim) }.map { "\($0)" } ?? "")"
            #expect(text.contains("code_trim_seconds must be 0 (off) or between 60 and 86400, not \(bad)"), "\(text)")
        }
        #expect(try AgentConfig.load(path: try write(simulated + "code_trim_seconds: 0\n")).codeTrimSeconds == 0)
        #expect(try AgentConfig.load(path: try write(simulated)).codeTrimSeconds == 600)
    }

    @Test func metricsTLSKeysGoTogetherAndBadFilesAreNamed() throws {
        let base = "controller: https://127.0.0.1:7443\ndriver: simulated\n"
        func message(_ text: String) throws -> String {
            let path = try write(base + text)
            return "\(#expect(throws: AgentError.self) { try AgentConfig.load(path: path) }.map { "\($0)" } ?? "")"
        }
        #expect(try message("metrics_tls_certificate: /etc/lumbung/metrics.crt\n").contains("metrics_tls_certificate and metrics_tls_key go together"))
        #expect(try message("metrics_tls_client_ca: /etc/lumbung/ca.crt\n").contains("metrics_tls_client_ca needs metrics_tls_certificate"))
        // Plain HTTP when none is given; a missing file is named when the agent starts.
        #expect(try AgentConfig.load(path: try write(base)).metricsTLS() == nil)
        let config = try AgentConfig.load(path: try write(base + "metrics_tls_certificate: /nonexistent/m.crt\nmetrics_tls_key: /nonexistent/m.key\n"))
        let error = #expect(throws: MetricsServerError.self) { _ = try config.metricsTLS() }
        #expect(error?.description.contains("/nonexistent/m.crt") == true)
    }
}
