/// Where the agent puts its OPD and VM groups, decided once at start.
///
/// `cgroup_subpath` in the agent's config is either a fixed path below each cgroup mount
/// (e.g. `lumbung`) or `auto` (the default):
///
/// | layout | run by systemd (`INVOCATION_ID` set) | sub-path | processes moved |
/// |---|---|---|---|
/// | v2 | yes, own group e.g. `system.slice/lumbung-agent.service` | `<own>/vms` | `<own>` → `<own>/agent` |
/// | v2 | no | `lumbung` | none |
/// | v1 | either | `lumbung` | none |
///
/// Under systemd with `Delegate=yes` the unit's cgroup belongs to the agent. cgroup v2 lets a
/// group enable controllers for its children only when it holds no processes itself, so the
/// agent first moves itself (and anything else in the unit's group) into the `agent` leaf, then
/// creates `vms/<opd>/<vm>` beside it. A restarted agent is put back into `<own>` by systemd and
/// moves again; if it already sits in `<own>/agent`, `<own>` is still the delegated group.
public struct CgroupSubtree: Sendable, Hashable {
    /// The path below each mount holding the OPD groups.
    public var subPath: String
    /// The group (relative to the v2 mount) whose processes move into its `agent` leaf first.
    public var moveProcessesOutOf: String?

    /// Decides the sub-path; pure, so it is tested with tables.
    ///
    /// - Parameters:
    ///   - configured: the config's `cgroup_subpath` (`auto` or a path).
    ///   - layout: the detected hierarchy.
    ///   - ownV2Cgroup: the agent's own v2 group (``CgroupDriver/ownV2Cgroup(procFile:)``).
    ///   - underSystemd: whether systemd started the agent (its `INVOCATION_ID` is set).
    public static func resolve(configured: String, layout: CgroupLayout, ownV2Cgroup: String?, underSystemd: Bool) -> CgroupSubtree {
        let fallback = CgroupSubtree(subPath: "lumbung", moveProcessesOutOf: nil)
        guard configured == "auto" else { return CgroupSubtree(subPath: configured, moveProcessesOutOf: nil) }
        guard case .v2 = layout, underSystemd, let own = ownV2Cgroup else { return fallback }
        var components = own.split(separator: "/").map(String.init)
        if components.last == "agent" { components.removeLast() }
        guard !components.isEmpty else { return fallback }  // the root group is never delegated
        let delegated = components.joined(separator: "/")
        return CgroupSubtree(subPath: delegated + "/vms", moveProcessesOutOf: delegated)
    }
}
