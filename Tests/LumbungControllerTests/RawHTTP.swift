import AsyncHTTPClient
import Foundation
import LumbungAPI
import NIOCore
import NIOHTTP1
import NIOSSL

/// Sends raw bytes over mutual TLS, for malformed-input tests the typed client cannot express.
func rawRequest(
    _ baseURL: String, credentials: ClientCredentials?, caPEM: String, method: HTTPMethod, path: String, body: [UInt8]? = nil,
    contentType: String = "application/json"
) async throws -> (status: Int, body: String) {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
    if let credentials {
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(credentials.certificatePEM.utf8)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem))
    }
    let client = HTTPClient.shared
    var request = HTTPClientRequest(url: baseURL + path)
    request.tlsConfiguration = tls
    request.method = method
    if let body {
        request.headers.add(name: "content-type", value: contentType)
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    let response = try await client.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 10 << 20)
    return (Int(response.status.code), String(buffer: bytes))
}

/// The `error.code` of a JSON error body.
func code(of body: String) -> String? {
    guard let data = body.data(using: .utf8), let decoded = try? StrictJSON.decoder().decode(APIErrorBody.self, from: data) else { return nil }
    return decoded.error.code
}
