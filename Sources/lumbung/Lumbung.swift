import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore
import LumbungPKI

/// The root of the `lumbung` command tree.
struct Lumbung: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumbung",
        abstract: "Request, allocate and inspect VMs and storage of the regional data center.",
        discussion: """
            Kominfo sysadmins (role admin) manage OPDs, hosts, users and allocations; OPD staff \
            (roles member and approver) request VMs, volumes and quota for their own OPD and see only that OPD.

            Configuration: --config PATH, else $LUMBUNG_CONFIG, else ~/.config/lumbung/config.yaml \
            (written by 'lumbung login').
            Exit codes: 0 ok, 1 refused or failed, 2 usage error.
            """,
        subcommands: [
            Login.self, WhoAmI.self, Renew.self,
            OPDCommand.self, HostCommand.self, UserCommand.self,
            VMCommand.self, VolumeCommand.self, QuotaCommand.self, RequestCommand.self,
            CapacityCommand.self, AuditCommand.self, PolicyCommand.self,
        ]
    )
}

/// The program's entry point: ArgumentParser parses, but exit codes are Lumbung's
/// (0 ok, 1 refused or failed, 2 usage) instead of ArgumentParser's 64 for usage errors.
@main
enum Entry {
    static func main() async {
        let code = await run(Array(CommandLine.arguments.dropFirst()))
        exit(code)
    }

    static func run(_ arguments: [String]) async -> Int32 {
        do {
            var command = try await Lumbung.asyncParseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as CLIError {
            printError("error: \(error.message)")
            return 1
        } catch let error as APIClientError {
            printError("error: \(describe(error))")
            return 1
        } catch let error as CoreError {
            printError("error: \(error.message)")
            return 1
        } catch let error as PKIError {
            printError("error: \(error.message)")
            return 1
        } catch {
            let code = Lumbung.exitCode(for: error)
            let text = Lumbung.fullMessage(for: error)
            if code == .success {
                if !text.isEmpty { print(text) }
                return 0
            }
            if !text.isEmpty {
                // One spelling for every error line: "error: …" (ArgumentParser writes "Error: ").
                printError(text.hasPrefix("Error: ") ? "error: " + text.dropFirst("Error: ".count) : text)
            }
            return code == .validationFailure ? 2 : code.rawValue
        }
    }

    /// The controller's sentence for API errors (refusals already carry the numbers);
    /// a hint for the cases a person can act on.
    static func describe(_ error: APIClientError) -> String {
        switch error {
        case .api(let status, let detail):
            switch status {
            case 401: return "\(detail.message) (log in again: lumbung login --controller URL --token TOKEN)"
            default: return detail.message
            }
        default:
            return error.description
        }
    }
}

/// A failure or refusal found by the CLI itself; exits with 1.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
