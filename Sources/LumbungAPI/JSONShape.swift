/// The shape of a JSON text as far as ``StrictJSON/decodeStrict(_:from:)`` needs it: which keys
/// each object has, recursively. A small validating scanner over the UTF-8 bytes (RFC 8259,
/// any value at the top level), much cheaper than `JSONSerialization`, which builds Foundation
/// objects for every value.
indirect enum JSONShape {
    case object([String: JSONShape])
    case array([JSONShape])
    case null
    case string(String)
    /// The number's text as written (valid JSON number syntax).
    case number(Substring)
    case bool(Bool)

    /// Parses `bytes`; nil when they are not one valid JSON value.
    static func parse(_ bytes: [UInt8]) -> JSONShape? {
        var scanner = Scanner(bytes: bytes)
        return scanner.document()
    }

    /// Parses `bytes`; also tells whether an object had the same key twice.
    static func parse(_ bytes: [UInt8], duplicateKeys: inout Bool) -> JSONShape? {
        var scanner = Scanner(bytes: bytes)
        let shape = scanner.document()
        duplicateKeys = scanner.duplicateKeys
        return shape
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var depth = 0
        var duplicateKeys = false

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> JSONShape? {
            skipSpace()
            guard let value = value() else { return nil }
            skipSpace()
            return i == bytes.count ? value : nil
        }

        mutating func skipSpace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        mutating func value() -> JSONShape? {
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "{"): return object()
            case UInt8(ascii: "["): return array()
            case UInt8(ascii: "\""): return string().map { .string($0) }
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default:
                let start = i
                guard number() else { return nil }
                return .number(Substring(decoding: bytes[start..<i], as: UTF8.self))
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            let p = word.utf8Start
            for k in 0..<n where bytes[i + k] != p[k] { return false }
            i += n
            return true
        }

        mutating func number() -> Bool {
            let start = i
            if i < bytes.count && bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count else { return false }
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
            } else if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[i]) {
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            } else {
                return false
            }
            if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard i < bytes.count && isDigit(bytes[i]) else { return false }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                i += 1
                if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < bytes.count && isDigit(bytes[i]) else { return false }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            return i > start
        }

        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

        func hexValue(_ b: UInt8) -> UInt32? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
            default: nil
            }
        }

        /// A string (at `"`): its decoded text, or nil when malformed.
        mutating func string() -> String? {
            i += 1
            let start = i
            // Fast path: no escapes.
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    let text = String(validating: bytes[start..<i], as: UTF8.self)
                    i += 1
                    return text
                }
                if b == UInt8(ascii: "\\") { break }
                if b < 0x20 { return nil }
                i += 1
            }
            var out = Array(bytes[start..<i])
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    i += 1
                    return String(validating: out, as: UTF8.self)
                }
                if b < 0x20 { return nil }
                if b != UInt8(ascii: "\\") {
                    out.append(b)
                    i += 1
                    continue
                }
                i += 1
                guard i < bytes.count else { return nil }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(e)
                case UInt8(ascii: "\\"): out.append(e)
                case UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { return nil }
                        i += 2
                        guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        return nil
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    return nil
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let h = hexValue(bytes[i + k]) else { return nil }
                v = v << 4 | h
            }
            i += 4
            return v
        }

        mutating func object() -> JSONShape? {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { return nil }
            i += 1
            var members: [String: JSONShape] = [:]
            skipSpace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
                i += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = string() else { return nil }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                skipSpace()
                guard let v = value() else { return nil }
                if members.updateValue(v, forKey: key) != nil { duplicateKeys = true }
                guard let more = separator(closing: "}") else { return nil }
                if !more { return .object(members) }
            }
        }

        /// After a member or element: true at `,` (another follows), false at `closing` (the
        /// container ends), nil at anything else. Consumes what it read.
        mutating func separator(closing: Unicode.Scalar) -> Bool? {
            skipSpace()
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                return true
            }
            if bytes[i] == UInt8(ascii: closing) {
                i += 1
                return false
            }
            return nil
        }

        mutating func array() -> JSONShape? {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { return nil }
            i += 1
            var elements: [JSONShape] = []
            skipSpace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(elements)
            }
            while true {
                skipSpace()
                guard let v = value() else { return nil }
                elements.append(v)
                guard let more = separator(closing: "]") else { return nil }
                if !more { return .array(elements) }
            }
        }
    }
}
