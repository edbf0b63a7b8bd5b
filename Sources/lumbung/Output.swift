import Foundation
import LumbungAPI
import LumbungCore

/// Printing answers: aligned tables and `key: value` blocks for people, pretty JSON for scripts.
enum Output {
    /// Prints a value as JSON, pretty-printed with sorted keys and ISO 8601 dates (the API's encoding).
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw CLIError("cannot print the answer as JSON: \(error)")
        }
        print(String(decoding: data, as: UTF8.self))
    }

    /// Prints an aligned table; an empty one prints `empty` instead.
    static func table(_ headers: [String], _ rows: [[String]], empty: String? = nil) {
        if rows.isEmpty, let empty {
            print(empty)
            return
        }
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count {
                widths[i] = max(widths[i], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                if i == cells.count - 1 {
                    out += cell
                } else {
                    out += cell + String(repeating: " ", count: widths[i] - cell.count + 2)
                }
            }
            while out.hasSuffix(" ") { out.removeLast() }
            return out
        }
        print(line(headers))
        for row in rows { print(line(row)) }
    }

    /// Prints `key: value` lines with the values aligned.
    static func fields(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (key, value) in pairs {
            let lines = value.split(separator: "\n", omittingEmptySubsequences: false)
            let pad = String(repeating: " ", count: width - key.count + 1)
            print("\(key):\(pad)\(lines.first.map(String.init) ?? "")")
            for more in lines.dropFirst() {
                print(String(repeating: " ", count: width + 2) + more)
            }
        }
    }

    /// Prints an OPD's quota as dimension | quota | used | left.
    static func quotaTable(_ view: OPDView) {
        let dims = Dimension.all(in: view.quota, view.usage, view.left)
        table(
            ["DIMENSION", "QUOTA", "USED", "LEFT"],
            dims.map { d in
                [Format.dimension(d), Format.amount(d, d.amount(in: view.quota)), Format.amount(d, d.amount(in: view.usage)),
                    Format.amount(d, d.amount(in: view.left))]
            })
    }
}

/// Formatting of amounts, dates and vectors for tables.
enum Format {
    static func dimension(_ d: Dimension) -> String {
        switch d {
        case .vcpu: "vCPU"
        case .memory: "memory"
        case .storage(let pool): "storage \(pool)"
        case .vms: "VMs"
        case .volumes: "volumes"
        }
    }

    /// A bare amount for a table cell: `32`, `64GiB`.
    static func amount(_ d: Dimension, _ value: Int64) -> String {
        switch d {
        case .vcpu, .vms, .volumes: String(value)
        case .memory, .storage: ByteSize(bytes: value).description
        }
    }

    /// A signed amount for quota deltas: `+8 vCPU`, `-16GiB memory`.
    static func delta(_ d: Dimension, _ value: Int64) -> String {
        let sign = value >= 0 ? "+" : ""
        switch d {
        case .vcpu: return "\(sign)\(value) vCPU"
        case .memory: return "\(sign)\(ByteSize(bytes: value)) memory"
        case .storage(let pool): return "\(sign)\(ByteSize(bytes: value)) storage in \(pool)"
        case .vms: return "\(sign)\(value) VMs"
        case .volumes: return "\(sign)\(value) volumes"
        }
    }

    /// `ssd=2TiB hdd=20TiB`, or `-` when there is none.
    static func pools(_ pools: [PoolName: ByteSize]) -> String {
        let items = pools.filter { $0.value.bytes != 0 }.sorted { $0.key < $1.key }
        return items.isEmpty ? "-" : items.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// `used/limit` per pool: `ssd=100GiB/2TiB hdd=0B/1TiB`.
    static func poolsUsed(_ used: [PoolName: ByteSize], of limit: [PoolName: ByteSize]) -> String {
        let names = Set(used.filter { $0.value.bytes != 0 }.keys).union(limit.filter { $0.value.bytes != 0 }.keys).sorted()
        if names.isEmpty { return "-" }
        return names.map { "\($0)=\(used[$0] ?? .zero)/\(limit[$0] ?? .zero)" }.joined(separator: " ")
    }

    /// `32 vCPU, 64GiB memory, storage ssd=2TiB, 20 VMs, 40 volumes` (zero dimensions left out).
    static func vector(_ v: ResourceVector, counts: Bool = true) -> String {
        var parts: [String] = []
        parts.append("\(v.vcpu) vCPU")
        parts.append("\(v.memory) memory")
        let storage = pools(v.storage)
        if storage != "-" { parts.append("storage \(storage)") }
        if counts {
            parts.append(v.vms == 1 ? "1 VM" : "\(v.vms) VMs")
            parts.append(v.volumes == 1 ? "1 volume" : "\(v.volumes) volumes")
        }
        return parts.joined(separator: ", ")
    }

    /// A host's capacity: `64 CPUs, 256GiB memory, pools ssd=4TiB hdd=20TiB`.
    static func capacity(_ c: HostCapacity) -> String {
        "\(c.cpus) CPUs, \(c.memory) memory, pools \(pools(c.pools))"
    }

    static func labels(_ labels: [String: String]) -> String {
        labels.isEmpty ? "-" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func date(_ date: Date?) -> String {
        guard let date else { return "-" }
        return date.formatted(.iso8601)
    }

    static func ratio(_ value: Double) -> String {
        value == value.rounded() ? String(format: "%.1f", value) : String(value)
    }

    static func optional(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "-" }
        return text
    }

    /// What a request asks for, in one line.
    static func payload(_ payload: RequestPayload) -> String {
        switch payload {
        case .vm(let spec):
            var text = "VM \(spec.name): \(spec.vcpu) vCPU, \(spec.memory) memory, \(spec.disk) disk on \(spec.pool)"
            if let app = spec.app { text += ", app \(app)" }
            if let image = spec.image { text += ", image \(image)" }
            return text
        case .volume(let spec):
            return "volume \(spec.name): \(spec.size) on \(spec.pool)"
        case .quota(let delta):
            let parts = Dimension.all(in: delta).compactMap { d -> String? in
                let value = d.amount(in: delta)
                return value == 0 ? nil : Format.delta(d, value)
            }
            return "quota " + (parts.isEmpty ? "unchanged" : parts.joined(separator: ", "))
        }
    }
}

/// Core's resource dimension (Foundation has a `Dimension` class too).
typealias Dimension = LumbungCore.Dimension
