import Foundation
import Testing

/// The issue's session, typed as a sysadmin and an OPD member would, against real processes:
/// `lumbungd init`, `lumbungd run`, and the `lumbung` CLI with its own config files.
@Suite("CLI end to end against a real lumbungd", .serialized)
struct CLIEndToEndTests {
    struct Shell {
        let config: String
        func run(_ args: String...) async throws -> (code: Int32, out: String, err: String) {
            try await runCommand(binDirectory() + "/lumbung", args, environment: ["LUMBUNG_CONFIG": config])
        }
    }

    func token(in output: String) -> String? {
        output.split(whereSeparator: \.isWhitespace).map(String.init).first { $0.hasPrefix("lmb1.") }
    }

    @Test("init, run, login, OPD, host, VM, capacity, user, member requests, approval, audit")
    func session() async throws {
        let bin = binDirectory()
        guard FileManager.default.isExecutableFile(atPath: bin + "/lumbungd"), FileManager.default.isExecutableFile(atPath: bin + "/lumbung") else {
            Issue.record("lumbungd and lumbung must be built at \(bin) (swift build --build-tests)")
            return
        }
        let dir = makeTempDirectory("lumbung-cli")
        let state = dir + "/state"
        let initialized = try await runCommand(bin + "/lumbungd", ["init", "--state", state, "--name", "pemkab-wonosobo", "--address", "dc.example.go.id,127.0.0.1"])
        #expect(initialized.code == 0, "\(initialized.err)")
        let adminToken = try #require(token(in: initialized.out))
        // A second init on the same directory is refused and changes nothing.
        let again = try await runCommand(bin + "/lumbungd", ["init", "--state", state, "--name", "x", "--address", "127.0.0.1"])
        #expect(again.code == 1)
        #expect(again.err.contains("already holds a controller"))

        let port = freePort()
        let controller = try ControllerProcess(state: state, port: port)
        defer { controller.terminate() }
        try await controller.waitUntilReady(caPEM: try String(contentsOfFile: state + "/ca.crt", encoding: .utf8))
        let url = "https://127.0.0.1:\(port)"

        let admin = Shell(config: dir + "/admin/config.yaml")
        var r = try await admin.run("login", "--controller", url, "--token", adminToken)
        #expect(r.code == 0, "\(r.err)")
        // A token works once.
        r = try await Shell(config: dir + "/other/config.yaml").run("login", "--controller", url, "--token", adminToken)
        #expect(r.code == 1)
        #expect(r.err.contains("used"))

        r = try await admin.run("opd", "create", "dinkes", "--name", "Dinas Kesehatan", "--vcpu", "32", "--memory", "64GiB", "--storage", "ssd=2TiB", "--storage", "hdd=4TiB", "--vms", "20")
        #expect(r.code == 0, "\(r.err)")
        // Quota classes: create with a class, an unknown class lists the known ones, move to another class.
        r = try await admin.run("opd", "create", "bappeda", "--name", "Bappeda", "--class", "sedang")
        #expect(r.code == 0 && r.out.contains("quota class sedang"), "\(r.out)\(r.err)")
        r = try await admin.run("opd", "create", "dishub", "--name", "Dishub", "--class", "raksasa")
        #expect(r.code == 1 && r.err.contains("besar, kecil, sedang"), "\(r.err)")
        r = try await admin.run("opd", "set-quota", "bappeda", "--class", "besar")
        #expect(r.code == 0, "\(r.err)")
        r = try await admin.run("opd", "show", "bappeda")
        #expect(r.out.contains("besar") && r.out.contains("128"), "\(r.out)")
        r = try await admin.run("host", "add", "node-01", "--cpus", "64", "--memory", "256GiB", "--pool", "ssd=4TiB", "--pool", "hdd=20TiB", "--labels", "rack=a")
        #expect(r.code == 0, "\(r.err)")
        #expect(token(in: r.out) != nil, "host add prints a join token")
        r = try await admin.run("vm", "create", "--opd", "dinkes", "--name", "simpus-db", "--vcpu", "4", "--memory", "8GiB", "--disk", "100GiB", "--pool", "ssd", "--app", "simpus")
        #expect(r.code == 0, "\(r.err)")
        r = try await admin.run("capacity")
        #expect(r.code == 0)
        #expect(r.out.contains("node-01"))
        r = try await admin.run("capacity", "--output", "json")
        let capacity = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect((capacity?["allocated"] as? [String: Any])?["vcpu"] as? Int == 4)

        r = try await admin.run("user", "add", "budi", "--opd", "dinkes", "--role", "member")
        #expect(r.code == 0, "\(r.err)")
        let budiToken = try #require(token(in: r.out))
        let budi = Shell(config: dir + "/budi/config.yaml")
        r = try await budi.run("login", "--controller", url, "--token", budiToken)
        #expect(r.code == 0, "\(r.err)")

        r = try await budi.run("vm", "request", "--name", "sikda-web", "--vcpu", "2", "--memory", "4GiB", "--disk", "40GiB", "--app", "sikda", "--reason", "SIKDA web server",
            "--letter", "800/123/Diskominfo/2026")
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.contains("approval rule vm-volume-oleh-approver"), "\(r.out)")
        r = try await budi.run("volume", "request", "--name", "arsip", "--size", "500GiB", "--pool", "hdd", "--reason", "archive")
        #expect(r.code == 0, "\(r.err)")
        r = try await budi.run("quota", "request", "--vcpu", "+8", "--reason", "new clinic system")
        #expect(r.code == 0, "\(r.err)")
        r = try await budi.run("request", "list", "--output", "json")
        let mine = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] ?? []
        #expect(mine.count == 3)
        // The letter number is stored and shown; explain names the rule and the host.
        let webID = try #require(mine.first { ($0["payload"] as? [String: Any])?["vm"] != nil }?["id"] as? Int)
        r = try await budi.run("request", "show", String(webID))
        #expect(r.out.contains("800/123/Diskominfo/2026"), "\(r.out)")
        r = try await budi.run("request", "explain", String(webID))
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.contains("rule vm-volume-oleh-approver") && r.out.contains("host node-01 would be chosen"), "\(r.out)")
        r = try await budi.run("vm", "request", "--name", "x", "--vcpu", "1", "--memory", "1GiB", "--disk", "1GiB", "--reason", "x", "--letter", "a;b")
        #expect(r.code == 2)
        // Bad input is a usage error (2) and sends nothing.
        r = try await budi.run("vm", "request", "--name", "x", "--vcpu", "0", "--memory", "1GiB", "--disk", "1GiB", "--reason", "x")
        #expect(r.code == 2)
        r = try await budi.run("vm", "request", "--name", "../x", "--vcpu", "1", "--memory", "1GiB", "--disk", "1GiB", "--reason", "x")
        #expect(r.code == 2)
        r = try await budi.run("vm", "request", "--name", "x", "--vcpu", "1", "--memory", "1GiB", "--disk", "99999TiB", "--reason", "x")
        #expect(r.code == 2)
        // A member cannot allocate directly or see the data center.
        r = try await budi.run("capacity")
        #expect(r.code == 1)

        r = try await admin.run("request", "list", "--pending", "--output", "json")
        let pending = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] ?? []
        #expect(pending.count == 3)
        let ids = pending.compactMap { $0["id"] as? Int }.sorted()
        for id in ids {
            r = try await admin.run("request", "approve", String(id))
            #expect(r.code == 0, "\(r.err)")
        }
        r = try await budi.run("vm", "list")
        #expect(r.out.contains("sikda-web"))
        #expect(r.out.contains("simpus-db"))
        r = try await budi.run("quota", "show", "--output", "json")
        let quota = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect((quota?["quota"] as? [String: Any])?["vcpu"] as? Int == 40)
        #expect((quota?["usage"] as? [String: Any])?["vcpu"] as? Int == 6)

        // A refusal says which limit blocked it, with numbers, and exits 1.
        r = try await admin.run("vm", "create", "--opd", "dinkes", "--name", "huge", "--vcpu", "64", "--memory", "8GiB", "--disk", "10GiB", "--pool", "ssd")
        #expect(r.code == 1)
        #expect(r.err.contains("34 vCPU left"), "\(r.err)")
        #expect(r.err.contains("64"))

        // Revocation takes effect on the next request.
        r = try await admin.run("user", "revoke", "budi")
        #expect(r.code == 0, "\(r.err)")
        r = try await budi.run("vm", "list")
        #expect(r.code == 1)
        #expect(r.err.contains("revoked"))

        r = try await admin.run("audit", "verify")
        #expect(r.code == 0, "\(r.out)\(r.err)")
        r = try await admin.run("audit", "list", "--output", "json")
        let audit = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] ?? []
        #expect(audit.contains { $0["action"] as? String == "request.approve" })
        #expect(audit.contains { $0["action"] as? String == "user.revoke" })
    }
}
