import LumbungCore
import LumbungYAML
import Testing

@Suite("Encoder")
struct EncoderTests {
    struct Fixture: Codable, Equatable {
        struct Inner: Codable, Equatable {
            var url: String
            var text: String
            var port: Int?
        }

        var name = "lumbung"
        var version = "10"
        var port = 7443
        var ratio = 0.5
        var enabled = true
        var note: String? = nil
        var tags = ["a", "b c", "#x", "yes", ""]
        var empty: [String] = []
        var limits = ["zeta": 1, "alpha": 2, "Mid": 3]
        var emptyMap: [String: Int] = [:]
        var nested = Inner(url: "https://dc:7443", text: "two\nlines", port: nil)
        var items = [Inner(url: "a", text: " lead", port: 1), Inner(url: "b: c", text: "x # y", port: nil)]
        var matrix = [[1, 2], [], [3]]
        var inf = Double.infinity
        var big = UInt64.max
    }

    @Test func exactOutput() throws {
        let text = try YAMLEncoder().encode(Fixture())
        #expect(text == """
            name: lumbung
            version: "10"
            port: 7443
            ratio: 0.5
            enabled: true
            tags:
              - a
              - b c
              - "#x"
              - "yes"
              - ""
            empty: []
            limits:
              Mid: 3
              alpha: 2
              zeta: 1
            emptyMap: {}
            nested:
              url: https://dc:7443
              text: "two\\nlines"
            items:
              - url: a
                text: " lead"
                port: 1
              - url: "b: c"
                text: "x # y"
            matrix:
              - - 1
                - 2
              - []
              - - 3
            inf: .inf
            big: 18446744073709551615

            """)
        #expect(try YAMLDecoder().decode(Fixture.self, from: text) == Fixture())
    }

    @Test func agentConfigRoundTrip() throws {
        let config = try YAMLDecoder().decode(AgentConfig.self, from: Fixtures.agentYAML)
        let text = try YAMLEncoder().encode(config)
        #expect(text.hasPrefix("controller: https://dc.example.go.id:7443\nstate: /var/lib/lumbung-agent\n"))
        #expect(text.contains("pools:\n  hdd: /srv/lumbung/hdd\n  ssd: /srv/lumbung/ssd\n"))
        #expect(try YAMLDecoder().decode(AgentConfig.self, from: text) == config)
    }

    @Test func explicitNilAndTopLevelValues() throws {
        struct Explicit: Encodable {
            var a: Int?
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: AnyKey.self)
                try c.encode(a, forKey: AnyKey("a"))
                try c.encodeIfPresent(a, forKey: AnyKey("b"))
                try c.encodeNil(forKey: AnyKey("c"))
            }
        }
        #expect(try YAMLEncoder().encode(Explicit(a: nil)) == "a: null\nc: null\n")
        #expect(try YAMLEncoder().encode(["x", "true"]) == "- x\n- \"true\"\n")
        #expect(try YAMLEncoder().encode("plain") == "plain\n")
        #expect(try YAMLEncoder().encode([String: Int]()) == "{}\n")
        #expect(try YAMLEncoder().encode([Int]()) == "[]\n")
        #expect(try YAMLEncoder().encode([-Double.infinity, 1e-5]) == "- -.inf\n- 1e-05\n")
        #expect(try YAMLEncoder().encode(["k": [String?.none, "a"]]) == "k:\n  - null\n  - a\n")
    }

    @Test(arguments: [
        "hello world", "https://dc:7443", "a:b", "a#b", "128GiB", "debian-12", "ubuntu-24.04",
        "é", "😀 emoji", "it's", "0.0.0.0:9465", "4TiB", "1e", "v1.2", "12:345", "say \"hi\"", "back\\slash", "nULL", "truely",
    ])
    func plainStrings(s: String) throws {
        #expect(try YAMLEncoder().encode(["v": s]) == "v: \(s)\n")
    }

    @Test(arguments: [
        "", "null", "Null", "~", "true", "FALSE", "yes", "off", "10", "-7", "0x1F", "0o17", "1e3", "1.5", ".inf",
        "-.inf", ".nan", "1_000", "12:30", "1:20:30.5", "2024-01-02", "2001-12-14t21:59:43.10-05:00", "0.0.0.0", "10.0.0.1",
        "0b101", "0x_1", "+.5", "-1_0.5e+3", "077", " lead", "trail ", "- item", "-x", "?", ":x",
        ",", "[a]", "{a}", "#c", "&a", "*a", "!t", "|", ">", "'q'", "\"q\"", "%p", "@a", "`b", "a: b", "a:",
        "a #b", "two\nlines", "tab\there", "nul\u{0}", "\u{85}", "\u{2028}", "\u{FEFF}x", "---", "...",
    ])
    func quotedStrings(s: String) throws {
        let text = try YAMLEncoder().encode(["v": s])
        #expect(text.hasPrefix("v: \""), "\(text)")
        #expect(try YAMLDecoder().decode([String: String].self, from: text) == ["v": s])
    }

    @Test func escapes() throws {
        #expect(try YAMLEncoder().encode(["v": "a\u{1}\u{85}\u{2028}\r\\\""]) == #"v: "a\x01\x85\u2028\r\\\"""# + "\n")
    }

    // MARK: Property: decode(encode(v)) == v

    struct Sample: Codable, Equatable {
        struct Nested: Codable, Equatable {
            var a: String
            var b: [Int8]
            var c: Leaf?
        }
        struct Leaf: Codable, Equatable {
            var x: String?
            var y: [String: Bool]
        }

        var s: String
        var opt: String?
        var list: [String]
        var optList: [String?]
        var dict: [String: String]
        var nested: Nested?
        var nestedList: [Nested]
        var deep: [[String: [String]]]
        var int: Int
        var uint: UInt64
        var double: Double
        var float: Float
        var flag: Bool
    }

    static let fragments = [
        "", " ", "  ", "a", "b c", ":", ": ", " #", "#", "-", "- ", "?", "? ", "[", "]", "{", "}", ",", "&", "*",
        "!", "|", ">", "'", "\"", "%", "@", "`", "\n", "\n\n", "\t", "\r", "\r\n", "\\", "\\n", "null", "~", "true",
        "False", "yes", "10", "-3", "0x1F", "1e3", ".inf", "-.inf", ".nan", "0o7", "+1", "é", "😀", "\u{0}", "\u{7}",
        "\u{1B}", "\u{7F}", "\u{85}", "\u{A0}", "\u{2028}", "\u{FEFF}", "---", "...", "key: value", "a:b",
        "http://x:1", "#c", "x #y", "{a: b}", "[1, 2]", "*alias", "&anchor", "!!str", ">-", "|+", "\\x41", "''",
    ]

    static func awkwardString(_ rng: inout SplitMix64) -> String {
        var s = ""
        for _ in 0..<Int.random(in: 0...4, using: &rng) {
            if Int.random(in: 0..<8, using: &rng) == 0 {
                let value = UInt32.random(in: 0...0x10FFFF, using: &rng)
                s.unicodeScalars.append(Unicode.Scalar(value) ?? "?")
            } else {
                s += fragments.randomElement(using: &rng)!
            }
        }
        return s
    }

    static func randomSample(_ rng: inout SplitMix64) -> Sample {
        func str() -> String { awkwardString(&rng) }
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &rng) ? make() : nil }
        func count() -> Int { Int.random(in: 0...3, using: &rng) }
        func nested() -> Sample.Nested {
            .init(a: str(),
                  b: (0..<count()).map { _ in Int8.random(in: .min ... .max, using: &rng) },
                  c: maybe { Sample.Leaf(x: maybe(str), y: Dictionary((0..<count()).map { _ in (str(), Bool.random(using: &rng)) }, uniquingKeysWith: { a, _ in a })) })
        }
        var double = Double(bitPattern: rng.next())
        if double.isNaN { double = -0.0 }
        var float = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
        if float.isNaN { float = .infinity }
        return Sample(
            s: str(),
            opt: maybe(str),
            list: (0..<count()).map { _ in str() },
            optList: (0..<count()).map { _ in maybe(str) },
            dict: Dictionary((0..<count()).map { _ in (str(), str()) }, uniquingKeysWith: { a, _ in a }),
            nested: maybe(nested),
            nestedList: (0..<count()).map { _ in nested() },
            deep: (0..<count()).map { _ in
                Dictionary((0..<count()).map { _ in (str(), (0..<count()).map { _ in str() }) }, uniquingKeysWith: { a, _ in a })
            },
            int: Int(bitPattern: UInt(rng.next())),
            uint: rng.next(),
            double: double,
            float: float,
            flag: Bool.random(using: &rng)
        )
    }

    @Test func randomRoundTrip() throws {
        var rng = SplitMix64(seed: 0x4C75_6D62_756E_67)
        let encoder = YAMLEncoder(), decoder = YAMLDecoder()
        for i in 0..<600 {
            let sample = Self.randomSample(&rng)
            let text = try encoder.encode(sample)
            do {
                let back = try decoder.decode(Sample.self, from: text)
                #expect(back == sample, "iteration \(i):\n\(text)")
                if back != sample { return }
            } catch {
                Issue.record("iteration \(i): \(error)\n\(text)")
                return
            }
            #expect(try encoder.encode(try decoder.decode(Sample.self, from: text)) == text, "output is not stable")
        }
    }
}
