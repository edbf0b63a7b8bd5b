import ArgumentParser
import Foundation
import LumbungController
import LumbungStore

extension Lumbungd {
    /// The state files besides the database that a backup carries.
    static func stateFiles(_ paths: StatePaths) -> [(name: String, path: String)] {
        [paths.caCertificate, paths.caKey, paths.serverCertificate, paths.serverKey, paths.identity].map {
            (URL(fileURLWithPath: $0).lastPathComponent, $0)
        }
    }

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a consistent backup of a controller's state to one file, while it runs.",
            discussion: "The database is copied with SQLite's online backup API (the state as of one commit); the CA, server certificate and keys and the identity file go into the same file. Keep it as safe as the CA key.")

        @Option(help: "State directory of the controller.")
        var state: String = "/var/lib/lumbung"

        @Option(help: "The backup file to write (must not exist).")
        var to: String

        func run() async throws {
            let paths = StatePaths(state)
            var files: [String: (Data, Int)] = [:]
            for (name, path) in Lumbungd.stateFiles(paths) {
                guard let data = FileManager.default.contents(atPath: path) else {
                    printError("cannot read \(path); is \(state) a controller state directory (lumbungd init)?")
                    throw ExitCode(1)
                }
                let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0o600
                files[name] = (data, mode)
            }
            do {
                let summary = try StoreBackup.backup(database: paths.database, files: files, to: to)
                print("Backup written to \(to): \(summary.bytes) bytes, \(summary.auditEntries) audit entries (chain \(summary.auditOK ? "verifies" : "DOES NOT verify")), files \(summary.files.joined(separator: ", ")).")
                print("Restore with: lumbungd restore --from \(to) --state NEW_DIR")
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup into a new state directory (never over an existing database).")

        @Option(help: "The backup file (from 'lumbungd backup').")
        var from: String

        @Option(help: "The state directory to create.")
        var state: String

        func run() async throws {
            let paths = StatePaths(state)
            do {
                let summary = try StoreBackup.restore(from: from, directory: state, database: paths.database)
                print("Restored \(from) into \(state): \(summary.auditEntries) audit entries (chain \(summary.auditOK ? "verifies" : "DOES NOT verify")), files \(summary.files.joined(separator: ", ")).")
                print("Run it with: lumbungd run --state \(state)")
                if !summary.auditOK { throw ExitCode(1) }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
        }
    }
}
