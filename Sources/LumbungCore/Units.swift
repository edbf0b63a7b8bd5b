/// An amount of memory or storage in bytes, always a whole number of MiB.
///
/// Parsed from binary units only (`512MiB`, `8GiB`, `2TiB`, `1PiB`; decimals such as
/// `1.5GiB` are accepted when they come to a whole number of MiB). Decimal or bare units
/// (`8G`, `8GB`, `8`) are refused as ambiguous, as are zero, negative and absurd amounts.
/// Encoded in JSON as a number of bytes.
public struct ByteSize: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    /// The amount in bytes. May be negative only as a difference (e.g. a quota delta).
    public var bytes: Int64

    public static let kib: Int64 = 1024
    public static let mib: Int64 = 1024 * 1024
    public static let gib: Int64 = 1024 * 1024 * 1024
    public static let tib: Int64 = 1024 * 1024 * 1024 * 1024
    public static let pib: Int64 = 1024 * 1024 * 1024 * 1024 * 1024

    /// The largest single amount accepted anywhere: 64 PiB. Anything larger is a typo.
    public static let absurd = ByteSize(bytes: 64 * pib)

    public static let zero = ByteSize(bytes: 0)

    public init(bytes: Int64) { self.bytes = bytes }
    public static func mib(_ n: Int64) -> ByteSize { ByteSize(bytes: n * mib) }
    public static func gib(_ n: Int64) -> ByteSize { ByteSize(bytes: n * gib) }
    public static func tib(_ n: Int64) -> ByteSize { ByteSize(bytes: n * tib) }

    /// Decodes a plain JSON number of bytes.
    public init(from decoder: any Decoder) throws {
        self.bytes = try decoder.singleValueContainer().decode(Int64.self)
    }

    /// Encodes as a plain JSON number of bytes.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(bytes)
    }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }
    public static func + (lhs: ByteSize, rhs: ByteSize) -> ByteSize { ByteSize(bytes: lhs.bytes + rhs.bytes) }
    public static func - (lhs: ByteSize, rhs: ByteSize) -> ByteSize { ByteSize(bytes: lhs.bytes - rhs.bytes) }
    public static func += (lhs: inout ByteSize, rhs: ByteSize) { lhs.bytes += rhs.bytes }
    public static func -= (lhs: inout ByteSize, rhs: ByteSize) { lhs.bytes -= rhs.bytes }

    private static let units: [(String, Int64)] = [("PiB", pib), ("TiB", tib), ("GiB", gib), ("MiB", mib)]

    /// Parses a positive amount such as `8GiB`; `what` names the field in errors (e.g. "memory").
    /// - Parameter allowSign: accept a leading `+` or `-` (for quota deltas); the result may then be negative.
    public static func parse(_ text: String, what: String, allowSign: Bool = false) throws(CoreError) -> ByteSize {
        let accepted = "write a whole or decimal number with a binary unit, e.g. 512MiB, 8GiB, 1.5TiB (units MiB, GiB, TiB, PiB)"
        var body = Substring(text.trimmingSpaces())
        var sign: Int64 = 1
        if let first = body.first, first == "+" || first == "-" {
            guard allowSign else {
                throw CoreError(.invalidAmount, "\(what) '\(text)' must be positive; \(accepted)")
            }
            sign = first == "-" ? -1 : 1
            body = body.dropFirst()
        }
        guard let unit = units.first(where: { body.hasSuffix($0.0) }) else {
            let hint = body.last.map { $0.isNumber } == true ? "has no unit" : "has an unknown or ambiguous unit"
            throw CoreError(.invalidAmount, "\(what) '\(text)' \(hint); \(accepted)")
        }
        let number = body.dropLast(unit.0.count)
        guard let value = Decimal(parsing: number) else {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is not a number with a unit; \(accepted)")
        }
        // value = whole + frac/10^digits; bytes = value * unit, must be a whole number of MiB.
        let unitMiB = unit.1 / mib
        guard value.whole <= (absurd.bytes / unit.1) + 1 else {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is absurdly large; the largest accepted amount is \(absurd)")
        }
        let scale = Decimal.pow10(value.fractionDigits)
        let scaledMiB = value.whole * unitMiB * scale + value.fraction * unitMiB
        guard scaledMiB % scale == 0 else {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is not a whole number of MiB; \(accepted)")
        }
        let totalMiB = scaledMiB / scale
        guard totalMiB <= absurd.bytes / mib else {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is absurdly large; the largest accepted amount is \(absurd)")
        }
        if totalMiB == 0 {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is zero; it must be at least 1MiB")
        }
        return ByteSize(bytes: sign * totalMiB * mib)
    }

    /// The shortest exact form with a binary unit, e.g. `8GiB`, `1536MiB` → `1.5GiB`, `-2GiB`.
    public var description: String {
        if bytes == 0 { return "0B" }
        let sign = bytes < 0 ? "-" : ""
        let magnitude = bytes.magnitude
        for (name, size) in Self.units {
            let s = UInt64(size)
            if magnitude >= s {
                if magnitude % s == 0 { return "\(sign)\(magnitude / s)\(name)" }
                // Up to two decimals when exact, otherwise fall through to a smaller unit.
                // (Works on the remainder so huge amounts cannot overflow `magnitude * 100`.)
                let remainder = magnitude % s
                if (remainder * 100) % s == 0 {
                    let frac = remainder * 100 / s
                    let fracText = frac % 10 == 0 ? "\(frac / 10)" : (frac < 10 ? "0\(frac)" : "\(frac)")
                    return "\(sign)\(magnitude / s).\(fracText)\(name)"
                }
            }
        }
        if magnitude % UInt64(Self.kib) == 0 { return "\(sign)\(magnitude / UInt64(Self.kib))KiB" }
        return "\(sign)\(magnitude)B"
    }
}

/// Parses a whole, positive vCPU count (`4`). Zero, negative, fractional and absurd (> 4096)
/// counts are refused.
public enum VCPU {
    /// The largest count accepted anywhere.
    public static let absurd = 4096

    /// Parses a vCPU count; `allowSign` accepts `+8`/`-2` for quota deltas.
    public static func parse(_ text: String, what: String = "vCPU", allowSign: Bool = false) throws(CoreError) -> Int {
        let accepted = "write a whole number of vCPUs from 1 to \(absurd), e.g. 4"
        var body = Substring(text.trimmingSpaces())
        var sign = 1
        if let first = body.first, first == "+" || first == "-" {
            guard allowSign else {
                throw CoreError(.invalidAmount, "\(what) '\(text)' must be positive; \(accepted)")
            }
            sign = first == "-" ? -1 : 1
            body = body.dropFirst()
        }
        if body.contains(".") || body.contains(",") {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is fractional; \(accepted)")
        }
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is not a whole number; \(accepted)")
        }
        guard body.count <= 6, let value = Int(body), value <= absurd else {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is absurdly large; \(accepted)")
        }
        if value == 0 {
            throw CoreError(.invalidAmount, "\(what) '\(text)' is zero; \(accepted)")
        }
        return sign * value
    }

    /// Checks an already-numeric vCPU count (e.g. from JSON).
    public static func validate(_ value: Int, what: String = "vCPU") throws(CoreError) -> Int {
        guard value >= 1 else {
            throw CoreError(.invalidAmount, "\(what) \(value) must be at least 1; write a whole number of vCPUs from 1 to \(absurd)")
        }
        guard value <= absurd else {
            throw CoreError(.invalidAmount, "\(what) \(value) is absurdly large; write a whole number of vCPUs from 1 to \(absurd)")
        }
        return value
    }
}

extension ByteSize {
    /// Checks an already-numeric size (e.g. from JSON): positive, whole MiB, not absurd.
    public static func validate(_ size: ByteSize, what: String) throws(CoreError) -> ByteSize {
        guard size.bytes > 0 else {
            throw CoreError(.invalidAmount, "\(what) \(size) must be positive (at least 1MiB)")
        }
        guard size.bytes % mib == 0 else {
            throw CoreError(.invalidAmount, "\(what) of \(size.bytes) bytes is not a whole number of MiB")
        }
        guard size <= absurd else {
            throw CoreError(.invalidAmount, "\(what) \(size) is absurdly large; the largest accepted amount is \(absurd)")
        }
        return size
    }
}

/// A small exact decimal parser (no Foundation): `12`, `1.5`, `0.25`.
struct Decimal {
    var whole: Int64
    var fraction: Int64
    var fractionDigits: Int

    init?(parsing text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let wholeText = parts[0]
        guard !wholeText.isEmpty, wholeText.count <= 15, wholeText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let w = Int64(wholeText)
        else { return nil }
        whole = w
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 6, f.allSatisfy({ $0.isASCII && $0.isNumber }), let fv = Int64(f) else { return nil }
            fraction = fv
            fractionDigits = f.count
        } else {
            fraction = 0
            fractionDigits = 0
        }
    }

    static func pow10(_ n: Int) -> Int64 {
        var r: Int64 = 1
        for _ in 0..<n { r *= 10 }
        return r
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
