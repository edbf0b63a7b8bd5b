import Foundation
import LumbungCore
import LumbungStore
import Testing

@Suite("Users, tokens, certificates")
struct IdentityTests {
    private func seed(_ store: Store) async throws {
        try await store.commit([.opdCreated(makeOPD()), .hostDeclared(makeHost())], audit: [])
    }

    @Test("users: roles and OPDs are checked; revocation revokes certificates")
    func users() async throws {
        try await withStore { store, _ in
            try await seed(store)
            let admin = UserRecord(name: "root", role: .admin, opd: nil, createdAt: t0)
            let budi = UserRecord(name: "budi", role: .member, opd: "dinkes", createdAt: t0)
            try store.addUser(admin, audit: audit("user.add", target: "user:root"))
            try store.addUser(budi, audit: audit("user.add", target: "user:budi", opd: "dinkes"))
            #expect(try store.users() == [budi, admin])
            #expect(try store.users(opd: "dinkes") == [budi])
            #expect(try store.user("budi") == budi)
            #expect(try store.user("nobody") == nil)

            var error = await storeError { try store.addUser(budi, audit: audit("user.add", target: "user:budi")) }
            #expect(error?.message == "adding user 'budi' was refused: it already exists")
            error = await storeError {
                try store.addUser(UserRecord(name: "ani", role: .member, opd: "ghost", createdAt: t0), audit: audit("x", target: "y"))
            }
            #expect(error?.message == "adding user 'ani' was refused: OPD 'ghost' does not exist")
            error = await storeError {
                try store.addUser(UserRecord(name: "ani", role: .member, opd: nil, createdAt: t0), audit: audit("x", target: "y"))
            }
            #expect(error?.code == .constraint)
            error = await storeError {
                try store.addUser(UserRecord(name: "ani", role: .admin, opd: "dinkes", createdAt: t0), audit: audit("x", target: "y"))
            }
            #expect(error?.code == .constraint)
            #expect(try store.auditEntries().count == 2)

            for serial in ["01", "02"] {
                try store.recordCertificate(
                    CertificateRecord(serial: serial, kind: .user, subject: "budi", notBefore: t0, notAfter: at(90 * 86400), issuedAt: t0),
                    audit: audit("cert.issue", target: "user:budi", opd: "dinkes"))
            }
            #expect(try store.principal(forSerial: "01", now: at(10)) == .found(.user("budi", role: .member, opd: "dinkes")))

            try store.revokeUser("budi", at: at(50), audit: audit("user.revoke", target: "user:budi", opd: "dinkes"))
            #expect(try store.user("budi")?.revokedAt == at(50))
            #expect(try store.certificates(subjectKind: .user, subject: "budi").map(\.revokedAt) == [at(50), at(50)])
            #expect(try store.principal(forSerial: "02", now: at(60)) == .revoked(at: at(50)))
            // A certificate recorded after the revocation still names a revoked user.
            try store.recordCertificate(
                CertificateRecord(serial: "03", kind: .user, subject: "budi", notBefore: t0, notAfter: at(90 * 86400), issuedAt: at(55)),
                audit: audit("cert.issue", target: "user:budi"))
            #expect(try store.principal(forSerial: "03", now: at(60)) == .userRevoked(at: at(50)))

            let nobody = await storeError { try store.revokeUser("nobody", at: at(1), audit: audit("x", target: "y")) }
            #expect(nobody?.code == .notFound)
            #expect(try store.verifyAudit().ok)
        }
    }

    @Test("certificates: lookup says why a serial identifies nobody")
    func certificates() async throws {
        try await withStore { store, _ in
            try await seed(store)
            try store.addUser(UserRecord(name: "root", role: .admin, opd: nil, createdAt: t0), audit: audit("user.add", target: "user:root"))
            let cert = CertificateRecord(serial: "00FF10", kind: .user, subject: "root", notBefore: at(100), notAfter: at(200), issuedAt: at(100))
            try store.recordCertificate(cert, audit: audit("cert.issue", target: "user:root"))
            var stored = cert
            stored.serial = "00ff10"
            #expect(try store.certificate(serial: "00ff10") == stored)
            #expect(try store.certificate(serial: "00FF10") == stored)
            #expect(try store.principal(forSerial: "00ff10", now: at(150)) == .found(.user("root", role: .admin, opd: nil)))
            #expect(try store.principal(forSerial: "00ff10", now: at(50)) == .notYetValid(notBefore: at(100)))
            #expect(try store.principal(forSerial: "00ff10", now: at(200)) == .expired(notAfter: at(200)))
            #expect(try store.principal(forSerial: "abcdef", now: at(150)) == .unknownSerial)
            #expect(PrincipalLookup.unknownSerial.refusal != nil)

            let dup = await storeError { try store.recordCertificate(cert, audit: audit("cert.issue", target: "user:root")) }
            #expect(dup?.code == .constraint)
            let notHex = await storeError {
                try store.recordCertificate(
                    CertificateRecord(serial: "zz", kind: .host, subject: "node-01", notBefore: t0, notAfter: at(1), issuedAt: t0),
                    audit: audit("cert.issue", target: "host:node-01"))
            }
            #expect(notHex?.code == .constraint)

            try store.recordCertificate(
                CertificateRecord(serial: "0b", kind: .host, subject: "node-01", notBefore: t0, notAfter: at(1000), issuedAt: t0),
                audit: audit("cert.issue", target: "host:node-01"))
            #expect(try store.principal(forSerial: "0b", now: at(10)) == .found(.host("node-01")))
            let revoked = try store.revokeCertificates(
                subjectKind: .host, subject: "node-01", at: at(20), audit: audit("cert.revoke", target: "host:node-01"))
            #expect(revoked == 1)
            #expect(try store.principal(forSerial: "0b", now: at(30)) == .revoked(at: at(20)))

            try store.recordCertificate(
                CertificateRecord(serial: "0c", kind: .host, subject: "node-77", notBefore: t0, notAfter: at(1000), issuedAt: t0),
                audit: audit("cert.issue", target: "host:node-77"))
            #expect(try store.principal(forSerial: "0c", now: at(10)) == .unknownSubject(.host, "node-77"))
        }
    }

    @Test("tokens: single use, expiry, role, unknown")
    func tokens() async throws {
        try await withStore { store, _ in
            try await seed(store)
            let agent = TokenRecord(hash: tokenHash(1), role: .agent, subject: "node-01", createdAt: t0, expiresAt: at(3600), createdBy: "user:root")
            let member = TokenRecord(
                hash: tokenHash(2).uppercased(), role: .member, subject: "budi", opd: "dinkes", createdAt: t0, expiresAt: at(3600),
                createdBy: "user:root")
            try store.issueToken(agent, audit: audit("token.issue", target: "host:node-01"))
            try store.issueToken(member, audit: audit("token.issue", target: "user:budi", opd: "dinkes"))
            #expect(try store.token(hash: tokenHash(2))?.hash == tokenHash(2))

            // Wrong role, unknown and expired are refused and change nothing.
            var error = await storeError {
                _ = try store.consumeToken(hash: tokenHash(1), expectedRole: .member, now: at(10), audit: audit("token.use", target: "x"))
            }
            #expect(error?.code == .tokenWrongRole)
            error = await storeError {
                _ = try store.consumeToken(hash: tokenHash(99), expectedRole: nil, now: at(10), audit: audit("token.use", target: "x"))
            }
            #expect(error?.code == .tokenInvalid)
            error = await storeError {
                _ = try store.consumeToken(hash: tokenHash(1), expectedRole: .agent, now: at(3600), audit: audit("token.use", target: "x"))
            }
            #expect(error?.code == .tokenExpired)
            #expect(try store.token(hash: tokenHash(1))?.usedAt == nil)
            #expect(try store.auditEntries().count == 2)

            // First use succeeds, second is refused.
            let used = try store.consumeToken(
                hash: tokenHash(1), expectedRole: .agent, now: at(10), audit: audit("token.use", target: "host:node-01"))
            #expect(used.usedAt == at(10))
            #expect(used.subject == "node-01")
            error = await storeError {
                _ = try store.consumeToken(hash: tokenHash(1), expectedRole: .agent, now: at(11), audit: audit("token.use", target: "x"))
            }
            #expect(error?.code == .tokenUsed)
            #expect(try store.auditEntries().count == 3)

            // Role and OPD of a token must agree.
            let bad = await storeError {
                try store.issueToken(
                    TokenRecord(hash: tokenHash(3), role: .member, subject: "ani", createdAt: t0, expiresAt: at(1), createdBy: "user:root"),
                    audit: audit("token.issue", target: "user:ani"))
            }
            #expect(bad?.code == .constraint)

            // Revoking a user expires their unused tokens.
            try store.addUser(UserRecord(name: "budi", role: .member, opd: "dinkes", createdAt: t0), audit: audit("user.add", target: "user:budi"))
            try store.revokeUser("budi", at: at(20), audit: audit("user.revoke", target: "user:budi"))
            error = await storeError {
                _ = try store.consumeToken(hash: tokenHash(2), expectedRole: .member, now: at(30), audit: audit("token.use", target: "x"))
            }
            #expect(error?.code == .tokenExpired)
        }
    }

    @Test("one token consumed concurrently from 20 tasks: exactly one succeeds")
    func concurrentConsume() async throws {
        try await withStore { store, _ in
            try await seed(store)
            try store.issueToken(
                TokenRecord(hash: tokenHash(7), role: .agent, subject: "node-01", createdAt: t0, expiresAt: at(3600), createdBy: "user:root"),
                audit: audit("token.issue", target: "host:node-01"))
            let outcomes = await withTaskGroup(of: String.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        do {
                            _ = try store.consumeToken(
                                hash: tokenHash(7), expectedRole: .agent, now: at(Double(i)),
                                audit: audit("token.use", target: "host:node-01"))
                            return "ok"
                        } catch let error as StoreError {
                            return error.code.rawValue
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                var all: [String] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.filter { $0 == "ok" }.count == 1)
            #expect(outcomes.filter { $0 == "token_used" }.count == 19)
            #expect(try store.auditEntries().filter { $0.action == "token.use" }.count == 1)
            #expect(try store.verifyAudit().ok)
        }
    }
}
