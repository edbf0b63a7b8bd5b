import Crypto
import Foundation
import LumbungCore
import Yams

/// One policy file: its name (e.g. `approval.yaml`) and its bytes as read.
public struct PolicyFile: Hashable, Sendable {
    /// The file name, without directory.
    public var name: String
    /// The file's bytes (hashed as they are; parsed as UTF-8).
    public var bytes: [UInt8]

    /// Creates a file from bytes.
    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    /// Creates a file from text (UTF-8).
    public init(name: String, text: String) {
        self.init(name: name, bytes: Array(text.utf8))
    }
}

/// Reads, validates and hashes a policy set.
///
/// A set is every `*.yaml` file of one directory (hidden files and other extensions are
/// ignored). Each file is a YAML mapping of sections — `classes`, `approval`, `placement`,
/// `limits`, `retention` — split over files as the writer likes, each section defined exactly
/// once across the set (the shipped `policies/` has one file per section). Every problem is
/// reported as `file:line: message`, all of them, and a set with any problem is never returned.
///
/// The hash is SHA-256 over the files sorted by name, each framed as `name`, newline, byte count,
/// newline, the bytes, newline: the same files always give the same hash and any change of a
/// name or a byte changes it.
public enum PolicyLoader {
    /// Reads and validates the set in `directory`. `totals`, when given, lets the check compare
    /// every class with what the data center can allocate.
    public static func load(directory: String, totals: DataCenterTotals? = nil) -> Result<PolicySet, PolicyErrors> {
        check(directory: directory, totals: totals).result
    }

    /// Like ``load(directory:totals:)``, keeping the notes (for `lumbung policy check`).
    public static func check(directory: String, totals: DataCenterTotals? = nil) -> PolicyCheck {
        switch readDirectory(directory) {
        case .success(let files): check(files: files, totals: totals, origin: directory)
        case .failure(let errors): PolicyCheck(set: nil, errors: errors, notes: [])
        }
    }

    /// Validates files already in memory (tests, the built-in default, a set sent over the API).
    public static func load(files: [PolicyFile], totals: DataCenterTotals? = nil) -> Result<PolicySet, PolicyErrors> {
        check(files: files, totals: totals).result
    }

    /// Reads every `*.yaml` file of `directory` (sorted by name), or says why it cannot.
    public static func readDirectory(_ directory: String) -> Result<[PolicyFile], PolicyErrors> {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return .failure(PolicyErrors([PolicyError(file: directory, line: nil, message: "is not a directory; give the policy directory, e.g. /etc/lumbung/policies")]))
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") && !$0.hasPrefix(".") }.sorted()
        } catch {
            return .failure(PolicyErrors([PolicyError(file: directory, line: nil, message: "cannot be listed (\(error.localizedDescription))")]))
        }
        guard !names.isEmpty else {
            return .failure(
                PolicyErrors([PolicyError(file: directory, line: nil, message: "holds no *.yaml policy files; start from the shipped policies/ folder")]))
        }
        var files: [PolicyFile] = []
        var errors: [PolicyError] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = fm.contents(atPath: path) else {
                errors.append(PolicyError(file: name, line: nil, message: "cannot be read; check that it is a readable file"))
                continue
            }
            files.append(PolicyFile(name: name, bytes: Array(data)))
        }
        return errors.isEmpty ? .success(files) : .failure(PolicyErrors(errors))
    }

    /// SHA-256 (lowercase hex) of `files`, independent of their order (see the type's documentation).
    public static func hash(of files: [PolicyFile]) -> String {
        var sha = SHA256()
        for f in files.sorted(by: { $0.name < $1.name }) {
            sha.update(data: Array("\(f.name)\n\(f.bytes.count)\n".utf8))
            sha.update(data: f.bytes)
            sha.update(data: [0x0A])
        }
        return sha.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Validates `files`; `origin` names the set in problems of the whole set (a missing section).
    public static func check(files: [PolicyFile], totals: DataCenterTotals? = nil, origin: String = "policy set") -> PolicyCheck {
        let sorted = files.sorted { $0.name < $1.name }
        var errors: [PolicyError] = []
        var notes: [String] = []
        let b = SetBuilder()
        var seenNames = Set<String>()
        // A file that is not YAML may hold any section: then a missing one is not news.
        var unreadable = false
        for f in sorted {
            guard seenNames.insert(f.name).inserted else {
                errors.append(PolicyError(file: f.name, line: nil, message: "is given twice; each file name once"))
                continue
            }
            guard let text = String(data: Data(f.bytes), encoding: .utf8) else {
                errors.append(PolicyError(file: f.name, line: nil, message: "is not UTF-8 text; save it as UTF-8"))
                unreadable = true
                continue
            }
            let root: Node?
            do {
                root = try Yams.compose(yaml: text)
            } catch {
                errors.append(yamlError(error, file: f.name, text: text))
                unreadable = true
                continue
            }
            guard let root else {
                notes.append("\(f.name) is empty and was ignored")
                continue
            }
            let reader = NodeReader(file: f.name)
            reader.readFile(root, into: b)
            errors += reader.errors
        }
        for name in SetBuilder.sectionNames where b.sections[name] == nil && !unreadable {
            errors.append(
                PolicyError(
                    file: origin, line: nil,
                    message: "no file defines section '\(name)'; add a file with a top-level '\(name):' (see policies/README.md)"))
        }
        errors += crossCheck(b, totals: totals, notes: &notes)
        guard errors.isEmpty, let classes = b.classes, let approval = b.approval, let placement = b.placement, let limits = b.limits,
            let retention = b.retention
        else {
            return PolicyCheck(set: nil, errors: PolicyErrors(errors), notes: notes)
        }
        let set = PolicySet(
            quotaClasses: classes, approval: approval, placement: placement, limits: limits, retention: retention,
            hash: hash(of: sorted), sources: sorted.map(\.name))
        return PolicyCheck(set: set, errors: PolicyErrors([]), notes: notes)
    }

    /// Checks across sections: classes named elsewhere exist, classes fit in the data center.
    private static func crossCheck(_ b: SetBuilder, totals: DataCenterTotals?, notes: inout [String]) -> [PolicyError] {
        guard let classes = b.classes else { return [] }
        var errors: [PolicyError] = []
        let known = classes.keys.sorted().map(\.rawValue).joined(separator: ", ")
        for ref in b.classRefs where !b.declaredClasses.contains(ref.name) {
            let file = b.sections["classes"]?.file ?? "classes"
            errors.append(
                PolicyError(
                    file: ref.place.file, line: ref.place.line,
                    message: "\(ref.what) names class '\(ref.name)', which \(file) does not define; known classes: \(known.isEmpty ? "none" : known)"))
        }
        if let limits = b.limits {
            for name in classes.keys.sorted() {
                let (pools, rule) = limits.allowedPools(for: name)
                guard let pools else { continue }
                for (pool, size) in classes[name]!.quota.storage.sorted(by: { $0.key < $1.key }) where size.bytes > 0 && !pools.contains(pool) {
                    let place = b.classPlaces[name]?[.storage(pool)] ?? b.sections["classes"]!
                    let allowed = pools.map(\.rawValue).sorted().joined(separator: ", ")
                    errors.append(
                        PolicyError(
                            file: place.file, line: place.line,
                            message: "class \(name) gives \(size) in pool \(pool), but \(rule) allows it only pools \(allowed); drop the pool from the class or allow it"))
                }
            }
        }
        guard let totals else {
            notes.append("classes were not compared with the data center's totals: this is an offline check (no data center given)")
            return errors
        }
        for name in classes.keys.sorted() {
            for (dim, sentence) in classes[name]!.excess(over: totals) {
                let place = b.classPlaces[name]?[dim] ?? b.sections["classes"]!
                errors.append(PolicyError(file: place.file, line: place.line, message: "\(sentence); a class must fit in the data center"))
            }
        }
        return errors
    }

    /// A YAML syntax problem as `file:line: message`.
    static func yamlError(_ error: any Error, file: String, text: String) -> PolicyError {
        guard let y = error as? YamlError else {
            return PolicyError(file: file, line: nil, message: "is not valid YAML: \(error)")
        }
        switch y {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let where_ = context.map { " (\($0.text), from line \($0.mark.line))" } ?? ""
            return PolicyError(file: file, line: mark.line, message: "is not valid YAML: \(problem)\(where_); check the indentation and quoting")
        case .reader(let problem, let offset, _, _):
            let line = offset.map { o in text.utf8.prefix(o).reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) } }
            return PolicyError(file: file, line: line, message: "is not readable YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return PolicyError(
                file: file, line: context.mark.line,
                message: "key \(keys) appears more than once in one mapping; each key may appear once (merge the entries)")
        default:
            return PolicyError(file: file, line: nil, message: "is not valid YAML: \(y)")
        }
    }
}
