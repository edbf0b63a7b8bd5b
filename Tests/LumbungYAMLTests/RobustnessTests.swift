import LumbungCore
import LumbungYAML
import Testing

/// The parser and decoder must return or throw on any input, never trap or hang.
@Suite("Robustness")
struct RobustnessTests {
    static let samples = [
        Fixtures.agentYAML,
        Fixtures.yamsCLIConfig,
        "a: |\n  x\n   y\nb: >-\n  z\n\nc: \"q\\u00e9\n  r\"\nd: 'it''s'\ne: [1, {k: [v]}]\n- f\n",
        "- a: 1\n  b:\n  - c\n  - d: [e, 'f']\n-\n  g: h\n",
    ]
    static let noise: [String] = [
        " ", "  ", "\t", "\n", ":", ": ", "-", "- ", "#", " #", "[", "]", "{", "}", ",", "\"", "'", "\\", "|", ">",
        "&", "*", "!", "?", "%", "@", "`", "---\n", "...\n", "é", "\u{1}", "\r", "\\u", "\\x4", "|+", ">-", "~",
    ]

    /// Returns true when parsing `text` terminated (with a node, nil or a YAMLError).
    static func survives(_ text: String) -> Bool {
        do {
            _ = try YAMLNode.parse(text)
            _ = try? YAMLDecoder().decode(AgentConfig.self, from: text)
            _ = try? YAMLDecoder().decode([String: [String: String]].self, from: text)
        } catch {
            #expect(error.line >= 1 && error.column >= 1)
        }
        return true
    }

    @Test func everyTruncationOfTheSamples() {
        var count = 0
        for sample in Self.samples {
            let bytes = Array(sample.utf8)
            for end in 0...bytes.count {
                #expect(Self.survives(String(decoding: bytes[..<end], as: UTF8.self)))
                count += 1
            }
        }
        #expect(count > 300)
    }

    @Test func randomMutationsOfTheSamples() {
        var rng = SplitMix64(seed: 20_240_611)
        for _ in 0..<1_500 {
            var bytes = Array(Self.samples.randomElement(using: &rng)!.utf8)
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let i = Int.random(in: 0...bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes.insert(contentsOf: Self.noise.randomElement(using: &rng)!.utf8, at: i)
                case 1: if i < bytes.count { bytes.remove(at: i) }
                case 2: if i < bytes.count { bytes[i] = UInt8.random(in: 0x20...0x7E, using: &rng) }
                default:
                    let j = Int.random(in: 0...bytes.count, using: &rng)
                    bytes.insert(contentsOf: bytes[min(i, j)..<max(i, j)].prefix(20), at: i)
                }
            }
            #expect(Self.survives(String(decoding: bytes, as: UTF8.self)))
        }
    }
}
