import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung request …`: requests for VMs, volumes and quota, and their decisions.
struct RequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "List, show and explain requests; approve, reject or cancel them.",
        subcommands: [List.self, Show.self, Explain.self, Approve.self, Reject.self, Cancel.self])
}

/// `--letter`: the official letter number (*nomor surat*) a request refers to.
struct LetterOption: ParsableArguments {
    @Option(help: ArgumentHelp("The official letter number (nomor surat) the request refers to, e.g. 800/123/Diskominfo/2026.", valueName: "number"))
    var letter: String?

    /// The trimmed number, nil when not given; letters, digits, spaces and / . - _ : ( ), at most 100 characters.
    func value() throws -> String? {
        switch LetterNumber.check(letter) {
        case .success(let text): return text
        case .failure(let error): throw ValidationError("--letter: \(error.message)")
        }
    }
}

/// A request named by its id.
struct RequestIDArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The request's id, as shown by 'lumbung request list'.", valueName: "id"))
    var id: String

    func validate() throws { _ = try requestID() }

    func requestID() throws -> RequestID { try Input.requestID(id) }
}

extension RequestCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List requests (members see their own OPD's).")

        @Flag(help: "Only pending requests (same as --state pending).")
        var pending = false

        @Option(help: ArgumentHelp("Only requests in this state: \(RequestState.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "state"))
        var state: String?

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try filter() }

        func filter() throws -> RequestState? {
            if pending {
                if let state, state != RequestState.pending.rawValue {
                    throw ValidationError("--pending and --state \(state) contradict each other; give one")
                }
                return .pending
            }
            guard let state else { return nil }
            guard let parsed = RequestState(rawValue: state) else {
                throw ValidationError(
                    "state '\(state)' is not one of \(RequestState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return parsed
        }

        func run() async throws {
            let (state, opd) = (try filter(), try scope.id())
            let requests = try await global.withClient { try await $0.client.listRequests(opd: opd, state: state) }
            if global.json { return try Output.json(requests) }
            Output.table(
                ["ID", "OPD", "STATE", "BY", "CREATED", "ASKS FOR", "REASON"],
                requests.sorted { $0.id < $1.id }.map { r in
                    [
                        String(r.id.rawValue), r.opd.rawValue, r.state.rawValue, r.requestedBy.rawValue, Format.date(r.createdAt),
                        Format.payload(r.payload), Format.shortened(r.reason, 40),
                    ]
                }, empty: state == nil ? "No requests." : "No \(state!.rawValue) requests.")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a request and its decision.")

        @OptionGroup var request: RequestIDArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try request.requestID()
            let r = try await global.withClient { try await $0.client.request(id) }
            if global.json { return try Output.json(r) }
            printRequest(r)
        }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Explain a request: the approval rules tried and the one that decides, the quota fit, and where it would be placed.")

        @OptionGroup var request: RequestIDArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try request.requestID()
            let e = try await global.withClient { try await $0.client.explainRequest(id) }
            if global.json { return try Output.json(e) }
            print("Request \(e.id) (\(e.state.rawValue)): \(e.decision) — rule \(e.decidingRule).")
            print("\nApproval rules (first match decides):")
            for reason in e.approval { print("  \(reason)") }
            if !e.levels.isEmpty {
                print("\nApprovals:")
                for line in e.levels { print("  \(line)") }
            }
            print("\nQuota:")
            for line in e.quota { print("  \(line)") }
            print("\nPlacement:")
            for line in e.placement { print("  \(line)") }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a pending request at its next level (admin, or an approver of its OPD); at the last level it is fulfilled at once when it fits.",
            discussion: """
                A request under a two-level rule (approver+admin) needs the OPD's approver first, then an admin.
                An admin may decide both levels at once with --override (audited as an override).
                """)

        @OptionGroup var request: RequestIDArgument

        @Option(help: ArgumentHelp("A note for the record.", valueName: "text"))
        var reason: String?

        @Flag(help: "Admin: approve the OPD approver's level too, without waiting for the approver (audited).")
        var override = false

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try Input.reason(reason, required: false) }

        func run() async throws {
            let (id, reason) = (try request.requestID(), try Input.reason(reason, required: false))
            let r = try await global.withClient { try await $0.client.approve(id, reason: reason, override: override ? true : nil) }
            if global.json { return try Output.json(r) }
            if r.state == .pending {
                print("Request \(r.id) approved at level \(r.approvals?.last?.level.rawValue ?? "?"); it now waits for \(r.remainingLevels.map(\.noun).joined(separator: ", then ")).")
                return
            }
            print("Request \(r.id) is \(r.state.rawValue)\(r.result.map { "; it made \($0)." } ?? ".")")
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject a pending request, saying why.")

        @OptionGroup var request: RequestIDArgument

        @Option(help: ArgumentHelp("Why (required; the requester reads it).", valueName: "text"))
        var reason: String

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try Input.reason(reason, required: true) }

        func run() async throws {
            let (id, reason) = (try request.requestID(), try Input.reason(reason, required: true)!)
            let r = try await global.withClient { try await $0.client.reject(id, reason: reason) }
            if global.json { return try Output.json(r) }
            print("Request \(r.id) is \(r.state.rawValue).")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a pending request.")

        @OptionGroup var request: RequestIDArgument

        @Option(help: ArgumentHelp("A note for the record.", valueName: "text"))
        var reason: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try Input.reason(reason, required: false) }

        func run() async throws {
            let (id, reason) = (try request.requestID(), try Input.reason(reason, required: false))
            let r = try await global.withClient { try await $0.client.cancel(id, reason: reason) }
            if global.json { return try Output.json(r) }
            print("Request \(r.id) is \(r.state.rawValue).")
        }
    }
}

/// What `vm|volume|quota request` print after filing.
func printFiled(_ r: ResourceRequest) {
    print("Request \(r.id) filed for \(r.opd): \(Format.payload(r.payload)); state \(r.state.rawValue)\(r.rule.map { " (approval rule \($0))" } ?? "").")
    if r.state == .fulfilled {
        print("Approved automatically\(r.result.map { "; it made \($0)" } ?? "").")
        return
    }
    let who = r.remainingLevels.map(\.noun).joined(separator: ", then ")
    print("It needs \(who) and expires at \(Format.date(r.expiresAt)) unless decided first (lumbung request approve \(r.id)).")
}

func printRequest(_ r: ResourceRequest) {
    var fields: [(String, String)] = [
        ("id", String(r.id.rawValue)),
        ("opd", r.opd.rawValue),
        ("state", r.state.rawValue),
        ("asks for", Format.payload(r.payload)),
        ("reason", r.reason),
        ("letter", r.letter ?? "-"),
        ("requested by", r.requestedBy.rawValue),
        ("created", Format.date(r.createdAt)),
        ("expires", Format.date(r.expiresAt)),
    ]
    if let rule = r.rule { fields.append(("approval rule", rule)) }
    if r.state == .pending { fields.append(("waits for", r.remainingLevels.map(\.noun).joined(separator: ", then "))) }
    for a in r.approvals ?? [] {
        fields.append(("approved (\(a.level.rawValue))", "\(a.by) at \(Format.date(a.at))\(a.override == true ? " (override)" : "")"))
    }
    if let by = r.decidedBy { fields.append(("decided by", by)) }
    if let at = r.decidedAt { fields.append(("decided", Format.date(at))) }
    if let why = r.decisionReason { fields.append(("decision reason", why)) }
    if let result = r.result { fields.append(("result", result)) }
    Output.fields(fields)
}

extension Format {
    /// Cuts text to `limit` characters with an ellipsis, on one line.
    static func shortened(_ text: String, _ limit: Int) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count <= limit ? line : String(line.prefix(limit - 1)) + "…"
    }
}
