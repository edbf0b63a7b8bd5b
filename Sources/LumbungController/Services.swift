import Foundation
import LumbungAPI
import LumbungCore
import LumbungPKI
import LumbungStore
import Logging

/// Everything the routes need, shared by all requests.
public final class ControllerServices: Sendable {
    public let config: ControllerConfig
    public let store: Store
    public let ledger: Ledger
    public let hub: WatchHub
    public let ca: CertificateAuthority
    public let logger: Logger
    /// The policy directory's loader (start, SIGHUP, `POST /v1/policy/reload`).
    public let policies: PolicyService
    let now: @Sendable () -> Date

    public init(config: ControllerConfig, store: Store, ca: CertificateAuthority, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.config = config
        self.store = store
        self.ca = ca
        self.logger = logger
        self.now = now
        self.hub = WatchHub()
        let policy = try PolicyService.initial(directory: config.policyDirectory)
        self.ledger = try Ledger(store: store, hub: hub, settings: config.ledger, logger: logger, policy: policy, now: now)
        self.policies = PolicyService(directory: config.policyDirectory, ledger: ledger, logger: logger, now: now)
        policies.started(with: policy)
    }

    // MARK: Tokens and enrollment

    /// A freshly issued one-time token (only its hash is stored).
    public struct IssuedToken: Sendable {
        public var encoded: String
        public var expiresAt: Date
    }

    /// Issues a one-time token bound to a role and subject.
    func issueToken(role: Role, subject: String, opd: OPDID?, by auth: Authenticated) async throws -> IssuedToken {
        let at = now()
        let token = EnrollmentToken.generate(caFingerprint: ca.fingerprint)
        let expires = at.addingTimeInterval(Double(config.tokenTTL.components.seconds))
        let kind = role == .agent ? "host" : "user"
        try store.issueToken(
            TokenRecord(hash: token.secretHash, role: role, subject: subject, opd: opd, createdAt: at, expiresAt: expires, usedAt: nil, createdBy: auth.principal.description),
            audit: AuditInput(at: at, actor: auth.principal.description, role: auth.principal.role.rawValue, action: "token.issue", target: "\(kind):\(subject)", opd: opd, policyHash: policies.currentHash))
        return IssuedToken(encoded: token.encoded, expiresAt: expires)
    }

    /// Consumes a token and signs the CSR for the identity the token was issued to.
    func enroll(_ body: EnrollRequest) async throws -> EnrollResponse {
        let at = now()
        var secret = body.token
        if let parsed = try? EnrollmentToken.parse(body.token) { secret = parsed.secret }
        guard !secret.isEmpty, secret.count <= 200 else { throw APIError(.unauthorized, "token_invalid", "the token is empty or malformed") }
        let hash = EnrollmentToken.hash(secret: secret)
        if let kind = body.kind {
            guard kind == "user" || kind == "host" else {
                throw APIError.badRequest("invalid_kind", "kind must be user or host, not '\(kind)'")
            }
            if let peek = try store.token(hash: hash), (peek.role == .agent) != (kind == "host") {
                let actual = peek.role == .agent ? "a host join token (use it with lumbung-agent join)" : "a user login token (use it with lumbung login)"
                throw APIError(.unauthorized, "token_wrong_role", "this is \(actual), not a \(kind) token; it was not used")
            }
        }
        let record: TokenRecord
        do {
            record = try store.consumeToken(
                hash: hash, expectedRole: nil, now: at,
                audit: AuditInput(at: at, actor: "enrollment", role: "none", action: "token.use", target: "token", policyHash: policies.currentHash))
        } catch let error as StoreError {
            throw APIError(.unauthorized, error.code.rawValue, error.message)
        }
        let identity: PKIIdentity
        let principal: Principal
        let lifetime: Duration
        switch record.role {
        case .agent:
            identity = .host(record.subject)
            principal = .host(HostID(rawValue: record.subject))
            lifetime = config.agentCertificateLifetime
            guard await ledger.read({ $0.dc.hosts[HostID(rawValue: record.subject)] != nil }) else {
                throw APIError(.unauthorized, "token_invalid", "host \(record.subject) was removed; ask an admin for a new host and token")
            }
        case .admin, .member, .approver:
            identity = .user(record.subject)
            principal = .user(UserID(rawValue: record.subject), role: record.role, opd: record.opd)
            lifetime = config.userCertificateLifetime
        }
        return try await issue(csr: body.csr, identity: identity, principal: principal, lifetime: lifetime, at: at, action: "certificate.issue")
    }

    /// Renews the caller's certificate (same identity, new key allowed).
    func renew(_ auth: Authenticated, csr: String) async throws -> EnrollResponse {
        let at = now()
        let identity: PKIIdentity
        let lifetime: Duration
        switch auth.principal {
        case .user(let u, _, _):
            identity = .user(u.rawValue)
            lifetime = config.userCertificateLifetime
        case .host(let h):
            identity = .host(h.rawValue)
            lifetime = config.agentCertificateLifetime
        }
        return try await issue(csr: csr, identity: identity, principal: auth.principal, lifetime: lifetime, at: at, action: "certificate.renew")
    }

    func issue(csr: String, identity: PKIIdentity, principal: Principal, lifetime: Duration, at: Date, action: String) async throws -> EnrollResponse {
        let issued: IssuedCertificate
        do {
            issued = try ca.sign(csrPEM: csr, identity: identity, lifetime: lifetime, now: at)
        } catch let error as PKIError {
            throw APIError.badRequest(error.code.rawValue, error.message)
        }
        let kind: CertificateKind
        let subject: String
        switch identity {
        case .user(let n):
            kind = .user
            subject = n
        case .host(let n):
            kind = .host
            subject = n
        }
        try store.recordCertificate(
            CertificateRecord(
                serial: issued.serialHex, kind: kind, subject: subject, notBefore: issued.notBefore, notAfter: issued.notAfter,
                issuedAt: at, revokedAt: nil),
            audit: AuditInput(
                at: at, actor: principal.description, role: principal.role.rawValue, action: action, target: "\(kind.rawValue):\(subject)",
                opd: principal.opd, after: issued.serialHex, policyHash: policies.currentHash))
        logger.info("certificate issued", metadata: ["principal": "\(principal)", "serial": "\(issued.serialHex)"])
        return EnrollResponse(
            certificate: issued.certificatePEM, ca: ca.certificatePEM, identity: identity.uri, role: principal.role, opd: principal.opd,
            notAfter: issued.notAfter, controllerName: config.name)
    }

    // MARK: Users

    func listUsers() async throws -> [UserView] {
        try store.users(opd: nil).map(\.view)
    }

    func addUser(_ body: AddUserBody, by auth: Authenticated) async throws -> AddUserResponse {
        let at = now()
        do {
            _ = try Name.validate(body.name.rawValue, what: "user name")
        } catch {
            throw APIError(error)
        }
        switch body.role {
        case .agent:
            throw APIError.badRequest("invalid_role", "role agent is for hosts (lumbung host add); use admin, member or approver")
        case .admin:
            if body.opd != nil { throw APIError.badRequest("invalid_role", "an admin belongs to no OPD; drop --opd") }
        case .member, .approver:
            guard let opd = body.opd else { throw APIError.badRequest("missing_opd", "a \(body.role.rawValue) belongs to one OPD; give --opd") }
            guard await ledger.read({ $0.dc.opds[opd] != nil }) else { throw APIError.notFound("OPD \(opd)") }
        }
        if try store.user(body.name) != nil {
            throw APIError.conflict("conflict", "user \(body.name) already exists")
        }
        let record = UserRecord(name: body.name, role: body.role, opd: body.opd, createdAt: at, revokedAt: nil)
        do {
            try store.addUser(
                record,
                audit: AuditInput(
                    at: at, actor: auth.principal.description, role: auth.principal.role.rawValue, action: "user.add", target: "user:\(body.name)",
                    opd: body.opd, after: auditJSON(record.view), policyHash: policies.currentHash))
        } catch let error as StoreError {
            throw APIError.conflict(error.code.rawValue, error.message)
        }
        let token = try await issueToken(role: body.role, subject: body.name.rawValue, opd: body.opd, by: auth)
        return AddUserResponse(user: record.view, token: token.encoded, tokenExpiresAt: token.expiresAt)
    }

    func newUserToken(_ name: UserID, by auth: Authenticated) async throws -> AddUserResponse {
        guard let record = try store.user(name), record.revokedAt == nil else { throw APIError.notFound("user \(name)") }
        let token = try await issueToken(role: record.role, subject: record.name.rawValue, opd: record.opd, by: auth)
        return AddUserResponse(user: record.view, token: token.encoded, tokenExpiresAt: token.expiresAt)
    }

    func revokeUser(_ name: UserID, by auth: Authenticated) async throws -> UserView {
        let at = now()
        guard let record = try store.user(name) else { throw APIError.notFound("user \(name)") }
        if record.revokedAt != nil { throw APIError.conflict("illegal_transition", "user \(name) is already revoked") }
        try store.revokeUser(
            name, at: at,
            audit: AuditInput(at: at, actor: auth.principal.description, role: auth.principal.role.rawValue, action: "user.revoke", target: "user:\(name)", opd: record.opd, policyHash: policies.currentHash))
        guard let updated = try store.user(name) else { throw APIError.notFound("user \(name)") }
        return updated.view
    }

    // MARK: Audit

    func auditEntries(after: Int64?, limit: Int) throws -> [AuditEntryView] {
        try store.auditEntries(after: after, limit: limit).map {
            AuditEntryView(
                seq: $0.seq, at: $0.at, actor: $0.actor, role: $0.role, action: $0.action, target: $0.target, before: $0.before, after: $0.after,
                requestID: $0.requestID, policyHash: $0.policyHash, hash: $0.hash)
        }
    }

    func verifyAudit() throws -> AuditVerifyView {
        let v = try store.verifyAudit()
        return AuditVerifyView(ok: v.ok, checked: v.checked, problem: v.problem, firstBadSeq: v.firstBadSeq)
    }
}

extension UserRecord {
    var view: UserView {
        UserView(name: name, role: role, opd: opd, createdAt: createdAt, revokedAt: revokedAt)
    }
}

/// Maps a certificate serial to the principal it belongs to, refusing unknown, revoked and expired ones.
func resolvePrincipal(store: Store, serial: String, now: Date) throws -> Principal {
    let lookup: PrincipalLookup
    do {
        lookup = try store.principal(forSerial: serial, now: now)
    } catch {
        throw APIError(.internalServerError, "store_error", "the certificate could not be checked")
    }
    switch lookup {
    case .found(let principal):
        return principal
    case .unknownSerial, .unknownSubject:
        throw APIError(.unauthorized, "unknown_certificate", "this client certificate (serial \(serial)) is not known to the controller")
    case .revoked, .userRevoked:
        throw APIError(.unauthorized, "certificate_revoked", "this client certificate was revoked; ask an admin for a new token")
    case .expired, .notYetValid:
        throw APIError(.unauthorized, "certificate_expired", "this client certificate is expired or not yet valid; log in again with a new token")
    }
}

extension ControllerServices {
    /// Issues credentials for an existing user directly (no token): used by `lumbungd dev` to
    /// hand the newcomer an admin config. The key is made here, on the controller's machine.
    public func localCredentials(for user: String) async throws -> ClientCredentials {
        guard let record = try store.user(UserID(rawValue: user)), record.revokedAt == nil else {
            throw InitError("user \(user) does not exist")
        }
        let key = ClientKey.generate()
        let csr = try key.makeCSR(commonName: user)
        let principal = Principal.user(UserID(rawValue: user), role: record.role, opd: record.opd)
        let response = try await issue(
            csr: csr, identity: .user(user), principal: principal, lifetime: config.userCertificateLifetime, at: now(), action: "certificate.issue.local")
        return ClientCredentials(certificatePEM: response.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: response.ca)
    }
}
