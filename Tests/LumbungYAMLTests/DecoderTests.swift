import LumbungYAML
import Testing

@Suite("Decoder")
struct DecoderTests {
    let decoder = YAMLDecoder()

    @Test func agentConfig() throws {
        let config = try decoder.decode(AgentConfig.self, from: Fixtures.agentYAML)
        #expect(config == AgentConfig(
            controller: "https://dc.example.go.id:7443",
            state: "/var/lib/lumbung-agent",
            driver: "real",
            heartbeat_seconds: 10,
            metrics_listen: "0.0.0.0:9465",
            pools: ["ssd": "/srv/lumbung/ssd", "hdd": "/srv/lumbung/hdd"],
            images: nil,
            accel: "auto",
            cgroup_root: "/sys/fs/cgroup",
            cgroup_subpath: "auto",
            stop_timeout_seconds: 60,
            simulated: .init(cpus: 32, memory: "128GiB", pools: ["ssd": "4TiB", "hdd": "20TiB"],
                             images: ["debian-12", "ubuntu-24.04"])
        ))
    }

    @Test func yamsWrittenCLIConfig() throws {
        let config = try decoder.decode(CLIConfig.self, from: Fixtures.yamsCLIConfig)
        #expect(config == CLIConfig(controller: "https://127.0.0.1:7443", certificate: "client.crt",
                                    key: "client.key", ca: "ca.crt", identity: "lumbung://user/admin"))
    }

    @Test func yamsStyleQuotingAndBlocks() throws {
        struct Config: Decodable, Equatable {
            var version: String
            var flag: String
            var empty: String
            var note: String
            var list: [String]
        }
        let text = """
            version: '10'
            flag: 'true'
            empty: ''
            note: |-
              first line
              second line
            list:
            - 'a: b'
            - "c\td"

            """
        #expect(try decoder.decode(Config.self, from: text) == Config(
            version: "10", flag: "true", empty: "", note: "first line\nsecond line", list: ["a: b", "c\td"]))
    }

    @Test func typeErrorNamesLinePathAndValue() {
        let text = Fixtures.agentYAML.replacingFirst("cpus: 32", with: "cpus: many")
        #expect(text != Fixtures.agentYAML)
        do {
            _ = try decoder.decode(AgentConfig.self, from: text)
            Issue.record("decoded 'many' as an integer")
        } catch {
            guard case .typeMismatch? = error as? DecodingError else { Issue.record("\(error)"); return }
            #expect(decodingMessage(error) == "line 16: simulated.cpus: expected an integer, found 'many'")
        }
    }

    @Test func missingKeys() {
        do {
            _ = try decoder.decode(CLIConfig.self, from: "certificate: c\nkey: k\nca: a\nidentity: i\n")
            Issue.record("decoded without controller")
        } catch {
            guard case .keyNotFound(let key, _)? = error as? DecodingError else { Issue.record("\(error)"); return }
            #expect(key.stringValue == "controller")
            #expect(decodingMessage(error) == "missing key 'controller'")
        }
        let text = Fixtures.agentYAML.replacingFirst("  cpus: 32\n", with: "")
        do {
            _ = try decoder.decode(AgentConfig.self, from: text)
            Issue.record("decoded without simulated.cpus")
        } catch {
            #expect(decodingMessage(error) == "line 15: simulated: missing key 'cpus'")
        }
    }

    @Test func syntaxErrorsAreYAMLErrors() {
        #expect(throws: YAMLError.self) { try decoder.decode(CLIConfig.self, from: "controller: &a x\n") }
    }

    struct Port: Decodable { var port: Int }
    struct Name: Decodable { var name: String }
    struct MaybeInt: Decodable { var x: Int? }
    struct MaybeString: Decodable { var s: String? }

    @Test func scalarTyping() throws {
        do {
            _ = try decoder.decode(Port.self, from: "port: \"10\"\n")
            Issue.record("decoded a quoted string as Int")
        } catch {
            #expect(decodingMessage(error) == "line 1: port: expected an integer, found the quoted string \"10\"; quoted values are strings, remove the quotes")
        }
        #expect(try decoder.decode(Name.self, from: "name: 10").name == "10")
        #expect(try decoder.decode(Name.self, from: "name: 'x'").name == "x")
        #expect(try decoder.decode(Name.self, from: "name: null").name == "null")
        #expect(try decoder.decode(MaybeInt.self, from: "x: ~").x == nil)
        #expect(try decoder.decode(MaybeInt.self, from: "x:").x == nil)
        #expect(try decoder.decode(MaybeInt.self, from: "x: null").x == nil)
        #expect(try decoder.decode(MaybeInt.self, from: "y: 1").x == nil)
        #expect(try decoder.decode(MaybeInt.self, from: "x: 0x1F").x == 31)
        #expect(try decoder.decode(MaybeString.self, from: "s: \"null\"").s == "null")
        #expect(try decoder.decode(MaybeString.self, from: "s: ''").s == "")
        #expect(try decoder.decode(MaybeString.self, from: "s: NULL").s == nil)
        #expect(throws: DecodingError.self) { try decoder.decode(Port.self, from: "port: ~") }
        #expect(throws: DecodingError.self) { try decoder.decode(Port.self, from: "port: |\n  10\n") }
        #expect(throws: DecodingError.self) { try decoder.decode(Port.self, from: "port: [10]") }
    }

    @Test(arguments: [
        ("0x7F", Int8(127)), ("-0x80", -128), ("0o17", 15), ("+12", 12), ("-12", -12), ("0", 0),
    ])
    func int8Accepted(text: String, value: Int8) throws {
        #expect(try decoder.decode([String: Int8].self, from: "v: \(text)")["v"] == value)
    }

    @Test(arguments: ["128", "-129", "0x80", "1.5", "12abc", "0x", "+", "-0o", "1_000", "true", "0b1"])
    func int8Refused(text: String) {
        #expect(throws: DecodingError.self) { try decoder.decode([String: Int8].self, from: "v: \(text)") }
    }

    @Test func integerRanges() throws {
        #expect(try decoder.decode([UInt64].self, from: "[18446744073709551615, 0xFFFFFFFFFFFFFFFF]") == [.max, .max])
        #expect(try decoder.decode([Int].self, from: "[-9223372036854775808, 9223372036854775807]") == [.min, .max])
        do {
            _ = try decoder.decode([String: UInt64].self, from: "big: 18446744073709551616")
            Issue.record("overflow accepted")
        } catch {
            #expect(decodingMessage(error) == "line 1: big: integer 18446744073709551616 is out of range for UInt64 (0...18446744073709551615)")
        }
        #expect(throws: DecodingError.self) { try decoder.decode([UInt].self, from: "[-1]") }
    }

    @Test func floats() throws {
        let values = try decoder.decode([Double].self, from: "[1.5, -2, 1e3, 2.5E-2, .5, +.inf, -.inf, 0x10, 6.]")
        #expect(values == [1.5, -2, 1000, 0.025, 0.5, .infinity, -.infinity, 16, 6])
        #expect(try decoder.decode([Double].self, from: "[.nan]")[0].isNaN)
        #expect(try decoder.decode([Float].self, from: "[0.1]") == [Float(0.1)])
        #expect(throws: DecodingError.self) { try decoder.decode([Double].self, from: "[1e400]") }
        #expect(throws: DecodingError.self) { try decoder.decode([Double].self, from: "[inf]") }
        #expect(throws: DecodingError.self) { try decoder.decode([Double].self, from: "['1.5']") }
    }

    @Test func bools() throws {
        #expect(try decoder.decode([Bool].self, from: "[true, True, TRUE, false, False, FALSE]") == [true, true, true, false, false, false])
        for bad in ["yes", "on", "1", "'true'", "tRUE"] {
            #expect(throws: DecodingError.self) { try decoder.decode([Bool].self, from: "[\(bad)]") }
        }
        do {
            _ = try decoder.decode([String: [Bool]].self, from: "flags:\n  - true\n  - maybe\n")
            Issue.record("accepted maybe")
        } catch {
            #expect(decodingMessage(error) == "line 3: flags[1]: expected a boolean (true or false), found 'maybe'")
        }
    }

    @Test func containersAndKeys() throws {
        struct Keys: Decodable {
            var keys: [String]
            var hasB: Bool
            var nilC: Bool
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: AnyKey.self)
                keys = c.allKeys.map(\.stringValue)
                hasB = c.contains(AnyKey("b"))
                nilC = try c.decodeNil(forKey: AnyKey("c"))
            }
        }
        let k = try decoder.decode(Keys.self, from: "z: 1\nb: 2\nc: ~\na: 3\n")
        #expect(k.keys == ["z", "b", "c", "a"])
        #expect(k.hasB)
        #expect(k.nilC)
        #expect(try decoder.decode([String?].self, from: "[a, null, '', ~]") == ["a", nil, "", nil])
        #expect(try decoder.decode([String: [Int]].self, from: "a: [1]\nb:\n- 2\n- 3\n") == ["a": [1], "b": [2, 3]])
        #expect(try decoder.decode([Int: String].self, from: "1: one\n\"2\": two\n") == [1: "one", 2: "two"])
        #expect(try decoder.decode([String: Int].self, from: "# empty\n") == [:])
        #expect(try decoder.decode(String?.self, from: "") == nil)
        #expect(throws: DecodingError.self) { try decoder.decode(CLIConfig.self, from: "- a\n") }
    }

    @Test func superDecoderAndNesting() throws {
        final class Base: Decodable {
            let id: Int
            init(id: Int) { self.id = id }
        }
        struct Wrapper: Decodable {
            var base: Base
            var inner: [Int]
            enum CodingKeys: String, CodingKey { case base, inner }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                base = try Base(from: c.superDecoder(forKey: .base))
                var u = try c.nestedUnkeyedContainer(forKey: .inner)
                inner = []
                while !u.isAtEnd { inner.append(try u.decode(Int.self)) }
            }
        }
        let w = try decoder.decode(Wrapper.self, from: "base:\n  id: 7\ninner: [1, 2]\n")
        #expect(w.base.id == 7)
        #expect(w.inner == [1, 2])
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}
