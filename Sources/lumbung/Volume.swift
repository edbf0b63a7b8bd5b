import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung volume …`.
struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume",
        abstract: "Create (admin) or request volumes; list, show, resize and delete them.",
        subcommands: [Create.self, Request.self, List.self, Show.self, Resize.self, Delete.self])
}

/// What a volume asks for, as given on the command line.
struct VolumeSpecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The volume's name, unique in its OPD, e.g. arsip.", valueName: "name"))
    var name: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Size, e.g. 500GiB.", valueName: "size"))
    var size: String

    @Option(help: ArgumentHelp("The storage pool, e.g. hdd.", valueName: "pool"))
    var pool: String

    @Option(
        name: .customLong("tag"),
        help: ArgumentHelp(
            "A tag describing the volume's data (repeatable), e.g. data=pribadi: the policy's placement constraints may then require host labels.",
            valueName: "key=value"))
    var tags: [String] = []

    func body() throws -> VolumeBody {
        let tagged = try Input.labels(tags, option: "--tag", what: "tag")
        return VolumeBody(
            name: try Input.name(name, what: "volume name"),
            size: try Input.size(size, what: "volume size"),
            pool: PoolName(rawValue: try Input.name(pool, what: "pool name")),
            tags: tagged.isEmpty ? nil : tagged)
    }
}

/// A volume named by id or name.
struct VolumeRefOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The volume's id (vol-…) or name (admins add --opd with a name).", valueName: "volume"))
    var volume: String

    @OptionGroup var scope: OPDScopeOptions

    func validate() throws { _ = try ref() }

    func ref() throws -> String { try Input.name(volume, what: "volume name or id") }
}

extension VolumeCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Allocate a volume to an OPD at once (admin).",
            discussion: "Example: lumbung volume create --opd dinkes --name arsip --size 500GiB --pool hdd")

        @Option(help: ArgumentHelp("The OPD the volume is for.", valueName: "opd"))
        var opd: String

        @OptionGroup var spec: VolumeSpecOptions

        @Flag(help: "Allocate even if it breaks the N+1 headroom rule (admin; audited as an override).")
        var force = false

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> CreateVolumeBody {
            CreateVolumeBody(opd: OPDID(rawValue: try Input.name(opd, what: "OPD name")), volume: try spec.body(), force: force ? true : nil)
        }

        func run() async throws {
            let body = try body()
            let v = try await global.withClient { try await $0.client.createVolume(body) }
            if global.json { return try Output.json(v) }
            print("Volume \(v.spec.name) (\(v.id)) allocated to \(v.opd): \(v.spec.size) on \(v.spec.pool) of \(v.host?.rawValue ?? "no host yet"); state \(v.state.rawValue).")
        }
    }

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask for a volume; an approver or admin decides.",
            discussion: "Example: lumbung volume request --name arsip --size 500GiB --pool hdd --reason \"…\"")

        @OptionGroup var spec: VolumeSpecOptions

        @Option(help: ArgumentHelp("Why the OPD needs it (required).", valueName: "text"))
        var reason: String

        @OptionGroup var letter: LetterOption

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> FileRequestBody {
            FileRequestBody(opd: try scope.id(), reason: try Input.reason(reason, required: true)!, volume: try spec.body(), letter: try letter.value())
        }

        func run() async throws {
            let body = try body()
            let request = try await global.withClient { try await $0.client.fileRequest(body) }
            if global.json { return try Output.json(request) }
            printFiled(request)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List volumes (members see their own OPD's).")

        @OptionGroup var scope: OPDScopeOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let opd = try scope.id()
            let volumes = try await global.withClient { try await $0.client.listVolumes(opd: opd) }
            if global.json { return try Output.json(volumes) }
            Output.table(
                ["ID", "NAME", "OPD", "HOST", "STATE", "SIZE", "POOL", "USED"],
                volumes.sorted { ($0.opd, $0.spec.name) < ($1.opd, $1.spec.name) }.map { v in
                    [
                        v.id.rawValue, v.spec.name, v.opd.rawValue, v.host?.rawValue ?? "-", v.state.rawValue,
                        v.spec.size.description, v.spec.pool.rawValue, v.observed?.diskUsed?.description ?? "-",
                    ]
                }, empty: "No volumes.")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a volume.")

        @OptionGroup var ref: VolumeRefOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let v = try await global.withClient { try await $0.client.volume(name, opd: opd) }
            if global.json { return try Output.json(v) }
            var fields: [(String, String)] = [
                ("id", v.id.rawValue),
                ("name", v.spec.name),
                ("opd", v.opd.rawValue),
                ("state", v.state.rawValue),
                ("host", v.host?.rawValue ?? "- (not placed)"),
                ("size", v.spec.size.description),
                ("pool", v.spec.pool.rawValue),
                ("tags", Format.labels(v.spec.tags)),
                ("created", Format.date(v.createdAt)),
            ]
            fields += Format.observation(v.observed)
            Output.fields(fields)
        }
    }

    struct Resize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grow a volume (admin); the OPD's quota and the host's pool must have room.")

        @OptionGroup var ref: VolumeRefOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("The new size, e.g. 1TiB (grow only).", valueName: "size"))
        var size: String

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try Input.size(size, what: "volume size") }

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let body = ResizeVolumeBody(size: try Input.size(size, what: "volume size"))
            let v = try await global.withClient { try await $0.client.resizeVolume(name, opd: opd, body) }
            if global.json { return try Output.json(v) }
            print("Volume \(v.spec.name) (\(v.id)) is now \(v.spec.size); state \(v.state.rawValue).")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a volume and return its storage to the OPD's quota (the host keeps the data for its retention time).")

        @OptionGroup var ref: VolumeRefOptions
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let (name, opd) = (try ref.ref(), try ref.scope.id())
            let v = try await global.withClient { try await $0.client.deleteVolume(name, opd: opd) }
            if global.json { return try Output.json(v) }
            print("Volume \(v.spec.name) (\(v.id)) of \(v.opd) is \(v.state.rawValue); its storage is returned to the quota.")
        }
    }
}
