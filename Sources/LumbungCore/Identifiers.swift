/// A name as Lumbung accepts it for OPDs, hosts, pools, VMs, volumes, users and apps:
/// 1–63 characters of `[a-z0-9-]`, starting and ending with a letter or digit
/// (a DNS label). Such a name can never escape a path (`/`, `..`) or break a
/// certificate SAN, so it is safe to use as a file or cgroup name.
public enum Name {
    /// The longest accepted name.
    public static let maxLength = 63

    /// Returns `text` when it is a valid name, otherwise throws an error that names
    /// `what` (e.g. "VM name") and the accepted form.
    public static func validate(_ text: String, what: String) throws(CoreError) -> String {
        // One pass over the bytes; the sentences are built only when the name is refused.
        var accepted: String { "use 1–\(maxLength) characters of a–z, 0–9 and '-', starting and ending with a letter or digit" }
        let utf8 = text.utf8
        var count = 0
        var slashOrDotDot = false
        var otherCharacter = false
        var previous: UInt8 = 0
        for byte in utf8 {
            count += 1
            if byte == UInt8(ascii: "/") || (byte == UInt8(ascii: ".") && previous == UInt8(ascii: ".")) { slashOrDotDot = true }
            let ok = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-")
            if !ok { otherCharacter = true }
            previous = byte
        }
        if count == 0 {
            throw CoreError(.invalidName, "\(what) is empty; \(accepted)")
        }
        if count > maxLength {
            throw CoreError(.invalidName, "\(what) '\(text.prefix(80))' is \(count) characters long; \(accepted)")
        }
        if slashOrDotDot {
            throw CoreError(.invalidName, "\(what) '\(text)' contains '/' or '..'; \(accepted)")
        }
        if otherCharacter {
            throw CoreError(.invalidName, "\(what) '\(text)' contains a character other than a–z, 0–9 or '-'; \(accepted)")
        }
        if utf8.first == UInt8(ascii: "-") || utf8.last == UInt8(ascii: "-") {
            throw CoreError(.invalidName, "\(what) '\(text)' starts or ends with '-'; \(accepted)")
        }
        return text
    }

    /// True when `text` is a valid name.
    public static func isValid(_ text: String) -> Bool {
        (try? validate(text, what: "name")) != nil
    }
}

/// A string identifier with its own type, so a host's id can never be passed
/// where an OPD's is expected.
public protocol StringIdentifier: RawRepresentable<String>, Hashable, Comparable, Codable, Sendable,
    CustomStringConvertible, CodingKeyRepresentable, ExpressibleByStringLiteral
{
    init(rawValue: String)
}

extension StringIdentifier {
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public init?<T: CodingKey>(codingKey: T) { self.init(rawValue: codingKey.stringValue) }
    public var codingKey: any CodingKey { StringCodingKey(rawValue) }
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self.init(rawValue: try container.decode(String.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A coding key made from a string (used to encode identifier-keyed dictionaries as JSON objects).
public struct StringCodingKey: CodingKey, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ value: String) { self.stringValue = value }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// Identifies an OPD (an agency of the region), e.g. `dinkes`. It is the OPD's short name.
public struct OPDID: StringIdentifier {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// Identifies a host of the data center, e.g. `node-01`. It is the host's name, never an address.
public struct HostID: StringIdentifier {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// Names a storage pool, e.g. `ssd` or `hdd`.
public struct PoolName: StringIdentifier {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// Identifies a VM across the data center, e.g. `vm-3f9a0c21`. Names are unique only per OPD.
public struct VMID: StringIdentifier {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// Identifies a volume across the data center, e.g. `vol-8d2e11b0`.
public struct VolumeID: StringIdentifier {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// Identifies a user principal (a person), e.g. `budi`.
public struct UserID: StringIdentifier {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// Identifies a request (VM, volume or quota) by a number that grows by one.
public struct RequestID: RawRepresentable, Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(Int64.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
