import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore
import LumbungPolicy

/// `lumbung policy check|show|reload`.
struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check policy files offline, show the set in force, reload it.",
        subcommands: [Check.self, Show.self, Reload.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy directory offline; print every error as file:line: message.",
            discussion: "Exit 0 when the set is valid, 1 when it has errors. No controller is needed.")

        @Argument(help: "The policy directory (default: ./policies).")
        var directory: String = "policies"

        @Option(name: .long, help: ArgumentHelp("text or json.", valueName: "format"))
        var output: OutputFormat = .table

        func run() async throws {
            let check = PolicyLoader.check(directory: directory)
            if output == .json {
                struct Report: Encodable {
                    var valid: Bool
                    var hash: String?
                    var errors: [String]
                    var notes: [String]
                }
                try Output.json(
                    Report(valid: check.errors.errors.isEmpty, hash: check.set?.hash, errors: check.errors.errors.map(\.description), notes: check.notes))
            } else {
                for error in check.errors.errors { print(error.description) }
                for note in check.notes { print("note: \(note)") }
                if let set = check.set, check.errors.errors.isEmpty {
                    print("\(directory): valid policy set \(set.hash) (\(set.sources.joined(separator: ", ")))")
                }
            }
            if !check.errors.errors.isEmpty {
                throw CLIError("\(directory): \(check.errors.errors.count) error(s); the controller would refuse this set")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the policy set the controller runs: hash, load time, last reload.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let view = try await global.withClient { try await $0.client.policy() }
            if global.json { return try Output.json(view) }
            printPolicy(view)
        }
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the controller reload its policy directory (admin). An invalid set is refused; the running one stays.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let view = try await global.withClient { try await $0.client.reloadPolicy() }
            if global.json { return try Output.json(view) }
            print("Loaded policy set \(view.hash).")
            printPolicy(view)
        }
    }
}

func printPolicy(_ view: PolicyView) {
    var fields: [(String, String)] = [
        ("hash", view.hash),
        ("loaded", Format.date(view.loadedAt)),
        ("directory", view.directory ?? "- (built-in default set)"),
        ("files", view.sources.isEmpty ? "-" : view.sources.joined(separator: ", ")),
        ("quota classes", view.classes.isEmpty ? "-" : view.classes.joined(separator: ", ")),
        ("strategy", view.strategy),
        ("request expiry", "\(view.requestExpiryDays) days"),
        ("headroom N+1", view.headroomNPlusOne ? "on" : "off"),
        ("volume retention", "\(view.volumeRetentionDays) days"),
        ("audit retention", "\(view.auditRetentionDays) days"),
    ]
    if let at = view.lastAttemptAt {
        fields.append(("last load", "\(Format.date(at)): \(view.lastAttemptOK == true ? "loaded" : "REFUSED, running set kept")"))
    }
    if !view.lastErrors.isEmpty { fields.append(("errors", view.lastErrors.joined(separator: "\n"))) }
    Output.fields(fields)
}
