import Foundation
import LumbungAPI
import LumbungController
import LumbungCore
import LumbungPKI
import LumbungStore
import Testing

/// Each route × each kind of caller. "allowed" means the call got past authentication and
/// authorization (it may still fail for a domain reason, e.g. a request already decided).
@Suite("Authorization matrix")
struct AuthorizationTests {
    enum Who: String, CaseIterable, Sendable {
        case admin, member, otherMember, approver, agent, otherAgent, revoked, expired, foreign, noCertificate
    }

    enum Outcome: Equatable, CustomStringConvertible {
        case allowed, forbidden, notFound, unauthenticated
        var description: String {
            switch self {
            case .allowed: "allowed"
            case .forbidden: "forbidden"
            case .notFound: "not found"
            case .unauthenticated: "unauthenticated"
            }
        }
    }

    struct Fixture: Sendable {
        let ctl: TestController
        let clients: [Who: LumbungClient]
        let admin: TestClient
        let vmA: VMID
        let volumeA: VolumeID
        let requestA: RequestID
    }

    static func classify(_ error: (any Error)?) -> Outcome {
        guard let error else { return .allowed }
        guard let api = error as? APIClientError else { return .unauthenticated }
        switch api {
        case .api(let status, _):
            switch status {
            case 401: return .unauthenticated
            case 403: return .forbidden
            case 404: return .notFound
            default: return .allowed
            }
        case .transport: return .unauthenticated
        default: return .allowed
        }
    }

    static func makeFixture() async throws -> Fixture {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        for (id, name) in [("dinkes", "Dinas Kesehatan"), ("bappeda", "Bappeda")] {
            _ = try await admin.client.createOPD(
                CreateOPDBody(
                    id: OPDID(rawValue: id), displayName: name,
                    quota: ResourceVector(vcpu: 100, memory: .gib(100), storage: ["ssd": .tib(10)], vms: 100, volumes: 100)))
        }
        var clients: [Who: LumbungClient] = [.admin: admin.client]
        clients[.member] = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin).client
        clients[.otherMember] = try await ctl.user("sari", role: .member, opd: "bappeda", admin: admin).client
        clients[.approver] = try await ctl.user("ani", role: .approver, opd: "dinkes", admin: admin).client
        clients[.agent] = try await ctl.agent("node-01", pools: ["ssd": .tib(50)], admin: admin).client
        clients[.otherAgent] = try await ctl.agent("node-02", pools: ["ssd": .tib(50)], admin: admin).client
        let revoked = try await ctl.user("gone", role: .member, opd: "dinkes", admin: admin)
        _ = try await admin.client.revokeUser("gone")
        clients[.revoked] = revoked.client
        // A certificate that expired yesterday, recorded in the store as if issued then.
        let key = ClientKey.generate()
        let past = Date().addingTimeInterval(-3 * 86400)
        let issued = try ctl.services.ca.sign(csrPEM: try key.makeCSR(commonName: "budi"), identity: .user("budi"), lifetime: .seconds(86400), now: past)
        try ctl.services.store.recordCertificate(
            CertificateRecord(serial: issued.serialHex, kind: .user, subject: "budi", notBefore: issued.notBefore, notAfter: issued.notAfter, issuedAt: past, revokedAt: nil),
            audit: AuditInput(at: past, actor: "test", role: "admin", action: "certificate.issue", target: "user:budi"))
        clients[.expired] = try LumbungClient(
            baseURL: ctl.baseURL, credentials: ClientCredentials(certificatePEM: issued.certificatePEM, privateKeyPEM: key.privateKeyPEM, caPEM: ctl.caPEM))
        // A certificate from another CA with the same identity.
        let otherCA = try CertificateAuthority.create(commonName: "evil", now: Date())
        let foreignKey = ClientKey.generate()
        let foreign = try otherCA.sign(csrPEM: try foreignKey.makeCSR(commonName: "admin"), identity: .user("admin"), lifetime: .seconds(86400), now: Date())
        clients[.foreign] = try LumbungClient(
            baseURL: ctl.baseURL, credentials: ClientCredentials(certificatePEM: foreign.certificatePEM, privateKeyPEM: foreignKey.privateKeyPEM, caPEM: ctl.caPEM))
        clients[.noCertificate] = try LumbungClient(baseURL: ctl.baseURL, caPEM: ctl.caPEM)

        let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "simpus", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd")))
        let volume = try await admin.client.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "arsip", size: .gib(10), pool: "ssd")))
        let request = try await admin.client.fileRequest(FileRequestBody(opd: "dinkes", reason: "r", quota: ResourceVector(vcpu: 1)))
        return Fixture(ctl: ctl, clients: clients, admin: admin, vmA: vm.id, volumeA: volume.id, requestA: request.id)
    }

    typealias Call = @Sendable (LumbungClient, Fixture) async throws -> Void

    /// Route, the call, and who is allowed (everyone else: the listed denial, default forbidden).
    static let routes: [(String, Call, [Who: Outcome])] = [
        ("GET /v1/whoami", { c, _ in _ = try await c.whoami() }, persons(.allowed, agents: .allowed)),
        ("GET /v1/opds", { c, _ in _ = try await c.listOPDs() }, persons(.allowed)),
        ("POST /v1/opds", { c, _ in _ = try await c.createOPD(CreateOPDBody(id: OPDID(rawValue: "x\(UInt16.random(in: 0...9999))"), displayName: "X", quota: .zero)) }, adminOnly()),
        ("GET /v1/opds/dinkes", { c, _ in _ = try await c.opd("dinkes") }, ownOPD()),
        ("GET /v1/quota?opd=dinkes", { c, _ in _ = try await c.quota(opd: "dinkes") }, ownOPD()),
        ("PUT /v1/opds/dinkes/quota", { c, _ in _ = try await c.setQuota("dinkes", SetQuotaBody(quota: ResourceVector(vcpu: 100, memory: .gib(100), storage: ["ssd": .tib(10)], vms: 100, volumes: 100))) }, adminOnly()),
        ("GET /v1/hosts", { c, _ in _ = try await c.listHosts() }, adminOnly()),
        ("GET /v1/hosts/node-01", { c, _ in _ = try await c.host("node-01") }, adminOnly()),
        ("POST /v1/hosts/node-01/cordon", { c, _ in _ = try await c.cordon("node-01") }, adminOnly()),
        ("POST /v1/hosts/node-01/uncordon", { c, _ in _ = try await c.uncordon("node-01") }, adminOnly()),
        ("POST /v1/hosts/node-01/labels", { c, _ in _ = try await c.setHostLabels("node-01", SetHostLabelsBody(set: ["rack": "b"])) }, adminOnly()),
        ("POST /v1/hosts/node-01/token", { c, _ in _ = try await c.hostToken("node-01") }, adminOnly()),
        ("POST /v1/hosts", { c, _ in _ = try await c.addHost(AddHostBody(id: HostID(rawValue: "h\(UInt16.random(in: 0...9999))"), capacity: HostCapacity(cpus: 1, memory: .gib(1)))) }, adminOnly()),
        ("DELETE /v1/hosts/nothere", { c, _ in _ = try await c.removeHost("nothere") }, adminOnly(allowed: .notFound)),
        ("GET /v1/users", { c, _ in _ = try await c.listUsers() }, adminOnly()),
        ("POST /v1/users", { c, _ in _ = try await c.addUser(AddUserBody(name: UserID(rawValue: "u\(UInt16.random(in: 0...9999))"), role: .member, opd: "dinkes")) }, adminOnly()),
        ("POST /v1/users/nobody/revoke", { c, _ in _ = try await c.revokeUser("nobody") }, adminOnly(allowed: .notFound)),
        ("GET /v1/vms", { c, _ in _ = try await c.listVMs() }, persons(.allowed)),
        ("GET /v1/vms?opd=dinkes", { c, _ in _ = try await c.listVMs(opd: "dinkes") }, ownOPD()),
        ("POST /v1/vms", { c, _ in _ = try await c.createVM(CreateVMBody(opd: "dinkes", vm: VMBody(name: "v\(UInt16.random(in: 0...9999))", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"))) }, adminOnly()),
        ("POST /v1/vms/place", { c, _ in _ = try await c.placeVM(PlaceVMBody(opd: "dinkes", vm: VMBody(name: "dry", vcpu: 1, memory: .gib(1), disk: .gib(1), pool: "ssd"))) }, ownOPD()),
        ("GET /v1/vms/{id}", { c, f in _ = try await c.vm(f.vmA.rawValue) }, ownOPD()),
        ("GET /v1/vms/simpus", { c, _ in _ = try await c.vm("simpus") }, ownOPD()),
        ("POST /v1/vms/{id}/stop", { c, f in _ = try await c.stopVM(f.vmA.rawValue) }, ownOPD()),
        ("POST /v1/vms/{id}/start", { c, f in _ = try await c.startVM(f.vmA.rawValue) }, ownOPD()),
        ("DELETE /v1/vms/{id}", { c, f in _ = try await c.deleteVM(f.vmA.rawValue + "-none") }, ownOPD(member: .notFound, admin: .notFound, approver: .notFound)),
        ("GET /v1/volumes", { c, _ in _ = try await c.listVolumes() }, persons(.allowed)),
        ("GET /v1/volumes/{id}", { c, f in _ = try await c.volume(f.volumeA.rawValue) }, ownOPD()),
        ("POST /v1/vms/{id}/resize", { c, f in _ = try await c.resizeVM(f.vmA.rawValue, ResizeVMBody(vcpu: 1)) }, ownOPD(member: .forbidden, approver: .forbidden)),
        ("POST /v1/volumes/{id}/resize", { c, f in _ = try await c.resizeVolume(f.volumeA.rawValue, ResizeVolumeBody(size: .gib(10))) }, ownOPD(member: .forbidden, approver: .forbidden)),
        ("POST /v1/volumes", { c, _ in _ = try await c.createVolume(CreateVolumeBody(opd: "dinkes", volume: VolumeBody(name: "v\(UInt16.random(in: 0...9999))", size: .gib(1), pool: "ssd"))) }, adminOnly()),
        ("GET /v1/requests", { c, _ in _ = try await c.listRequests() }, persons(.allowed)),
        ("POST /v1/requests", { c, _ in _ = try await c.fileRequest(FileRequestBody(opd: "dinkes", reason: "r", quota: ResourceVector(vcpu: 1))) }, ownOPD()),
        ("GET /v1/requests/{id}", { c, f in _ = try await c.request(f.requestA) }, ownOPD()),
        ("GET /v1/requests/{id}/explain", { c, f in _ = try await c.explainRequest(f.requestA) }, ownOPD()),
        ("POST /v1/requests/{id}/approve (quota)", { c, f in _ = try await c.approve(f.requestA) }, ownOPD(member: .forbidden, approver: .forbidden)),
        ("POST /v1/requests/{id}/reject", { c, f in _ = try await c.reject(f.requestA, reason: "no") }, ownOPD(member: .forbidden, approver: .forbidden)),
        ("GET /v1/capacity", { c, _ in _ = try await c.capacity() }, adminOnly()),
        ("GET /v1/policy", { c, _ in _ = try await c.policy() }, persons(.allowed)),
        ("POST /v1/policy/reload", { c, _ in _ = try await c.reloadPolicy() }, adminOnly()),
        ("GET /v1/audit", { c, _ in _ = try await c.audit() }, adminOnly()),
        ("GET /v1/audit/verify", { c, _ in _ = try await c.verifyAudit() }, adminOnly()),
        ("GET /v1/agent/desired (node-01)", { c, _ in _ = try await c.desired(host: "node-01", after: nil) }, agentOnly()),
        ("POST /v1/agent/report (node-01)", { c, _ in _ = try await c.report(AgentReport(host: "node-01", driver: "simulated")) }, agentOnly()),
    ]

    static func denyAll(_ base: [Who: Outcome]) -> [Who: Outcome] {
        var out = base
        for who in [Who.revoked, .expired, .foreign, .noCertificate] { out[who] = .unauthenticated }
        return out
    }

    static func persons(_ outcome: Outcome, agents: Outcome = .forbidden) -> [Who: Outcome] {
        denyAll([.admin: outcome, .member: outcome, .otherMember: outcome, .approver: outcome, .agent: agents, .otherAgent: agents])
    }

    static func adminOnly(allowed: Outcome = .allowed) -> [Who: Outcome] {
        denyAll([.admin: allowed, .member: .forbidden, .otherMember: .forbidden, .approver: .forbidden, .agent: .forbidden, .otherAgent: .forbidden])
    }

    static func ownOPD(member: Outcome = .allowed, admin: Outcome = .allowed, approver: Outcome? = nil) -> [Who: Outcome] {
        denyAll([.admin: admin, .member: member, .otherMember: .notFound, .approver: approver ?? member, .agent: .forbidden, .otherAgent: .forbidden])
    }

    static func agentOnly() -> [Who: Outcome] {
        denyAll([.admin: .forbidden, .member: .forbidden, .otherMember: .forbidden, .approver: .forbidden, .agent: .allowed, .otherAgent: .forbidden])
    }

    @Test("every route answers each kind of caller as the rules say")
    func matrix() async throws {
        let fixture = try await Self.makeFixture()
        var failures: [String] = []
        for (route, call, expected) in Self.routes {
            for who in Who.allCases {
                guard let client = fixture.clients[who], let want = expected[who] else { continue }
                var error: (any Error)?
                do { try await call(client, fixture) } catch let e { error = e }
                let got = Self.classify(error)
                if got != want {
                    failures.append("\(route) as \(who.rawValue): expected \(want), got \(got) (\(error.map { "\($0)" } ?? "ok"))")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // Members of one OPD never see another OPD's objects in lists.
        let other = fixture.clients[.otherMember]!
        #expect(try await other.listVMs().isEmpty)
        #expect(try await other.listVolumes().isEmpty)
        #expect(try await other.listRequests().allSatisfy { $0.opd == "bappeda" })
        #expect(try await other.listOPDs().map(\.id) == ["bappeda"])
        for client in fixture.clients.values { try? await client.shutdown() }
        await fixture.ctl.stop()
    }

    @Test("revoking a user or removing a host takes effect on the very next request of a warm, already authenticated connection")
    func revocationOnWarmConnections() async throws {
        let ctl = try await TestController.start()
        let admin = try await ctl.adminClient()
        _ = try await admin.client.createOPD(
            CreateOPDBody(id: "dinkes", displayName: "Dinas Kesehatan", quota: ResourceVector(vcpu: 8, memory: .gib(8), storage: ["ssd": .tib(1)], vms: 8)))
        let budi = try await ctl.user("budi", role: .member, opd: "dinkes", admin: admin)
        let agent = try await ctl.agent("node-01", admin: admin)
        for _ in 0..<3 {
            #expect(try await budi.client.quota().id == "dinkes")
            _ = try await agent.client.desired(host: "node-01", after: nil)
        }
        _ = try await admin.client.revokeUser("budi")
        #expect(await errorCode { try await budi.client.quota() } == "certificate_revoked")
        _ = try await admin.client.removeHost("node-01")
        let code = await errorCode { try await agent.client.desired(host: "node-01", after: nil) }
        #expect(code == "certificate_revoked" || code == "unknown_certificate")
        // The admin's own warm connection is unaffected.
        #expect(try await admin.client.listOPDs().count == 1)
        await budi.shutdown()
        await agent.shutdown()
        await admin.shutdown()
        await ctl.stop()
    }
}
