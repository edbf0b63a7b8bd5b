import ArgumentParser
import Foundation
import LumbungAPI
import LumbungCore

/// `lumbung capacity`: the whole data center at a glance.
struct CapacityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capacity",
        abstract: "Show the data center at a glance: hosts, totals, and what the OPDs were promised.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let view = try await global.withClient { try await $0.client.capacity() }
        if global.json { return try Output.json(view) }

        let pools = Set(view.allocatable.storage.keys).union(view.allocated.storage.keys).union(view.quotaPromised.storage.keys).sorted()
        func cells(_ used: ResourceVector, _ total: ResourceVector) -> [String] {
            ["\(used.vcpu)/\(total.vcpu)", "\(used.memory)/\(total.memory)"]
                + pools.map { "\(used.storage($0))/\(total.storage($0))" }
        }
        var rows = view.hosts.sorted { $0.id < $1.id }.map { h in
            [h.id.rawValue, h.state.rawValue, h.driver ?? "-"] + cells(h.allocated, h.allocatable)
        }
        if !view.hosts.isEmpty {
            rows.append(["all hosts", "", ""] + cells(view.allocated, view.allocatable))
        }
        print("Hosts (allocated/allocatable):")
        Output.table(
            ["HOST", "STATE", "DRIVER", "VCPU", "MEMORY"] + pools.map { "STORAGE \($0.rawValue.uppercased())" }, rows,
            empty: "  no hosts yet; declare one with: lumbung host add NAME --cpus N --memory SIZE --pool POOL=SIZE")

        print("")
        print("Totals:")
        let dims: [Dimension] = [.vcpu, .memory] + pools.map { .storage($0) }
        Output.table(
            ["DIMENSION", "ALLOCATABLE", "ALLOCATED", "FREE", "FREE ON SCHEDULABLE HOSTS", "PROMISED TO OPDS"],
            dims.map { d in
                [
                    Format.dimension(d), Format.amount(d, d.amount(in: view.allocatable)), Format.amount(d, d.amount(in: view.allocated)),
                    Format.amount(d, d.amount(in: view.free)), view.schedulable.map { Format.amount(d, d.amount(in: $0.free)) } ?? "-",
                    Format.amount(d, d.amount(in: view.quotaPromised)),
                ]
            })

        print("")
        print("OPDs (used/quota):")
        Output.table(
            ["OPD", "NAME", "VCPU", "MEMORY", "STORAGE", "VMS", "VOLUMES"],
            view.opds.sorted { $0.id < $1.id }.map { o in
                [
                    o.id.rawValue, o.displayName, "\(o.usage.vcpu)/\(o.quota.vcpu)", "\(o.usage.memory)/\(o.quota.memory)",
                    Format.poolsUsed(o.usage.storage, of: o.quota.storage), "\(o.usage.vms)/\(o.quota.vms)",
                    "\(o.usage.volumes)/\(o.quota.volumes)",
                ]
            }, empty: "  no OPDs yet")
        let simulated = view.hosts.filter { $0.driver == "simulated" }.count
        if simulated > 0 {
            print("")
            print("Note: \(simulated) host(s) use the simulated driver: they run nothing for real.")
        }
    }
}
