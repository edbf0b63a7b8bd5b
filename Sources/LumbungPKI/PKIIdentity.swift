import X509

/// Who a client certificate belongs to: an OPD/admin user or an enrolled host.
///
/// The identity is written into the certificate as a URI subject alternative
/// name, `lumbung://user/<name>` or `lumbung://host/<name>`, and read back from
/// it on every authenticated request. Names are `[a-z0-9-]{1,63}`.
///
/// The enum cases themselves do not validate their name; use ``init(uri:)``
/// or ``isValidName(_:)`` on untrusted input. ``CertificateAuthority`` refuses
/// to sign for an invalid name.
public enum PKIIdentity: Hashable, Sendable, CustomStringConvertible {
    /// A person (admin or OPD staff), by user name.
    case user(String)
    /// A host running `lumbung-agent`, by host name.
    case host(String)

    /// The URI scheme and authority prefix shared by all identities.
    public static let uriPrefix = "lumbung://"

    /// `"user"` or `"host"`.
    public var kind: String {
        switch self {
        case .user: "user"
        case .host: "host"
        }
    }

    /// The user or host name.
    public var name: String {
        switch self {
        case .user(let name), .host(let name): name
        }
    }

    /// `lumbung://user/<name>` or `lumbung://host/<name>`.
    public var uri: String { "\(Self.uriPrefix)\(kind)/\(name)" }

    /// Same as ``uri``.
    public var description: String { uri }

    /// Parses `lumbung://user/<name>` or `lumbung://host/<name>`.
    ///
    /// Anything else is refused: another scheme, another kind, extra path
    /// segments, query or fragment, percent-escapes, and names that are not
    /// 1–63 characters of lowercase ASCII letters, digits and `-`.
    ///
    /// - Throws: `invalid_identity`.
    public init(uri: String) throws {
        guard uri.hasPrefix(Self.uriPrefix) else {
            throw PKIError(
                .invalidIdentity,
                "identity URI must start with '\(Self.uriPrefix)' (lumbung://user/<name> or lumbung://host/<name>)"
            )
        }
        let rest = uri.dropFirst(Self.uriPrefix.count)
        let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw PKIError(.invalidIdentity, "identity URI needs a kind and a name: lumbung://user/<name> or lumbung://host/<name>")
        }
        let name = String(parts[1])
        guard Self.isValidName(name) else {
            throw PKIError(.invalidIdentity, Self.nameRule)
        }
        switch parts[0] {
        case "user": self = .user(name)
        case "host": self = .host(name)
        default:
            throw PKIError(.invalidIdentity, "identity kind must be 'user' or 'host' (lumbung://user/<name> or lumbung://host/<name>)")
        }
    }

    /// `true` when `name` is 1–63 characters of `a-z`, `0-9` and `-`.
    public static func isValidName(_ name: String) -> Bool {
        let utf8 = name.utf8
        return (1...63).contains(utf8.count)
            && utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
    }

    /// Reads the identity from the certificate's `lumbung://` URI SAN.
    ///
    /// - Throws: `invalid_certificate` if the SAN extension is corrupt;
    ///   `invalid_identity` if there is no `lumbung://` URI SAN, more than one,
    ///   or it is malformed.
    public static func of(certificate: Certificate) throws -> PKIIdentity {
        let names: SubjectAlternativeNames?
        do {
            names = try certificate.extensions.subjectAlternativeNames
        } catch {
            throw PKIError(.invalidCertificate, "certificate's subjectAltName extension is corrupt: \(error)")
        }
        var uris: [String] = []
        for name in names ?? SubjectAlternativeNames() {
            if case .uniformResourceIdentifier(let uri) = name, uri.lowercased().hasPrefix("lumbung:") {
                uris.append(uri)
            }
        }
        guard uris.count == 1 else {
            throw PKIError(
                .invalidIdentity,
                uris.isEmpty
                    ? "certificate carries no lumbung:// URI SAN; only certificates issued to a user or host by the Lumbung CA identify a client"
                    : "certificate carries \(uris.count) lumbung:// URI SANs; exactly one is accepted"
            )
        }
        return try PKIIdentity(uri: uris[0])
    }

    /// The certificate's serial number as lowercase hex, every byte two digits
    /// (leading zero bytes kept), e.g. for revocation lists and audit entries.
    public static func serialHex(of certificate: Certificate) -> String {
        certificate.serialNumber.bytes.lowercaseHex
    }

    /// Throws `invalid_identity` unless the name is valid.
    func validated() throws -> PKIIdentity {
        guard Self.isValidName(name) else {
            throw PKIError(.invalidIdentity, "\(kind) name is invalid: " + Self.nameRule)
        }
        return self
    }

    static let nameRule = "names must be 1-63 characters of lowercase letters a-z, digits 0-9 and '-'"
}
