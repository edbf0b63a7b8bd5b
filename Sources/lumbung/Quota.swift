import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung quota …`: an OPD's own view of its quota.
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Show your OPD's quota, use and what is left; request a change.",
        subcommands: [Show.self, Request.self])
}

extension QuotaCommand {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show quota, used and left per dimension (admins give --opd).")

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let opd = try scope.id()
            let view = try await global.withClient { try await $0.client.quota(opd: opd) }
            if global.json { return try Output.json(view) }
            print("OPD \(view.id) (\(view.displayName))")
            Output.quotaTable(view)
        }
    }

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask for a quota change; an admin decides.",
            discussion: """
                Amounts are changes: +8 (or 8) asks for more, -4 gives back.
                Example: lumbung quota request --vcpu +8 --memory +16GiB --storage ssd=+100GiB --reason "…"
                """)

        @Option(parsing: .unconditional, help: ArgumentHelp("Change of the vCPU quota, e.g. +8.", valueName: "±count"))
        var vcpu: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Change of the memory quota, e.g. +16GiB.", valueName: "±size"))
        var memory: String?

        @Option(
            parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Change of a pool's storage quota, e.g. ssd=+100GiB (repeatable).", valueName: "pool=±size"))
        var storage: [String] = []

        @Option(parsing: .unconditional, help: ArgumentHelp("Change of the VM count, e.g. +2.", valueName: "±count"))
        var vms: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Change of the volume count, e.g. +1.", valueName: "±count"))
        var volumes: String?

        @Option(help: ArgumentHelp("Why the OPD needs it (required).", valueName: "text"))
        var reason: String

        @OptionGroup var letter: LetterOption

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> FileRequestBody {
            guard vcpu != nil || memory != nil || !storage.isEmpty || vms != nil || volumes != nil else {
                throw ValidationError("give at least one of --vcpu, --memory, --storage, --vms, --volumes, e.g. --vcpu +8")
            }
            var delta = ResourceVector.zero
            if let vcpu { delta.vcpu = try Input.vcpu(vcpu, what: "vCPU change", allowSign: true) }
            if let memory { delta.memory = try Input.size(memory, what: "memory change", allowSign: true) }
            delta.storage = try Input.pools(storage, option: "--storage", allowSign: true)
            if let vms { delta.vms = try Input.count(vms, what: "VM count change", allowSign: true) }
            if let volumes { delta.volumes = try Input.count(volumes, what: "volume count change", allowSign: true) }
            return FileRequestBody(opd: try scope.id(), reason: try Input.reason(reason, required: true)!, quota: delta, letter: try letter.value())
        }

        func run() async throws {
            let body = try body()
            let request = try await global.withClient { try await $0.client.fileRequest(body) }
            if global.json { return try Output.json(request) }
            printFiled(request)
        }
    }
}
