import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung host …`: the data center's hosts (admins).
struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Declare, inspect, label, cordon and remove hosts (admin).",
        subcommands: [Add.self, List.self, Show.self, Label.self, Cordon.self, Uncordon.self, Remove.self, Token.self])
}

/// A host named on the command line.
struct HostArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The host's name, e.g. node-01.", valueName: "host"))
    var host: String

    func validate() throws { _ = try id() }

    func id() throws -> HostID { HostID(rawValue: try Input.name(host, what: "host name")) }
}

extension HostCommand {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare a host and print a one-time join token for its agent.",
            discussion: """
                Example: lumbung host add node-01 --cpus 64 --memory 256GiB --pool ssd=4TiB --pool hdd=20TiB --labels rack=a
                The host counts in capacity planning at once; VMs placed on it stay 'scheduled' until its agent runs them. \
                When the agent reports facts that differ from this declaration, the reported facts win.
                """)

        @Argument(help: ArgumentHelp("The host's name, e.g. node-01 (never an address).", valueName: "host"))
        var id: String

        @Option(parsing: .unconditional, help: ArgumentHelp("Physical CPU threads, e.g. 64.", valueName: "count"))
        var cpus: String

        @Option(parsing: .unconditional, help: ArgumentHelp("Physical memory, e.g. 256GiB.", valueName: "size"))
        var memory: String

        @Option(
            name: .customLong("pool"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A storage pool and its size, e.g. ssd=4TiB (repeat for more pools).", valueName: "pool=size"))
        var pools: [String] = []

        @Option(
            name: [.customLong("labels"), .customLong("label")],
            help: ArgumentHelp("Labels for placement rules, e.g. rack=a,tier=ssd (repeatable).", valueName: "key=value,…"))
        var labels: [String] = []

        @Option(name: .customLong("reserve-cpus"), parsing: .unconditional, help: ArgumentHelp("CPUs kept for the host itself.", valueName: "count"))
        var reserveCPUs: String?

        @Option(name: .customLong("reserve-memory"), parsing: .unconditional, help: ArgumentHelp("Memory kept for the host itself, e.g. 8GiB.", valueName: "size"))
        var reserveMemory: String?

        @Option(
            name: .customLong("reserve-pool"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Storage of a pool kept for the host itself, e.g. ssd=100GiB (repeatable).", valueName: "pool=size"))
        var reservePools: [String] = []

        @Option(name: .customLong("overcommit-cpu"), help: ArgumentHelp("vCPUs per CPU that may be allocated (default 4.0).", valueName: "ratio"))
        var overcommitCPU: String?

        @Option(name: .customLong("overcommit-memory"), help: ArgumentHelp("Memory overcommit ratio (default 1.0).", valueName: "ratio"))
        var overcommitMemory: String?

        @Option(name: .customLong("overcommit-storage"), help: ArgumentHelp("Storage overcommit ratio (default 1.0).", valueName: "ratio"))
        var overcommitStorage: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> AddHostBody {
            let id = HostID(rawValue: try Input.name(self.id, what: "host name"))
            let pools = try Input.pools(self.pools, option: "--pool")
            guard !pools.isEmpty else {
                throw ValidationError("give the host's storage pools with --pool, e.g. --pool ssd=4TiB --pool hdd=20TiB")
            }
            let capacity = HostCapacity(
                cpus: try Input.vcpu(cpus, what: "CPU count"), memory: try Input.size(memory, what: "memory"), pools: pools)
            var reserved: HostCapacity?
            if reserveCPUs != nil || reserveMemory != nil || !reservePools.isEmpty {
                let reservedPools = try Input.pools(reservePools, option: "--reserve-pool")
                for pool in reservedPools.keys where pools[pool] == nil {
                    throw ValidationError("--reserve-pool names pool '\(pool)', which the host does not have (it has \(Format.pools(pools)))")
                }
                reserved = HostCapacity(
                    cpus: try reserveCPUs.map { try Input.vcpu($0, what: "reserved CPU count") } ?? 0,
                    memory: try reserveMemory.map { try Input.size($0, what: "reserved memory") } ?? .zero,
                    pools: reservedPools)
            }
            var overcommit: Overcommit?
            if overcommitCPU != nil || overcommitMemory != nil || overcommitStorage != nil {
                let d = Overcommit.default
                overcommit = Overcommit(
                    cpu: try overcommitCPU.map { try Input.ratio($0, what: "CPU overcommit") } ?? d.cpu,
                    memory: try overcommitMemory.map { try Input.ratio($0, what: "memory overcommit") } ?? d.memory,
                    storage: try overcommitStorage.map { try Input.ratio($0, what: "storage overcommit") } ?? d.storage)
            }
            let labels = try Input.labels(self.labels, option: "--labels")
            return AddHostBody(id: id, capacity: capacity, reserved: reserved, overcommit: overcommit, labels: labels.isEmpty ? nil : labels)
        }

        func run() async throws {
            let body = try body()
            let (added, controller) = try await global.withClient { session in
                (try await session.client.addHost(body), session.config.controller)
            }
            if global.json { return try Output.json(added) }
            print("Host \(added.host.id) declared: \(Format.capacity(added.host.declared)); state \(added.host.state.rawValue).")
            printJoin(added, controller: controller)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List hosts with what is allocated of what is allocatable.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let hosts = try await global.withClient { try await $0.client.listHosts() }
            if global.json { return try Output.json(hosts) }
            Output.table(
                ["HOST", "STATE", "DRIVER", "VCPU", "MEMORY", "STORAGE", "VMS", "VOLUMES", "LAST REPORT"],
                hosts.sorted { $0.id < $1.id }.map { h in
                    [
                        h.id.rawValue, h.state.rawValue, h.driver ?? "-", "\(h.allocated.vcpu)/\(h.allocatable.vcpu)",
                        "\(h.allocated.memory)/\(h.allocatable.memory)", Format.poolsUsed(h.allocated.storage, of: h.allocatable.storage),
                        String(h.vms), String(h.volumes), Format.date(h.lastReportAt),
                    ]
                }, empty: "No hosts yet; declare one with: lumbung host add NAME --cpus N --memory SIZE --pool POOL=SIZE")
            if !hosts.isEmpty { print("(allocated/allocatable)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a host: declared and reported facts, allocations, differences.")

        @OptionGroup var host: HostArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try host.id()
            let h = try await global.withClient { try await $0.client.host(id) }
            if global.json { return try Output.json(h) }
            printHost(h)
        }
    }

    struct Label: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set or remove host labels (placement, constraints and overcommit by label follow).",
            discussion: """
                Example: lumbung host label node-01 certified=pdp tier=ssd
                         lumbung host label node-01 tier-          (removes label tier)
                What already runs on the host stays there.
                """)

        @OptionGroup var host: HostArgument

        @Argument(help: ArgumentHelp("key=value to set, key- to remove.", valueName: "label"))
        var labels: [String] = []

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> SetHostLabelsBody {
            guard !labels.isEmpty else { throw ValidationError("give at least one label: key=value to set, key- to remove") }
            let removals = labels.filter { $0.hasSuffix("-") && !$0.contains("=") }
            let settings = try Input.labels(labels.filter { !removals.contains($0) }, option: "label")
            return SetHostLabelsBody(
                set: settings.isEmpty ? nil : settings, remove: removals.isEmpty ? nil : removals.map { String($0.dropLast()) })
        }

        func run() async throws {
            let id = try host.id()
            let body = try body()
            let h = try await global.withClient { try await $0.client.setHostLabels(id, body) }
            if global.json { return try Output.json(h) }
            print("Host \(h.id) labels: \(Format.labels(h.labels)); allocatable \(h.allocatable.vcpu) vCPU, \(h.allocatable.memory) memory.")
        }
    }

    struct Cordon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop placing new VMs and volumes on a host; what runs there stays.")

        @OptionGroup var host: HostArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try host.id()
            let h = try await global.withClient { try await $0.client.cordon(id) }
            if global.json { return try Output.json(h) }
            print("Host \(h.id) is \(h.state.rawValue): it takes no new placements; its \(h.vms) VMs and \(h.volumes) volumes stay.")
        }
    }

    struct Uncordon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a cordoned host take placements again.")

        @OptionGroup var host: HostArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try host.id()
            let h = try await global.withClient { try await $0.client.uncordon(id) }
            if global.json { return try Output.json(h) }
            print("Host \(h.id) is \(h.state.rawValue).")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a host; its agent's certificate stops working on its next request.")

        @OptionGroup var host: HostArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try host.id()
            let h = try await global.withClient { try await $0.client.removeHost(id) }
            if global.json { return try Output.json(h) }
            print("Host \(h.id) removed; its agent's certificate no longer works.")
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a new one-time join token for a host's agent.")

        @OptionGroup var host: HostArgument
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try host.id()
            let (added, controller) = try await global.withClient { session in
                (try await session.client.hostToken(id), session.config.controller)
            }
            if global.json { return try Output.json(added) }
            printJoin(added, controller: controller)
        }
    }
}

/// Prints a host's join token and the agent command that uses it.
private func printJoin(_ added: AddHostResponse, controller: String) {
    print("One-time join token (expires \(Format.date(added.tokenExpiresAt))):")
    print("  \(added.joinToken)")
    print("On \(added.host.id), run:")
    print("  lumbung-agent join --controller \(controller) --token \(added.joinToken)")
}

private func printHost(_ h: HostView) {
    var fields: [(String, String)] = [
        ("host", h.id.rawValue),
        ("state", h.state.rawValue),
        ("driver", h.driver.map { $0 == "simulated" ? "simulated (runs nothing for real)" : $0 } ?? "- (no report yet)"),
        ("labels", Format.labels(h.labels)),
        ("declared", Format.capacity(h.declared)),
        ("reported", h.reported.map(Format.capacity) ?? "- (no report yet)"),
        ("images", h.images.map { $0.isEmpty ? "none" : $0.joined(separator: ", ") } ?? "- (not reported yet)"),
        ("reserved", Format.capacity(h.reserved)),
        ("overcommit", "cpu \(Format.ratio(h.overcommit.cpu)), memory \(Format.ratio(h.overcommit.memory)), storage \(Format.ratio(h.overcommit.storage))"),
        ("allocatable", Format.vector(h.allocatable, counts: false)),
        ("allocated", Format.vector(h.allocated, counts: false)),
        ("free", Format.vector(h.free, counts: false)),
        ("VMs", String(h.vms)),
        ("volumes", String(h.volumes)),
        ("last report", Format.date(h.lastReportAt)),
        ("desired version", String(h.desiredVersion)),
    ]
    if !h.differences.isEmpty {
        fields.append(("differences", h.differences.joined(separator: "\n")))
    }
    Output.fields(fields)
}
