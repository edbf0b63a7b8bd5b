import Foundation
import HTTPTypes
import Hummingbird
import LumbungAPI
import LumbungCore

/// Encodes a value as a JSON response.
func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try StrictJSON.encode(value)
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// A response whose JSON is already encoded (with `StrictJSON`).
func json(text: String, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
}

/// Reads a JSON body strictly: size-limited, valid JSON, no unknown fields.
func decodeBody<T: Codable>(_ type: T.Type, _ request: Request, _ context: LumbungContext) async throws -> T {
    if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > context.maxUploadSize {
        throw APIError(.contentTooLarge, "body_too_large", "the request body has \(length) bytes; at most \(context.maxUploadSize) are accepted")
    }
    var req = request
    let buffer: ByteBuffer
    do {
        buffer = try await req.collectBody(upTo: context.maxUploadSize)
    } catch {
        throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(context.maxUploadSize) bytes")
    }
    if buffer.readableBytes == 0 {
        throw APIError.badRequest("invalid_json", "the request needs a JSON body")
    }
    do {
        return try StrictJSON.decodeStrict(T.self, from: Data(buffer.readableBytesView))
    } catch {
        let code = error.message.hasPrefix("unknown field") ? "unknown_field" : "invalid_json"
        throw APIError.badRequest(code, error.message)
    }
}

/// Reads an optional JSON body (an empty body means `nil`).
func decodeOptionalBody<T: Codable>(_ type: T.Type, _ request: Request, _ context: LumbungContext) async throws -> T? {
    var req = request
    let buffer: ByteBuffer
    do {
        buffer = try await req.collectBody(upTo: context.maxUploadSize)
    } catch {
        throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(context.maxUploadSize) bytes")
    }
    if buffer.readableBytes == 0 { return nil }
    do {
        return try StrictJSON.decodeStrict(T.self, from: Data(buffer.readableBytesView))
    } catch {
        let code = error.message.hasPrefix("unknown field") ? "unknown_field" : "invalid_json"
        throw APIError.badRequest(code, error.message)
    }
}

extension LumbungContext {
    /// The authenticated caller (the auth middleware guarantees one on every non-enrollment route).
    func auth() throws -> Authenticated {
        guard let caller else { throw APIError.unauthenticated }
        return caller
    }

    func param(_ name: String) throws -> String {
        guard let value = parameters.get(name) else { throw APIError.badRequest("invalid_path", "missing path parameter \(name)") }
        return value
    }
}

extension Authenticated {
    var isAdmin: Bool { principal.role == .admin }

    /// Only admins.
    func requireAdmin() throws {
        guard principal.role == .admin else {
            throw APIError.forbidden("this needs the admin role; you are \(principal) (\(principal.role.rawValue))")
        }
    }

    /// Only people (admins, members, approvers).
    func requirePerson() throws {
        guard case .user = principal else {
            throw APIError.forbidden("host agents may use only the /v1/agent routes")
        }
    }

    /// Whether the caller may see objects of an OPD.
    func canSee(_ opd: OPDID) -> Bool {
        switch principal {
        case .user(_, let role, let own): role == .admin || own == opd
        case .host: false
        }
    }

    /// The OPD a read or write is confined to: members get their own (asking for another is a 404,
    /// so names do not leak); admins get what they asked for (nil = all).
    func scope(_ requested: OPDID?) throws -> OPDID? {
        try requirePerson()
        if isAdmin { return requested }
        guard let own = principal.opd else { throw APIError.forbidden("your account belongs to no OPD") }
        if let requested, requested != own { throw APIError.notFound("OPD \(requested)") }
        return own
    }

    /// Like ``scope(_:)`` but an OPD is required (admins must name one).
    func requiredScope(_ requested: OPDID?, what: String) throws -> OPDID {
        guard let opd = try scope(requested) else {
            throw APIError.badRequest("missing_opd", "name the OPD for \(what) (--opd NAME)")
        }
        return opd
    }
}

extension Request {
    func query(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }
}
