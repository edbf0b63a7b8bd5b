import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung vm …`.
struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Create (admin) or request VMs; list, show, start, stop and delete them.",
        subcommands: [Create.self, Request.self, Place.self, List.self, Show.self, Start.self, Stop.self, Resize.self, Delete.self])
}

/// What a VM asks for, as given on the command line.
struct VMSpecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The VM's name, unique in its OPD, e.g. simpus-db (required except for vm place).", valueName: "name"))
    var name: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("vCPUs, e.g. 4.", valueName: "count"))
    var vcpu: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Memory, e.g. 8GiB.", valueName: "size"))
    var memory: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Disk size, taken from --pool, e.g. 100GiB.", valueName: "size"))
    var disk: String

    @Option(help: ArgumentHelp("The storage pool of the disk, e.g. ssd (default: the controller's default pool).", valueName: "pool"))
    var pool: String?

    @Option(help: ArgumentHelp("Application group: two VMs of one app never share a host.", valueName: "app"))
    var app: String?

    @Option(help: ArgumentHelp("Base image on the hosts (default: a blank disk).", valueName: "image"))
    var image: String?

    @Option(
        name: .customLong("require-label"),
        help: ArgumentHelp("Place only on hosts with this label (repeatable).", valueName: "key=value"))
    var requireLabels: [String] = []

    @Option(
        name: .customLong("forbid-label"),
        help: ArgumentHelp("Never place on hosts with this label (repeatable).", valueName: "key=value"))
    var forbidLabels: [String] = []

    @Option(
        name: .customLong("tag"),
        help: ArgumentHelp(
            "A tag describing the VM (repeatable), e.g. data=pribadi: the policy's placement constraints may then require host labels.",
            valueName: "key=value"))
    var tags: [String] = []

    /// The body; `defaultName` stands in when `--name` is not given (dry runs), else it is required.
    func body(defaultName: String? = nil) throws -> VMBody {
        let require = try Input.labels(requireLabels, option: "--require-label", what: "required label")
        let forbid = try Input.labels(forbidLabels, option: "--forbid-label", what: "forbidden label")
        let tagged = try Input.labels(tags, option: "--tag", what: "tag")
        guard let given = name ?? defaultName else { throw ValidationError("--name is required, e.g. --name simpus-db") }
        return VMBody(
            name: try Input.name(given, what: "VM name"),
            vcpu: try Input.vcpu(vcpu),
            memory: try Input.size(memory, what: "memory"),
            disk: try Input.size(disk, what: "disk"),
            pool: try pool.map { PoolName(rawValue: try Input.name($0, what: "pool name")) },
            app: try app.map { try Input.name($0, what: "app name") },
            image: try image.map { try Input.image($0) },
            requireLabels: require.isEmpty ? nil : require,
            forbidLabels: forbid.isEmpty ? nil : forbid,
            tags: tagged.isEmpty ? nil : tagged)
    }
}

/// `--opd` where it is optional: members use their own OPD; admins name one.
struct OPDScopeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The OPD (admins; members always act for their own OPD).", valueName: "opd"))
    var opd: String?

    func validate() throws { _ = try id() }

    func id() throws -> OPDID? {
        try opd.map { OPDID(rawValue: try Input.name($0, what: "OPD name")) }
    }
}

/// A VM named by id or name.
struct VMRefOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The VM's id (vm-…) or name (admins add --opd with a name).", valueName: "vm"))
    var vm: String

    @OptionGroup var scope: OPDScopeOptions

    func validate() throws { _ = try ref() }

    func ref() throws -> String { try Input.name(vm, what: "VM name or id") }
}

extension VMCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Allocate a VM to an OPD at once (admin): quota check, placement, commit.",
            discussion: "Example: lumbung vm create --opd dinkes --name simpus-db --vcpu 4 --memory 8GiB --disk 100GiB --pool ssd --app simpus")

        @Option(help: ArgumentHelp("The OPD the VM is for.", valueName: "opd"))
        var opd: String

        @OptionGroup var spec: VMSpecOptions

        @Flag(help: "Allocate even if it breaks the N+1 headroom rule (admin; audited as an override).")
        var force = false

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> CreateVMBody {
            CreateVMBody(opd: OPDID(rawValue: try Input.name(opd, what: "OPD name")), vm: try spec.body(), force: force ? true : nil)
        }

        func run() async throws {
            let body = try body()
            let vm = try await global.withClient { try await $0.client.createVM(body) }
            if global.json { return try Output.json(vm) }
            print("VM \(vm.spec.name) (\(vm.id)) allocated to \(vm.opd) on \(vm.host?.rawValue ?? "no host yet"); state \(vm.state.rawValue).")
        }
    }

    struct Place: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show where a VM would go and why, without allocating anything (dry run).",
            discussion: """
                Says which rules applied (limits, placement constraints, overcommit of the chosen host, \
                N+1 headroom), which hosts were filtered out and why, and the chosen host with its score.
                Example: lumbung vm place --dry-run --opd dinkes --vcpu 4 --memory 8GiB --disk 100GiB --tag data=pribadi
                """)

        @Flag(help: "Required: nothing is allocated (the only mode of vm place).")
        var dryRun = false

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var spec: VMSpecOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard dryRun else { throw ValidationError("vm place only explains; add --dry-run (use vm create or vm request to allocate)") }
            _ = try body()
        }

        func body() throws -> PlaceVMBody {
            PlaceVMBody(opd: try scope.id(), vm: try spec.body(defaultName: "dry-run"))
        }

        func run() async throws {
            let body = try body()
            let answer = try await global.withClient { try await $0.client.placeVM(body) }
            if global.json { return try Output.json(answer) }
            for sentence in answer.sentences { print("- \(sentence)") }
            if let host = answer.host, answer.placeable {
                print("Would place on \(host) (score \(String(format: "%.3f", answer.score ?? 0)), \(answer.strategy)).")
            } else {
                print("Would be refused now.")
            }
        }
    }

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask for a VM; an approver or admin decides.",
            discussion: "Example: lumbung vm request --name sikda-web --vcpu 2 --memory 4GiB --disk 40GiB --pool ssd --app sikda --reason \"…\"")

        @OptionGroup var spec: VMSpecOptions

        @Option(help: ArgumentHelp("Why the OPD needs it (required).", valueName: "text"))
        var reason: String

        @OptionGroup var letter: LetterOption

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> FileRequestBody {
            FileRequestBody(opd: try scope.id(), reason: try Input.reason(reason, required: true)!, vm: try spec.body(), letter: try letter.value())
        }

        func run() async throws {
            let body = try body()
            let request = try await global.withClient { try await $0.client.fileRequest(body) }
            if global.json { return try Output.json(request) }
            printFiled(request)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List VMs (members see their own OPD's).")

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let opd = try scope.id()
            let vms = try await global.withClient { try await $0.client.listVMs(opd: opd) }
            if global.json { return try Output.json(vms) }
            Output.table(
                ["ID", "NAME", "OPD", "HOST", "STATE", "POWER", "VCPU", "MEMORY", "DISK", "APP"],
                vms.sorted { ($0.opd, $0.spec.name) < ($1.opd, $1.spec.name) }.map { vm in
                    [
                        vm.id.rawValue, vm.spec.name, vm.opd.rawValue, vm.host?.rawValue ?? "-", vm.state.rawValue,
                        vm.desiredPower.rawValue, String(vm.spec.vcpu), vm.spec.memory.description,
                        "\(vm.spec.disk) \(vm.spec.pool)", vm.spec.app ?? "-",
                    ]
                }, empty: "No VMs.")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a VM: what it has, where it runs, what its host reports.")

        @OptionGroup var ref: VMRefOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let vm = try await global.withClient { try await $0.client.vm(name, opd: opd) }
            if global.json { return try Output.json(vm) }
            printVM(vm)
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a stopped VM.")

        @OptionGroup var ref: VMRefOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let vm = try await global.withClient { try await $0.client.startVM(name, opd: opd) }
            if global.json { return try Output.json(vm) }
            print("VM \(vm.spec.name) (\(vm.id)) should run; state \(vm.state.rawValue).")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a VM; it keeps its allocation.")

        @OptionGroup var ref: VMRefOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let vm = try await global.withClient { try await $0.client.stopVM(name, opd: opd) }
            if global.json { return try Output.json(vm) }
            print("VM \(vm.spec.name) (\(vm.id)) should stop; state \(vm.state.rawValue).")
        }
    }

    struct Resize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a VM's vCPU, memory or disk (admin; the disk only grows).",
            discussion: "The host applies new CPU and memory limits at once and QEMU's size at the VM's next start; the disk grows online. Example: lumbung vm resize simpus-db --opd dinkes --vcpu 8 --disk 200GiB")

        @OptionGroup var ref: VMRefOptions
        @Option(help: ArgumentHelp("New vCPU count.", valueName: "n"))
        var vcpu: String?
        @Option(help: ArgumentHelp("New memory, e.g. 16GiB.", valueName: "size"))
        var memory: String?
        @Option(help: ArgumentHelp("New disk size, e.g. 200GiB (grow only).", valueName: "size"))
        var disk: String?
        @OptionGroup var global: GlobalOptions

        func body() throws -> ResizeVMBody {
            ResizeVMBody(
                vcpu: try vcpu.map { try Input.vcpu($0) }, memory: try memory.map { try Input.size($0, what: "memory") },
                disk: try disk.map { try Input.size($0, what: "disk") })
        }

        func validate() throws {
            guard vcpu != nil || memory != nil || disk != nil else {
                throw ValidationError("give at least one of --vcpu, --memory, --disk")
            }
            _ = try body()
        }

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let body = try body()
            let vm = try await global.withClient { try await $0.client.resizeVM(name, opd: opd, body) }
            if global.json { return try Output.json(vm) }
            print("VM \(vm.spec.name) (\(vm.id)) is now \(vm.spec.vcpu) vCPU, \(vm.spec.memory) memory, \(vm.spec.disk) disk; state \(vm.state.rawValue).")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a VM and return its resources to the OPD's quota.")

        @OptionGroup var ref: VMRefOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let vm = try await global.withClient { try await $0.client.deleteVM(name, opd: opd) }
            if global.json { return try Output.json(vm) }
            print("VM \(vm.spec.name) (\(vm.id)) of \(vm.opd) is \(vm.state.rawValue); its resources are returned to the quota.")
        }
    }
}

private func printVM(_ vm: VM) {
    var fields: [(String, String)] = [
        ("id", vm.id.rawValue),
        ("name", vm.spec.name),
        ("opd", vm.opd.rawValue),
        ("state", vm.state.rawValue),
        ("power", vm.desiredPower.rawValue),
        ("host", vm.host?.rawValue ?? "- (not placed)"),
        ("vcpu", String(vm.spec.vcpu)),
        ("memory", vm.spec.memory.description),
        ("disk", "\(vm.spec.disk) on \(vm.spec.pool)"),
        ("app", Format.optional(vm.spec.app)),
        ("image", vm.spec.image ?? "- (blank disk)"),
        ("required labels", Format.labels(vm.spec.requiredLabels)),
        ("forbidden labels", Format.labels(vm.spec.forbiddenLabels)),
        ("tags", Format.labels(vm.spec.tags)),
        ("created", Format.date(vm.createdAt)),
    ]
    fields += Format.observation(vm.observed)
    Output.fields(fields)
}

extension Format {
    /// What the host's agent last reported, as fields.
    static func observation(_ o: Observation?) -> [(String, String)] {
        guard let o else { return [("observed", "- (no report from the host yet)")] }
        var fields: [(String, String)] = [("observed", "\(o.state) at \(date(o.at))")]
        if let s = o.cpuSeconds { fields.append(("cpu time", String(format: "%.1f s", s))) }
        if let m = o.memoryUsed {
            fields.append(("memory used", o.memoryLimit.map { "\(m) of \($0)" } ?? m.description))
        }
        if let d = o.diskUsed { fields.append(("disk used", d.description)) }
        if let message = o.message { fields.append(("host says", message)) }
        return fields
    }
}
