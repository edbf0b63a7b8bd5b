import Foundation
import GRDB

/// Online backup and restore of the controller's state.
///
/// A backup is **one SQLite file**: a consistent copy of the database taken with SQLite's online
/// backup API from a read transaction (the controller keeps running and writing; the copy is
/// the state as of one commit), plus the state directory's other files (CA, server
/// certificate and keys, identity) in a table `lumbung_backup_files`. Restoring writes those
/// files back (keys mode 0600) and the database without that table. A restore never writes
/// into a directory that already holds a database.
public enum StoreBackup {
    /// What a backup holds.
    public struct Summary: Sendable, Hashable {
        /// Bytes of the backup file.
        public var bytes: Int64
        /// The state files carried along.
        public var files: [String]
        /// Audit entries in the copy and whether their chain verifies.
        public var auditEntries: Int
        public var auditOK: Bool
    }

    static let filesTable = "lumbung_backup_files"

    /// Copies the database at `database` (live or not) and the given state files into `destination`.
    ///
    /// - Parameters:
    ///   - files: name → (bytes, POSIX mode) of the other state files.
    /// - Throws: ``StoreError`` when the database cannot be read or the destination written;
    ///   an existing destination is refused.
    public static func backup(database: String, files: [String: (Data, Int)], to destination: String) throws -> Summary {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw StoreError(.constraint, "\(destination) exists; give a new file name for the backup (nothing was written)")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(Store.busyTimeout)
        let partial = destination + ".part"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            let source = try DatabasePool(path: database, configuration: config)
            let copy = try DatabaseQueue(path: partial)
            try source.backup(to: copy)
            try copy.write { db in
                try db.execute(sql: "CREATE TABLE \(filesTable) (name TEXT NOT NULL PRIMARY KEY, mode INTEGER NOT NULL, content BLOB NOT NULL) STRICT")
                for (name, (data, mode)) in files.sorted(by: { $0.key < $1.key }) {
                    try db.execute(sql: "INSERT INTO \(filesTable) (name, mode, content) VALUES (?, ?, ?)", arguments: [name, mode, data])
                }
            }
            let verification = try copy.read { db in try AuditChain.verify(db) }
            let entries = try copy.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit") ?? 0 }
            try copy.close()
            try FileManager.default.moveItem(atPath: partial, toPath: destination)
            let size = (try? FileManager.default.attributesOfItem(atPath: destination)[.size] as? Int64) ?? 0
            return Summary(bytes: size, files: files.keys.sorted(), auditEntries: entries, auditOK: verification.ok)
        } catch let error as StoreError {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw StoreError.wrap(error, doing: "backing up \(database) to \(destination)")
        }
    }

    /// Restores a backup made by ``backup(database:files:to:)``: the state files into
    /// `directory` and the database as `database` (inside it). Refuses when `database` exists.
    /// Returns the restored files and the audit verification of the restored database.
    public static func restore(from backup: String, directory: String, database: String) throws -> Summary {
        guard FileManager.default.fileExists(atPath: backup) else {
            throw StoreError(.notFound, "no backup at \(backup)")
        }
        guard !FileManager.default.fileExists(atPath: database) else {
            throw StoreError(.constraint, "\(database) exists; restore into a new, empty state directory (nothing was changed)")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let partial = database + ".part"
            try? FileManager.default.removeItem(atPath: partial)
            try FileManager.default.copyItem(atPath: backup, toPath: partial)
            let queue = try DatabaseQueue(path: partial)
            let files = try queue.read { db -> [(String, Int, Data)] in
                guard try db.tableExists(filesTable) else {
                    throw StoreError(.incompatible, "\(backup) is not a Lumbung backup (it has no \(filesTable) table)")
                }
                return try Row.fetchAll(db, sql: "SELECT name, mode, content FROM \(filesTable) ORDER BY name").map { ($0["name"], $0["mode"], $0["content"]) }
            }
            for (name, _, _) in files where name.contains("/") || name.hasPrefix(".") || name.isEmpty {
                throw StoreError(.incompatible, "\(backup) names a state file '\(name)' that could escape the directory; nothing was restored")
            }
            for (name, mode, data) in files {
                let path = directory + "/" + name
                guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: mode]) else {
                    throw StoreError(.database, "cannot write \(path)")
                }
            }
            try queue.write { db in try db.execute(sql: "DROP TABLE \(filesTable)") }
            let verification = try queue.read { db in try AuditChain.verify(db) }
            let entries = try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit") ?? 0 }
            try queue.close()
            try FileManager.default.moveItem(atPath: partial, toPath: database)
            let size = (try? FileManager.default.attributesOfItem(atPath: database)[.size] as? Int64) ?? 0
            return Summary(bytes: size, files: files.map { $0.0 }, auditEntries: entries, auditOK: verification.ok)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.wrap(error, doing: "restoring \(backup) into \(directory)")
        }
    }
}
