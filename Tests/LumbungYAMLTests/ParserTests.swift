import LumbungYAML
import Testing

@Suite("Parser")
struct ParserTests {
    @Test func agentConfigTree() throws {
        let root = try parse(Fixtures.agentYAML)
        guard case .mapping(let entries) = root else { Issue.record("root is not a mapping"); return }
        #expect(entries.map(\.key) == [
            "controller", "state", "driver", "heartbeat_seconds", "metrics_listen", "pools", "accel",
            "cgroup_root", "cgroup_subpath", "stop_timeout_seconds", "simulated",
        ])
        #expect(root["controller"]?.text == "https://dc.example.go.id:7443")
        #expect(root["metrics_listen"]?.text == "0.0.0.0:9465")
        #expect(root["heartbeat_seconds"]?.scalar == YAMLScalar("10"))
        #expect(root["pools"] == .mapping([
            .init(key: "ssd", value: .scalar(YAMLScalar("/srv/lumbung/ssd"))),
            .init(key: "hdd", value: .scalar(YAMLScalar("/srv/lumbung/hdd"))),
        ]))
        #expect(root["images"] == nil)  // commented out
        let simulated = try #require(root["simulated"])
        #expect(simulated["cpus"]?.scalar?.line == 16)
        #expect(simulated["pools"]?["hdd"]?.text == "20TiB")
        #expect(simulated["images"] == .sequence([.scalar(YAMLScalar("debian-12")), .scalar(YAMLScalar("ubuntu-24.04"))]))
        #expect(simulated["images"]?[1]?.scalar?.line == 19)
        #expect(entries.first { $0.key == "simulated" }?.line == 15)
    }

    @Test func emptyDocumentsAreNil() throws {
        #expect(try YAMLNode.parse("") == nil)
        #expect(try YAMLNode.parse("# only a comment\n\n   \n") == nil)
        #expect(try YAMLNode.parse("---\n# nothing\n...\n") == nil)
    }

    @Test func documentMarkersAndComments() throws {
        let root = try parse("--- # start\na: 1 # one\n#b: 2\nc: 'x' # three\n...\n# trailing\n")
        #expect(root == .mapping([
            .init(key: "a", value: .scalar(YAMLScalar("1"))),
            .init(key: "c", value: .scalar(YAMLScalar("x", style: .singleQuoted))),
        ]))
        #expect(try parse("a: b#c")["a"]?.text == "b#c")
        #expect(try parse("a: b #c")["a"]?.text == "b")
        #expect(try parse("a:\r\n  b: 1\r\n")["a"]?["b"]?.text == "1")
    }

    @Test func sequences() throws {
        let root = try parse("""
            pools:
            - a
            - b
            nested:
              - name: x
                size: 1
              -   name: y
                  size: 2
              - - inner
                - inner2
              -
                late: item
              - [1, 2]
              -
            after: end
            """)
        #expect(root["pools"] == .sequence([.scalar(YAMLScalar("a")), .scalar(YAMLScalar("b"))]))
        let nested = try #require(root["nested"])
        #expect(nested[0]?["size"]?.text == "1")
        #expect(nested[1]?["name"]?.text == "y")
        #expect(nested[1]?["size"]?.text == "2")
        #expect(nested[2] == .sequence([.scalar(YAMLScalar("inner")), .scalar(YAMLScalar("inner2"))]))
        #expect(nested[3]?["late"]?.text == "item")
        #expect(nested[4] == .sequence([.scalar(YAMLScalar("1")), .scalar(YAMLScalar("2"))]))
        #expect(nested[5]?.scalar?.isNull == true)
        #expect(root["after"]?.text == "end")
        #expect(try parse("- a\n- b: 1\n  c:\n  - d\n  e: f\n") == .sequence([
            .scalar(YAMLScalar("a")),
            .mapping([
                .init(key: "b", value: .scalar(YAMLScalar("1"))),
                .init(key: "c", value: .sequence([.scalar(YAMLScalar("d"))])),
                .init(key: "e", value: .scalar(YAMLScalar("f"))),
            ]),
        ]))
    }

    @Test func flowCollections() throws {
        let root = try parse("""
            a: [x, "y, z", 'w', [1, [2]], {k: v}, ]
            b: {one: 1, "two": [2, 2], three: {}, empty: , last: x,}
            c: [
                multi,
                line   # comment
              ]
            d: {url: http://h:80/p, t: a b}
            e: []
            """)
        #expect(root["a"] == .sequence([
            .scalar(YAMLScalar("x")),
            .scalar(YAMLScalar("y, z", style: .doubleQuoted)),
            .scalar(YAMLScalar("w", style: .singleQuoted)),
            .sequence([.scalar(YAMLScalar("1")), .sequence([.scalar(YAMLScalar("2"))])]),
            .mapping([.init(key: "k", value: .scalar(YAMLScalar("v")))]),
        ]))
        #expect(root["b"]?["two"]?[1]?.text == "2")
        #expect(root["b"]?["three"] == .mapping([]))
        #expect(root["b"]?["empty"]?.scalar?.isNull == true)
        #expect(root["b"]?["last"]?.text == "x")
        #expect(root["c"] == .sequence([.scalar(YAMLScalar("multi")), .scalar(YAMLScalar("line"))]))
        #expect(root["d"]?["url"]?.text == "http://h:80/p")
        #expect(root["d"]?["t"]?.text == "a b")
        #expect(root["e"] == .sequence([]))
        #expect(try parse("[a, b]") == .sequence([.scalar(YAMLScalar("a")), .scalar(YAMLScalar("b"))]))
    }

    @Test func plainScalars() throws {
        let root = try parse("""
            url: https://dc:7443
            listen: 0.0.0.0:9465
            ipv6: ::1
            text: a plain
              value that
                continues

              after a blank line
            dash: -5
            spaces: a   b
            last: x
            """)
        #expect(root["url"]?.text == "https://dc:7443")
        #expect(root["listen"]?.text == "0.0.0.0:9465")
        #expect(root["ipv6"]?.text == "::1")
        #expect(root["text"]?.text == "a plain value that continues\nafter a blank line")
        #expect(root["text"]?.scalar?.line == 4)
        #expect(root["dash"]?.text == "-5")
        #expect(root["spaces"]?.text == "a   b")
        #expect(root["last"]?.text == "x")
        #expect(try parse("- a\n  b\n- c") == .sequence([.scalar(YAMLScalar("a b")), .scalar(YAMLScalar("c"))]))
    }

    @Test func quotedScalars() throws {
        let root = try parse(#"""
            d: "tab\there \"q\" back\\slash \/ nul\0 \x41 \u00e9 \U0001F600 cr\r nl\n"
            s: 'it''s a "test" \n'
            folded: "one
              two

              three \
              four"
            "quoted key": 1
            'single key': 2
            """#)
        #expect(root["d"]?.text == "tab\there \"q\" back\\slash / nul\0 A é 😀 cr\r nl\n")
        #expect(root["d"]?.scalar?.style == .doubleQuoted)
        #expect(root["s"]?.text == #"it's a "test" \n"#)
        #expect(root["folded"]?.text == "one two\nthree four")
        #expect(root["quoted key"]?.text == "1")
        #expect(root["single key"]?.text == "2")
    }

    @Test func blockScalars() throws {
        let root = try parse("""
            clip: |
              line1
                indented
              line3

            strip: |-
              x

            keep: |+
              y


            folded: >
              folded
              text

              para
                more
              back
            foldedStrip: >-
              one
              two
            empty: |
            next: value
            seq:
              - |
                in a sequence
              - >-
                b
            """)
        #expect(root["clip"]?.text == "line1\n  indented\nline3\n")
        #expect(root["clip"]?.scalar?.style == .literal)
        #expect(root["strip"]?.text == "x")
        #expect(root["keep"]?.text == "y\n\n\n")
        #expect(root["folded"]?.text == "folded text\npara\n  more\nback\n")
        #expect(root["folded"]?.scalar?.style == .folded)
        #expect(root["foldedStrip"]?.text == "one two")
        #expect(root["empty"]?.text == "")
        #expect(root["next"]?.text == "value")
        #expect(root["seq"] == .sequence([
            .scalar(YAMLScalar("in a sequence\n", style: .literal)),
            .scalar(YAMLScalar("b", style: .folded)),
        ]))
        #expect(try parse("a: |\n  no final newline")["a"]?.text == "no final newline")
        #expect(try parse("a: >+\n  k\n\n")["a"]?.text == "k\n\n")
    }

    /// Each input must be refused at the given line with a message naming the problem.
    @Test(arguments: [
        ("a: &anchor 1\n", 1, "anchors are not supported (found '&anchor')"),
        ("a: 1\nb: *anchor\n", 2, "aliases are not supported"),
        ("a: !!str 1\n", 1, "tags are not supported (found '!!str')"),
        ("a: !local x\n", 1, "tags are not supported"),
        ("a:\n\tb: 1\n", 2, "tabs are not allowed for indentation"),
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first defined on line 1)"),
        ("x: {k: 1, k: 2}\n", 1, "duplicate key 'k'"),
        ("a: \"abc\nb: 1\n", 1, "unterminated double-quoted string"),
        ("a: 'abc\n", 1, "unterminated single-quoted string"),
        ("a: [1, 2\nb: 3\n", 1, "unterminated flow sequence"),
        ("x: 1\na: {k: v\n", 2, "unterminated flow mapping"),
        ("a: 1\n---\nb: 2\n", 2, "second document"),
        ("a: 1\n...\n---\nb: 2\n", 3, "second document"),
        ("a:\n  b: 1\n   c: 2\n", 3, "bad indentation"),
        ("a:\n    b: 1\n  c: 2\n", 3, "bad indentation"),
        ("a:\n  - x\n - y\n", 3, "bad indentation"),
        ("a: 1\nstate\nc: 2\n", 2, "expected ':' after mapping key 'state'"),
        ("state\ndriver: real\n", 1, "expected ':' after mapping key 'state'"),
        ("a: 1\nb:c\n", 2, "must be followed by a space"),
        ("%YAML 1.2\n---\na: 1\n", 1, "directives are not supported"),
        ("? a\n: b\n", 1, "complex mapping keys"),
        ("a: b: c\n", 1, "nested mapping cannot start on the same line"),
        ("a: - b\n", 1, "block sequence cannot start on the same line"),
        ("a: |2\n  x\n", 1, "explicit indentation indicators"),
        ("a: 1\n...\nb: 2\n", 3, "after the document end marker"),
        ("a: [k: v]\n", 1, "inside a flow sequence are not supported"),
        ("- a\nb: 1\n", 2, "expected a sequence item"),
        ("a: \"\\q\"\n", 1, "unknown escape sequence"),
        ("a: \"\\uD800\"\n", 1, "not a Unicode scalar"),
        ("a: \"x\" y\n", 1, "unexpected 'y' after the quoted string"),
        ("a: @x\n", 1, "'@' cannot start a plain value"),
        ("a: x\u{1}\n", 1, "control character U+0001"),
        ("[a]: 1\n", 1, "flow collections cannot be mapping keys"),
        ("  a: 1\nb: 2\n", 2, "bad indentation"),
        ("[a]\nb: 1\n", 2, "unexpected content after the document's root value"),
        ("a:\n  - b\n  -c\n", 3, "expected a sequence item '- ' at column 3, found '-c'"),
    ])
    func refusals(input: String, line: Int, message: String) {
        do {
            let node = try YAMLNode.parse(input)
            Issue.record("accepted \(input.debugDescription) as \(String(describing: node))")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func errorDescriptionFormat() {
        #expect(throws: YAMLError(line: 2, column: 1, message: "tabs are not allowed for indentation; indent with spaces")) {
            try YAMLNode.parse("a:\n\tb: 1\n")
        }
        #expect(YAMLError(line: 3, column: 5, message: "m").description == "line 3, column 5: m")
        do {
            _ = try YAMLNode.parse("k: 1\nname: \"é\" &x\n")
            Issue.record("accepted")
        } catch {
            #expect(error.line == 2)
            #expect(error.column == 11)  // columns count characters, not bytes
        }
    }

    @Test func deepNestingIsRefusedNotCrashing() {
        #expect(throws: YAMLError.self) { try YAMLNode.parse(String(repeating: "[", count: 10_000)) }
        #expect(throws: YAMLError.self) { try YAMLNode.parse(String(repeating: "- ", count: 5_000) + "x") }
    }
}
