import Foundation
import LumbungPKI
import Testing
import X509

/// Absolute path of `openssl` on PATH, if any.
private let opensslPath: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/openssl" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// Runs openssl with `arguments` in `directory`; returns exit status and combined output.
private func openssl(_ arguments: [String], in directory: URL) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(opensslPath))
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("OpenSSL interoperability")
struct OpenSSLInteropTests {
    @Test(
        "openssl verify accepts our chain; openssl keys and CSRs work with us",
        .enabled(if: opensslPath != nil, "openssl is not on PATH: install openssl to run the interoperability check")
    )
    func opensslVerify() async throws {
        // openssl checks validity against the real clock, so this test uses it.
        let now = Date()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumbung-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ name: String, _ text: String) throws {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        let ca = try CertificateAuthority.create(commonName: "Lumbung Interop CA", now: now)
        let key = ClientKey.generate()
        let client = try ca.sign(csrPEM: key.makeCSR(commonName: "budi"), identity: .user("budi"), lifetime: .seconds(90 * 86400), now: now)
        let server = try ca.issueServerCertificate(commonName: "lumbungd", names: ["localhost", "127.0.0.1"], now: now, lifetime: .seconds(365 * 86400))
        let foreign = try issueClient(try CertificateAuthority.create(commonName: "Lumbung Interop CA", now: now), now: now).1
        try write("ca.pem", ca.certificatePEM)
        try write("ca-key.pem", ca.privateKeyPEM)
        try write("client.pem", client.certificatePEM)
        try write("client-key.pem", key.privateKeyPEM)
        try write("server.pem", server.certificatePEM)
        try write("foreign.pem", foreign.certificatePEM)

        let clientCheck = try openssl(["verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "client.pem"], in: directory)
        #expect(clientCheck.status == 0, "\(clientCheck.output)")
        #expect(clientCheck.output.contains("client.pem: OK"))

        let serverCheck = try openssl(
            ["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "-verify_hostname", "localhost", "server.pem"], in: directory)
        #expect(serverCheck.status == 0, "\(serverCheck.output)")

        let serverIPCheck = try openssl(
            ["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "-verify_ip", "127.0.0.1", "server.pem"], in: directory)
        #expect(serverIPCheck.status == 0, "\(serverIPCheck.output)")

        let clientAsServer = try openssl(["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "client.pem"], in: directory)
        #expect(clientAsServer.status != 0, "a client certificate must not pass as a server certificate")

        let foreignCheck = try openssl(["verify", "-CAfile", "ca.pem", "foreign.pem"], in: directory)
        #expect(foreignCheck.status != 0, "a certificate from another CA must not verify")

        // openssl reads our keys and finds them matching the certificates.
        let keyCheck = try openssl(["x509", "-in", "client.pem", "-noout", "-pubkey"], in: directory)
        let keyPub = try openssl(["pkey", "-in", "client-key.pem", "-pubout"], in: directory)
        #expect(keyCheck.status == 0 && keyPub.status == 0)
        #expect(keyCheck.output == keyPub.output)

        // A CSR made by openssl is accepted; a SEC1 key converted by openssl loads.
        let csr = try openssl(["req", "-new", "-key", "client-key.pem", "-subj", "/CN=anything", "-out", "openssl.csr"], in: directory)
        #expect(csr.status == 0, "\(csr.output)")
        let csrPEM = try String(contentsOf: directory.appendingPathComponent("openssl.csr"), encoding: .utf8)
        let fromOpenSSL = try ca.sign(csrPEM: csrPEM, identity: .host("node-01"), lifetime: .seconds(3600), now: now)
        #expect(try PKIIdentity.of(certificate: Certificate(pemEncoded: fromOpenSSL.certificatePEM)) == .host("node-01"))

        let sec1 = try openssl(["ec", "-in", "ca-key.pem", "-out", "ca-key-sec1.pem"], in: directory)
        #expect(sec1.status == 0, "\(sec1.output)")
        let sec1PEM = try String(contentsOf: directory.appendingPathComponent("ca-key-sec1.pem"), encoding: .utf8)
        #expect(sec1PEM.contains("BEGIN EC PRIVATE KEY"))
        let reloaded = try CertificateAuthority(certificatePEM: ca.certificatePEM, privateKeyPEM: sec1PEM)
        #expect(reloaded.fingerprint == ca.fingerprint)

        // Our fingerprint equals openssl's SHA-256 fingerprint.
        let fingerprint = try openssl(["x509", "-in", "ca.pem", "-noout", "-fingerprint", "-sha256"], in: directory)
        let opensslHex = fingerprint.output.split(separator: "=").last.map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: "").lowercased()
        }
        #expect(opensslHex.map { "sha256:" + $0 } == ca.fingerprint)
    }
}
