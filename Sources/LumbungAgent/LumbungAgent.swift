/// The host agent's library. See README.md in this folder for what exists so far.
public enum LumbungAgentModule {
    /// The agent's version string, reported in build info.
    public static let version = "0.1.0-dev"
}
