import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore
import LumbungPKI

/// `lumbung login`: enrolls with a one-time token and writes the configuration.
///
/// The token pins the controller's CA by fingerprint: the CA is fetched without trust,
/// compared with the pin, and only then used. The private key is made here and never sent.
struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log in with a one-time token and write the CLI configuration.",
        discussion: """
            Fetches the controller's CA, checks it against the fingerprint the token carries, makes a private \
            key on this machine, and asks the controller to certify it. Writes config.yaml, client.key (mode \
            0600), client.crt and ca.crt into the configuration's folder.
            """)

    @Option(help: ArgumentHelp("The controller's URL, e.g. https://dc.example.go.id:7443.", valueName: "url"))
    var controller: String

    @Option(help: ArgumentHelp("The one-time token an admin gave you (lmb1.…).", valueName: "token"))
    var token: String

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try Input.controllerURL(controller)
        _ = try parsedToken()
    }

    private func parsedToken() throws -> EnrollmentToken {
        do {
            return try EnrollmentToken.parse(token)
        } catch let error as PKIError {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let url = try Input.controllerURL(controller)
        let token = try parsedToken()
        let ca = try await withAnonymousClient(url, caPEM: nil) { try await $0.fetchCA() }
        let fingerprint = try CertificateAuthority.fingerprint(ofCertificatePEM: ca.caPEM)
        guard fingerprint == token.caFingerprint else {
            throw CLIError(
                """
                the controller at \(url) presents a CA with fingerprint \(fingerprint), but the token pins \
                \(token.caFingerprint): this is not the controller that made the token, or someone is in between. \
                Nothing was sent or written; check the URL, or ask for a new token.
                """)
        }
        let key = ClientKey.generate()
        let csr = try key.makeCSR(commonName: "lumbung-cli")
        let enrolled = try await withAnonymousClient(url, caPEM: ca.caPEM) {
            try await $0.enroll(EnrollRequest(token: token.secret, csr: csr, kind: "user"))
        }
        let path = global.configPath
        _ = try ClientConfig.write(
            path: path, controller: url,
            credentials: ClientCredentials(certificatePEM: enrolled.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: ca.caPEM),
            identity: enrolled.identity)
        if global.json {
            try Output.json(LoginSummary(enrolled, controller: url, config: path))
            return
        }
        print("Logged in to \(enrolled.controllerName) (\(url)) as \(enrolled.identity), \(Format.role(enrolled.role, enrolled.opd)).")
        print("Certificate valid until \(Format.date(enrolled.notAfter)); renew it before then with: lumbung renew")
        print("Configuration written to \(path)")
        if path != ClientConfig.defaultPath() {
            print("Use it with: export LUMBUNG_CONFIG=\(path)")
        }
    }
}

/// What `login` and `renew` print with `--output json` (never the key or the certificate).
struct LoginSummary: Encodable {
    var identity: String
    var role: Role
    var opd: OPDID?
    var notAfter: Date
    var controller: String
    var controllerName: String
    var config: String

    init(_ r: EnrollResponse, controller: String, config: String) {
        identity = r.identity
        role = r.role
        opd = r.opd
        notAfter = r.notAfter
        self.controller = controller
        controllerName = r.controllerName
        self.config = config
    }
}

/// `lumbung whoami`.
struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Show who the controller knows this configuration as.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let me = try await global.withClient { session in try await session.client.whoami() }
        let controller = try? ClientConfig.load(path: global.configPath).controller
        if global.json { return try Output.json(me) }
        Output.fields([
            ("principal", me.principal),
            ("role", Format.role(me.role, me.opd)),
            ("certificate valid until", Format.date(me.certificateNotAfter)),
            ("controller", controller ?? "-"),
            ("config", global.configPath),
        ])
    }
}

/// `lumbung renew`: a new key and certificate, authenticated by the current certificate.
struct Renew: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Renew this configuration's certificate (with a new key) before it expires.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let key = ClientKey.generate()
        let csr = try key.makeCSR(commonName: "lumbung-cli")
        let (renewed, session) = try await global.withClient { session in
            (try await session.client.renew(RenewRequest(csr: csr)), session)
        }
        _ = try ClientConfig.write(
            path: session.configPath, controller: session.config.controller,
            credentials: ClientCredentials(
                certificatePEM: renewed.certificate, privateKeyPEM: key.privateKeyPEM, caPEM: session.credentials.caPEM),
            identity: renewed.identity)
        if global.json {
            return try Output.json(LoginSummary(renewed, controller: session.config.controller, config: session.configPath))
        }
        print("Certificate of \(renewed.identity) renewed; valid until \(Format.date(renewed.notAfter)).")
        print("Configuration written to \(session.configPath)")
    }
}

extension Format {
    /// `admin`, `member of dinkes`, `approver of dinkes`.
    static func role(_ role: Role, _ opd: OPDID?) -> String {
        if let opd { return "\(role.rawValue) of \(opd)" }
        return role.rawValue
    }
}
