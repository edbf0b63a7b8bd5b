import Foundation
import GRDB
import LumbungCore

/// A person who may hold certificates: an admin, or a member or approver of one OPD.
public struct UserRecord: Hashable, Sendable, Codable {
    /// The user's name (the subject of their certificates).
    public var name: UserID
    /// `admin`, `member` or `approver` (never `agent`).
    public var role: Role
    /// The OPD of a member or approver; nil exactly for admins.
    public var opd: OPDID?
    /// When the user was added.
    public var createdAt: Date
    /// When the user was revoked; a revoked user's certificates no longer authenticate.
    public var revokedAt: Date?

    /// Creates a user.
    public init(name: UserID, role: Role, opd: OPDID?, createdAt: Date, revokedAt: Date? = nil) {
        self.name = name
        self.role = role
        self.opd = opd
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// A one-time enrollment token. Only the SHA-256 of the secret is stored.
public struct TokenRecord: Hashable, Sendable, Codable {
    /// Lowercase hex SHA-256 of the secret (64 characters).
    public var hash: String
    /// The role the certificate obtained with this token will carry.
    public var role: Role
    /// The user name (roles admin, member, approver) or host id (role agent) it enrolls.
    public var subject: String
    /// The OPD of a member or approver token.
    public var opd: OPDID?
    /// When it was issued.
    public var createdAt: Date
    /// From this instant on the token is refused.
    public var expiresAt: Date
    /// When it was used; a used token is refused.
    public var usedAt: Date?
    /// Who issued it, e.g. `user:admin`.
    public var createdBy: String

    /// Creates a token record.
    public init(
        hash: String, role: Role, subject: String, opd: OPDID? = nil, createdAt: Date, expiresAt: Date, usedAt: Date? = nil,
        createdBy: String
    ) {
        self.hash = hash
        self.role = role
        self.subject = subject
        self.opd = opd
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
        self.createdBy = createdBy
    }
}

/// Whom a certificate identifies.
public enum CertificateKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// A person (subject: user name).
    case user
    /// A host's agent (subject: host id).
    case host
}

/// A certificate issued by the controller's CA.
public struct CertificateRecord: Hashable, Sendable, Codable {
    /// The serial number as lowercase hex (the store lowercases what it is given).
    public var serial: String
    /// Whether it identifies a user or a host.
    public var kind: CertificateKind
    /// User name or host id.
    public var subject: String
    /// Start of validity.
    public var notBefore: Date
    /// End of validity (from this instant on it is expired).
    public var notAfter: Date
    /// When the CA issued it.
    public var issuedAt: Date
    /// When it was revoked; a revoked certificate no longer authenticates.
    public var revokedAt: Date?

    /// Creates a certificate record.
    public init(
        serial: String, kind: CertificateKind, subject: String, notBefore: Date, notAfter: Date, issuedAt: Date,
        revokedAt: Date? = nil
    ) {
        self.serial = serial
        self.kind = kind
        self.subject = subject
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.issuedAt = issuedAt
        self.revokedAt = revokedAt
    }
}

/// The outcome of looking up who a certificate serial belongs to.
public enum PrincipalLookup: Hashable, Sendable {
    /// The certificate is valid and its subject is active.
    case found(Principal)
    /// No certificate with this serial was issued by this controller.
    case unknownSerial
    /// The certificate was revoked.
    case revoked(at: Date)
    /// The certificate is not valid yet.
    case notYetValid(notBefore: Date)
    /// The certificate has expired.
    case expired(notAfter: Date)
    /// The user it names was revoked.
    case userRevoked(at: Date)
    /// The user or host it names no longer exists.
    case unknownSubject(CertificateKind, String)

    /// The principal when found, else nil.
    public var principal: Principal? {
        if case .found(let principal) = self { return principal }
        return nil
    }

    /// Why the lookup failed, in a sentence; nil when found.
    public var refusal: String? {
        switch self {
        case .found: nil
        case .unknownSerial: "the certificate is unknown to this controller"
        case .revoked(let at): "the certificate was revoked at \(at)"
        case .notYetValid(let notBefore): "the certificate is not valid before \(notBefore)"
        case .expired(let notAfter): "the certificate expired at \(notAfter)"
        case .userRevoked(let at): "the user was revoked at \(at)"
        case .unknownSubject(let kind, let subject): "the \(kind) '\(subject)' named by the certificate does not exist"
        }
    }
}

/// Identity writes inside a transaction.
enum Identity {
    static func revokeCertificates(kind: CertificateKind, subject: String, atMillis: Int64, _ db: Database) throws {
        try db.execute(
            sql: "UPDATE certificates SET revoked_at = ? WHERE kind = ? AND subject = ? AND revoked_at IS NULL",
            arguments: [atMillis, kind.rawValue, subject])
    }

    /// Makes the unused tokens of a subject expire now (never before their creation).
    static func expireUnusedTokens(roles: [Role], subject: String, atMillis: Int64, _ db: Database) throws {
        let placeholders = roles.map { _ in "?" }.joined(separator: ", ")
        try db.execute(
            sql: """
                UPDATE tokens SET expires_at = MAX(created_at, MIN(expires_at, ?))
                WHERE subject = ? AND used_at IS NULL AND role IN (\(placeholders))
                """,
            arguments: [atMillis, subject] + StatementArguments(roles.map(\.rawValue)))
    }

    /// Explains a constraint violation of an identity write.
    static func explain(_ error: DatabaseError, doing: String, opd: OPDID?, _ db: Database) -> StoreError {
        let detail = error.message ?? error.description
        let why: String
        switch error.extendedResultCode {
        case .SQLITE_CONSTRAINT_PRIMARYKEY, .SQLITE_CONSTRAINT_UNIQUE:
            why = "it already exists"
        case .SQLITE_CONSTRAINT_FOREIGNKEY:
            if let opd, (try? OPDRow.exists(db, key: opd.rawValue)) == false {
                why = "OPD '\(opd)' does not exist"
            } else {
                why = "it refers to a row that does not exist"
            }
        case .SQLITE_CONSTRAINT_CHECK:
            why = "a value breaks the rule `\(detail.replacingOccurrences(of: "CHECK constraint failed: ", with: ""))`"
        default:
            why = detail
        }
        return StoreError(.constraint, "\(doing) was refused: \(why)", detail: detail)
    }

    static func insert<R: StoreRow>(_ row: R, doing: String, opd: OPDID?, _ db: Database) throws {
        do {
            try row.insert(db)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw explain(error, doing: doing, opd: opd, db)
        }
    }
}

extension Store {
    // MARK: - Users

    /// Adds a user (admin without OPD; member or approver of an existing OPD) and its audit entry.
    public func addUser(_ user: UserRecord, audit: AuditInput) throws {
        let doing = "adding user '\(user.name)'"
        try write(doing) { db in
            if user.role == .agent {
                throw StoreError(.constraint, "\(doing) was refused: role agent belongs to hosts, not users")
            }
            if user.role == .admin, user.opd != nil {
                throw StoreError(.constraint, "\(doing) was refused: an admin belongs to no OPD")
            }
            if user.role != .admin, user.opd == nil {
                throw StoreError(.constraint, "\(doing) was refused: a \(user.role.rawValue) must belong to an OPD")
            }
            try Identity.insert(UserRow(user), doing: doing, opd: user.opd, db)
            try AuditChain.append([audit], db)
        }
    }

    /// Users ordered by name: all of them when `opd` is nil, else the members and approvers of that OPD.
    public func users(opd: OPDID? = nil) throws -> [UserRecord] {
        try read("reading users") { db in
            var query = UserRow.order(Column("name"))
            if let opd { query = query.filter(Column("opd") == opd.rawValue) }
            return try query.fetchAll(db).map { try $0.model() }
        }
    }

    /// One user, or nil.
    public func user(_ name: UserID) throws -> UserRecord? {
        try read("reading user '\(name)'") { db in try UserRow.fetchOne(db, key: name.rawValue)?.model() }
    }

    /// Revokes a user: sets `revokedAt` (kept when already revoked), revokes all their
    /// certificates and expires their unused tokens, with the audit entry, in one transaction.
    ///
    /// - Throws: `not_found` when no such user exists.
    public func revokeUser(_ name: UserID, at: Date, audit: AuditInput) throws {
        try write("revoking user '\(name)'") { db in
            let ms = Millis.from(at)
            try db.execute(
                sql: "UPDATE users SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?", arguments: [ms, name.rawValue])
            guard db.changesCount == 1 else {
                throw StoreError(.notFound, "cannot revoke user '\(name)': no such user")
            }
            try Identity.revokeCertificates(kind: .user, subject: name.rawValue, atMillis: ms, db)
            try Identity.expireUnusedTokens(roles: [.admin, .member, .approver], subject: name.rawValue, atMillis: ms, db)
            try AuditChain.append([audit], db)
        }
    }

    // MARK: - Tokens

    /// Records a new enrollment token (its hash only) with its audit entry.
    public func issueToken(_ token: TokenRecord, audit: AuditInput) throws {
        let doing = "issuing a \(token.role.rawValue) token for '\(token.subject)'"
        try write(doing) { db in
            try Identity.insert(TokenRow(token), doing: doing, opd: token.opd, db)
            try AuditChain.append([audit], db)
        }
    }

    /// One token by the hex SHA-256 of its secret, or nil.
    public func token(hash: String) throws -> TokenRecord? {
        try read("reading a token") { db in try TokenRow.fetchOne(db, key: hash.lowercased())?.model() }
    }

    /// Uses a token, atomically: in one transaction it checks that the token exists
    /// (`token_invalid`), is unused (`token_used`), has not expired (`token_expired`) and has
    /// the expected role when one is given (`token_wrong_role`), then marks it used at `now`
    /// and appends the audit entry. Of concurrent calls with one token, exactly one succeeds.
    ///
    /// A refused attempt changes nothing and appends nothing.
    /// - Returns: the token as now stored (with `usedAt`).
    public func consumeToken(hash: String, expectedRole: Role?, now: Date, audit: AuditInput) throws -> TokenRecord {
        let key = hash.lowercased()
        return try write("using a token") { db in
            guard let row = try TokenRow.fetchOne(db, key: key) else {
                throw StoreError(.tokenInvalid, "the token is not valid: no such token was issued")
            }
            var token = try row.model()
            if let usedAt = token.usedAt {
                throw StoreError(.tokenUsed, "the token was already used at \(usedAt); ask an admin for a new one")
            }
            let nowMillis = Millis.from(now)
            if row.expiresAt <= nowMillis {
                throw StoreError(.tokenExpired, "the token expired at \(token.expiresAt); ask an admin for a new one")
            }
            if let expectedRole, token.role != expectedRole {
                throw StoreError(
                    .tokenWrongRole,
                    "the token was issued for role \(token.role.rawValue), not \(expectedRole.rawValue)")
            }
            try db.execute(
                sql: "UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL", arguments: [nowMillis, key])
            guard db.changesCount == 1 else {
                throw StoreError(.tokenUsed, "the token was already used; ask an admin for a new one")
            }
            try AuditChain.append([audit], db)
            token.usedAt = Millis.date(nowMillis)
            return token
        }
    }

    // MARK: - Certificates

    /// Records an issued certificate with its audit entry.
    public func recordCertificate(_ certificate: CertificateRecord, audit: AuditInput) throws {
        let doing = "recording certificate \(certificate.serial.lowercased()) of \(certificate.kind.rawValue) '\(certificate.subject)'"
        try write(doing) { db in
            try Identity.insert(CertificateRow(certificate), doing: doing, opd: nil, db)
            try AuditChain.append([audit], db)
        }
    }

    /// One certificate by serial (hex, any case), or nil.
    public func certificate(serial: String) throws -> CertificateRecord? {
        try read("reading a certificate") { db in try CertificateRow.fetchOne(db, key: serial.lowercased())?.model() }
    }

    /// The certificates of one user or host, newest first.
    public func certificates(subjectKind: CertificateKind, subject: String) throws -> [CertificateRecord] {
        try read("reading certificates") { db in
            try CertificateRow
                .filter(Column("kind") == subjectKind.rawValue && Column("subject") == subject)
                .order(Column("issued_at").desc, Column("serial"))
                .fetchAll(db).map { try $0.model() }
        }
    }

    /// Revokes every unrevoked certificate of one user or host, with the audit entry.
    /// - Returns: how many certificates were revoked.
    @discardableResult
    public func revokeCertificates(subjectKind: CertificateKind, subject: String, at: Date, audit: AuditInput) throws -> Int {
        try write("revoking the certificates of \(subjectKind.rawValue) '\(subject)'") { db in
            try Identity.revokeCertificates(kind: subjectKind, subject: subject, atMillis: Millis.from(at), db)
            let count = db.changesCount
            try AuditChain.append([audit], db)
            return count
        }
    }

    /// Who a client certificate's serial identifies at `now`, or why it identifies nobody:
    /// unknown serial, revoked, not yet valid, expired, user revoked, or subject gone.
    public func principal(forSerial serial: String, now: Date) throws -> PrincipalLookup {
        try read("looking up a certificate") { db in
            guard let certificate = try CertificateRow.fetchOne(db, key: serial.lowercased())?.model() else {
                return .unknownSerial
            }
            if let revokedAt = certificate.revokedAt { return .revoked(at: revokedAt) }
            let nowMillis = Millis.from(now)
            if nowMillis < Millis.from(certificate.notBefore) { return .notYetValid(notBefore: certificate.notBefore) }
            if nowMillis >= Millis.from(certificate.notAfter) { return .expired(notAfter: certificate.notAfter) }
            switch certificate.kind {
            case .user:
                guard let user = try UserRow.fetchOne(db, key: certificate.subject)?.model() else {
                    return .unknownSubject(.user, certificate.subject)
                }
                if let revokedAt = user.revokedAt { return .userRevoked(at: revokedAt) }
                return .found(.user(user.name, role: user.role, opd: user.opd))
            case .host:
                guard try HostRow.exists(db, key: certificate.subject) else {
                    return .unknownSubject(.host, certificate.subject)
                }
                return .found(.host(HostID(rawValue: certificate.subject)))
            }
        }
    }
}
