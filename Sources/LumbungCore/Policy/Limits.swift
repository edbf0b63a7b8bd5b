/// The images and pools an OPD class may use; nil means any.
public struct ClassAllowance: Hashable, Sendable {
    /// Base images VMs may name (nil: any).
    public var images: Set<String>?
    /// Pools VMs and volumes may use (nil: any).
    public var pools: Set<PoolName>?

    /// Creates an allowance.
    public init(images: Set<String>? = nil, pools: Set<PoolName>? = nil) {
        self.images = images
        self.pools = pools
    }
}

/// The largest VM and volume allowed, the images and pools each OPD class may use, and the
/// pattern VM and volume names must match. Every limit is optional (nil: no limit).
public struct Limits: Hashable, Sendable {
    /// The most vCPUs one VM may have.
    public var maxVMVCPU: Int?
    /// The most memory one VM may have.
    public var maxVMMemory: ByteSize?
    /// The largest VM disk.
    public var maxVMDisk: ByteSize?
    /// The largest volume (also the largest size a volume may grow to).
    public var maxVolumeSize: ByteSize?
    /// Images and pools for every class (nil lists: any).
    public var allowed: ClassAllowance
    /// Per class, lists that replace those of ``allowed``.
    public var perClass: [QuotaClassName: ClassAllowance]
    /// A regular expression VM and volume names must match whole, e.g. `^[a-z][a-z0-9-]{2,40}$`
    /// (Swift `Regex` syntax); nil: any valid name.
    public var namePattern: String?

    /// Creates limits.
    public init(
        maxVMVCPU: Int? = nil, maxVMMemory: ByteSize? = nil, maxVMDisk: ByteSize? = nil, maxVolumeSize: ByteSize? = nil,
        allowed: ClassAllowance = ClassAllowance(), perClass: [QuotaClassName: ClassAllowance] = [:], namePattern: String? = nil
    ) {
        self.maxVMVCPU = maxVMVCPU
        self.maxVMMemory = maxVMMemory
        self.maxVMDisk = maxVMDisk
        self.maxVolumeSize = maxVolumeSize
        self.allowed = allowed
        self.perClass = perClass
        self.namePattern = namePattern
    }

    /// Images an OPD of `opdClass` may use (nil: any), and the rule that says so.
    public func allowedImages(for opdClass: QuotaClassName?) -> (images: Set<String>?, rule: String) {
        if let cls = opdClass, let own = perClass[cls], let images = own.images { return (images, "limits:per_class.\(cls).images") }
        return (allowed.images, "limits:images")
    }

    /// Pools an OPD of `opdClass` may use (nil: any), and the rule that says so.
    public func allowedPools(for opdClass: QuotaClassName?) -> (pools: Set<PoolName>?, rule: String) {
        if let cls = opdClass, let own = perClass[cls], let pools = own.pools { return (pools, "limits:per_class.\(cls).pools") }
        return (allowed.pools, "limits:pools")
    }

    /// Every limit a new VM breaks, or nil when it keeps them all.
    public func check(vm spec: VMSpec, opdClass: QuotaClassName?) -> PolicyRefusal? {
        var out: [PolicyReason] = []
        if let max = maxVMVCPU, spec.vcpu > max {
            out.append(PolicyReason(rule: "limits:vm.max_vcpu", sentence: "the VM asks for \(spec.vcpu) vCPU; the largest VM allowed has \(max) vCPU"))
        }
        if let max = maxVMMemory, spec.memory > max {
            out.append(PolicyReason(rule: "limits:vm.max_memory", sentence: "the VM asks for \(spec.memory) of memory; the largest VM allowed has \(max)"))
        }
        if let max = maxVMDisk, spec.disk > max {
            out.append(PolicyReason(rule: "limits:vm.max_disk", sentence: "the VM asks for a \(spec.disk) disk; the largest VM disk allowed is \(max)"))
        }
        if let image = spec.image {
            let (images, rule) = allowedImages(for: opdClass)
            if let images, !images.contains(image) {
                out.append(PolicyReason(rule: rule, sentence: "image \(image) is not allowed\(Self.forClass(opdClass)); allowed: \(Self.list(images))"))
            }
        }
        out += poolAndName(pool: spec.pool, name: spec.name, noun: "VM", opdClass: opdClass)
        return out.isEmpty ? nil : PolicyRefusal(code: .limitExceeded, reasons: out)
    }

    /// Every limit a new volume breaks, or nil when it keeps them all.
    public func check(volume spec: VolumeSpec, opdClass: QuotaClassName?) -> PolicyRefusal? {
        var out = checkSize(spec.size).map { [$0] } ?? []
        out += poolAndName(pool: spec.pool, name: spec.name, noun: "volume", opdClass: opdClass)
        return out.isEmpty ? nil : PolicyRefusal(code: .limitExceeded, reasons: out)
    }

    /// The size limit for a volume growing to `newSize`, or nil when it is kept.
    public func check(volumeResize newSize: ByteSize) -> PolicyRefusal? {
        checkSize(newSize).map { PolicyRefusal(code: .limitExceeded, reasons: [$0]) }
    }

    /// True when `name` matches ``namePattern`` whole (or there is no pattern).
    public func nameMatches(_ name: String) -> Bool {
        guard let namePattern, let regex = try? Regex(namePattern) else { return true }
        return (try? regex.wholeMatch(in: name)) != nil
    }

    private func checkSize(_ size: ByteSize) -> PolicyReason? {
        guard let max = maxVolumeSize, size > max else { return nil }
        return PolicyReason(rule: "limits:volume.max_size", sentence: "the volume asks for \(size); the largest volume allowed is \(max)")
    }

    private func poolAndName(pool: PoolName, name: String, noun: String, opdClass: QuotaClassName?) -> [PolicyReason] {
        var out: [PolicyReason] = []
        let (pools, rule) = allowedPools(for: opdClass)
        if let pools, !pools.contains(pool) {
            out.append(
                PolicyReason(rule: rule, sentence: "pool \(pool) is not allowed\(Self.forClass(opdClass)); allowed: \(Self.list(pools.map(\.rawValue)))"))
        }
        if let namePattern, !nameMatches(name) {
            out.append(PolicyReason(rule: "limits:name_pattern", sentence: "\(noun) name '\(name)' does not match the name pattern \(namePattern)"))
        }
        return out
    }

    private static func forClass(_ cls: QuotaClassName?) -> String { cls.map { " for class \($0)" } ?? "" }
    private static func list(_ items: some Collection<String>) -> String { items.sorted().joined(separator: ", ") }
}
