import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns server names (DNS names or IP literals) into SAN entries.
enum ServerNames {
    /// Maps each name to a `GeneralName`: an IPv4/IPv6 literal becomes an IP
    /// SAN, anything else must be a DNS name (optionally `*.` wildcard) and
    /// becomes a DNS SAN (lowercased). Duplicates are dropped, order is kept.
    static func generalNames(_ names: [String]) throws -> [GeneralName] {
        guard !names.isEmpty else {
            throw PKIError(.invalidName, "a server certificate needs at least one DNS name or IP address")
        }
        var seen: Set<String> = []
        var result: [GeneralName] = []
        for raw in names {
            let general: GeneralName
            let key: String
            if let ip = ipBytes(raw) {
                general = .ipAddress(ASN1OctetString(contentBytes: ip[...]))
                key = "ip:" + ip.lowercaseHex
            } else {
                let dns = raw.lowercased()
                guard isValidDNSName(dns) else {
                    throw PKIError(
                        .invalidName,
                        "'\(raw)' is neither an IPv4/IPv6 address nor a DNS name (labels of a-z, 0-9 and '-', 1-63 characters each, optional leading '*.')"
                    )
                }
                general = .dnsName(dns)
                key = "dns:" + dns
            }
            if seen.insert(key).inserted { result.append(general) }
        }
        return result
    }

    /// 4 or 16 network-order bytes when `text` is an IPv4 or IPv6 literal.
    static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = [UInt8](repeating: 0, count: 4)
        if text.withCString({ inet_pton(AF_INET, $0, &v4) }) == 1 { return v4 }
        var v6 = [UInt8](repeating: 0, count: 16)
        if text.withCString({ inet_pton(AF_INET6, $0, &v6) }) == 1 { return v6 }
        return nil
    }

    static func isValidDNSName(_ name: String) -> Bool {
        var labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*", labels.count > 1 { labels.removeFirst() }
        guard !labels.isEmpty, name.utf8.count <= 253 else { return false }
        return labels.allSatisfy { label in
            let bytes = label.utf8
            guard (1...63).contains(bytes.count), bytes.first != 0x2d, bytes.last != 0x2d else { return false }
            return bytes.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
        }
    }

    /// A common name: 1–64 printable characters, no control characters.
    static func validateCommonName(_ name: String) throws {
        guard (1...64).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw PKIError(.invalidName, "common name must be 1-64 characters without control characters")
        }
    }
}
