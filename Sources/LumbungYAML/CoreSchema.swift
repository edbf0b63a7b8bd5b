/// YAML 1.2 core-schema resolution of plain scalars, shared by the decoder
/// (which converts text to the requested type) and the encoder (which quotes
/// strings that would otherwise read back as something else).
enum CoreSchema {
    /// Result of a numeric conversion.
    enum Number<T> {
        case value(T)
        case outOfRange
        case invalid
    }

    static func isNull(_ s: String) -> Bool {
        s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
    }

    static func bool(_ s: String) -> Bool? {
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    /// `[-+]?` followed by decimal digits, `0x` hex digits or `0o` octal digits; overflow checked.
    static func integer<T: FixedWidthInteger>(_ s: String, as _: T.Type) -> Number<T> {
        let u = Array(s.utf8)
        var i = 0
        var negative = false
        if i < u.count, u[i] == 0x2B || u[i] == 0x2D { negative = u[i] == 0x2D; i += 1 }
        var radix: UInt8 = 10
        if i + 1 < u.count, u[i] == 0x30, u[i + 1] == 0x78 || u[i + 1] == 0x6F {
            radix = u[i + 1] == 0x78 ? 16 : 8
            i += 2
        }
        guard i < u.count else { return .invalid }
        var value: T = 0
        var overflow = false
        while i < u.count {
            guard let d = digit(u[i]), d < radix else { return .invalid }
            if !overflow {
                let (m, o1) = value.multipliedReportingOverflow(by: T(radix))
                let (r, o2) = negative ? m.subtractingReportingOverflow(T(d)) : m.addingReportingOverflow(T(d))
                value = r
                overflow = o1 || o2
            }
            i += 1
        }
        return overflow ? .outOfRange : .value(value)
    }

    /// Decimal / exponent notation, `.inf`, `-.inf`, `.nan`, and integers (incl. hex/octal).
    static func floating<T: BinaryFloatingPoint & LosslessStringConvertible>(_ s: String, as _: T.Type) -> Number<T> {
        switch s {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .value(T.infinity)
        case "-.inf", "-.Inf", "-.INF": return .value(-T.infinity)
        case ".nan", ".NaN", ".NAN": return .value(T.nan)
        default: break
        }
        if isDecimalFloat(s) {
            guard let v = T(s) else { return .invalid }
            return v.isInfinite ? .outOfRange : .value(v)
        }
        switch integer(s, as: Int64.self) {
        case .value(let v): return .value(T(v))
        case .outOfRange:
            if case .value(let v) = integer(s, as: UInt64.self) { return .value(T(v)) }
            return .outOfRange
        case .invalid: return .invalid
        }
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    static func isDecimalFloat(_ s: String) -> Bool {
        let u = Array(s.utf8)
        var i = 0
        func digits() -> Int {
            let start = i
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 { i += 1 }
            return i - start
        }
        if i < u.count, u[i] == 0x2B || u[i] == 0x2D { i += 1 }
        let intDigits = digits()
        if i < u.count, u[i] == 0x2E {
            i += 1
            if digits() == 0, intDigits == 0 { return false }
        } else if intDigits == 0 {
            return false
        }
        if i < u.count, u[i] == 0x65 || u[i] == 0x45 {
            i += 1
            if i < u.count, u[i] == 0x2B || u[i] == 0x2D { i += 1 }
            if digits() == 0 { return false }
        }
        return i == u.count
    }

    /// True when a plain scalar with this text would not read back as a string:
    /// core-schema null/bool/int/float, plus YAML 1.1 spellings (yes/no/on/off,
    /// `0b…`, `1_000`, `1:20`, dates) so that other YAML readers agree too.
    static func resolvesToNonString(_ s: String) -> Bool {
        if isNull(s) || bool(s) != nil { return true }
        if case .invalid = floating(s, as: Double.self) {} else { return true }
        switch s {
        case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
             "on", "On", "ON", "off", "Off", "OFF":
            return true
        default: break
        }
        return isYAML11Number(s)
    }

    /// YAML 1.1 integers, floats, sexagesimals and timestamps, loosely:
    /// `[-+]?` then `0b…`, `0x…`, `[0-9_]+`, `[0-9_]*\.[0-9._]*(e±N)?`,
    /// `N(:NN)+(.N)?` or a `YYYY-M…` date prefix.
    static func isYAML11Number(_ s: String) -> Bool {
        var u = Array(s.utf8)[...]
        if let f = u.first, f == 0x2B || f == 0x2D { u = u.dropFirst() }
        let isDigit = { (c: UInt8) in c >= 0x30 && c <= 0x39 }
        let isDigitOrUnderscore = { (c: UInt8) in isDigit(c) || c == 0x5F }
        guard let first = u.first, isDigit(first) || first == 0x2E else { return false }
        if u.count > 2, first == 0x30, let p = u.dropFirst().first, p == 0x62 || p == 0x78 {  // 0b / 0x
            return u.dropFirst(2).allSatisfy { $0 == 0x5F || (p == 0x62 ? ($0 == 0x30 || $0 == 0x31) : digit($0) != nil) }
        }
        if u.allSatisfy(isDigitOrUnderscore) { return true }
        // Date: four digits and a dash.
        if u.count >= 6, u.prefix(4).allSatisfy(isDigit), u[u.startIndex + 4] == 0x2D { return true }
        // Float: digits, one dot, digits and dots, optional exponent.
        let mantissa = u.prefix { $0 != 0x65 && $0 != 0x45 }
        let exponent = u.dropFirst(mantissa.count)
        if mantissa.contains(0x2E), mantissa.allSatisfy({ isDigitOrUnderscore($0) || $0 == 0x2E }),
           exponent.isEmpty || (exponent.count > 1 && exponent.dropFirst().drop { $0 == 0x2B || $0 == 0x2D }.allSatisfy(isDigit)) {
            return true
        }
        // Sexagesimal: digits then (:[0-5]?[0-9])+, optional fraction.
        let head = u.prefix(while: isDigitOrUnderscore)
        guard !head.isEmpty, head.count < u.count, u[head.endIndex] == 0x3A else { return false }
        let fraction = u.drop { $0 != 0x2E }
        guard fraction.dropFirst().allSatisfy(isDigitOrUnderscore) else { return false }
        let groups = u[head.endIndex..<fraction.startIndex].split(separator: 0x3A, omittingEmptySubsequences: false).dropFirst()
        return groups.allSatisfy { g in (1...2).contains(g.count) && g.allSatisfy(isDigit) && (g.count == 1 || g[g.startIndex] <= 0x35) }
    }

    static func digit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
