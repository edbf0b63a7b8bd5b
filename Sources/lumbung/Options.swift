import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// How answers are printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Aligned tables and `key: value` blocks for people.
    case table
    /// The API's JSON, pretty-printed with sorted keys, for scripts.
    case json
}

/// Options every command takes: the configuration file and the output format.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The CLI configuration file (default: $LUMBUNG_CONFIG, else ~/.config/lumbung/config.yaml).",
            valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Print a table for people or the API's JSON for scripts.", valueName: "format"))
    var output: OutputFormat = .table

    /// The configuration file in use.
    var configPath: String {
        if let config, !config.isEmpty { return config }
        return ClientConfig.defaultPath()
    }

    var json: Bool { output == .json }

    /// Loads the configuration, connects with the client certificate, runs `body`, and closes
    /// the connection whatever happens.
    func withClient<T>(_ body: (Session) async throws -> T) async throws -> T {
        let path = configPath
        let config = try ClientConfig.load(path: path)
        let credentials = try config.credentials(configPath: path)
        let client: LumbungClient
        do {
            client = try LumbungClient(baseURL: config.controller, credentials: credentials)
        } catch let error as APIClientError {
            throw error
        } catch {
            throw CLIError("cannot use the credentials named in \(path): \(error)")
        }
        let session = Session(client: client, config: config, configPath: path, credentials: credentials)
        do {
            let result = try await body(session)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

/// A connected client and the configuration it came from.
struct Session {
    var client: LumbungClient
    var config: ClientConfig
    var configPath: String
    var credentials: ClientCredentials
}

/// A client without a certificate (login), closed whatever happens.
func withAnonymousClient<T>(_ url: String, caPEM: String?, _ body: (LumbungClient) async throws -> T) async throws -> T {
    let client: LumbungClient
    do {
        client = try LumbungClient(baseURL: url, caPEM: caPEM)
    } catch let error as APIClientError {
        throw error
    } catch {
        throw CLIError("cannot set up a connection to \(url): \(error)")
    }
    do {
        let result = try await body(client)
        try? await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}
