import LumbungCore

extension PolicyLoader {
    /// The set a controller uses when it has no policy directory: the behaviour Lumbung had
    /// before policy files, so nothing changes for an installation that does not opt in.
    /// The classes are those of the shipped `policies/classes.yaml`; every VM and volume
    /// request is decided by the OPD's approver and every quota request by an admin (no
    /// automatic approval); requests expire after 14 days; binpack, overcommit cpu 4.0 /
    /// memory 1.0 / storage 1.0, no host reserve, no label overrides, N+1 headroom off, no
    /// constraints; no limits; volumes kept 7 days, audit entries 3650 days.
    ///
    /// It is loaded through the same validator as any directory, so it has a real hash.
    public static let builtinFiles: [PolicyFile] = [
        PolicyFile(
            name: "builtin.yaml",
            text: """
                # Built-in default policy of lumbungd (used when no policy directory is configured).
                classes:
                  kecil:
                    description: "Small OPD: one or two web applications (e.g. a kecamatan office, a small dinas)"
                    vcpu: 16
                    memory: 32GiB
                    storage: {hdd: 1TiB}
                    vms: 8
                    volumes: 16
                  sedang:
                    description: "Medium OPD: several services and a database (e.g. Bappeda, Dinas Pendidikan)"
                    vcpu: 48
                    memory: 128GiB
                    storage: {ssd: 1TiB, hdd: 4TiB}
                    vms: 24
                    volumes: 48
                  besar:
                    description: "Large OPD: public services with personal data (e.g. Dinas Kesehatan, Disdukcapil)"
                    vcpu: 128
                    memory: 384GiB
                    storage: {ssd: 4TiB, hdd: 16TiB}
                    vms: 64
                    volumes: 128
                approval:
                  request_expiry_days: 14
                  rules:
                    - name: kuota-oleh-admin
                      kind: quota
                      decision: admin
                    - name: vm-volume-oleh-approver
                      kind: [vm, volume]
                      decision: approver
                placement:
                  strategy: binpack
                  overcommit: {cpu: 4.0, memory: 1.0, storage: 1.0}
                  host_reserve: {cpus: 0, memory: 0}
                  headroom: {n_plus_one: false}
                limits: {}
                retention:
                  volume_days: 7
                  audit_days: 3650

                """)
    ]

    /// The built-in default set (see ``builtinFiles``).
    public static let builtinDefault: PolicySet = {
        guard case .success(let set) = load(files: builtinFiles) else {
            preconditionFailure("the built-in policy does not validate; a test guards this")
        }
        return set
    }()
}

extension PolicySet {
    /// The built-in default set: ``PolicyLoader/builtinDefault``.
    public static var builtinDefault: PolicySet { PolicyLoader.builtinDefault }
}
