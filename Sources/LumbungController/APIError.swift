import Foundation
import HTTPTypes
import Hummingbird
import LumbungAPI
import LumbungCore

/// The controller's one error type for everything a client should read: an HTTP status,
/// a stable code and a sentence, rendered as `{"error": {"code": …, "message": …}}`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var detail: APIErrorDetail

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.detail = APIErrorDetail(code: code, message: message)
    }

    public init(_ status: HTTPResponse.Status, detail: APIErrorDetail) {
        self.status = status
        self.detail = detail
    }

    public var description: String { "\(status.code) \(detail.code): \(detail.message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = (try? StrictJSON.encode(APIErrorBody(error: detail))) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // Common errors.
    static func notFound(_ what: String) -> APIError { APIError(.notFound, "not_found", "\(what) does not exist (or is not visible to you)") }
    static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "forbidden", message) }
    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(.badRequest, code, message) }
    static func conflict(_ code: String, _ message: String) -> APIError { APIError(.conflict, code, message) }
    static let unauthenticated = APIError(
        .unauthorized, "unauthenticated", "this route needs a client certificate issued by this controller; log in with a token first")
}

extension APIError {
    /// Maps a Core refusal to an API error: invalid input → 400, not found → 404, everything that
    /// does not fit (quota, capacity, state) → 409 with the numbers.
    init(_ refusal: Refusal) {
        switch refusal {
        case .invalid(let error):
            self.init(.badRequest, error.code.rawValue, error.message)
        case .quota(let shortfall):
            self.init(
                .conflict,
                detail: APIErrorDetail(
                    code: refusal.code, message: shortfall.description, dimension: shortfall.dimension.key, asked: shortfall.asked,
                    left: shortfall.left))
        case .quotaBelowUse(let shortfalls):
            let first = shortfalls.first
            self.init(
                .conflict,
                detail: APIErrorDetail(
                    code: refusal.code, message: refusal.description, dimension: first?.dimension.key, asked: first?.asked,
                    left: first?.left))
        case .placement:
            self.init(.conflict, refusal.code, refusal.description)
        case .notFound(let what):
            self.init(.notFound, "not_found", what)
        case .conflict:
            self.init(.conflict, refusal.code, refusal.description)
        }
    }

    /// Maps any error from a Core call (typed throws are erased by mixed `do` blocks).
    init(_ error: any Error) {
        switch error {
        case let e as APIError: self = e
        case let e as CoreError: self.init(e)
        case let e as Refusal: self.init(e)
        default: self.init(.internalServerError, "internal", "internal error")
        }
    }

    init(_ error: CoreError) {
        switch error.code {
        case .illegalTransition, .quotaExceeded, .capacityExceeded, .noHostFits, .quotaBelowUse, .limitExceeded:
            self.init(.conflict, error.code.rawValue, error.message)
        default:
            self.init(.badRequest, error.code.rawValue, error.message)
        }
    }
}
