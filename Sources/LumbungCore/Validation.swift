/// Rules for host labels and the label selectors of a ``VMSpec``.
///
/// A key is 1–63 characters of `a–z`, `0–9`, `-`, `.` and `_`, starting and ending with a
/// letter or digit (`zone`, `disk.type`); a value is 1–63 characters of `A–Z`, `a–z`, `0–9`,
/// `-`, `.` and `_`, starting and ending with a letter or digit (`a`, `NVMe`, `rack-3`).
public enum HostLabel {
    /// The longest accepted key or value.
    public static let maxLength = 63

    /// Throws `invalid_label` unless `key=value` follows the rules; `what` names the field in errors
    /// (e.g. "required label").
    public static func validate(key: String, value: String, what: String = "label") throws(CoreError) {
        let keyRule = "a label key is 1–\(maxLength) characters of a–z, 0–9, '-', '.', '_', starting and ending with a letter or digit"
        let valueRule = "a label value is 1–\(maxLength) characters of A–Z, a–z, 0–9, '-', '.', '_', starting and ending with a letter or digit"
        guard isWord(key, allowUpper: false) else {
            throw CoreError(.invalidLabel, "\(what) key '\(key.prefix(80))' is not accepted; \(keyRule)")
        }
        guard isWord(value, allowUpper: true) else {
            throw CoreError(.invalidLabel, "\(what) \(key)='\(value.prefix(80))' has a value that is not accepted; \(valueRule)")
        }
    }

    /// Validates every pair of a label map, in key order.
    public static func validate(_ labels: [String: String], what: String = "label") throws(CoreError) {
        // Fast path without sorting; key order matters only for which problem is reported.
        if labels.allSatisfy({ isWord($0.key, allowUpper: false) && isWord($0.value, allowUpper: true) }) { return }
        for key in labels.keys.sorted() {
            try validate(key: key, value: labels[key]!, what: what)
        }
    }

    static func isWord(_ text: String, allowUpper: Bool) -> Bool {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        func alnum(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || (allowUpper && b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
        }
        for b in bytes where !(alnum(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_")) {
            return false
        }
        return alnum(bytes.first!) && alnum(bytes.last!)
    }
}

/// Rules for a base image name: 1–128 characters of `A–Z`, `a–z`, `0–9`, `-`, `.` and `_`,
/// starting with a letter or digit and never containing `..` (so it stays inside the host's
/// image directory), e.g. `ubuntu-24.04`.
public enum ImageName {
    /// The longest accepted image name.
    public static let maxLength = 128

    /// Returns `text` when it is a valid image name, otherwise throws `invalid_name`.
    public static func validate(_ text: String) throws(CoreError) -> String {
        let rule = "an image name is 1–\(maxLength) characters of A–Z, a–z, 0–9, '-', '.', '_', starting with a letter or digit, without '..'"
        let bytes = text.utf8
        func alnum(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
        }
        guard !bytes.isEmpty, bytes.count <= maxLength, alnum(bytes.first!), !text.contains(".."),
            bytes.allSatisfy({ alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") })
        else {
            throw CoreError(.invalidName, "image '\(text.prefix(80))' is not accepted; \(rule)")
        }
        return text
    }
}

extension VMSpec {
    /// Checks every field: the name, app and pool with ``Name``, vCPU with ``VCPU/validate(_:what:)``,
    /// memory and disk with ``ByteSize/validate(_:what:)``, the image with ``ImageName``, and the
    /// label selectors with ``HostLabel``. Throws the first problem found.
    public func validate() throws(CoreError) {
        _ = try Name.validate(name, what: "VM name")
        _ = try VCPU.validate(vcpu, what: "vCPU")
        _ = try ByteSize.validate(memory, what: "memory")
        _ = try ByteSize.validate(disk, what: "disk")
        _ = try Name.validate(pool.rawValue, what: "pool name")
        if let app { _ = try Name.validate(app, what: "app name") }
        if let image { _ = try ImageName.validate(image) }
        try HostLabel.validate(requiredLabels, what: "required label")
        try HostLabel.validate(forbiddenLabels, what: "forbidden label")
        try HostLabel.validate(tags, what: "tag")
    }
}

extension VolumeSpec {
    /// Checks the name and pool with ``Name``, the size with ``ByteSize/validate(_:what:)`` and
    /// the tags like host labels.
    public func validate() throws(CoreError) {
        _ = try Name.validate(name, what: "volume name")
        _ = try ByteSize.validate(size, what: "volume size")
        _ = try Name.validate(pool.rawValue, what: "pool name")
        try HostLabel.validate(tags, what: "tag")
    }
}

extension VMState {
    /// True when a VM in this state counts against its OPD's quota: pending, scheduled,
    /// running, stopped. Quota is returned as soon as deletion starts.
    public var countsAgainstQuota: Bool {
        switch self {
        case .pending, .scheduled, .running, .stopped: true
        case .deleting, .deleted: false
        }
    }

    /// True when a VM in this state holds capacity on its host: scheduled, running, stopped,
    /// deleting. Capacity is returned only when the agent confirms `deleted`.
    public var holdsHostCapacity: Bool {
        switch self {
        case .scheduled, .running, .stopped, .deleting: true
        case .pending, .deleted: false
        }
    }
}

extension VolumeState {
    /// True when a volume in this state counts against its OPD's quota: pending, scheduled, ready.
    public var countsAgainstQuota: Bool {
        switch self {
        case .pending, .scheduled, .ready: true
        case .deleting, .deleted: false
        }
    }

    /// True when a volume in this state holds capacity on its host: scheduled, ready, deleting.
    public var holdsHostCapacity: Bool {
        switch self {
        case .scheduled, .ready, .deleting: true
        case .pending, .deleted: false
        }
    }
}
