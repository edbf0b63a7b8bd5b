import Foundation

/// JSON coding shared by the controller and its clients: ISO 8601 dates, sorted keys,
/// and a decoder that refuses unknown fields.
public enum StrictJSON {
    /// The encoder used on both sides of the wire.
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }

    /// A lenient decoder (for responses, which may gain fields in later versions).
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }

    /// Encodes a value.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        try encoder().encode(value)
    }

    /// Decodes a request body and refuses it when it has a field the type does not know.
    ///
    /// Unknown fields are found by decoding, re-encoding and comparing the key sets of the
    /// input and the re-encoded value, recursively; keys whose input value is `null` are
    /// ignored (an absent optional). Errors name the offending path.
    public static func decodeStrict<T: Codable>(_ type: T.Type, from data: Data) throws(StrictJSONError) -> T {
        guard let input = JSONShape.parse(Array(data)) else {
            throw StrictJSONError(message: "the body is not valid JSON")
        }
        let value: T
        do {
            value = try decoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw StrictJSONError(message: describe(error))
        } catch {
            throw StrictJSONError(message: "the body could not be read: \(error)")
        }
        guard let reencoded = try? encoder().encode(value), let shape = JSONShape.parse(Array(reencoded)) else {
            return value
        }
        if let path = firstUnknown(input: input, known: shape, path: "") {
            throw StrictJSONError(message: "unknown field '\(path)'; remove it (see openapi.yaml for the accepted fields)")
        }
        return value
    }

    private static func firstUnknown(input: JSONShape, known: JSONShape, path: String) -> String? {
        switch (input, known) {
        case (.object(let i), .object(let k)):
            for key in i.keys.sorted() {
                let child = path.isEmpty ? key : "\(path).\(key)"
                let value = i[key]!
                guard let kv = k[key] else {
                    if case .null = value { continue }
                    return child
                }
                if let found = firstUnknown(input: value, known: kv, path: child) { return found }
            }
            return nil
        case (.array(let i), .array(let k)):
            for (index, element) in i.enumerated() where index < k.count {
                if let found = firstUnknown(input: element, known: k[index], path: "\(path)[\(index)]") { return found }
            }
            return nil
        default:
            return nil
        }
    }

    /// A sentence for a decoding error: which field, and what was expected.
    public static func describe(_ error: DecodingError) -> String {
        func pathText(_ path: [any CodingKey]) -> String {
            let text = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return text.isEmpty ? "the body" : "'\(text)'"
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return "missing field '\((ctx.codingPath + [key]).map { $0.stringValue }.joined(separator: "."))'"
        case .typeMismatch(let type, let ctx):
            return "\(pathText(ctx.codingPath)) has the wrong type; expected \(type)"
        case .valueNotFound(let type, let ctx):
            return "\(pathText(ctx.codingPath)) is null; expected \(type)"
        case .dataCorrupted(let ctx):
            return "\(pathText(ctx.codingPath)) is invalid: \(ctx.debugDescription)"
        @unknown default:
            return "the body could not be read"
        }
    }
}

/// A request body that could not be accepted.
public struct StrictJSONError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Unknown keys of a config file's top-level mapping (for YAML/JSON configs decoded with a
/// `Decoder`): callers refuse them with an error that lists the accepted keys.
public enum ConfigKeys {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The keys present in `decoder`'s mapping that are not in `accepted`, sorted.
    public static func unknown(in decoder: any Decoder, accepted: [String]) throws -> [String] {
        try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter { !accepted.contains($0) }.sorted()
    }
}
