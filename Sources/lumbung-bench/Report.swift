import Foundation

/// Everything one run measured (printed as a table or as JSON).
struct Report: Codable, Sendable {
    static let goalHosts = 1000
    static let placementGoal = 200_000.0
    static let allocationGoal = 2000.0

    var date: String
    var cores: Int
    /// 1-, 5- and 15-minute load averages when the run started and ended (/proc/loadavg): other work on
    /// the machine skews every figure.
    var loadAverageAtStart: String?
    var loadAverageAtEnd: String?
    var command: [String]
    var strategy: String
    var opds: Int
    var placementsPerRound: Int
    var rounds: Int
    var clients: Int
    var allocations: Int
    var warmup: Int
    var placement: [PlacementResult]
    var api: [APIResult]

    /// The goals of issue 2 at 1,000 hosts: nil when that host count was not measured.
    var placementGoalMet: Bool?
    var allocationGoalMet: Bool?

    /// Fills the goal verdicts from the measurements.
    mutating func evaluateGoals() {
        placementGoalMet = placement.first { $0.hosts == Self.goalHosts }.map { $0.decideVM.perSecond >= Self.placementGoal }
        allocationGoalMet = api.first { $0.hosts == Self.goalHosts }.map { $0.api.perSecond >= Self.allocationGoal }
    }

    func table() -> String {
        var out = "Lumbung benchmark — \(date), \(cores) cores, strategy \(strategy), \(opds) OPDs\n"
        out += "load average at start \(loadAverageAtStart ?? "?"), at end \(loadAverageAtEnd ?? "?")\n"
        if !placement.isEmpty {
            out += "\n(a) Placement in process — median of \(rounds) rounds of \(format(count: placementsPerRound)) decisions\n"
            out += Self.grid(
                ["hosts", "schedulable", "VMs", "decideVM/s", "µs/decide", "placeVM/s", "µs/place", "candidates", "refused", "snapshot ms"],
                placement.map { p in
                    [
                        format(count: p.hosts), format(count: p.schedulableHosts), format(count: p.prepopulatedVMs),
                        format(rate: p.decideVM.perSecond), format(ms: p.decideVM.microsecondsPerOp),
                        format(rate: p.placeVM.perSecond), format(ms: p.placeVM.microsecondsPerOp),
                        format(count: Int(p.meanCandidates.rounded())), "\(p.refusedAsks)", format(ms: p.snapshotBuildMilliseconds),
                    ]
                })
            out += Self.verdict(
                "decideVM", goal: Self.placementGoal, unit: "decisions/s",
                measured: placement.first { $0.hosts == Self.goalHosts }?.decideVM.perSecond)
        }
        if !api.isEmpty {
            out += "\n(b) Durable allocations through HTTPS + mutual TLS — \(clients) clients, \(format(count: allocations)) allocations after \(warmup) warm-up\n"
            out += Self.grid(
                ["hosts", "setup hosts/s", "alloc/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "CPU ms/alloc", "ledger alloc/s", "ledger p50/p99 ms", "ledger CPU ms/alloc", "verified"],
                api.map { a in
                    let errors = a.api.attempted - a.api.succeeded
                    let ledger = a.ledgerDirect
                    return [
                        format(count: a.hosts), format(rate: a.hostsDeclaredPerSecond), format(rate: a.api.perSecond),
                        format(ms: a.api.latencyMilliseconds.p50), format(ms: a.api.latencyMilliseconds.p99),
                        format(ms: a.api.latencyMilliseconds.p999), format(ms: a.api.latencyMilliseconds.max),
                        errors == 0 ? "0" : "\(errors) " + a.api.errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                        a.api.cpuMillisecondsPerAllocation.map { format(ms: $0) } ?? "-",
                        ledger.map { format(rate: $0.perSecond) } ?? "-",
                        ledger.map { "\(format(ms: $0.latencyMilliseconds.p50))/\(format(ms: $0.latencyMilliseconds.p99))" } ?? "-",
                        ledger?.cpuMillisecondsPerAllocation.map { format(ms: $0) } ?? "-",
                        a.verified ? "yes" : "NO (\(a.vmsInLedger) VMs)",
                    ]
                })
            out += "\nThe ledger's group commits during those runs (from its swift-metrics)\n"
            var rows: [[String]] = []
            for a in api {
                for (phase, run) in [("API", a.api), ("ledger direct", a.ledgerDirect)] {
                    guard let run, let l = run.ledger else { continue }
                    rows.append([
                        format(count: a.hosts), phase, format(count: l.batches), format(ms: l.meanBatchSize), "\(l.maxBatchSize)",
                        "\(format(ms: l.commitMilliseconds.p50))/\(format(ms: l.commitMilliseconds.p99))",
                        "\(Int((l.commitShareOfWallTime * 100).rounded()))%",
                        "\(format(ms: l.operationMilliseconds.p50))/\(format(ms: l.operationMilliseconds.p99))",
                        "\(format(count: l.flushMilliseconds.count)) \(format(ms: l.flushMilliseconds.p50))/\(format(ms: l.flushMilliseconds.p99))",
                    ])
                }
            }
            out += Self.grid(["hosts", "phase", "commits", "mean batch", "max", "commit p50/p99 ms", "time in commit", "queued→answered p50/p99 ms", "flushes, p50/p99 ms"], rows)
            out += Self.verdict(
                "API allocations", goal: Self.allocationGoal, unit: "allocations/s",
                measured: api.first { $0.hosts == Self.goalHosts }?.api.perSecond)
        }
        return out
    }

    private static func verdict(_ what: String, goal: Double, unit: String, measured: Double?) -> String {
        guard let measured else { return "goal (\(what) ≥ \(format(rate: goal)) \(unit) at 1,000 hosts): not measured in this run\n" }
        let met = measured >= goal ? "met" : "MISSED"
        return "goal (\(what) ≥ \(format(rate: goal)) \(unit) at 1,000 hosts): \(met), measured \(format(rate: measured)) \(unit)\n"
    }

    static func grid(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        var out = ""
        for (n, row) in all.enumerated() {
            let cells = row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 || n == 0 ? cell + pad : pad + cell
            }
            out += cells.joined(separator: "  ") + "\n"
            if n == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        return out
    }
}

/// The three load averages from /proc/loadavg (nil elsewhere).
func loadAverage() -> String? {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// `12,345`.
func format(count: Int) -> String {
    let digits = String(count.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(ch)
    }
    return (count < 0 ? "-" : "") + out
}

/// A rate rounded to a whole number, with thousands separators.
func format(rate: Double) -> String {
    guard rate.isFinite else { return "-" }
    return format(count: Int(rate.rounded()))
}

/// Two decimals (milliseconds, microseconds).
func format(ms: Double) -> String {
    guard ms.isFinite else { return "-" }
    let hundredths = Int((ms * 100).rounded())
    let frac = hundredths % 100
    return "\(format(count: hundredths / 100)).\(frac < 10 ? "0" : "")\(frac)"
}

/// Seconds with one decimal.
func format(seconds: Double) -> String {
    guard seconds.isFinite else { return "-" }
    let tenths = Int((seconds * 10).rounded())
    return "\(format(count: tenths / 10)).\(tenths % 10)"
}
