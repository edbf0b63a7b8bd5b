import Foundation
import LumbungCore
import LumbungPolicy

/// The repository's shipped `policies/` folder, found from this file's path.
let shippedDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("policies").path

/// The shipped files, read through the loader's own directory reader.
func shippedFiles() throws -> [PolicyFile] {
    try PolicyLoader.readDirectory(shippedDirectory).get()
}

/// The shipped set, loaded.
func shippedSet() throws -> PolicySet {
    try PolicyLoader.load(directory: shippedDirectory).get()
}

/// The shipped files with `name` replaced by (or added as) `text`.
func shipped(replacing name: String, with text: String) throws -> [PolicyFile] {
    var files = try shippedFiles().filter { $0.name != name }
    files.append(PolicyFile(name: name, text: text))
    return files
}

/// The 1-based line of the first line of `file` in the shipped folder that starts with `prefix`.
func shippedLine(_ file: String, startingWith prefix: String) throws -> Int {
    let text = try String(contentsOfFile: shippedDirectory + "/" + file, encoding: .utf8)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard let i = lines.firstIndex(where: { $0.hasPrefix(prefix) }) else { throw FixtureError("no line \(prefix) in \(file)") }
    return i + 1
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumbung-policy-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Copies the shipped files into `dir`.
func copyShipped(to dir: String) throws {
    for f in try shippedFiles() {
        try Data(f.bytes).write(to: URL(fileURLWithPath: dir + "/" + f.name))
    }
}

extension Result {
    var success: Success? {
        if case .success(let s) = self { return s }
        return nil
    }

    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}

/// A fixed instant: tests never read the clock.
let t0 = Date(timeIntervalSince1970: 1_700_000_000)
