import Foundation
import LumbungCore

/// The JSON of a ``VM`` written directly, byte for byte what `StrictJSON.encode` (JSONEncoder with
/// sorted keys and ISO 8601 dates) gives, without the encoder: every allocation encodes its VM
/// once (for its audit entry, whose text is also the response), and the encoder was a large
/// part of an allocation's CPU.
///
/// Only for the common case: ASCII text without control characters (so key order is byte order
/// and the only escapes are `"`, `\` and `/`), no observation, dates between the years 1970 and
/// 9999. Anything else returns nil and the caller uses the encoder. A test compares both.
enum FastJSON {
    static func vm(_ vm: VM) -> String? {
        guard vm.observed == nil else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(384)
        guard let created = date(vm.createdAt) else { return nil }
        out.append(contentsOf: #"{"createdAt":""#.utf8)
        out.append(contentsOf: created.utf8)
        out.append(contentsOf: #"","desiredPower":"#.utf8)
        guard string(vm.desiredPower.rawValue, &out) else { return nil }
        if let host = vm.host {
            out.append(contentsOf: #","host":"#.utf8)
            guard string(host.rawValue, &out) else { return nil }
        }
        out.append(contentsOf: #","id":"#.utf8)
        guard string(vm.id.rawValue, &out) else { return nil }
        out.append(contentsOf: #","opd":"#.utf8)
        guard string(vm.opd.rawValue, &out) else { return nil }
        out.append(contentsOf: #","spec":{"#.utf8)
        let spec = vm.spec
        if let app = spec.app {
            out.append(contentsOf: #""app":"#.utf8)
            guard string(app, &out) else { return nil }
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: #""disk":"#.utf8)
        out.append(contentsOf: String(spec.disk.bytes).utf8)
        out.append(contentsOf: #","forbiddenLabels":"#.utf8)
        guard map(spec.forbiddenLabels, &out) else { return nil }
        if let image = spec.image {
            out.append(contentsOf: #","image":"#.utf8)
            guard string(image, &out) else { return nil }
        }
        out.append(contentsOf: #","memory":"#.utf8)
        out.append(contentsOf: String(spec.memory.bytes).utf8)
        out.append(contentsOf: #","name":"#.utf8)
        guard string(spec.name, &out) else { return nil }
        out.append(contentsOf: #","pool":"#.utf8)
        guard string(spec.pool.rawValue, &out) else { return nil }
        out.append(contentsOf: #","requiredLabels":"#.utf8)
        guard map(spec.requiredLabels, &out) else { return nil }
        if !spec.tags.isEmpty {
            out.append(contentsOf: #","tags":"#.utf8)
            guard map(spec.tags, &out) else { return nil }
        }
        out.append(contentsOf: #","vcpu":"#.utf8)
        out.append(contentsOf: String(spec.vcpu).utf8)
        out.append(contentsOf: #"},"state":"#.utf8)
        guard string(vm.state.rawValue, &out) else { return nil }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON string; false for text outside printable ASCII.
    static func string(_ text: String, _ out: inout [UInt8]) -> Bool {
        out.append(UInt8(ascii: "\""))
        for b in text.utf8 {
            guard b >= 0x20 && b < 0x7F else { return false }
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                out.append(UInt8(ascii: "\\"))
                out.append(b)
            default:
                out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
        return true
    }

    /// A string map with keys in byte order (JSONEncoder's `sortedKeys` for ASCII keys).
    static func map(_ m: [String: String], _ out: inout [UInt8]) -> Bool {
        out.append(UInt8(ascii: "{"))
        var first = true
        for key in m.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            guard string(key, &out) else { return false }
            out.append(UInt8(ascii: ":"))
            guard string(m[key]!, &out) else { return false }
        }
        out.append(UInt8(ascii: "}"))
        return true
    }

    /// `yyyy-MM-ddTHH:mm:ssZ` in UTC, whole seconds rounded down (as `.iso8601` writes it).
    static func date(_ date: Date) -> String? {
        let t = date.timeIntervalSince1970
        guard t >= 0, t < 253_402_300_800 else { return nil }  // 1970 ..< 10000
        let seconds = Int64(t.rounded(.down))
        let days = seconds / 86_400
        let rest = seconds % 86_400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let y = String(year)
        return String(repeating: "0", count: max(0, 4 - y.count)) + y + "-" + two(month) + "-" + two(day) + "T" + two(rest / 3600) + ":"
            + two(rest % 3600 / 60) + ":" + two(rest % 60) + "Z"
    }
}
