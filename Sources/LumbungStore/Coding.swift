import Foundation

/// Dates are stored as whole Unix milliseconds (`INTEGER`), so they sort, compare in SQL
/// and hash the same on every platform. Sub-millisecond precision is dropped.
enum Millis {
    static func from(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(_ ms: Int64) -> Date {
        Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    static func from(_ date: Date?) -> Int64? { date.map(from) }
    static func date(_ ms: Int64?) -> Date? { ms.map(date) }

    /// Rounds a date to what the store keeps.
    static func rounded(_ date: Date) -> Date { self.date(from(date)) }
}

/// JSON text columns (labels, observations, request payloads): sorted keys, dates as Unix milliseconds.
enum JSONColumn {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        // Empty label and tag maps are most of them: the encoder's exact output, without the encoder.
        if let map = value as? [String: String], map.isEmpty { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Millis.from(date))
        }
        let data = try encoder.encode(value)
        return String(decoding: data, as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, from text: String, what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            Millis.date(try decoder.singleValueContainer().decode(Int64.self))
        }
        do {
            return try decoder.decode(type, from: Data(text.utf8))
        } catch {
            throw StoreError(.corrupt, "the database holds \(what) that cannot be decoded: \(error)", detail: text)
        }
    }
}

/// Reads a raw value into an enum, or reports a corrupt value.
func decodeEnum<E: RawRepresentable<String>>(_ type: E.Type, _ raw: String, what: String) throws -> E {
    guard let value = E(rawValue: raw) else {
        throw StoreError.corrupt("\(what) '\(raw)'")
    }
    return value
}

/// Lowercase hex of some bytes.
func hex<S: Sequence<UInt8>>(_ bytes: S) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
