import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung user …`: people who use the CLI (admins).
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, list and revoke users (admin).",
        subcommands: [Add.self, List.self, Revoke.self])
}

/// The roles a person can be given.
enum UserRole: String, ExpressibleByArgument, CaseIterable {
    case admin, member, approver

    var role: Role {
        switch self {
        case .admin: .admin
        case .member: .member
        case .approver: .approver
        }
    }
}

extension UserCommand {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user and print a one-time login token for them.",
            discussion: """
                Example: lumbung user add budi --opd dinkes --role member
                Members request resources for their OPD; approvers may also approve their OPD's requests; \
                admins (Kominfo sysadmins) belong to no OPD.
                """)

        @Argument(help: ArgumentHelp("The user's name, e.g. budi.", valueName: "user"))
        var name: String

        @Option(help: ArgumentHelp("admin, member or approver.", valueName: "role"))
        var role: UserRole

        @Option(help: ArgumentHelp("The OPD of a member or approver.", valueName: "opd"))
        var opd: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try body() }

        func body() throws -> AddUserBody {
            let user = UserID(rawValue: try Input.name(name, what: "user name"))
            var opdID: OPDID?
            switch role {
            case .admin:
                if opd != nil { throw ValidationError("an admin belongs to no OPD; leave out --opd") }
            case .member, .approver:
                guard let opd else { throw ValidationError("a \(role.rawValue) belongs to one OPD; give it with --opd, e.g. --opd dinkes") }
                opdID = OPDID(rawValue: try Input.name(opd, what: "OPD name"))
            }
            return AddUserBody(name: user, role: role.role, opd: opdID)
        }

        func run() async throws {
            let body = try body()
            let (added, controller) = try await global.withClient { session in
                (try await session.client.addUser(body), session.config.controller)
            }
            if global.json { return try Output.json(added) }
            print("User \(added.user.name) added, \(Format.role(added.user.role, added.user.opd)).")
            print("One-time login token (expires \(Format.date(added.tokenExpiresAt))):")
            print("  \(added.token)")
            print("Give it to \(added.user.name) to run:")
            print("  lumbung login --controller \(controller) --token \(added.token)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let users = try await global.withClient { try await $0.client.listUsers() }
            if global.json { return try Output.json(users) }
            Output.table(
                ["USER", "ROLE", "OPD", "CREATED", "REVOKED"],
                users.sorted { $0.name < $1.name }.map { u in
                    [u.name.rawValue, u.role.rawValue, u.opd?.rawValue ?? "-", Format.date(u.createdAt), Format.date(u.revokedAt)]
                }, empty: "No users.")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a user; their certificate stops working on their next request.")

        @Argument(help: ArgumentHelp("The user's name.", valueName: "user"))
        var name: String

        @OptionGroup var global: GlobalOptions

        func validate() throws { _ = try Input.name(name, what: "user name") }

        func run() async throws {
            let user = UserID(rawValue: try Input.name(name, what: "user name"))
            let revoked = try await global.withClient { try await $0.client.revokeUser(user) }
            if global.json { return try Output.json(revoked) }
            print("User \(revoked.name) is revoked (\(Format.date(revoked.revokedAt))); their certificate no longer works.")
        }
    }
}
