import Foundation
import LumbungAgent
import Testing

@Suite("sd_notify through libsystemd", .serialized)
struct SystemdTests {
    @Test("READY and STATUS reach NOTIFY_SOCKET; without it nothing happens")
    func notify() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer {
            close(fd)
            unlink(path)
            unsetenv("NOTIFY_SOCKET")
        }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8)
            for (i, b) in bytes.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        // Without NOTIFY_SOCKET: a silent no-op.
        unsetenv("NOTIFY_SOCKET")
        Systemd.ready(status: "nothing listens")
        #expect(Systemd.watchdogInterval == nil)
        setenv("NOTIFY_SOCKET", path, 1)
        Systemd.ready(status: "enforcing node-01")
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(n > 0)
        let text = String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self)
        #expect(text.contains("READY=1"))
        #expect(text.contains("STATUS=enforcing node-01"))
    }
}
