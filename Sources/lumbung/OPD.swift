import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung opd …`: agencies and their quotas (admins).
struct OPDCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "opd",
        abstract: "Create OPDs and set their quotas (admin); list and show them.",
        subcommands: [Create.self, List.self, Show.self, SetQuota.self])
}

/// Quota amounts given on the command line; only the given dimensions are set.
struct QuotaOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("vCPU quota, e.g. 32.", valueName: "count"))
    var vcpu: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Memory quota, e.g. 64GiB.", valueName: "size"))
    var memory: String?

    @Option(
        parsing: .unconditionalSingleValue,
        help: ArgumentHelp("Storage quota of a pool, e.g. ssd=2TiB (repeat or comma-separate for more pools).", valueName: "pool=size"))
    var storage: [String] = []

    @Option(parsing: .unconditional, help: ArgumentHelp("How many VMs the OPD may hold, e.g. 20.", valueName: "count"))
    var vms: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("How many volumes the OPD may hold (opd create: default as many as --vms).", valueName: "count"))
    var volumes: String?

    var isEmpty: Bool { vcpu == nil && memory == nil && storage.isEmpty && vms == nil && volumes == nil }

    /// `base` with the given dimensions replaced.
    /// The given amounts as a change (absolute values for the named dimensions only).
    func change() throws -> QuotaChange {
        var storageChange: [String: ByteSize] = [:]
        for (pool, size) in try Input.pools(storage, option: "--storage") { storageChange[pool.rawValue] = size }
        return QuotaChange(
            vcpu: try vcpu.map { try Input.vcpu($0, what: "vCPU quota") },
            memory: try memory.map { try Input.size($0, what: "memory quota") },
            storage: storageChange.isEmpty ? nil : storageChange,
            vms: try vms.map { try Input.count($0, what: "VM count") },
            volumes: try volumes.map { try Input.count($0, what: "volume count") })
    }

    func apply(to base: ResourceVector) throws -> ResourceVector {
        var v = base
        if let vcpu { v.vcpu = try Input.vcpu(vcpu, what: "vCPU quota") }
        if let memory { v.memory = try Input.size(memory, what: "memory quota") }
        for (pool, size) in try Input.pools(storage, option: "--storage") { v.storage[pool] = size }
        if let vms { v.vms = try Input.count(vms, what: "VM count") }
        if let volumes { v.volumes = try Input.count(volumes, what: "volume count") }
        return v
    }
}

extension OPDCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an OPD with its quota (admin).",
            discussion: """
                Example: lumbung opd create dinkes --name "Dinas Kesehatan" --vcpu 32 --memory 64GiB --storage ssd=2TiB --vms 20
                         lumbung opd create dinkes --name "Dinas Kesehatan" --class sedang
                Dimensions not given are zero, except --volumes, which defaults to --vms. With --class the OPD gets
                the class's quota (see 'lumbung policy show') and follows it when the class changes.
                """)

        @Argument(help: ArgumentHelp("The OPD's short name, e.g. dinkes.", valueName: "opd"))
        var id: String

        @Option(name: .customLong("name"), help: ArgumentHelp("The OPD's full name, e.g. \"Dinas Kesehatan\".", valueName: "full name"))
        var displayName: String

        @Option(name: .customLong("class"), help: ArgumentHelp("A quota class of the policy set, e.g. kecil, sedang, besar (instead of amounts).", valueName: "class"))
        var quotaClass: String?

        @OptionGroup var quota: QuotaOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> CreateOPDBody {
            let id = OPDID(rawValue: try Input.name(self.id, what: "OPD name"))
            let name = try Input.displayName(displayName)
            if let quotaClass {
                guard quota.isEmpty else {
                    throw ValidationError("give either --class or amounts (--vcpu, --memory, …), not both; the class sets the whole quota")
                }
                return CreateOPDBody(id: id, displayName: name, quotaClass: QuotaClassName(rawValue: try Input.name(quotaClass, what: "class name")))
            }
            var vector = try quota.apply(to: .zero)
            if quota.volumes == nil { vector.volumes = vector.vms }
            return CreateOPDBody(id: id, displayName: name, quota: vector)
        }

        func run() async throws {
            let body = try body()
            let opd = try await global.withClient { try await $0.client.createOPD(body) }
            if global.json { return try Output.json(opd) }
            print("OPD \(opd.id) (\(opd.displayName)) created\(opd.quotaClass.map { " with quota class \($0)" } ?? "").")
            Output.quotaTable(opd)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List OPDs with what they use of their quota (members see their own).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let opds = try await global.withClient { try await $0.client.listOPDs() }
            if global.json { return try Output.json(opds) }
            Output.table(
                ["OPD", "NAME", "VCPU", "MEMORY", "STORAGE", "VMS", "VOLUMES"],
                opds.sorted { $0.id < $1.id }.map { o in
                    [
                        o.id.rawValue, o.displayName, "\(o.usage.vcpu)/\(o.quota.vcpu)", "\(o.usage.memory)/\(o.quota.memory)",
                        Format.poolsUsed(o.usage.storage, of: o.quota.storage), "\(o.usage.vms)/\(o.quota.vms)",
                        "\(o.usage.volumes)/\(o.quota.volumes)",
                    ]
                }, empty: "No OPDs yet; an admin creates one with: lumbung opd create NAME --name \"FULL NAME\" …")
            if !opds.isEmpty { print("(used/quota)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an OPD: its quota, what it uses and what is left.")

        @Argument(help: ArgumentHelp("The OPD's short name.", valueName: "opd"))
        var id: String

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try Input.name(id, what: "OPD name") }

        func run() async throws {
            let id = OPDID(rawValue: try Input.name(self.id, what: "OPD name"))
            let opd = try await global.withClient { try await $0.client.opd(id) }
            if global.json { return try Output.json(opd) }
            Output.fields([
                ("opd", opd.id.rawValue), ("name", opd.displayName), ("class", opd.quotaClass?.rawValue ?? "none (a quota of its own)"),
                ("created", Format.date(opd.createdAt)),
            ])
            print("")
            Output.quotaTable(opd)
        }
    }

    struct SetQuota: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-quota",
            abstract: "Change an OPD's quota (admin); only the given dimensions change.",
            discussion: """
                Example: lumbung opd set-quota dinkes --vcpu 40 --storage hdd=10TiB
                         lumbung opd set-quota dinkes --class besar
                Lowering a dimension below what the OPD already uses is refused unless --force is given (audited).
                Amounts give the OPD a quota of its own (it leaves its class); --class moves it to that class's quota.
                """)

        @Argument(help: ArgumentHelp("The OPD's short name.", valueName: "opd"))
        var id: String

        @Option(name: .customLong("class"), help: ArgumentHelp("Move the OPD to this quota class (instead of amounts).", valueName: "class"))
        var quotaClass: String?

        @OptionGroup var quota: QuotaOptions

        @Flag(help: "Lower the quota even below what the OPD already uses (audited).")
        var force = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            _ = try Input.name(id, what: "OPD name")
            if let quotaClass {
                guard quota.isEmpty else {
                    throw ValidationError("give either --class or amounts (--vcpu, --memory, …), not both; the class sets the whole quota")
                }
                _ = try Input.name(quotaClass, what: "class name")
                return
            }
            guard !quota.isEmpty else {
                throw ValidationError("give --class or at least one of --vcpu, --memory, --storage, --vms, --volumes")
            }
            _ = try quota.apply(to: .zero)
        }

        func run() async throws {
            let id = OPDID(rawValue: try Input.name(self.id, what: "OPD name"))
            let cls = try quotaClass.map { QuotaClassName(rawValue: try Input.name($0, what: "class name")) }
            let (before, after) = try await global.withClient { session in
                let current = try await session.client.opd(id)
                if let cls {
                    return (current, try await session.client.setQuota(id, SetQuotaBody(quotaClass: cls, force: force ? true : nil)))
                }
                // Only the given amounts are sent: the controller applies them to the quota as it
                // is then, so a concurrent change of another amount is not overwritten.
                let updated = try await session.client.setQuota(id, SetQuotaBody(change: try quota.change(), force: force ? true : nil))
                return (current, updated)
            }
            if global.json { return try Output.json(after) }
            if let cls = after.quotaClass, cls != before.quotaClass {
                print("\(id) is now of quota class \(cls).")
            } else if before.quota.normalized == after.quota.normalized {
                print("The quota of \(id) already is that; nothing changed.")
            } else {
                print("Quota of \(id) changed.")
            }
            Output.quotaTable(after)
        }
    }
}
