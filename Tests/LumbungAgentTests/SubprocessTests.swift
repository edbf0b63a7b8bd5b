import Testing

@testable import LumbungAgent

/// The agent's Foundation-free command runner, against real processes (`/bin/sh`).
@Suite struct SubprocessTests {
    @Test func capturesBothStreamsTheStatusAndLargeOutput() throws {
        // 1 MiB on stdout and 256 KiB on stderr, interleaved: more than a pipe holds, so the
        // runner must drain both while the command runs.
        let script = "i=0; while [ $i -lt 64 ]; do head -c 16384 /dev/zero | tr '\\0' a; head -c 4096 /dev/zero | tr '\\0' b >&2; i=$((i+1)); done; exit 3"
        let result = try Subprocess.run("/bin/sh", ["-c", script])
        #expect(result.status == 3)
        #expect(result.stdout.count == 1 << 20 && result.stdout.allSatisfy { $0 == UInt8(ascii: "a") })
        #expect(result.stderr.count == 256 << 10 && result.stderr.allSatisfy { $0 == UInt8(ascii: "b") })
        #expect(!result.timedOut)
    }

    @Test func feedsStandardInputAndPassesTheEnvironment() throws {
        let input = Array(String(repeating: "line\n", count: 50_000).utf8)  // 250 KB, more than a socket buffer
        let result = try Subprocess.run("/bin/sh", ["-c", "wc -c; echo \"$LUMBUNG_TEST\""], environment: ["LUMBUNG_TEST": "ok", "PATH": "/usr/bin:/bin"], input: input)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "250000\nok\n")
        // Without input, standard input is /dev/null.
        let empty = try Subprocess.run("/bin/sh", ["-c", "wc -c"])
        #expect(String(decoding: empty.stdout, as: UTF8.self).trimmed() == "0")
    }

    @Test func aCommandThatStopsReadingEarlyDoesNotKillTheAgent() throws {
        // `true` exits without reading: the write end sees EPIPE, not a SIGPIPE for this process.
        let result = try Subprocess.run("/bin/true", [], input: Array(repeating: 0x41, count: 1 << 20))
        #expect(result.status == 0)
    }

    @Test func killsACommandThatOutlivesItsTimeout() throws {
        let start = ContinuousClock.now
        let result = try Subprocess.run("/bin/sh", ["-c", "echo started; exec sleep 30"], timeout: .milliseconds(300))
        #expect(result.timedOut)
        #expect(result.status == 128 + 9)
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(String(decoding: result.stdout, as: UTF8.self) == "started\n")
    }

    @Test func reportsASignalAndAMissingExecutable() throws {
        #expect(try Subprocess.run("/bin/sh", ["-c", "kill -TERM $$"]).status == 128 + 15)
        #expect(throws: SubprocessError.self) { try Subprocess.run("/nonexistent/lumbung-test", []) }
    }

    @Test func trimmedDropsOnlyOuterWhitespace() {
        #expect("  a b \n\t".trimmed() == "a b")
        #expect(" \n ".trimmed() == "")
        #expect("x".trimmed() == "x")
    }
}
