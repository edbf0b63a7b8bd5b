import ArgumentParser
import Foundation
import LumbungCore

/// Parsing of command-line values into wire values. Amounts and names go through Core
/// (`ByteSize.parse`, `VCPU.parse`, `Name.validate`) so the sentences are the same as the
/// controller's. Every error is a `ValidationError`: thrown from `validate()` it is a usage
/// error (exit 2) with the subcommand's usage line.
enum Input {
    /// The largest VM or volume count accepted in a quota.
    static let absurdCount = 100_000

    static func name(_ text: String, what: String) throws -> String {
        do {
            return try Name.validate(text, what: what)
        } catch {
            throw ValidationError(error.message)
        }
    }

    static func vcpu(_ text: String, what: String = "vCPU", allowSign: Bool = false) throws -> Int {
        do {
            return try VCPU.parse(text, what: what, allowSign: allowSign)
        } catch {
            throw ValidationError(error.message)
        }
    }

    static func size(_ text: String, what: String, allowSign: Bool = false) throws -> ByteSize {
        do {
            return try ByteSize.parse(text, what: what, allowSign: allowSign)
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// A whole count of VMs or volumes, 1…100000 (`+2`/`-1` with `allowSign`).
    static func count(_ text: String, what: String, allowSign: Bool = false) throws -> Int {
        let accepted = "write a whole number from 1 to \(absurdCount), e.g. 20"
        var body = Substring(text.trimmingCharacters(in: .whitespaces))
        var sign = 1
        if let first = body.first, first == "+" || first == "-" {
            guard allowSign else { throw ValidationError("\(what) '\(text)' must be positive; \(accepted)") }
            sign = first == "-" ? -1 : 1
            body = body.dropFirst()
        }
        if body.contains(".") || body.contains(",") {
            throw ValidationError("\(what) '\(text)' is fractional; \(accepted)")
        }
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ValidationError("\(what) '\(text)' is not a whole number; \(accepted)")
        }
        guard body.count <= 7, let value = Int(body), value <= absurdCount else {
            throw ValidationError("\(what) '\(text)' is absurdly large; \(accepted)")
        }
        if value == 0 { throw ValidationError("\(what) '\(text)' is zero; \(accepted)") }
        return sign * value
    }

    /// An overcommit ratio: a number greater than 0 and at most 64.
    static func ratio(_ text: String, what: String) throws -> Double {
        let accepted = "write a number greater than 0 and at most 64, e.g. 4.0"
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw ValidationError("\(what) '\(text)' is not a number; \(accepted)")
        }
        guard value > 0, value <= 64 else {
            throw ValidationError("\(what) '\(text)' is out of range; \(accepted)")
        }
        return value
    }

    /// `pool=SIZE` items (repeated or comma-separated), e.g. `ssd=2TiB,hdd=20TiB`.
    static func pools(_ items: [String], option: String, allowSign: Bool = false) throws -> [PoolName: ByteSize] {
        var result: [PoolName: ByteSize] = [:]
        for item in split(items) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ValidationError("\(option) '\(item)' is not POOL=SIZE; write e.g. \(option) ssd=2TiB")
            }
            let pool = PoolName(rawValue: try name(String(parts[0]), what: "pool name"))
            guard result[pool] == nil else {
                throw ValidationError("\(option) names pool '\(pool)' twice; give each pool once")
            }
            result[pool] = try size(String(parts[1]), what: "storage of pool \(pool)", allowSign: allowSign)
        }
        return result
    }

    /// `key=value` items (repeated or comma-separated), e.g. `rack=a,tier=ssd`, checked with Core's `HostLabel`.
    static func labels(_ items: [String], option: String, what: String = "label") throws -> [String: String] {
        var result: [String: String] = [:]
        for item in split(items) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ValidationError("\(option) '\(item)' is not KEY=VALUE; write e.g. \(option) rack=a")
            }
            let (key, value) = (String(parts[0]), String(parts[1]))
            do {
                try HostLabel.validate(key: key, value: value, what: what)
            } catch {
                throw ValidationError(error.message)
            }
            guard result[key] == nil else {
                throw ValidationError("\(option) names label '\(key)' twice; give each label once")
            }
            result[key] = value
        }
        return result
    }

    /// A base image name, checked with Core's `ImageName`.
    static func image(_ text: String) throws -> String {
        do {
            return try ImageName.validate(text)
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// A request id: a positive whole number.
    static func requestID(_ text: String) throws -> RequestID {
        let body = text.hasPrefix("#") ? String(text.dropFirst()) : text
        guard !body.isEmpty, body.count <= 18, body.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(body), value > 0
        else {
            throw ValidationError("request id '\(text)' is not a positive whole number; see the ids with: lumbung request list")
        }
        return RequestID(rawValue: value)
    }

    /// A reason people will read in the request list and the audit log.
    static func reason(_ text: String?, required: Bool, what: String = "reason") throws -> String? {
        let trimmed = (text ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            if required || text != nil {
                throw ValidationError("the \(what) is empty; say why in a sentence, e.g. --reason \"SIMPUS for 26 puskesmas\"")
            }
            return nil
        }
        guard trimmed.count <= 1000 else {
            throw ValidationError("the \(what) is \(trimmed.count) characters long; keep it under 1000")
        }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" }) else {
            throw ValidationError("the \(what) contains control characters; write plain text")
        }
        return trimmed
    }

    /// A human display name such as "Dinas Kesehatan".
    static func displayName(_ text: String) throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else {
            throw ValidationError("the OPD's full name is empty; write e.g. --name \"Dinas Kesehatan\"")
        }
        guard trimmed.count <= 200 else {
            throw ValidationError("the OPD's full name is \(trimmed.count) characters long; keep it under 200")
        }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValidationError("the OPD's full name contains control characters; write plain text")
        }
        return trimmed
    }

    /// An https:// URL of the controller, without a trailing slash.
    static func controllerURL(_ text: String) throws -> String {
        var url = text.trimmingCharacters(in: .whitespaces)
        while url.hasSuffix("/") { url.removeLast() }
        guard let parsed = URL(string: url), parsed.scheme?.lowercased() == "https", let host = parsed.host, !host.isEmpty,
            parsed.path.isEmpty, parsed.query == nil
        else {
            throw ValidationError("controller '\(text)' is not an https:// URL of a controller; write e.g. https://dc.example.go.id:7443")
        }
        return url
    }

    private static func split(_ items: [String]) -> [String] {
        items.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }
}
