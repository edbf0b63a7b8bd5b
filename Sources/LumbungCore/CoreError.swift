/// The one error type of `LumbungCore`.
///
/// Every error carries a stable machine-readable ``Code`` (it becomes the
/// `error.code` of an API response) and a sentence for people that says what
/// was wrong and what would be accepted.
public struct CoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes. Never rename a case's raw value: clients match on it.
    public enum Code: String, Sendable, Codable, Hashable {
        case invalidName = "invalid_name"
        case invalidAmount = "invalid_amount"
        case invalidLabel = "invalid_label"
        case illegalTransition = "illegal_transition"
        case quotaExceeded = "quota_exceeded"
        case capacityExceeded = "capacity_exceeded"
        case noHostFits = "no_host_fits"
        case unknownPool = "unknown_pool"
        case unknownImage = "unknown_image"
        case limitExceeded = "limit_exceeded"
        case quotaBelowUse = "quota_below_use"
    }

    /// The stable code.
    public var code: Code
    /// A sentence for people: what was wrong and what would be accepted.
    public var message: String

    /// Creates an error with a code and a readable message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
