import AsyncHTTPClient
import Foundation
import LumbungAPI
import LumbungAgent
import LumbungCore
import NIOCore
import Testing

/// Issue 3, "must be shown by tests": three hosts, each in its own network namespace with its own
/// address, against one real `lumbungd` listening on a bridge in the root namespace.
///
/// - Cutting one host's link makes it `unreachable` after the heartbeat timeout; it is excluded
///   from placement while its VM keeps running on the host; with the link back it reports again
///   by itself.
/// - Stopping the controller leaves the agents enforcing (VMs running, and limited where the real
///   driver runs); when the controller comes back the hosts report again without any manual step.
///
/// node-01 and node-02 run the simulated driver. node-03 (the one that is cut) runs the real
/// driver — a QEMU process in its cgroup — when the machine has root, QEMU, cgroups and nsenter
/// (CI does), else the simulated driver too.
@Suite(
    "Three hosts in network namespaces against one controller (root, iproute2)",
    .serialized,
    .enabled("needs root and working 'ip netns' / bridge / veth (iproute2); CI runs as root") { await NetLab.available() }
)
struct MultiHostNetnsTests {
    static let heartbeatTimeout = 4
    static let heartbeat = 1

    @Test("link cut → unreachable, excluded, VM kept; link back → ready; controller stopped → agents keep enforcing and reconnect alone")
    func cutRestoreAndControllerRestart() async throws {
        let bin = binDirectory()
        for tool in ["lumbungd", "lumbung", "lumbung-agent"] where !FileManager.default.isExecutableFile(atPath: bin + "/" + tool) {
            Issue.record("\(tool) is not built at \(bin) (swift build --build-tests)")
            return
        }
        let lab = try await NetLab.create(hosts: 3)
        let run = NetnsRun(lab: lab, realHost3: realHostAvailable && FileManager.default.isExecutableFile(atPath: "/usr/bin/nsenter"))
        do {
            try await scenario(run)
        } catch {
            Issue.record(error, "scenario failed; \(run.logs())")
        }
        let leftovers = await run.teardown()
        #expect(leftovers.isEmpty, "left behind after cleanup: \(leftovers)")
    }

    func scenario(_ run: NetnsRun) async throws {
        let lab = run.lab
        let bin = binDirectory()
        let state = run.directory + "/controller"
        // The controller's certificate names the bridge address the agents dial.
        let initialized = try await runCommand(
            bin + "/lumbungd", ["init", "--state", state, "--name", "netns-dc", "--address", "\(lab.controllerAddress),127.0.0.1"])
        try #require(initialized.code == 0, "lumbungd init: \(initialized.err)")
        let adminToken = try #require(initialized.out.split(whereSeparator: \.isWhitespace).map(String.init).first { $0.hasPrefix("lmb1.") })
        let port = freePort()
        let controllerArgs = ["--heartbeat-timeout", "\(Self.heartbeatTimeout)", "--strategy", "spread"]
        try await run.startController(state: state, port: port, extraArgs: controllerArgs)
        let url = run.controllerURL

        // The admin works through the CLI; the test reads state with the same credentials.
        let cli = run.cli
        var r = try await cli.run("login", "--controller", url, "--token", adminToken)
        try #require(r.code == 0, "lumbung login: \(r.err)")
        let admin = try run.adminClient()
        r = try await cli.run("opd", "create", "dinkes", "--name", "Dinas Kesehatan", "--vcpu", "32", "--memory", "32GiB", "--storage", "ssd=2TiB", "--vms", "30")
        try #require(r.code == 0, "opd create: \(r.err)")

        // Declare, join and start the three agents, each inside its namespace.
        for host in run.hosts {
            r = try await cli.run(
                "host", "add", host.id, "--cpus", "\(host.real ? 2 : 16)", "--memory", host.real ? "4GiB" : "32GiB", "--pool", "ssd=\(host.real ? "50GiB" : "2TiB")",
                "--labels", "rack=\(host.rack)")
            try #require(r.code == 0, "host add \(host.id): \(r.err)")
            let token = try #require(r.out.split(whereSeparator: \.isWhitespace).map(String.init).first { $0.hasPrefix("lmb1.") })
            try host.writeConfig(controller: url, heartbeat: Self.heartbeat)
            let joined = try await host.join(controller: url, token: token)
            try #require(joined.code == 0, "join \(host.id): \(joined.err)")
            try host.start()
        }
        for host in run.hosts {
            try await eventually("\(host.id) ready", timeout: 30) { try await admin.client.host(HostID(rawValue: host.id)).state == .ready }
        }
        #expect(try await admin.client.host("node-03").driver == (run.hosts[2].real ? "real" : "simulated"))

        // One VM per host (the rack label pins it), all running.
        var vmOn: [String: VMID] = [:]
        for host in run.hosts {
            let vm = try await admin.client.createVM(
                CreateVMBody(opd: "dinkes", vm: tinyVM("vm-\(host.rack)", require: ["rack": host.rack])))
            #expect(vm.host?.rawValue == host.id)
            vmOn[host.id] = vm.id
        }
        for (host, id) in vmOn {
            try await eventually("\(id) running on \(host)", timeout: 60) { try await admin.client.vm(id.rawValue).state == .running }
        }
        let cut = run.hosts[2]
        let cutVM = try #require(vmOn[cut.id])
        for host in run.hosts {
            let metrics = try await host.scrapeViaBridge()
            #expect(metricValue(metrics, #"lumbung_host_vms{state="running"}"#) == 1, "\(host.id) runs its VM: \(metrics.prefix(400))")
            #expect(metricValue(metrics, "lumbung_agent_controller_connected") == 1)
        }
        var qemuPID: Int32?
        if cut.real {
            qemuPID = try await qemuPIDs(cutVM).first
            let pid = try #require(qemuPID, "QEMU of \(cutVM) is running on node-03")
            #expect(cgroupConfinement(subPath: cut.cgroupSubPath, vm: cutVM, pid: pid).confined, "QEMU \(pid) is in its cgroup with its memory limit")
        }

        // — Cut node-03's link. —
        try await lab.setLink(host: 3, up: false)
        let cutAt = ContinuousClock.now
        try await eventually("node-03 unreachable", timeout: Double(Self.heartbeatTimeout) + 15, poll: .milliseconds(200)) {
            try await admin.client.host("node-03").state == .unreachable
        }
        let detected = ContinuousClock.now - cutAt
        // Not before the configured time (less the up to one heartbeat since the last report
        // before the cut), and not much after it (the sweep runs every timeout/4).
        #expect(detected >= .seconds(Self.heartbeatTimeout - Self.heartbeat) - .milliseconds(300), "unreachable after \(detected)")
        #expect(detected <= .seconds(Self.heartbeatTimeout + 5), "unreachable after \(detected)")
        r = try await cli.run("host", "show", "node-03")
        #expect(r.out.contains("unreachable"), "lumbung host show: \(r.out)")
        for other in ["node-01", "node-02"] {
            #expect(try await admin.client.host(HostID(rawValue: other)).state == .ready, "\(other) stays ready")
        }

        // Excluded from placement: a VM that only node-03 could take is refused, naming why…
        let refused = await apiError { try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: tinyVM("needs-rack-c", require: ["rack": "c"]))) }
        #expect(refused?.status == 409)
        #expect(refused?.detail.message.contains("unreachable") == true, "refusal: \(String(describing: refused?.detail.message))")
        // …and VMs that node-02 or node-03 could take (spread would alternate) all go to node-02.
        var placedDuringCut: [VMID] = []
        for i in 1...3 {
            let vm = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: tinyVM("spread-\(i)", forbid: ["rack": "a"])))
            #expect(vm.host?.rawValue == "node-02", "placed on \(String(describing: vm.host)) while node-03 is unreachable")
            placedDuringCut.append(vm.id)
        }
        #expect(try await admin.client.host("node-03").allocated.vms == 1)

        // node-03's VM is neither moved nor deleted by the controller…
        let listed = try await admin.client.vm(cutVM.rawValue)
        #expect(listed.host?.rawValue == "node-03")
        #expect(listed.state == .running)
        // …and on the host (inside its namespace) it keeps running: the agent's own metrics, its
        // persisted desired state and, with the real driver, the very same QEMU process.
        try await eventually("node-03's agent notices the controller is gone", timeout: 20) {
            metricValue(try await cut.scrapeInside(), "lumbung_agent_controller_connected") == 0
        }
        let inside = try await cut.scrapeInside()
        #expect(metricValue(inside, #"lumbung_host_vms{state="running"}"#) == 1, "node-03 still runs its VM: \(inside.prefix(400))")
        #expect(inside.contains("vm=\"\(cutVM.rawValue)\""))
        #expect((metricValue(inside, #"lumbung_agent_heartbeats_total{result="failure"}"#) ?? 0) >= 1)
        #expect(cut.persistedDesired().contains(cutVM.rawValue))
        #expect(cut.isRunning)
        if let qemuPID {
            #expect(qemuStillRuns(qemuPID, vm: cutVM), "the same QEMU process still runs during the cut")
            #expect(cgroupConfinement(subPath: cut.cgroupSubPath, vm: cutVM, pid: qemuPID).confined)
        }

        // — Restore the link: node-03 reports again by itself. —
        try await lab.setLink(host: 3, up: true)
        let restoredAt = ContinuousClock.now
        try await eventually("node-03 ready again", timeout: 40, poll: .milliseconds(200)) {
            try await admin.client.host("node-03").state == .ready
        }
        let recovered = ContinuousClock.now - restoredAt
        #expect(try await admin.client.vm(cutVM.rawValue).state == .running)
        // Placeable again: the VM only node-03 can take is placed there and runs.
        let rackC = try await admin.client.createVM(CreateVMBody(opd: "dinkes", vm: tinyVM("needs-rack-c", require: ["rack": "c"])))
        #expect(rackC.host?.rawValue == "node-03")
        try await eventually("new VM running on node-03 after the link is back", timeout: 60) {
            try await admin.client.vm(rackC.id.rawValue).state == .running
        }
        for id in placedDuringCut {
            try await eventually("\(id) running on node-02", timeout: 30) { try await admin.client.vm(id.rawValue).state == .running }
        }
        try await eventually("node-03's agent connected again", timeout: 20) {
            metricValue(try await cut.scrapeViaBridge(), "lumbung_agent_controller_connected") == 1
        }
        if let qemuPID { #expect(qemuStillRuns(qemuPID, vm: cutVM), "not restarted when the link came back") }

        // — Stop the controller for a while. —
        try await run.stopController()
        try await Task.sleep(for: .seconds(3 * Self.heartbeat + 2))
        for host in run.hosts {
            #expect(host.isRunning, "\(host.id)'s agent keeps running without the controller; log: \(host.logTail())")
            let metrics = try await host.scrapeViaBridge()
            #expect(metricValue(metrics, "lumbung_agent_controller_connected") == 0, "\(host.id) knows the controller is gone")
            let expected: Double = host.id == "node-01" ? 1 : host.id == "node-02" ? 4 : 2
            #expect(metricValue(metrics, #"lumbung_host_vms{state="running"}"#) == expected, "\(host.id) keeps its VMs running")
        }
        if let qemuPID {
            #expect(qemuStillRuns(qemuPID, vm: cutVM), "QEMU keeps running without the controller")
            #expect(cgroupConfinement(subPath: cut.cgroupSubPath, vm: cutVM, pid: qemuPID).confined, "…and stays limited")
            let second = try await qemuPIDs(rackC.id)
            #expect(second.count == 1)
            if let pid = second.first { #expect(cgroupConfinement(subPath: cut.cgroupSubPath, vm: rackC.id, pid: pid).confined) }
        }

        // — Start it again on the same state: every host reports again, nobody helps. —
        let restartedAt = Date()
        try await run.startController(state: state, port: port, extraArgs: controllerArgs)
        for host in run.hosts {
            try await eventually("\(host.id) ready after the controller restart", timeout: 40, poll: .milliseconds(200)) {
                let view = try await admin.client.host(HostID(rawValue: host.id))
                return view.state == .ready && (view.lastReportAt ?? .distantPast) > restartedAt
            }
        }
        for host in run.hosts {
            try await eventually("\(host.id)'s agent connected again", timeout: 20) {
                metricValue(try await host.scrapeViaBridge(), "lumbung_agent_controller_connected") == 1
            }
        }
        let vms = try await admin.client.listVMs(opd: "dinkes")
        #expect(vms.count == 7)
        #expect(vms.allSatisfy { $0.state == .running }, "\(vms.map { "\($0.id)=\($0.state)" })")
        if let qemuPID { #expect(qemuStillRuns(qemuPID, vm: cutVM), "the same QEMU process after the controller restart") }
        r = try await cli.run("host", "list")
        #expect(r.code == 0)
        #expect(!r.out.contains("unreachable"), "\(r.out)")
        print("netns: node-03 unreachable \(detected) after the cut, ready \(recovered) after the link came back")
        await admin.shutdown()
    }

    func tinyVM(_ name: String, require: [String: String]? = nil, forbid: [String: String]? = nil) -> VMBody {
        VMBody(name: name, vcpu: 1, memory: .mib(128), disk: .gib(1), pool: "ssd", requireLabels: require, forbidLabels: forbid)
    }
}

// MARK: - Waiting and reading

/// Polls `condition` until it holds; throws after `timeout` seconds naming what was awaited.
func eventually(
    _ what: String, timeout: Double, poll: Duration = .milliseconds(250), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
    var lastError: (any Error)?
    while ContinuousClock.now < deadline {
        do {
            if try await condition() { return }
            lastError = nil
        } catch {
            lastError = error
        }
        try await Task.sleep(for: poll)
    }
    throw ProcessTestError("timed out after \(timeout) s waiting for: \(what)\(lastError.map { " (last error: \($0))" } ?? "")")
}

/// The value of one series (`name{labels}` exactly as exposed) in Prometheus text, or nil.
func metricValue(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return line.dropFirst(series.count + 1).split(separator: " ").first.flatMap { Double($0) }
    }
    return nil
}

/// PIDs of the QEMU process running `vm` (its command line names the VM).
func qemuPIDs(_ vm: VMID) async throws -> [Int32] {
    try await runCommand("/usr/bin/pgrep", ["-f", "name \(vm.rawValue)"]).out.split(separator: "\n").compactMap { Int32($0) }
}

/// The process lives (not a zombie) and is still the QEMU of `vm`.
func qemuStillRuns(_ pid: Int32, vm: VMID) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].split(separator: " ").first ?? "X"
    guard state != "Z" && state != "X" else { return false }
    let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
    return cmdline.contains(vm.rawValue)
}

/// Whether `pid` sits in the VM's cgroup (cpu hierarchy on v1, the unified one on v2) and that
/// group carries a memory limit of at least the VM's memory.
func cgroupConfinement(subPath: String, vm: VMID, pid: Int32) -> (confined: Bool, memoryLimit: Int64?) {
    guard let layout = try? CgroupDriver.detect() else { return (false, nil) }
    let procsFile: String
    let limitFile: String
    switch layout {
    case .v1(let m):
        procsFile = "\(m.cpu)/\(subPath)/dinkes/\(vm.rawValue)/cgroup.procs"
        limitFile = "\(m.memory)/\(subPath)/dinkes/\(vm.rawValue)/memory.limit_in_bytes"
    case .v2(let mount):
        procsFile = "\(mount)/\(subPath)/dinkes/\(vm.rawValue)/cgroup.procs"
        limitFile = "\(mount)/\(subPath)/dinkes/\(vm.rawValue)/memory.max"
    }
    let procs = ((try? String(contentsOfFile: procsFile, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
    let limit = (try? String(contentsOfFile: limitFile, encoding: .utf8)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    return (procs.contains(pid) && (limit ?? 0) >= ByteSize.mib(128).bytes, limit)
}

// MARK: - The network

/// A bridge in the root namespace holding the controller's address, and one namespace per host
/// joined to it by a veth pair. Names carry this process's PID; ``teardown()`` removes them all,
/// and ``create(hosts:)`` first removes those of earlier runs whose process is gone.
final class NetLab: Sendable {
    let pid: Int32
    let subnet: String
    let hosts: Int

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }

    var bridge: String { "lbr\(pid)" }
    var controllerAddress: String { "\(subnet).1" }
    func namespace(_ host: Int) -> String { "lumbung-\(pid)-h\(host)" }
    func address(_ host: Int) -> String { "\(subnet).\(10 + host)" }
    /// The root-namespace end of the host's veth (the one the test takes down).
    func rootVeth(_ host: Int) -> String { "lv\(pid)h\(host)" }
    func hostVeth(_ host: Int) -> String { "lp\(pid)h\(host)" }

    private init(pid: Int32, subnet: String, hosts: Int) {
        self.pid = pid
        self.subnet = subnet
        self.hosts = hosts
    }

    /// Root, iproute2, and namespaces, bridges and veths can really be made here.
    static func available() async -> Bool {
        guard getuid() == 0, let ip else { return false }
        let probe = "lumbung-probe-\(getpid())"
        let script = "\(ip) netns add \(probe) && \(ip) link add lbrp\(getpid()) type bridge && \(ip) link del lbrp\(getpid()) && \(ip) netns del \(probe)"
        let result = try? await runCommand("/bin/sh", ["-c", script + " || { \(ip) netns del \(probe); false; } 2>/dev/null"])
        return result?.code == 0
    }

    static func create(hosts: Int) async throws -> NetLab {
        guard let ip else { throw ProcessTestError("iproute2's ip is missing") }
        await removeStale()
        let pid = getpid()
        // A /24 in 10.231.0.0/16 that no interface of this machine uses yet.
        let used = (try? await runCommand(ip, ["-4", "-o", "addr", "show"]).out) ?? ""
        var third = Int(pid % 200) + 20
        while used.contains("10.231.\(third).") { third = third % 254 + 1 }
        let lab = NetLab(pid: pid, subnet: "10.231.\(third)", hosts: hosts)
        var script = [
            "set -e",
            "\(ip) link add \(lab.bridge) type bridge",
            "\(ip) addr add \(lab.controllerAddress)/24 dev \(lab.bridge)",
            "\(ip) link set \(lab.bridge) up",
        ]
        for h in 1...hosts {
            let ns = lab.namespace(h)
            script += [
                "\(ip) netns add \(ns)",
                "\(ip) link add \(lab.rootVeth(h)) type veth peer name \(lab.hostVeth(h))",
                "\(ip) link set \(lab.hostVeth(h)) netns \(ns)",
                "\(ip) link set \(lab.rootVeth(h)) master \(lab.bridge)",
                "\(ip) link set \(lab.rootVeth(h)) up",
                "\(ip) -n \(ns) addr add \(lab.address(h))/24 dev \(lab.hostVeth(h))",
                "\(ip) -n \(ns) link set \(lab.hostVeth(h)) up",
                "\(ip) -n \(ns) link set lo up",
            ]
        }
        let result = try await runCommand("/bin/sh", ["-c", script.joined(separator: "\n")])
        guard result.code == 0 else {
            _ = await lab.teardown()
            throw ProcessTestError("cannot set up the namespaces: \(result.err)")
        }
        return lab
    }

    /// Takes the host's link down (as if its cable were pulled) or up again.
    func setLink(host: Int, up: Bool) async throws {
        guard let ip = Self.ip else { return }
        let r = try await runCommand(ip, ["link", "set", rootVeth(host), up ? "up" : "down"])
        guard r.code == 0 else { throw ProcessTestError("ip link set \(rootVeth(host)): \(r.err)") }
    }

    /// Removes the namespaces (which takes their veths along) and the bridge; returns what is left.
    @discardableResult
    func teardown() async -> [String] {
        guard let ip = Self.ip else { return [] }
        var script = (1...hosts).map { "\(ip) netns del \(namespace($0)) 2>/dev/null" }
        script += (1...hosts).map { "\(ip) link del \(rootVeth($0)) 2>/dev/null" }
        script.append("\(ip) link del \(bridge) 2>/dev/null")
        _ = try? await runCommand("/bin/sh", ["-c", script.joined(separator: "; ") + "; true"])
        let namespaces = (try? await runCommand(ip, ["netns", "list"]).out) ?? ""
        let links = (try? await runCommand(ip, ["-o", "link", "show"]).out) ?? ""
        var left = (1...hosts).map { namespace($0) }.filter { namespaces.contains($0 + " ") || namespaces.contains($0 + "\n") }
        if links.contains(" \(bridge):") { left.append(bridge) }
        return left
    }

    /// Namespaces and bridges named by an earlier run whose process no longer exists.
    static func removeStale() async {
        guard let ip else { return }
        let namespaces = (try? await runCommand(ip, ["netns", "list"]).out) ?? ""
        let links = (try? await runCommand(ip, ["-o", "link", "show"]).out) ?? ""
        var script: [String] = []
        for line in namespaces.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[0] == "lumbung", let pid = Int32(parts[1]), kill(pid, 0) != 0 else { continue }
            script.append("\(ip) netns del \(name)")
        }
        for line in links.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { continue }
            let name = fields[1].split(separator: ":").first.map { String($0.split(separator: "@").first ?? "") } ?? ""
            guard name.hasPrefix("lbr"), let pid = Int32(name.dropFirst(3)), kill(pid, 0) != 0 else { continue }
            script.append("\(ip) link del \(name)")
        }
        if !script.isEmpty { _ = try? await runCommand("/bin/sh", ["-c", script.joined(separator: "; ") + "; true"]) }
    }
}

// MARK: - The processes of one run

/// Everything one run starts, so that cleanup can stop it even when the scenario failed.
final class NetnsRun: @unchecked Sendable {
    let lab: NetLab
    let directory: String
    let hosts: [NetnsAgent]
    private let lock = NSLock()
    private var controller: ControllerProcess?
    private(set) var controllerLogs: [String] = []

    init(lab: NetLab, realHost3: Bool) {
        self.lab = lab
        let directory = "/tmp/lumbung-netns-\(lab.pid)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        self.directory = directory
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        hosts = (1...lab.hosts).map { h in
            NetnsAgent(
                index: h, id: String(format: "node-%02d", h), rack: ["a", "b", "c"][(h - 1) % 3], namespace: lab.namespace(h), address: lab.address(h),
                directory: "\(directory)/h\(h)", real: realHost3 && h == 3, cgroupSubPath: "lumbung-netns-\(lab.pid)-h\(h)")
        }
    }

    var controllerURL: String { "https://\(lab.controllerAddress):\(lock.withLock { controller?.port } ?? 0)" }
    var cli: CLIShell { CLIShell(config: directory + "/admin/config.yaml") }

    func adminClient() throws -> TestClient {
        let path = directory + "/admin/config.yaml"
        let config = try ClientConfig.load(path: path)
        let credentials = try config.credentials(configPath: path)
        return TestClient(client: try LumbungClient(baseURL: config.controller, credentials: credentials), credentials: credentials)
    }

    func startController(state: String, port: Int, extraArgs: [String]) async throws {
        let process = try ControllerProcess(state: state, port: port, host: lab.controllerAddress, extraArgs: extraArgs)
        lock.withLock {
            controller = process
            controllerLogs.append(process.log)
        }
        try await process.waitUntilReady(caPEM: try String(contentsOfFile: state + "/ca.crt", encoding: .utf8))
    }

    /// SIGTERM, as systemd would stop it.
    func stopController() async throws {
        guard let process = lock.withLock({ controller }) else { return }
        lock.withLock { controller = nil }
        try await stop(process.process, within: .seconds(15))
    }

    func logs() -> String {
        var text = ""
        for log in controllerLogs {
            text += "\n--- \(log)\n" + String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(3000))
        }
        for host in hosts { text += "\n--- \(host.id)\n" + host.logTail() }
        return text
    }

    /// Stops agents, controller and any QEMU of this run; removes cgroups, namespaces, bridge and
    /// files. Returns what could not be removed.
    func teardown() async -> [String] {
        var left: [String] = []
        for host in hosts { try? await stop(host.process, within: .seconds(10)) }
        try? await stopController()
        // QEMU processes outlive their agent by design (adoption); end those of this run by PID.
        let qemu = (try? await runCommand("/usr/bin/pgrep", ["-f", directory]).out) ?? ""
        for pid in qemu.split(separator: "\n").compactMap({ Int32($0) }) where pid != getpid() { kill(pid, SIGKILL) }
        for host in hosts where host.real {
            try? await Task.sleep(for: .milliseconds(300))
            let tag = host.cgroupSubPath
            _ = try? await runCommand(
                "/bin/sh",
                ["-c", "for d in /sys/fs/cgroup/*/\(tag) /sys/fs/cgroup/\(tag); do [ -d $d ] && find $d -depth -type d -exec rmdir {} + 2>/dev/null; done; true"])
            let remaining = (try? await runCommand("/bin/sh", ["-c", "ls -d /sys/fs/cgroup/*/\(tag) /sys/fs/cgroup/\(tag) 2>/dev/null"]).out) ?? ""
            left += remaining.split(separator: "\n").map(String.init)
        }
        let stillRunning = (try? await runCommand("/usr/bin/pgrep", ["-f", directory]).out) ?? ""
        left += stillRunning.split(separator: "\n").map { "process \($0)" }
        left += await lab.teardown()
        if left.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
        return left
    }
}

/// SIGTERM, then SIGKILL after `within`; waits without blocking a thread of the cooperative pool.
func stop(_ process: Process, within: Duration) async throws {
    guard process.processIdentifier > 0, process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    let deadline = ContinuousClock.now + within
    while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
    }
}

/// The `lumbung` CLI with its own config file.
struct CLIShell {
    let config: String
    func run(_ args: String...) async throws -> (code: Int32, out: String, err: String) {
        try await runCommand(binDirectory() + "/lumbung", args, environment: ["LUMBUNG_CONFIG": config])
    }
}

/// One host's `lumbung-agent`, run inside the host's network namespace.
final class NetnsAgent: @unchecked Sendable {
    let index: Int
    let id: String
    let rack: String
    let namespace: String
    let address: String
    let directory: String
    /// The real driver (cgroups, QEMU) instead of the simulated one.
    let real: Bool
    let cgroupSubPath: String
    let process = Process()
    static let metricsPort = 9465

    init(index: Int, id: String, rack: String, namespace: String, address: String, directory: String, real: Bool, cgroupSubPath: String) {
        self.index = index
        self.id = id
        self.rack = rack
        self.namespace = namespace
        self.address = address
        self.directory = directory
        self.real = real
        self.cgroupSubPath = cgroupSubPath
    }

    var config: String { directory + "/agent.yaml" }
    var state: String { directory + "/state" }
    var log: String { directory + "/agent.log" }
    var isRunning: Bool { process.isRunning }

    /// The command prefix that runs a program in this host's namespace. The simulated driver
    /// uses `ip netns exec`; the real one needs the cgroup mounts, which `ip netns exec` hides
    /// (it mounts a fresh /sys), so it enters only the network namespace with `nsenter`.
    var enter: [String] {
        real ? ["/usr/bin/nsenter", "--net=/run/netns/\(namespace)", "--"] : [NetLab.ip ?? "/usr/sbin/ip", "netns", "exec", namespace]
    }

    func writeConfig(controller: String, heartbeat: Int) throws {
        try FileManager.default.createDirectory(atPath: directory + "/ssd", withIntermediateDirectories: true)
        let driver =
            real
            ? """
            driver: real
            accel: auto
            stop_timeout_seconds: 2
            cgroup_subpath: \(cgroupSubPath)
            pools:
              ssd: \(directory)/ssd
            """
            : """
            driver: simulated
            simulated:
              cpus: 16
              memory: 32GiB
              pools: {ssd: 2TiB}
            """
        try """
            controller: \(controller)
            state: \(state)
            heartbeat_seconds: \(heartbeat)
            metrics_listen: 0.0.0.0:\(Self.metricsPort)
            \(driver)
            """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    func join(controller: String, token: String) async throws -> (code: Int32, out: String, err: String) {
        let agent = binDirectory() + "/lumbung-agent"
        return try await runCommand(
            enter[0], Array(enter.dropFirst()) + [agent, "join", "--controller", controller, "--token", token, "--config", config, "--state", state])
    }

    func start() throws {
        process.executableURL = URL(fileURLWithPath: enter[0])
        process.arguments = Array(enter.dropFirst()) + [binDirectory() + "/lumbung-agent", "run", "--config", config, "--log-level", "info"]
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func logTail() -> String { String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(3000)) }

    /// The desired state the agent persisted (what it enforces without the controller).
    func persistedDesired() -> String { (try? String(contentsOfFile: state + "/desired.json", encoding: .utf8)) ?? "" }

    /// `/metrics` from the root namespace, over the bridge, at the host's own address.
    func scrapeViaBridge() async throws -> String {
        let request = HTTPClientRequest(url: "http://\(address):\(Self.metricsPort)/metrics")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(3))
        guard response.status == .ok else { throw ProcessTestError("\(id) /metrics answered \(response.status)") }
        return String(buffer: try await response.body.collect(upTo: 8 << 20))
    }

    /// `/metrics` from inside the host's namespace (works while its link is down).
    func scrapeInside() async throws -> String {
        let python = "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:\(Self.metricsPort)/metrics', timeout=3).read().decode())"
        let r = try await runCommand(NetLab.ip ?? "/usr/sbin/ip", ["netns", "exec", namespace, "/usr/bin/python3", "-c", python])
        guard r.code == 0 else { throw ProcessTestError("\(id) /metrics inside its namespace: \(r.err)") }
        return r.out
    }
}
