#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LumbungCore
import NIOConcurrencyHelpers

/// **Simulated** host driver: models a host of a configurable size with no side effects at all
/// (no processes, cgroups or files). For `lumbungd dev` and load simulation only; it reports
/// itself as `simulated` to the controller, in metrics and in `lumbung host show`.
public final class SimulatedHostDriver: HostDriver {
    public let kind = "simulated"
    private let capacity: HostCapacity
    private let state: NIOLockedValueBox<State>

    private struct State {
        var observation: HostObservation
        var started: [VMID: Date] = [:]
        var nextPID: Int32 = 10_000
    }

    /// The base images a simulated host claims by default.
    public static let defaultImages: Set<String> = ["debian-12", "ubuntu-24.04"]

    /// A simulated host with `capacity` (pools start empty) and the given base images.
    public init(capacity: HostCapacity, images: Set<String> = []) {
        self.capacity = capacity
        self.state = NIOLockedValueBox(State(observation: HostObservation(vms: [], volumes: [], poolFree: capacity.pools, images: images)))
    }

    public func facts() async throws -> HostCapacity { capacity }

    /// Replaces the images the simulated host claims (models an admin adding or deleting image files).
    public func setImages(_ images: Set<String>) {
        state.withLockedValue { $0.observation.images = images }
    }

    public func snapshot() async throws -> HostSnapshot {
        let now = Date()
        return state.withLockedValue { s in
            var usage: [VMID: VMUsageSample] = [:]
            for vm in s.observation.vms.values {
                let seconds = s.started[vm.id].map { now.timeIntervalSince($0) } ?? 0
                // A simulated guest uses a tenth of each vCPU and half its memory.
                usage[vm.id] = VMUsageSample(
                    cpuSeconds: vm.running ? seconds * Double(vm.vcpu) * 0.1 : 0,
                    memoryUsed: vm.running ? ByteSize(bytes: vm.memory.bytes / 2 / ByteSize.mib * ByteSize.mib) : .zero,
                    memoryLimit: vm.memory, diskUsed: ByteSize(bytes: vm.disk.bytes / 10 / ByteSize.mib * ByteSize.mib))
            }
            var used: [VolumeID: ByteSize] = [:]
            for v in s.observation.volumes.values { used[v.id] = ByteSize(bytes: v.size.bytes / 10 / ByteSize.mib * ByteSize.mib) }
            return HostSnapshot(observation: s.observation, vmUsage: usage, volumeUsed: used)
        }
    }

    public func perform(_ action: ReconcileAction) async throws {
        let now = Date()
        state.withLockedValue { s in
            s.observation.apply(action)
            switch action {
            case .createVM(let intent), .startVM(let intent):
                if var vm = s.observation.vms[intent.id] {
                    if vm.pid == nil {
                        s.nextPID += 1
                        vm.pid = s.nextPID
                    }
                    s.observation.vms[intent.id] = vm
                    if vm.running, s.started[intent.id] == nil { s.started[intent.id] = now }
                }
            case .deleteVM(let vm):
                s.started[vm.id] = nil
            default:
                break
            }
        }
    }
}
