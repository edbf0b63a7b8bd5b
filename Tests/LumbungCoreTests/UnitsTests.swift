import Testing
@testable import LumbungCore

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("512MiB", ByteSize.mib(512), "512MiB"),
        ("8GiB", ByteSize.gib(8), "8GiB"),
        ("1.5GiB", ByteSize.mib(1536), "1.5GiB"),
        ("2TiB", ByteSize.tib(2), "2TiB"),
        (" 1PiB ", ByteSize(bytes: ByteSize.pib), "1PiB"),
        ("1536MiB", ByteSize.mib(1536), "1.5GiB"),
        ("0.25GiB", ByteSize.mib(256), "256MiB"),
    ])
    func accepted(text: String, expected: ByteSize, description: String) throws {
        let parsed = try ByteSize.parse(text, what: "memory")
        #expect(parsed == expected)
        #expect(parsed.description == description)
        #expect(try ByteSize.parse(parsed.description, what: "memory") == parsed)
    }

    @Test(arguments: ["0GiB", "-1GiB", "8G", "8GB", "8", "abc", "99999PiB", "0.3MiB", "", "GiB", "1.2.3GiB", "65PiB"])
    func refused(text: String) {
        #expect {
            _ = try ByteSize.parse(text, what: "memory")
        } throws: { error in
            (error as? CoreError)?.code == .invalidAmount && (error as? CoreError)?.message.contains("memory") == true
        }
    }

    @Test func signedDeltas() throws {
        #expect(try ByteSize.parse("-2GiB", what: "memory", allowSign: true) == .gib(-2))
        #expect(try ByteSize.parse("+512MiB", what: "memory", allowSign: true) == .mib(512))
        #expect(ByteSize.gib(-2).description == "-2GiB")
    }

    @Test(arguments: [
        (ByteSize(bytes: Int64.max), "9223372036854775807B"),
        (ByteSize(bytes: 200 * ByteSize.pib + ByteSize.tib / 2), "204800.5TiB"),
        (ByteSize(bytes: 200 * ByteSize.pib + ByteSize.pib / 4), "200.25PiB"),
        (ByteSize(bytes: 300 * ByteSize.pib + ByteSize.mib), "322122547201MiB"),
        (ByteSize(bytes: 2048), "2KiB"),
        (ByteSize(bytes: 1000), "1000B"),
        (ByteSize.mib(1025), "1025MiB"),
        (ByteSize.mib(-1536), "-1.5GiB"),
    ])
    func describesAnyAmountWithoutOverflow(size: ByteSize, text: String) {
        #expect(size.description == text)
    }

    @Test(arguments: [ByteSize.zero, .gib(-1), ByteSize(bytes: 1000), ByteSize(bytes: 65 * ByteSize.pib)])
    func validateRefuses(size: ByteSize) {
        #expect(throws: CoreError.self) { _ = try ByteSize.validate(size, what: "disk") }
    }
}

@Suite struct VCPUTests {
    @Test(arguments: [("1", 1), ("4", 4), (" 16 ", 16), ("4096", 4096)])
    func accepted(text: String, expected: Int) throws {
        #expect(try VCPU.parse(text) == expected)
    }

    @Test(arguments: ["0", "-1", "1.5", "99999", "4097", "abc", "", "1,5", "+2"])
    func refused(text: String) {
        #expect {
            _ = try VCPU.parse(text)
        } throws: { error in
            (error as? CoreError)?.code == .invalidAmount
        }
    }

    @Test func signedDelta() throws {
        #expect(try VCPU.parse("-2", allowSign: true) == -2)
        #expect(try VCPU.parse("+8", allowSign: true) == 8)
    }

    @Test(arguments: [0, -3, 4097])
    func validateRefuses(value: Int) {
        #expect(throws: CoreError.self) { _ = try VCPU.validate(value) }
    }
}

@Suite struct NameTests {
    @Test(arguments: ["simpus-db", "a", "node-01", "0", String(repeating: "a", count: 63)])
    func accepted(name: String) throws {
        #expect(try Name.validate(name, what: "VM name") == name)
        #expect(Name.isValid(name))
    }

    @Test(arguments: ["", String(repeating: "a", count: 64), "A", "a/b", "..", "-x", "x-", "a_b", "a.b", "é", "a b"])
    func refused(name: String) {
        #expect {
            _ = try Name.validate(name, what: "VM name")
        } throws: { error in
            guard let e = error as? CoreError else { return false }
            return e.code == .invalidName && e.message.hasPrefix("VM name")
        }
        #expect(!Name.isValid(name))
    }

    @Test(arguments: [("zone", "a", true), ("disk.type", "NVMe", true), ("Zone", "a", false), ("zone", "", false),
                      ("zone", "a=b", false), ("-zone", "a", false), (String(repeating: "k", count: 64), "a", false)])
    func labels(key: String, value: String, ok: Bool) {
        let accepted = (try? HostLabel.validate(key: key, value: value)) != nil
        #expect(accepted == ok)
    }

    @Test(arguments: [("ubuntu-24.04", true), ("debian_12.qcow2", true), ("../etc", false), ("a/b", false), (".hidden", false), ("", false)])
    func images(name: String, ok: Bool) {
        #expect(((try? ImageName.validate(name)) != nil) == ok)
    }
}
