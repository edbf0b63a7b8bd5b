/// Encodes `Encodable` values as block-style YAML that `YAMLDecoder` reads back
/// to an equal value.
///
/// Output rules: mappings as `key: value` with two-space indentation; sequences
/// as `- item` lines indented under their key; empty collections as `{}` / `[]`;
/// `nil` optionals omitted (`encodeIfPresent`), explicit `encodeNil` as `null`.
/// Keys keep the order in which the value encodes them, except `Dictionary`
/// keys, which are sorted. Strings are written plain when that reads back as
/// the same string, otherwise double-quoted with escapes (multi-line strings
/// included). Numbers and booleans are plain; doubles use `.inf`/`-.inf`/`.nan`.
public struct YAMLEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// Returns the YAML document for `value`, ending with a newline.
    public func encode<T: Encodable>(_ value: T) throws -> String {
        YAMLWriter.document(try EncodingBox.encode(value, codingPath: []).node())
    }
}

/// Marks dictionaries, whose keys the encoder sorts for deterministic output.
protocol UnorderedKeyedCollection {}
extension Dictionary: UnorderedKeyedCollection {}

/// Mutable tree built while encoding; converted to a `YAMLNode` at the end.
final class EncodingBox {
    private enum Content {
        case none
        case scalar(YAMLScalar)
        case mapping
        case sequence
    }
    private var content = Content.none
    private var keys: [String] = []
    private var values: [String: EncodingBox] = [:]
    private var items: [EncodingBox] = []
    var sortKeys = false

    init() {}
    init(_ scalar: YAMLScalar) { content = .scalar(scalar) }
    static func plain(_ text: String) -> EncodingBox { EncodingBox(YAMLScalar(text)) }
    static func string(_ text: String) -> EncodingBox {
        EncodingBox(YAMLScalar(text, style: YAMLWriter.needsQuotes(text) ? .doubleQuoted : .plain))
    }
    static func double(_ v: Double) -> EncodingBox { plain(YAMLWriter.format(v)) }
    static func float(_ v: Float) -> EncodingBox {
        plain(v.isNaN || v.isInfinite ? YAMLWriter.format(Double(v)) : "\(v)")
    }

    /// Encodes any value into a fresh box.
    static func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> EncodingBox {
        if let s = value as? String { return string(s) }
        let box = EncodingBox()
        try value.encode(to: BoxEncoder(box: box, codingPath: codingPath))
        if value is UnorderedKeyedCollection { box.sortKeys = true }
        return box
    }

    func set(_ scalar: YAMLScalar) { content = .scalar(scalar) }

    func becomeMapping() {
        if case .mapping = content { return }
        content = .mapping
    }

    func becomeSequence() {
        if case .sequence = content { return }
        content = .sequence
    }

    func put(_ key: String, _ box: EncodingBox) {
        if values.updateValue(box, forKey: key) == nil { keys.append(key) }
    }

    func append(_ box: EncodingBox) { items.append(box) }
    var count: Int { items.count }

    func node() -> YAMLNode {
        switch content {
        case .scalar(let s): return .scalar(s)
        case .sequence: return .sequence(items.map { $0.node() })
        case .none, .mapping:
            let ordered = sortKeys ? keys.sorted() : keys
            return .mapping(ordered.compactMap { k in values[k].map { YAMLNode.Entry(key: k, value: $0.node()) } })
        }
    }
}

struct BoxEncoder: Encoder {
    let box: EncodingBox
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) -> KeyedEncodingContainer<Key> {
        box.becomeMapping()
        return KeyedEncodingContainer(KeyedBoxContainer<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        box.becomeSequence()
        return UnkeyedBoxContainer(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleBoxContainer(box: box, codingPath: codingPath) }
}

struct KeyedBoxContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: EncodingBox
    let codingPath: [any CodingKey]

    private func put(_ key: Key, _ child: EncodingBox) { box.put(key.stringValue, child) }

    mutating func encodeNil(forKey key: Key) throws { put(key, .plain("null")) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(key, .plain(value ? "true" : "false")) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(key, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(key, .double(value)) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(key, .float(value)) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(key, .plain("\(value)")) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(key, try EncodingBox.encode(value, codingPath: codingPath + [key]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingBox()
        put(key, child)
        return BoxEncoder(box: child, codingPath: codingPath + [key]).container(keyedBy: NestedKey.self)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = EncodingBox()
        put(key, child)
        return BoxEncoder(box: child, codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = EncodingBox()
        box.put("super", child)
        return BoxEncoder(box: child, codingPath: codingPath + [NameKey("super")])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = EncodingBox()
        put(key, child)
        return BoxEncoder(box: child, codingPath: codingPath + [key])
    }
}

struct UnkeyedBoxContainer: UnkeyedEncodingContainer {
    let box: EncodingBox
    let codingPath: [any CodingKey]
    var count: Int { box.count }

    private func add(_ child: EncodingBox) { box.append(child) }

    mutating func encodeNil() throws { add(.plain("null")) }
    mutating func encode(_ value: Bool) throws { add(.plain(value ? "true" : "false")) }
    mutating func encode(_ value: String) throws { add(.string(value)) }
    mutating func encode(_ value: Double) throws { add(.double(value)) }
    mutating func encode(_ value: Float) throws { add(.float(value)) }
    mutating func encode(_ value: Int) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: Int8) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: Int16) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: Int32) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: Int64) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: UInt) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: UInt8) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: UInt16) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: UInt32) throws { add(.plain("\(value)")) }
    mutating func encode(_ value: UInt64) throws { add(.plain("\(value)")) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        add(try EncodingBox.encode(value, codingPath: codingPath + [IndexKey(count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingBox()
        let path = codingPath + [IndexKey(count)]
        add(child)
        return BoxEncoder(box: child, codingPath: path).container(keyedBy: NestedKey.self)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = EncodingBox()
        let path = codingPath + [IndexKey(count)]
        add(child)
        return BoxEncoder(box: child, codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = EncodingBox()
        let path = codingPath + [IndexKey(count)]
        add(child)
        return BoxEncoder(box: child, codingPath: path)
    }
}

struct SingleBoxContainer: SingleValueEncodingContainer {
    let box: EncodingBox
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { box.set(YAMLScalar("null")) }
    mutating func encode(_ value: Bool) throws { box.set(YAMLScalar(value ? "true" : "false")) }
    mutating func encode(_ value: String) throws { box.set(YAMLScalar(value, style: YAMLWriter.needsQuotes(value) ? .doubleQuoted : .plain)) }
    mutating func encode(_ value: Double) throws { box.set(YAMLScalar(YAMLWriter.format(value))) }
    mutating func encode(_ value: Float) throws { box.set(YAMLScalar(value.isNaN || value.isInfinite ? YAMLWriter.format(Double(value)) : "\(value)")) }
    mutating func encode(_ value: Int) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: Int8) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: Int16) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: Int32) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: Int64) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: UInt) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: UInt8) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: UInt16) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: UInt32) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode(_ value: UInt64) throws { box.set(YAMLScalar("\(value)")) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        if let s = value as? String { return try encode(s) }
        try value.encode(to: BoxEncoder(box: box, codingPath: codingPath))
        if value is UnorderedKeyedCollection { box.sortKeys = true }
    }
}

// MARK: - Writer

/// Renders a `YAMLNode` in block style. Plain scalars are written as they are;
/// every other style is written double-quoted (callers decide plain vs quoted).
enum YAMLWriter {
    static func document(_ node: YAMLNode) -> String {
        switch node {
        case .scalar(let s): return scalar(s) + "\n"
        case .mapping(let e) where e.isEmpty: return "{}\n"
        case .sequence(let i) where i.isEmpty: return "[]\n"
        default:
            var out = ""
            write(node, indent: 0, firstPrefix: "", into: &out)
            return out
        }
    }

    /// Writes a non-empty collection; the first line starts with `firstPrefix`,
    /// later lines with `indent` spaces.
    private static func write(_ node: YAMLNode, indent: Int, firstPrefix: String, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        var prefix = firstPrefix
        switch node {
        case .mapping(let entries):
            for e in entries {
                out += prefix + key(e.key) + ":"
                writeValue(e.value, indent: indent, inSequence: false, into: &out)
                prefix = pad
            }
        case .sequence(let items):
            for item in items {
                out += prefix + "-"
                writeValue(item, indent: indent, inSequence: true, into: &out)
                prefix = pad
            }
        case .scalar:
            break
        }
    }

    /// Writes what follows `key:` or `-` on the current line.
    private static func writeValue(_ value: YAMLNode, indent: Int, inSequence: Bool, into out: inout String) {
        switch value {
        case .scalar(let s): out += " " + scalar(s) + "\n"
        case .mapping(let e) where e.isEmpty: out += " {}\n"
        case .sequence(let i) where i.isEmpty: out += " []\n"
        default:
            if inSequence {  // "- key: value" / "- - item" on the dash's line
                write(value, indent: indent + 2, firstPrefix: " ", into: &out)
            } else {
                out += "\n"
                write(value, indent: indent + 2, firstPrefix: String(repeating: " ", count: indent + 2), into: &out)
            }
        }
    }

    static func scalar(_ s: YAMLScalar) -> String { s.style == .plain ? s.text : doubleQuoted(s.text) }

    static func key(_ k: String) -> String { needsQuotes(k) ? doubleQuoted(k) : k }

    static func format(_ v: Double) -> String {
        if v.isNaN { return ".nan" }
        if v.isInfinite { return v < 0 ? "-.inf" : ".inf" }
        return "\(v)"
    }

    /// True unless `s`, written plain, reads back as exactly this string.
    static func needsQuotes(_ s: String) -> Bool {
        if s.isEmpty || CoreSchema.resolvesToNonString(s) { return true }
        let u = Array(s.utf8)
        let indicators: [UInt8] = Array("-?:,[]{}#&*!|>'\"%@`".utf8)
        if indicators.contains(u[0]) || isBlank(u[0]) || isBlank(u[u.count - 1]) { return true }
        if s.hasPrefix("...") { return true }
        for (i, c) in u.enumerated() {
            if c < 0x20 || c == 0x7F { return true }
            if c == 0x3A, i + 1 == u.count || isBlank(u[i + 1]) { return true }
            if c == 0x23, i > 0, isBlank(u[i - 1]) { return true }
        }
        return s.unicodeScalars.contains { needsEscape($0) }
    }

    private static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }

    /// Characters written as escapes: C0/C1 controls, DEL, line/paragraph
    /// separators, BOM and non-characters.
    private static func needsEscape(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF: return true
        default: return false
        }
    }

    static func doubleQuoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\0": out += "\\0"
            default:
                if needsEscape(c) {
                    let width = c.value < 0x100 ? 2 : 4
                    let hex = String(c.value, radix: 16, uppercase: true)
                    out += (width == 2 ? "\\x" : "\\u") + String(repeating: "0", count: width - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
