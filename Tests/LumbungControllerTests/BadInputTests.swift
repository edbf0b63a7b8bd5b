import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungPKI
import Testing

@Suite("Bad input gets a clear error and changes nothing")
struct BadInputTests {
    static func setup() async throws -> (TestController, TestClient) {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": .tib(4)])))
        return (ctl, admin)
    }

    static let badVMs: [(String, VMBody, String)] = [
        ("zero vCPU", VMBody(name: "a", vcpu: 0, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_amount"),
        ("negative vCPU", VMBody(name: "a", vcpu: -2, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_amount"),
        ("negative memory", VMBody(name: "a", vcpu: 1, memory: ByteSize(bytes: -ByteSize.gib), disk: .gib(1), pool: "ssd"), "invalid_amount"),
        ("absurd disk", VMBody(name: "a", vcpu: 1, memory: .gib(1), disk: .tib(99999), pool: "ssd"), "invalid_amount"),
        ("fractional MiB", VMBody(name: "a", vcpu: 1, memory: ByteSize(bytes: 1000), disk: .gib(1), pool: "ssd"), "invalid_amount"),
        ("unknown pool", VMBody(name: "a", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "nvme"), "unknown_pool"),
        ("empty name", VMBody(name: "", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_name"),
        ("path escape", VMBody(name: "../etc", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_name"),
        ("slash", VMBody(name: "a/b", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_name"),
        ("uppercase", VMBody(name: "Simpus", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_name"),
        ("too long", VMBody(name: String(repeating: "a", count: 64), vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"), "invalid_name"),
    ]

    @Test("bad VM specs are refused with a code, and nothing is allocated")
    func badVMs() async throws {
        let (ctl, admin) = try await Self.setup()
        for (label, body, expected) in Self.badVMs {
            let code = await errorCode { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: body)) }
            #expect(code == expected, "\(label)")
            let filed = await errorCode { try await admin.client.fileRequest(FileRequestBody(opd: "dinkes", reason: "x", vm: body)) }
            #expect(filed == expected, "\(label) as a request")
        }
        #expect(await errorCode { try await admin.client.createVM(CreateVMBody(opd: "nope", vm: VMBody(name: "a", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"))) } == "not_found")
        // Duplicate name in one OPD.
        _ = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd")))
        #expect(await errorCode { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "db", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"))) } == "conflict")
        #expect(try await admin.client.listVMs().count == 1)
        #expect(try await admin.client.quota(opd: "dinkes").usage.vcpu == 1)
        #expect(try await admin.client.listRequests().isEmpty)
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("bodies that are not JSON, have unknown fields or are too large are refused")
    func badBodies() async throws {
        let (ctl, admin) = try await Self.setup()
        let creds = admin.credentials
        let notJSON = try await rawRequest(ctl.baseURL, credentials: creds, caPEM: ctl.caPEM, method: .POST, path: "/v1/opds", body: Array("hello".utf8))
        #expect(notJSON.status == 400)
        #expect(code(of: notJSON.body) == "invalid_json")
        let unknown = try await rawRequest(
            ctl.baseURL, credentials: creds, caPEM: ctl.caPEM, method: .POST, path: "/v1/opds",
            body: Array(#"{"id":"bappeda","displayName":"Bappeda","quota":{"vcpu":1,"memory":0,"storage":{},"vms":1,"volumes":0},"colour":"red"}"#.utf8))
        #expect(unknown.status == 400)
        #expect(code(of: unknown.body) == "unknown_field")
        #expect(unknown.body.contains("colour"))
        let nested = try await rawRequest(
            ctl.baseURL, credentials: creds, caPEM: ctl.caPEM, method: .POST, path: "/v1/vms",
            body: Array(#"{"opd":"dinkes","vm":{"name":"a","vcpu":1,"memory":1073741824,"disk":1073741824,"pool":"ssd","gpu":1}}"#.utf8))
        #expect(code(of: nested.body) == "unknown_field")
        let huge = try await rawRequest(
            ctl.baseURL, credentials: creds, caPEM: ctl.caPEM, method: .POST, path: "/v1/opds", body: Array(repeating: UInt8(ascii: " "), count: 2 << 20))
        #expect(huge.status == 413)
        #expect(try await admin.client.listOPDs().map(\.id) == ["dinkes"])
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("tokens: used twice, expired, unknown, malformed are refused")
    func tokens() async throws {
        let (ctl, admin) = try await Self.setup()
        let added = try await admin.client.addUser(AddUserBody(name: "budi", role: .member, opd: "dinkes"))
        _ = try await ctl.enroll(token: added.token)
        #expect(await errorCode { try await ctl.enroll(token: added.token) } == "token_used")
        let bogus = EnrollmentToken.generate(caFingerprint: ctl.services.ca.fingerprint)
        #expect(await errorCode { try await ctl.enroll(token: bogus.encoded) } == "token_invalid")
        // A host join token presented as a user login is refused and stays usable for the host.
        let host = try await admin.client.addHost(AddHostBody(id: "node-02", capacity: HostCapacity(cpus: 8, memory: .gib(16), pools: ["ssd": .tib(1)])))
        #expect(await errorCode { try await ctl.enroll(token: host.joinToken, kind: "user") } == "token_wrong_role")
        let userToken = try await admin.client.addUser(AddUserBody(name: "ani", role: .approver, opd: "dinkes"))
        #expect(await errorCode { try await ctl.enroll(token: userToken.token, kind: "host") } == "token_wrong_role")
        let agent = try await ctl.enroll(token: host.joinToken, kind: "host")
        #expect(try await agent.client.whoami().principal == "host:node-02")
        _ = try await ctl.enroll(token: userToken.token, kind: "user")
        // The first admin token still works once, then never again.
        _ = try await ctl.enroll(token: ctl.adminToken)
        #expect(await errorCode { try await ctl.enroll(token: ctl.adminToken) } == "token_used")
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("an expired token is refused")
    func expiredToken() async throws {
        let ctl = try await TestController.start(configure: { $0.tokenTTL = .seconds(1) })
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 1)))
        let added = try await admin.client.addUser(AddUserBody(name: "budi", role: .member, opd: "dinkes"))
        try await Task.sleep(for: .milliseconds(1500))
        #expect(await errorCode { try await ctl.enroll(token: added.token) } == "token_expired")
        await admin.shutdown()
        await ctl.stop()
    }

    @Test("approving a decided or expired request is refused")
    func decidedRequests() async throws {
        let clock = ManualClock()
        let ctl = try await TestController.start(sweepInterval: .seconds(3600), clock: clock, configure: { $0.ledger.requestTTL = .seconds(60) })
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 32, memory: .gib(64), storage: ["ssd": .tib(2)], vms: 20)))
        _ = try await admin.client.addHost(AddHostBody(id: "node-01", capacity: HostCapacity(cpus: 64, memory: .gib(256), pools: ["ssd": .tib(4)])))
        let r = try await admin.client.fileRequest(FileRequestBody(opd: "dinkes", reason: "x", quota: ResourceVector(vcpu: 1)))
        _ = try await admin.client.reject(r.id, reason: "no")
        #expect(await errorCode { try await admin.client.approve(r.id) } == "illegal_transition")
        let late = try await admin.client.fileRequest(FileRequestBody(opd: "dinkes", reason: "x", quota: ResourceVector(vcpu: 1)))
        clock.advance(61)
        #expect(await errorCode { try await admin.client.approve(late.id) } == "request_expired")
        // The sweeper then records it as expired, with an audit entry.
        let swept = try await ctl.services.ledger.sweep()
        #expect(swept.expired == [late.id])
        #expect(try await admin.client.request(late.id).state == .expired)
        #expect(await errorCode { try await admin.client.reject(r.id, reason: "") } == "invalid_reason")
        #expect(try await admin.client.quota(opd: "dinkes").quota.vcpu == 32)
        await admin.shutdown()
        await ctl.stop()
    }
}
