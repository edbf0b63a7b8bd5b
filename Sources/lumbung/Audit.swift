import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung audit …`: the hash-chained audit log (admins).
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read and verify the audit log (admin).",
        subcommands: [List.self, Verify.self])
}

extension AuditCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List audit entries: who did what, when (--output json shows before and after).")

        @Option(help: ArgumentHelp("Only entries after this sequence number.", valueName: "seq"))
        var after: String?

        @Option(help: ArgumentHelp("At most this many entries.", valueName: "count"))
        var limit: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try parsed() }

        func parsed() throws -> (after: Int64?, limit: Int?) {
            var afterSeq: Int64?
            if let after {
                guard let value = Int64(after), value >= 0 else {
                    throw ValidationError("--after '\(after)' is not a sequence number; write a whole number, e.g. --after 120")
                }
                afterSeq = value
            }
            return (afterSeq, try limit.map { try Input.count($0, what: "--limit") })
        }

        func run() async throws {
            let (after, limit) = try parsed()
            let entries = try await global.withClient { try await $0.client.audit(after: after, limit: limit) }
            if global.json { return try Output.json(entries) }
            Output.table(
                ["SEQ", "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "REQUEST"],
                entries.map { e in
                    [String(e.seq), Format.date(e.at), e.actor, e.role, e.action, e.target, e.requestID ?? "-"]
                }, empty: "No audit entries.")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit log's hash chain; exits with 1 when an entry was edited or deleted.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let result = try await global.withClient { try await $0.client.verifyAudit() }
            if global.json { try Output.json(result) }
            guard result.ok else {
                let at = result.firstBadSeq.map { " at entry \($0)" } ?? ""
                throw CLIError("the audit log is broken\(at): \(result.problem ?? "the hash chain does not verify") (\(result.checked) entries checked)")
            }
            if !global.json {
                print("The audit log is intact: \(result.checked) entries checked, the hash chain is unbroken.")
            }
        }
    }
}
