#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungCore

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
        var duplicateKeys = false
        guard let input = JSONShape.parse(Array(data), duplicateKeys: &duplicateKeys) else {
            throw StrictJSONError(message: "the body is not valid JSON")
        }
        // The hot body of `POST /v1/vms`, read straight from the parsed text when it is plainly
        // valid (anything unusual takes the general path below, which words the errors).
        if T.self == CreateVMBody.self, !duplicateKeys, let body = CreateVMBody(plain: input) {
            return body as! T
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

extension CreateVMBody {
    /// The body read directly from its parsed JSON, or nil when anything is missing, null where a
    /// value is required, of another type, or unknown; the general path (`JSONDecoder`, then
    /// the unknown-field check) then decides and words the error. For a body this accepts, that
    /// path gives the same value.
    init?(plain shape: JSONShape) {
        guard case .object(let root) = shape else { return nil }
        var opd: OPDID?
        var vm: VMBody?
        var force: Bool?
        for (key, value) in root {
            switch (key, value) {
            case ("opd", .string(let s)): opd = OPDID(rawValue: s)
            case ("vm", _): vm = VMBody(plain: value)
            case ("force", .bool(let b)): force = b
            case ("force", .null): force = nil
            case (_, .null) where key != "opd" && key != "vm": continue
            default: return nil
            }
        }
        guard let opd, let vm else { return nil }
        self.init(opd: opd, vm: vm, force: force)
    }
}

extension VMBody {
    init?(plain shape: JSONShape) {
        guard case .object(let fields) = shape else { return nil }
        var name: String?
        var vcpu: Int?
        var memory: Int64?
        var disk: Int64?
        var pool: String?
        var app: String?
        var image: String?
        var requireLabels: [String: String]?
        var forbidLabels: [String: String]?
        var tags: [String: String]?
        func integer(_ text: Substring) -> Int64? {
            // Plain integers only (no fraction or exponent).
            guard text.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "-") }) else { return nil }
            return Int64(text)
        }
        func labels(_ shape: JSONShape) -> [String: String]?? {
            switch shape {
            case .null: return .some(nil)
            case .object(let m):
                var out: [String: String] = [:]
                for (k, v) in m {
                    guard case .string(let s) = v else { return nil }
                    out[k] = s
                }
                return .some(out)
            default: return nil
            }
        }
        for (key, value) in fields {
            switch (key, value) {
            case ("name", .string(let s)): name = s
            case ("vcpu", .number(let n)):
                guard let v = integer(n), let i = Int(exactly: v) else { return nil }
                vcpu = i
            case ("memory", .number(let n)):
                guard let v = integer(n) else { return nil }
                memory = v
            case ("disk", .number(let n)):
                guard let v = integer(n) else { return nil }
                disk = v
            case ("pool", .string(let s)): pool = s
            case ("app", .string(let s)): app = s
            case ("image", .string(let s)): image = s
            case ("pool", .null), ("app", .null), ("image", .null): continue
            case ("requireLabels", _):
                guard let m = labels(value) else { return nil }
                requireLabels = m
            case ("forbidLabels", _):
                guard let m = labels(value) else { return nil }
                forbidLabels = m
            case ("tags", _):
                guard let m = labels(value) else { return nil }
                tags = m
            case (_, .null) where !["name", "vcpu", "memory", "disk"].contains(key): continue
            default: return nil
            }
        }
        guard let name, let vcpu, let memory, let disk else { return nil }
        self.init(
            name: name, vcpu: vcpu, memory: ByteSize(bytes: memory), disk: ByteSize(bytes: disk), pool: pool.map(PoolName.init(rawValue:)),
            app: app, image: image, requireLabels: requireLabels, forbidLabels: forbidLabels, tags: tags)
    }
}
