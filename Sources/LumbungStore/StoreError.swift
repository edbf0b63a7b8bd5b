import GRDB

/// The one error type of `LumbungStore`.
///
/// Every error carries a stable machine-readable ``Code`` (it may become the
/// `error.code` of an API response) and a sentence for people that says what
/// clashed or what is missing. ``detail`` keeps SQLite's own message, for logs.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes. Never rename a case's raw value: clients match on it.
    public enum Code: String, Sendable, Codable, Hashable, CaseIterable {
        /// A change broke a rule the database enforces: a duplicate id or name, a
        /// reference to a row that does not exist, a negative amount, an unknown state.
        case constraint
        /// The row a change or lookup names does not exist.
        case notFound = "not_found"
        /// No token has this hash.
        case tokenInvalid = "token_invalid"
        /// The token was already used (tokens are single use).
        case tokenUsed = "token_used"
        /// The token's expiry has passed.
        case tokenExpired = "token_expired"
        /// The token was issued for another role than the one expected.
        case tokenWrongRole = "token_wrong_role"
        /// The database holds something this code cannot read (bad JSON, unknown
        /// state, damaged file).
        case corrupt
        /// The database was written by a newer Lumbung (it has migrations this build does not know).
        case incompatible
        /// Another process holds the database locked for longer than the busy timeout.
        case busy
        /// The store was closed.
        case closed
        /// Any other SQLite or file-system failure (disk full, permission denied, …).
        case database
    }

    /// The stable code.
    public var code: Code
    /// A sentence for people: what clashed, what is missing.
    public var message: String
    /// SQLite's own message, when the error came from SQLite (for logs, not for users).
    public var detail: String?

    /// Creates an error with a code, a readable message and an optional low-level detail.
    public init(_ code: Code, _ message: String, detail: String? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    /// The readable message.
    public var description: String { message }
}

extension StoreError {
    /// Maps any error escaping GRDB to a `StoreError`; `StoreError`s pass through unchanged.
    static func wrap(_ error: any Error, doing what: String) -> any Error {
        switch error {
        case let error as StoreError:
            return error
        case is CancellationError:
            return error
        case let error as DatabaseError:
            return StoreError(database: error, doing: what)
        case let error as RecordError:
            switch error {
            case .recordNotFound(let table, let key):
                return StoreError(.notFound, "\(what): no row in \(table) with \(key.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))")
            }
        default:
            return StoreError(.database, "\(what) failed: \(error)", detail: String(describing: error))
        }
    }

    /// A generic translation of an SQLite error (no knowledge of which change caused it).
    init(database error: DatabaseError, doing what: String) {
        let detail = error.message ?? error.description
        switch error.resultCode {
        case .SQLITE_CONSTRAINT:
            self.init(.constraint, "\(what) was refused by the database: \(detail)", detail: detail)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            self.init(.corrupt, "\(what) failed: the database file is damaged or not a Lumbung database (\(detail))", detail: detail)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            self.init(.busy, "\(what) failed: the database is locked by another connection or process (\(detail))", detail: detail)
        case .SQLITE_MISUSE where detail.contains("closed"):
            self.init(.closed, "\(what) failed: the store is closed", detail: detail)
        default:
            self.init(.database, "\(what) failed: \(detail)", detail: detail)
        }
    }

    static func corrupt(_ what: String) -> StoreError {
        StoreError(.corrupt, "the database holds \(what), which this version cannot read")
    }
}
