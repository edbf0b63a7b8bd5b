/// Decodes `Decodable` values from YAML text in the supported subset.
///
/// Scalars are converted according to the *requested* type, following the
/// YAML 1.2 core schema: `String` accepts any scalar; `Bool` accepts plain
/// `true`/`false` (also `True`, `TRUE`, `False`, `FALSE`); integers accept plain
/// decimal, `0x…` and `0o…` with an optional sign (overflow is an error);
/// `Double`/`Float` accept plain decimal and exponent notation, `.inf`, `-.inf`,
/// `.nan` and integers. Plain `null`, `~` and empty values are nil for optionals.
/// Quoted and block scalars are always strings.
///
/// An empty document decodes like an empty mapping (all-optional structs and
/// dictionaries decode; required keys are reported missing).
public struct YAMLDecoder: Sendable {
    /// Creates a decoder.
    public init() {}

    /// Parses `text` and decodes a `T` from its root.
    ///
    /// - Throws: `YAMLError` for syntax errors and unsupported YAML features;
    ///   `DecodingError` whose `debugDescription` reads like
    ///   `line 12: simulated.cpus: expected an integer, found 'many'` for type errors.
    public func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try decode(type, from: try YAMLNode.parse(text))
    }

    /// Decodes a `T` from an already parsed document (`nil` = empty document).
    public func decode<T: Decodable>(_ type: T.Type, from node: YAMLNode?) throws -> T {
        try T(from: NodeDecoder(node: node ?? .mapping([]), codingPath: [], line: nil, emptyDocument: node == nil))
    }
}

/// Coding key for sequence positions; rendered as `[i]` in error paths.
struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

/// Coding key with an arbitrary name (used for `super`).
struct NameKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// `a.b[2].c`
func describePath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if key is IndexKey {
            out += "[\(key.intValue ?? 0)]"
        } else {
            if !out.isEmpty { out += "." }
            out += key.stringValue
        }
    }
    return out
}

/// The `Decoder` over one node.
struct NodeDecoder: Decoder {
    let node: YAMLNode
    let codingPath: [any CodingKey]
    /// Line for messages (nil at the root).
    let line: Int?
    let emptyDocument: Bool
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let entries) = node else {
            throw wrongShape(KeyedDecodingContainer<Key>.self, expected: "a mapping")
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, entries: entries))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        if emptyDocument { return UnkeyedContainer(decoder: self, items: []) }
        guard case .sequence(let items) = node else {
            throw wrongShape([Any].self, expected: "a sequence")
        }
        return UnkeyedContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(decoder: self) }

    /// Decoder for a child node; `fallbackLine` is used when the child has no line of its own.
    func child(_ node: YAMLNode, key: any CodingKey, fallbackLine: Int?) -> NodeDecoder {
        let own: Int? = if case .scalar(let s) = node, s.line > 0 { s.line } else { nil }
        return NodeDecoder(node: node, codingPath: codingPath + [key], line: own ?? fallbackLine ?? node.line,
                           emptyDocument: false)
    }

    // MARK: Errors

    func context(_ message: String) -> DecodingError.Context {
        var prefix: [String] = []
        if let line { prefix.append("line \(line)") }
        let path = describePath(codingPath)
        if !path.isEmpty { prefix.append(path) }
        prefix.append(message)
        return DecodingError.Context(codingPath: codingPath, debugDescription: prefix.joined(separator: ": "))
    }

    var found: String {
        if emptyDocument { return "an empty document" }
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a sequence"
        case .scalar(let s):
            switch s.style {
            case .plain where s.text.isEmpty: return "an empty value"
            case .plain where s.isNull: return "null ('\(s.text)')"
            case .plain: return "'\(s.text)'"
            case .singleQuoted, .doubleQuoted: return "the quoted string \"\(s.text)\""
            case .literal, .folded: return "a block scalar"
            }
        }
    }

    func wrongShape(_ type: Any.Type, expected: String) -> DecodingError {
        var message = "expected \(expected), found \(found)"
        if case .scalar(let s) = node, s.style == .singleQuoted || s.style == .doubleQuoted {
            message += "; quoted values are strings, remove the quotes"
        }
        if case .scalar(let s) = node, s.isNull { return .valueNotFound(type, context(message)) }
        return .typeMismatch(type, context(message))
    }

    // MARK: Scalars

    var isNull: Bool { emptyDocument || node.scalar?.isNull == true }

    /// The scalar text if the node is a plain scalar (else throws a type error).
    private func plain(_ type: Any.Type, expected: String) throws -> String {
        guard !emptyDocument, case .scalar(let s) = node, s.style == .plain else {
            throw wrongShape(type, expected: expected)
        }
        return s.text
    }

    func decodeString() throws -> String {
        guard !emptyDocument, case .scalar(let s) = node else { throw wrongShape(String.self, expected: "a string") }
        return s.text
    }

    func decodeBool() throws -> Bool {
        let expected = "a boolean (true or false)"
        guard let value = CoreSchema.bool(try plain(Bool.self, expected: expected)) else {
            throw wrongShape(Bool.self, expected: expected)
        }
        return value
    }

    func decodeInteger<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let text = try plain(T.self, expected: "an integer")
        switch CoreSchema.integer(text, as: T.self) {
        case .value(let v): return v
        case .outOfRange:
            throw DecodingError.dataCorrupted(context("integer \(text) is out of range for \(T.self) (\(T.min)...\(T.max))"))
        case .invalid: throw wrongShape(T.self, expected: "an integer")
        }
    }

    func decodeFloat<T: BinaryFloatingPoint & LosslessStringConvertible>(_: T.Type) throws -> T {
        let text = try plain(T.self, expected: "a number")
        switch CoreSchema.floating(text, as: T.self) {
        case .value(let v): return v
        case .outOfRange: throw DecodingError.dataCorrupted(context("number \(text) is out of range for \(T.self)"))
        case .invalid: throw wrongShape(T.self, expected: "a number")
        }
    }
}

// MARK: - Containers

struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let entries: [YAMLNode.Entry]
    let index: [String: Int]

    init(decoder: NodeDecoder, entries: [YAMLNode.Entry]) {
        self.decoder = decoder
        self.entries = entries
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.key] = i }
        self.index = index
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }
    func contains(_ key: Key) -> Bool { index[key.stringValue] != nil }

    private func child(_ key: any CodingKey) throws -> NodeDecoder {
        guard let i = index[key.stringValue] else {
            throw DecodingError.keyNotFound(key, decoder.context("missing key '\(key.stringValue)'"))
        }
        return decoder.child(entries[i].value, key: key, fallbackLine: entries[i].line)
    }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).isNull }
    func decode(_: Bool.Type, forKey key: Key) throws -> Bool { try child(key).decodeBool() }
    func decode(_: String.Type, forKey key: Key) throws -> String { try child(key).decodeString() }
    func decode(_: Double.Type, forKey key: Key) throws -> Double { try child(key).decodeFloat(Double.self) }
    func decode(_: Float.Type, forKey key: Key) throws -> Float { try child(key).decodeFloat(Float.self) }
    func decode(_: Int.Type, forKey key: Key) throws -> Int { try child(key).decodeInteger(Int.self) }
    func decode(_: Int8.Type, forKey key: Key) throws -> Int8 { try child(key).decodeInteger(Int8.self) }
    func decode(_: Int16.Type, forKey key: Key) throws -> Int16 { try child(key).decodeInteger(Int16.self) }
    func decode(_: Int32.Type, forKey key: Key) throws -> Int32 { try child(key).decodeInteger(Int32.self) }
    func decode(_: Int64.Type, forKey key: Key) throws -> Int64 { try child(key).decodeInteger(Int64.self) }
    func decode(_: UInt.Type, forKey key: Key) throws -> UInt { try child(key).decodeInteger(UInt.self) }
    func decode(_: UInt8.Type, forKey key: Key) throws -> UInt8 { try child(key).decodeInteger(UInt8.self) }
    func decode(_: UInt16.Type, forKey key: Key) throws -> UInt16 { try child(key).decodeInteger(UInt16.self) }
    func decode(_: UInt32.Type, forKey key: Key) throws -> UInt32 { try child(key).decodeInteger(UInt32.self) }
    func decode(_: UInt64.Type, forKey key: Key) throws -> UInt64 { try child(key).decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_: T.Type, forKey key: Key) throws -> T { try T(from: child(key)) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { try child(NameKey("super")) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [YAMLNode]
    private(set) var currentIndex = 0

    init(decoder: NodeDecoder, items: [YAMLNode]) {
        self.decoder = decoder
        self.items = items
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private func current(_ type: Any.Type) throws -> NodeDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, decoder.context("expected more items; the sequence has only \(items.count)"))
        }
        let item = items[currentIndex]
        return decoder.child(item, key: IndexKey(currentIndex), fallbackLine: item.line ?? decoder.line)
    }

    /// Decodes the current item and advances only on success.
    private mutating func next<T>(_ decode: (NodeDecoder) throws -> T) throws -> T {
        let value = try decode(try current(T.self))
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard try current(Any.self).isNull else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode(_: Bool.Type) throws -> Bool { try next { try $0.decodeBool() } }
    mutating func decode(_: String.Type) throws -> String { try next { try $0.decodeString() } }
    mutating func decode(_: Double.Type) throws -> Double { try next { try $0.decodeFloat(Double.self) } }
    mutating func decode(_: Float.Type) throws -> Float { try next { try $0.decodeFloat(Float.self) } }
    mutating func decode(_: Int.Type) throws -> Int { try next { try $0.decodeInteger(Int.self) } }
    mutating func decode(_: Int8.Type) throws -> Int8 { try next { try $0.decodeInteger(Int8.self) } }
    mutating func decode(_: Int16.Type) throws -> Int16 { try next { try $0.decodeInteger(Int16.self) } }
    mutating func decode(_: Int32.Type) throws -> Int32 { try next { try $0.decodeInteger(Int32.self) } }
    mutating func decode(_: Int64.Type) throws -> Int64 { try next { try $0.decodeInteger(Int64.self) } }
    mutating func decode(_: UInt.Type) throws -> UInt { try next { try $0.decodeInteger(UInt.self) } }
    mutating func decode(_: UInt8.Type) throws -> UInt8 { try next { try $0.decodeInteger(UInt8.self) } }
    mutating func decode(_: UInt16.Type) throws -> UInt16 { try next { try $0.decodeInteger(UInt16.self) } }
    mutating func decode(_: UInt32.Type) throws -> UInt32 { try next { try $0.decodeInteger(UInt32.self) } }
    mutating func decode(_: UInt64.Type) throws -> UInt64 { try next { try $0.decodeInteger(UInt64.self) } }
    mutating func decode<T: Decodable>(_: T.Type) throws -> T { try next { try T(from: $0) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next { try $0.container(keyedBy: type) }
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next { try $0.unkeyedContainer() } }
    mutating func superDecoder() throws -> any Decoder { try next { $0 } }
}

struct SingleContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.isNull }
    func decode(_: Bool.Type) throws -> Bool { try decoder.decodeBool() }
    func decode(_: String.Type) throws -> String { try decoder.decodeString() }
    func decode(_: Double.Type) throws -> Double { try decoder.decodeFloat(Double.self) }
    func decode(_: Float.Type) throws -> Float { try decoder.decodeFloat(Float.self) }
    func decode(_: Int.Type) throws -> Int { try decoder.decodeInteger(Int.self) }
    func decode(_: Int8.Type) throws -> Int8 { try decoder.decodeInteger(Int8.self) }
    func decode(_: Int16.Type) throws -> Int16 { try decoder.decodeInteger(Int16.self) }
    func decode(_: Int32.Type) throws -> Int32 { try decoder.decodeInteger(Int32.self) }
    func decode(_: Int64.Type) throws -> Int64 { try decoder.decodeInteger(Int64.self) }
    func decode(_: UInt.Type) throws -> UInt { try decoder.decodeInteger(UInt.self) }
    func decode(_: UInt8.Type) throws -> UInt8 { try decoder.decodeInteger(UInt8.self) }
    func decode(_: UInt16.Type) throws -> UInt16 { try decoder.decodeInteger(UInt16.self) }
    func decode(_: UInt32.Type) throws -> UInt32 { try decoder.decodeInteger(UInt32.self) }
    func decode(_: UInt64.Type) throws -> UInt64 { try decoder.decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_: T.Type) throws -> T { try T(from: decoder) }
}
