import Foundation
import LumbungCore
import Yams

/// One key of a YAML mapping with the line of the key and the line its value's problems are
/// reported at (the value's own line for a scalar on the key's line, otherwise the key's).
struct Entry {
    var key: String
    var keyLine: Int
    var value: Node

    var line: Int {
        if case .scalar(let s) = value, !s.isNull, let l = s.mark?.line { return l }
        return keyLine
    }
}

/// A mapping's entries in file order, checked against the allowed keys.
struct Fields {
    /// The line of the key that holds the mapping (or the mapping's own first line).
    var line: Int
    var entries: [Entry]

    subscript(key: String) -> Entry? { entries.first { $0.key == key } }
}

extension Node.Scalar {
    var isNull: Bool { NSNull.construct(from: self) != nil }
}

extension Node {
    /// 1-based line of the node (0 when unknown).
    var line: Int { mark?.line ?? 0 }

    /// How a value is described in errors: `'text'`, `nothing`, `a list`, `a mapping`.
    var shown: String {
        switch self {
        case .scalar(let s): s.isNull ? "nothing" : "'\(s.string.prefix(80))'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// The text of a non-null scalar.
    var text: String? {
        guard case .scalar(let s) = self, !s.isNull else { return nil }
        return s.string
    }
}

/// Reads the nodes of one policy file, collecting every problem instead of stopping at the first.
final class NodeReader {
    let file: String
    private(set) var errors: [PolicyError] = []

    init(file: String) { self.file = file }

    func error(_ line: Int?, _ message: String) {
        errors.append(PolicyError(file: file, line: line, message: message))
    }

    /// The entries of a mapping. Unknown keys are reported (with the allowed ones) and skipped;
    /// missing required keys are reported at `line`. Nil when `node` is not a mapping.
    func fields(_ node: Node, line: Int, what: String, allowed: [String], required: [String] = []) -> Fields? {
        guard case .mapping(let mapping) = node else {
            error(line, "\(what) must be a mapping with keys \(allowed.joined(separator: ", ")); got \(node.shown)")
            return nil
        }
        var out = Fields(line: line, entries: [])
        for (key, value) in mapping {
            guard let name = key.text else {
                error(key.line, "\(what) has a key that is not a plain word (\(key.shown)); allowed keys: \(allowed.joined(separator: ", "))")
                continue
            }
            guard allowed.contains(name) else {
                error(key.line, "unknown key '\(name)' in \(what); allowed keys: \(allowed.joined(separator: ", "))")
                continue
            }
            out.entries.append(Entry(key: name, keyLine: key.line, value: value))
        }
        for key in required where out[key] == nil {
            error(line, "\(what) lacks '\(key)'; it needs \(required.map { "'\($0)'" }.joined(separator: ", "))")
        }
        return out
    }

    /// The entries of a mapping whose keys are chosen by the writer (class names, pool names).
    func namedEntries(_ node: Node, line: Int, what: String, example: String) -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            error(line, "\(what) must be a mapping of names to entries, e.g. \(example); got \(node.shown)")
            return nil
        }
        var out: [Entry] = []
        for (key, value) in mapping {
            guard let name = key.text else {
                error(key.line, "\(what) has a key that is not a name (\(key.shown)), e.g. \(example)")
                continue
            }
            out.append(Entry(key: name, keyLine: key.line, value: value))
        }
        return out
    }

    /// A whole number in `range`.
    func int(_ node: Node, line: Int, what: String, range: ClosedRange<Int>, example: Int) -> Int? {
        let accepted = "a whole number from \(range.lowerBound) to \(range.upperBound), e.g. \(example)"
        guard let text = node.text, let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            error(line, "\(what) must be \(accepted); got \(node.shown)")
            return nil
        }
        guard range.contains(value) else {
            error(line, "\(what) is \(value); it must be \(accepted)")
            return nil
        }
        return value
    }

    /// A vCPU count parsed with Core's rules (``VCPU/validate(_:what:)``), or 0 when `allowZero`.
    func vcpu(_ node: Node, line: Int, what: String, allowZero: Bool) -> Int? {
        guard let text = node.text, let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            error(line, "\(what) must be a whole number of vCPUs, e.g. 4; got \(node.shown)")
            return nil
        }
        if allowZero && value == 0 { return 0 }
        do throws(CoreError) {
            return try VCPU.validate(value, what: what)
        } catch {
            self.error(line, error.message)
            return nil
        }
    }

    /// An amount with a binary unit parsed with Core's rules (``ByteSize/parse(_:what:allowSign:)``);
    /// a bare `0` is accepted when `allowZero`.
    func byteSize(_ node: Node, line: Int, what: String, allowZero: Bool) -> ByteSize? {
        guard let text = node.text else {
            error(line, "\(what) must be an amount with a binary unit, e.g. 8GiB; got \(node.shown)")
            return nil
        }
        if allowZero && text.trimmingCharacters(in: .whitespaces) == "0" { return .zero }
        do throws(CoreError) {
            return try ByteSize.parse(text, what: what)
        } catch {
            self.error(line, error.message)
            return nil
        }
    }

    /// `true` or `false`.
    func bool(_ node: Node, line: Int, what: String) -> Bool? {
        guard case .scalar(let s) = node, let value = Bool.construct(from: s) else {
            error(line, "\(what) must be true or false; got \(node.shown)")
            return nil
        }
        return value
    }

    /// An overcommit ratio: a number above 0 and at most 100.
    func ratio(_ node: Node, line: Int, what: String) -> Double? {
        guard let text = node.text, let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            error(line, "\(what) must be a number above 0, e.g. 4.0; got \(node.shown)")
            return nil
        }
        guard value > 0 else {
            error(line, "\(what) is \(text); a ratio must be above 0 (1.0 allocates exactly the physical amount, 4.0 four times it)")
            return nil
        }
        guard value <= 100 else {
            error(line, "\(what) is \(text); a ratio above 100 is surely a typo, write e.g. 4.0")
            return nil
        }
        return value
    }

    /// Non-empty text.
    func string(_ node: Node, line: Int, what: String) -> String? {
        guard let text = node.text, !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            error(line, "\(what) must be text; got \(node.shown)")
            return nil
        }
        return text
    }

    /// One of `choices`.
    func choice(_ node: Node, line: Int, what: String, choices: [String]) -> String? {
        guard let text = node.text, choices.contains(text) else {
            error(line, "\(what) must be one of \(choices.joined(separator: ", ")); got \(node.shown)")
            return nil
        }
        return text
    }

    /// A list (or one scalar, read as a list of one) of scalars, each with its line.
    func list(_ node: Node, line: Int, what: String, example: String) -> [(text: String, line: Int)]? {
        switch node {
        case .scalar(let s) where !s.isNull:
            return [(s.string, s.mark?.line ?? line)]
        case .sequence(let seq):
            var out: [(String, Int)] = []
            for item in seq {
                guard let text = item.text else {
                    error(item.line, "each entry of \(what) must be a single word, e.g. \(example); got \(item.shown)")
                    continue
                }
                out.append((text, item.line))
            }
            return out
        default:
            error(line, "\(what) must be a list, e.g. \(example); got \(node.shown)")
            return nil
        }
    }

    /// Names checked with Core's ``Name`` rules.
    func names(_ node: Node, line: Int, what: String, example: String) -> [(text: String, line: Int)]? {
        list(node, line: line, what: what, example: example)?.filter { item in
            do throws(CoreError) {
                _ = try Name.validate(item.text, what: "\(what) entry")
                return true
            } catch {
                self.error(item.line, error.message)
                return false
            }
        }
    }

    /// A mapping of label keys to values, each pair checked with Core's ``HostLabel`` rules.
    func labels(_ node: Node, line: Int, what: String) -> [String: String]? {
        guard case .mapping(let mapping) = node else {
            error(line, "\(what) must be a mapping of label keys to values, e.g. {certified: pdp}; got \(node.shown)")
            return nil
        }
        var out: [String: String] = [:]
        for (key, value) in mapping {
            guard let k = key.text, let v = value.text else {
                error(key.line, "\(what) must map a label key to one value, e.g. certified: pdp; got \(key.shown): \(value.shown)")
                continue
            }
            do throws(CoreError) {
                try HostLabel.validate(key: k, value: v, what: what)
                out[k] = v
            } catch {
                self.error(key.line, error.message)
            }
        }
        return out
    }
}
