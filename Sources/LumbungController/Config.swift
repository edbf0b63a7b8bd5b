import Foundation
import LumbungCore

/// The controller's configuration: a plain struct, filled from flags or `controller.yaml`.
public struct ControllerConfig: Sendable {
    /// The data center's name, e.g. `pemkab-wonosobo`.
    public var name: String
    /// State directory: SQLite file, CA, server certificate.
    public var stateDirectory: String
    /// Listen address.
    public var host: String = "0.0.0.0"
    /// Listen port (0 picks a free one; tests use that).
    public var port: Int = 7443
    /// One-time tokens live this long.
    public var tokenTTL: Duration = .seconds(24 * 3600)
    /// Certificates of people live this long.
    public var userCertificateLifetime: Duration = .seconds(90 * 86400)
    /// Certificates of host agents live this long.
    public var agentCertificateLifetime: Duration = .seconds(30 * 86400)
    /// How often the heartbeat monitor looks for silent hosts and expired requests.
    public var sweepInterval: Duration = .seconds(5)
    /// The pool of a VM's disk when a request names none.
    public var defaultPool: PoolName = "ssd"
    /// Ledger settings (placement strategy, request lifetime, heartbeat timeout).
    public var ledger = LedgerSettings()
    /// The policy directory (`policies/`); nil runs the built-in default set.
    public var policyDirectory: String?

    public init(name: String, stateDirectory: String) {
        self.name = name
        self.stateDirectory = stateDirectory
    }
}

/// Files in the controller's state directory.
public struct StatePaths: Sendable {
    public var directory: String
    public init(_ directory: String) { self.directory = directory }
    public var database: String { directory + "/lumbung.sqlite" }
    public var caCertificate: String { directory + "/ca.crt" }
    public var caKey: String { directory + "/ca.key" }
    public var serverCertificate: String { directory + "/server.crt" }
    public var serverKey: String { directory + "/server.key" }
    public var identity: String { directory + "/controller.json" }
}

/// What `lumbungd init` records about the controller.
public struct ControllerIdentity: Codable, Sendable {
    public var name: String
    public var addresses: [String]
    public var createdAt: Date
    public init(name: String, addresses: [String], createdAt: Date) {
        self.name = name
        self.addresses = addresses
        self.createdAt = createdAt
    }
}
