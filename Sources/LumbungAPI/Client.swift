import AsyncHTTPClient
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// A client's TLS identity: its certificate and private key (PEM), and the controller's CA (PEM).
public struct ClientCredentials: Sendable, Hashable {
    public var certificatePEM: String
    public var privateKeyPEM: String
    public var caPEM: String
    public init(certificatePEM: String, privateKeyPEM: String, caPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        self.caPEM = caPEM
    }
}

/// What went wrong talking to the controller.
public enum APIClientError: Error, Sendable, CustomStringConvertible {
    /// The controller answered with an error body.
    case api(status: Int, APIErrorDetail)
    /// The controller could not be reached, or TLS failed.
    case transport(String)
    /// The answer could not be read.
    case decoding(String)
    /// Local input or configuration was wrong.
    case invalid(String)

    public var description: String {
        switch self {
        case .api(_, let detail): detail.message
        case .transport(let text): "cannot reach the controller: \(text)"
        case .decoding(let text): "cannot read the controller's answer: \(text)"
        case .invalid(let text): text
        }
    }

    /// The stable error code (`api` errors carry the controller's; others are local).
    public var code: String {
        switch self {
        case .api(_, let detail): detail.code
        case .transport: "transport"
        case .decoding: "decoding"
        case .invalid: "invalid"
        }
    }
}

/// The typed HTTPS client of the Lumbung API, used by the CLI, the agent and tests.
///
/// It presents a client certificate when given ``ClientCredentials`` and trusts only the
/// controller's CA. Requests go through AsyncHTTPClient's shared client with this client's
/// TLS configuration, so connections are pooled per identity and nothing must be shut down.
public final class LumbungClient: Sendable {
    /// `https://host:7443` (no trailing slash).
    public let baseURL: String
    private let tls: TLSConfiguration
    private let http = HTTPClient.shared

    /// A client with a certificate (every route but enrollment needs one).
    public init(baseURL: String, credentials: ClientCredentials) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(credentials.caPEM.utf8)))
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem))
        } catch {
            throw APIClientError.invalid("the client's certificate, key or CA cannot be read: \(error)")
        }
        self.baseURL = Self.trim(baseURL)
        self.tls = tls
    }

    /// A client without a certificate, trusting `caPEM` (enrollment), or trusting nothing at all
    /// when `caPEM` is nil (only to fetch the CA, which the caller then pins by fingerprint).
    public init(baseURL: String, caPEM: String?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caPEM {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
            } catch {
                throw APIClientError.invalid("the CA cannot be read: \(error)")
            }
        } else {
            tls.certificateVerification = .none
        }
        self.baseURL = Self.trim(baseURL)
        self.tls = tls
    }

    private static func trim(_ url: String) -> String {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }

    /// Kept for symmetry with other clients: the shared HTTP client needs no shutdown.
    public func shutdown() async throws {}

    /// Sends a request and decodes the answer. Non-2xx answers become ``APIClientError/api(status:_:)``.
    public func send<Response: Decodable & Sendable>(
        _ method: HTTPMethod, _ path: String, query: [String: String?] = [:], body: (any Encodable & Sendable)? = nil,
        as: Response.Type = Response.self, timeout: Duration = .seconds(30)
    ) async throws(APIClientError) -> Response {
        let data = try await raw(method, path, query: query, body: body, timeout: timeout)
        do {
            return try StrictJSON.decoder().decode(Response.self, from: data)
        } catch {
            throw .decoding("\(error)")
        }
    }

    /// Sends a request and returns the raw body of a 2xx answer.
    public func raw(
        _ method: HTTPMethod, _ path: String, query: [String: String?] = [:], body: (any Encodable & Sendable)? = nil,
        timeout: Duration = .seconds(30)
    ) async throws(APIClientError) -> Data {
        var url = baseURL + path
        let items = query.compactMap { key, value in value.map { (key, $0) } }.sorted { $0.0 < $1.0 }
        if !items.isEmpty {
            url += "?" + items.map { "\($0.0)=\(Self.percentEncode($0.1))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.tlsConfiguration = tls
        request.method = method
        request.headers.add(name: "accept", value: "application/json")
        if let body {
            do {
                let bytes = try StrictJSON.encoder().encode(body)
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: bytes))
            } catch {
                throw .invalid("cannot encode the request: \(error)")
            }
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(Int64(timeout.components.seconds) + 5))
            bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        } catch {
            throw .transport(Self.describeTransport(error))
        }
        let data = Data(bytes.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            if let body = try? StrictJSON.decoder().decode(APIErrorBody.self, from: data) {
                throw .api(status: Int(response.status.code), body.error)
            }
            throw .api(
                status: Int(response.status.code),
                APIErrorDetail(code: "http_\(response.status.code)", message: "the controller answered \(response.status)"))
        }
        return data
    }

    private static func describeTransport(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("certificateRequired") || text.contains("CERTIFICATE_REQUIRED") {
            return "the controller requires a client certificate (log in first: lumbung login)"
        }
        if text.contains("UNKNOWN_CA") || text.contains("unknownCA") || text.contains("BAD_CERTIFICATE")
            || text.contains("CERTIFICATE_EXPIRED") || text.contains("CERTIFICATE_REVOKED")
        {
            return "the controller refused this client's certificate (expired, revoked or from another CA): \(text)"
        }
        return text
    }

    /// Percent-encodes every UTF-8 byte but RFC 3986's unreserved ASCII characters.
    static func percentEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Typed routes

extension LumbungClient {
    /// `GET /v1/enroll/ca` (no client certificate needed).
    public func fetchCA() async throws(APIClientError) -> CAInfo { try await send(.GET, "/v1/enroll/ca") }

    /// `POST /v1/enroll` with a token's secret and a CSR.
    public func enroll(_ body: EnrollRequest) async throws(APIClientError) -> EnrollResponse {
        try await send(.POST, "/v1/enroll", body: body)
    }

    /// `POST /v1/renew` with a CSR, authenticated by the current certificate.
    public func renew(_ body: RenewRequest) async throws(APIClientError) -> EnrollResponse {
        try await send(.POST, "/v1/renew", body: body)
    }

    public func whoami() async throws(APIClientError) -> WhoAmI { try await send(.GET, "/v1/whoami") }

    // OPDs
    public func listOPDs() async throws(APIClientError) -> [OPDView] { try await send(.GET, "/v1/opds") }
    public func createOPD(_ body: CreateOPDBody) async throws(APIClientError) -> OPDView { try await send(.POST, "/v1/opds", body: body) }
    public func opd(_ id: OPDID) async throws(APIClientError) -> OPDView { try await send(.GET, "/v1/opds/\(id)") }
    public func setQuota(_ id: OPDID, _ body: SetQuotaBody) async throws(APIClientError) -> OPDView {
        try await send(.PUT, "/v1/opds/\(id)/quota", body: body)
    }
    /// `GET /v1/quota`: the caller's own OPD (members) or `opd` (admins).
    public func quota(opd: OPDID? = nil) async throws(APIClientError) -> OPDView {
        try await send(.GET, "/v1/quota", query: ["opd": opd?.rawValue])
    }

    // Hosts
    public func listHosts() async throws(APIClientError) -> [HostView] { try await send(.GET, "/v1/hosts") }
    public func addHost(_ body: AddHostBody) async throws(APIClientError) -> AddHostResponse { try await send(.POST, "/v1/hosts", body: body) }
    public func host(_ id: HostID) async throws(APIClientError) -> HostView { try await send(.GET, "/v1/hosts/\(id)") }
    public func cordon(_ id: HostID) async throws(APIClientError) -> HostView { try await send(.POST, "/v1/hosts/\(id)/cordon") }
    public func uncordon(_ id: HostID) async throws(APIClientError) -> HostView { try await send(.POST, "/v1/hosts/\(id)/uncordon") }
    public func setHostLabels(_ id: HostID, _ body: SetHostLabelsBody) async throws(APIClientError) -> HostView {
        try await send(.POST, "/v1/hosts/\(id)/labels", body: body)
    }
    public func removeHost(_ id: HostID) async throws(APIClientError) -> HostView { try await send(.DELETE, "/v1/hosts/\(id)") }
    /// `POST /v1/hosts/{host}/token`: a new join token for the host's agent.
    public func hostToken(_ id: HostID) async throws(APIClientError) -> AddHostResponse { try await send(.POST, "/v1/hosts/\(id)/token") }

    // Users
    public func listUsers() async throws(APIClientError) -> [UserView] { try await send(.GET, "/v1/users") }
    public func addUser(_ body: AddUserBody) async throws(APIClientError) -> AddUserResponse { try await send(.POST, "/v1/users", body: body) }
    /// `POST /v1/users/{name}/token`: a new one-time login token for an existing user.
    public func userToken(_ name: UserID) async throws(APIClientError) -> AddUserResponse { try await send(.POST, "/v1/users/\(name)/token") }
    public func revokeUser(_ name: UserID) async throws(APIClientError) -> UserView { try await send(.POST, "/v1/users/\(name)/revoke") }

    // VMs (`ref` is a VM id or, with `opd` for admins, a name)
    public func listVMs(opd: OPDID? = nil) async throws(APIClientError) -> [VM] { try await send(.GET, "/v1/vms", query: ["opd": opd?.rawValue]) }
    public func createVM(_ body: CreateVMBody) async throws(APIClientError) -> VM { try await send(.POST, "/v1/vms", body: body) }
    /// `POST /v1/vms/place`: where a VM would go and why (dry run; nothing is allocated).
    public func placeVM(_ body: PlaceVMBody) async throws(APIClientError) -> PlacementExplanation {
        try await send(.POST, "/v1/vms/place", body: body)
    }
    public func vm(_ ref: String, opd: OPDID? = nil) async throws(APIClientError) -> VM {
        try await send(.GET, "/v1/vms/\(ref)", query: ["opd": opd?.rawValue])
    }
    public func startVM(_ ref: String, opd: OPDID? = nil) async throws(APIClientError) -> VM {
        try await send(.POST, "/v1/vms/\(ref)/start", query: ["opd": opd?.rawValue])
    }
    public func stopVM(_ ref: String, opd: OPDID? = nil) async throws(APIClientError) -> VM {
        try await send(.POST, "/v1/vms/\(ref)/stop", query: ["opd": opd?.rawValue])
    }
    /// `GET /v1/policy`.
    public func policy() async throws(APIClientError) -> PolicyView { try await send(.GET, "/v1/policy") }
    /// `POST /v1/policy/reload` (admin): the new set, or `policy_invalid` with every error.
    public func reloadPolicy() async throws(APIClientError) -> PolicyView { try await send(.POST, "/v1/policy/reload") }
    public func resizeVM(_ ref: String, opd: OPDID? = nil, _ body: ResizeVMBody) async throws(APIClientError) -> VM {
        try await send(.POST, "/v1/vms/\(ref)/resize", query: ["opd": opd?.rawValue], body: body)
    }
    public func deleteVM(_ ref: String, opd: OPDID? = nil) async throws(APIClientError) -> VM {
        try await send(.DELETE, "/v1/vms/\(ref)", query: ["opd": opd?.rawValue])
    }

    // Volumes
    public func listVolumes(opd: OPDID? = nil) async throws(APIClientError) -> [Volume] {
        try await send(.GET, "/v1/volumes", query: ["opd": opd?.rawValue])
    }
    public func createVolume(_ body: CreateVolumeBody) async throws(APIClientError) -> Volume { try await send(.POST, "/v1/volumes", body: body) }
    public func volume(_ ref: String, opd: OPDID? = nil) async throws(APIClientError) -> Volume {
        try await send(.GET, "/v1/volumes/\(ref)", query: ["opd": opd?.rawValue])
    }
    public func resizeVolume(_ ref: String, opd: OPDID? = nil, _ body: ResizeVolumeBody) async throws(APIClientError) -> Volume {
        try await send(.POST, "/v1/volumes/\(ref)/resize", query: ["opd": opd?.rawValue], body: body)
    }
    public func deleteVolume(_ ref: String, opd: OPDID? = nil) async throws(APIClientError) -> Volume {
        try await send(.DELETE, "/v1/volumes/\(ref)", query: ["opd": opd?.rawValue])
    }

    // Requests
    /// `GET /v1/requests`: `state` filters (e.g. `pending`); members see only their OPD.
    public func listRequests(opd: OPDID? = nil, state: RequestState? = nil) async throws(APIClientError) -> [ResourceRequest] {
        try await send(.GET, "/v1/requests", query: ["opd": opd?.rawValue, "state": state?.rawValue])
    }
    public func fileRequest(_ body: FileRequestBody) async throws(APIClientError) -> ResourceRequest {
        try await send(.POST, "/v1/requests", body: body)
    }
    public func request(_ id: RequestID) async throws(APIClientError) -> ResourceRequest { try await send(.GET, "/v1/requests/\(id)") }
    /// `POST /v1/requests/{id}/approve`; `override`: an admin decides the OPD approver's level too.
    public func approve(_ id: RequestID, reason: String? = nil, override: Bool? = nil) async throws(APIClientError) -> ResourceRequest {
        try await send(.POST, "/v1/requests/\(id)/approve", body: DecisionBody(reason: reason, override: override))
    }
    /// `GET /v1/requests/{id}/explain`: the approval rules tried, the quota fit and the placement, in sentences.
    public func explainRequest(_ id: RequestID) async throws(APIClientError) -> RequestExplanation {
        try await send(.GET, "/v1/requests/\(id)/explain")
    }
    public func reject(_ id: RequestID, reason: String) async throws(APIClientError) -> ResourceRequest {
        try await send(.POST, "/v1/requests/\(id)/reject", body: DecisionBody(reason: reason))
    }
    public func cancel(_ id: RequestID, reason: String? = nil) async throws(APIClientError) -> ResourceRequest {
        try await send(.POST, "/v1/requests/\(id)/cancel", body: DecisionBody(reason: reason))
    }

    // Capacity and audit
    public func capacity() async throws(APIClientError) -> CapacityView { try await send(.GET, "/v1/capacity") }
    public func audit(after: Int64? = nil, limit: Int? = nil) async throws(APIClientError) -> [AuditEntryView] {
        try await send(.GET, "/v1/audit", query: ["after": after.map { String($0) }, "limit": limit.map { String($0) }])
    }
    public func verifyAudit() async throws(APIClientError) -> AuditVerifyView { try await send(.GET, "/v1/audit/verify") }

    // Agent protocol
    /// `GET /v1/agent/desired?after=N&timeout=S`: returns at once when the version differs from `after`, else after `timeout`.
    public func desired(host: HostID, after: Int64?, timeout: Duration = .seconds(30)) async throws(APIClientError) -> DesiredState {
        try await send(
            .GET, "/v1/agent/desired",
            query: ["host": host.rawValue, "after": after.map { String($0) }, "timeout": String(timeout.components.seconds)],
            timeout: timeout + .seconds(10))
    }
    /// `POST /v1/agent/report`; `timeout` (+5 s) bounds the whole call, so a report stuck on a dead
    /// connection is abandoned and the next one goes out on a fresh connection.
    public func report(_ body: AgentReport, timeout: Duration = .seconds(30)) async throws(APIClientError) -> ReportAck {
        try await send(.POST, "/v1/agent/report", body: body, timeout: timeout)
    }
}
