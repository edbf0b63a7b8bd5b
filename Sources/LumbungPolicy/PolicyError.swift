import LumbungCore

/// One problem in a policy set: where (`file:line`) and a sentence saying what was wrong and
/// what would be accepted.
public struct PolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file name (e.g. `approval.yaml`), or the directory for problems of the whole set.
    public var file: String
    /// The 1-based line, or nil when the problem has no single line (a missing section).
    public var line: Int?
    /// What was wrong and what would be accepted.
    public var message: String

    /// Creates an error.
    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `approval.yaml:12: message`, or `policies: message` without a line.
    public var description: String {
        guard let line else { return "\(file): \(message)" }
        return "\(file):\(line): \(message)"
    }
}

/// Every problem found in a policy set, in file and line order. A set with any problem is never
/// loaded.
public struct PolicyErrors: Error, Hashable, Sendable, CustomStringConvertible {
    /// The problems, sorted by file, then line.
    public var errors: [PolicyError]

    /// Creates the list (sorted by file, then line; problems without a line last in their file).
    public init(_ errors: [PolicyError]) {
        self.errors = errors.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            if x.file != y.file { return x.file < y.file }
            if x.line != y.line { return (x.line ?? .max) < (y.line ?? .max) }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// One problem a line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// The outcome of checking a policy set: the set when valid, every error, and notes about
/// checks that were skipped (e.g. class sizes without a data center to compare with).
public struct PolicyCheck: Sendable {
    /// The loaded set, nil when there are errors.
    public var set: PolicySet?
    /// Every error (empty when valid).
    public var errors: PolicyErrors
    /// Things worth saying that are not errors, e.g. `classes were not compared with the data
    /// center's totals (offline check)`.
    public var notes: [String]

    /// Creates a check outcome.
    public init(set: PolicySet?, errors: PolicyErrors, notes: [String]) {
        self.set = set
        self.errors = errors
        self.notes = notes
    }

    /// The set, or the errors.
    public var result: Result<PolicySet, PolicyErrors> {
        if let set, errors.errors.isEmpty { return .success(set) }
        return .failure(errors)
    }
}
