import Foundation
import Testing

@testable import LumbungAgent

/// Releasing code page mappings (``CodePages``): which mappings qualify, and, in this process,
/// that releasing loses nothing.
@Suite struct CodePagesTests {
    static let smaps = """
        55d0c0000000-55d0c1000000 r-xp 00000000 fd:01 1234 /usr/bin/lumbung-agent
        Size:              16384 kB
        Rss:                8192 kB
        Anonymous:             0 kB
        Swap:                  0 kB
        Locked:                0 kB
        VmFlags: rd ex mr mw me
        55d0c1000000-55d0c1100000 r--p 01000000 fd:01 1234 /usr/bin/lumbung-agent
        Rss:                1024 kB
        Anonymous:           640 kB
        Swap:                  0 kB
        VmFlags: rd mr mw me ac
        55d0c1100000-55d0c1200000 rw-p 01100000 fd:01 1234 /usr/bin/lumbung-agent
        Rss:                 512 kB
        Anonymous:            12 kB
        VmFlags: rd wr mr mw me ac
        7f0000000000-7f0000100000 r--p 00000000 fd:01 99 /usr/lib/swift/linux/libswiftCore.so
        Rss:                 120 kB
        Anonymous:             0 kB
        Swap:                  0 kB
        VmFlags: rd mr mw me
        7f0000100000-7f0000200000 r-xp 00100000 fd:01 99 /usr/lib/swift/linux/libswiftCore.so
        Rss:                4992 kB
        Anonymous:             0 kB
        Swap:                  4 kB
        VmFlags: rd ex mr mw me
        7f0000200000-7f0000300000 r-xp 00000000 fd:01 100 /usr/lib/x86_64-linux-gnu/libc.so.6
        Rss:                1136 kB
        Anonymous:             0 kB
        Locked:             1136 kB
        VmFlags: rd ex mr mw me lo
        7f0000300000-7f0000400000 r-xp 00000000 fd:01 101 /tmp/old copy of lib.so (deleted)
        Rss:                  64 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me
        7f0000400000-7f0000500000 r-xp 00000000 fd:01 102 /usr/lib/libnotyet.so
        Rss:                   0 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me
        7f0000500000-7f0000600000 r-xp 00000000 00:00 0
        Rss:                  16 kB
        Anonymous:            16 kB
        VmFlags: rd ex mr mw me
        7f0000600000-7f0000601000 r--s 00000000 00:05 7 /dev/shm/shared
        Rss:                   4 kB
        Anonymous:             0 kB
        VmFlags: rd sh mr mw me
        7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
        Rss:                   8 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me de
        """

    @Test func onlyUnmodifiedPrivateReadOnlyFileMappingsQualify() {
        let found = CodePages.releasable(smaps: Self.smaps)
        // The executable's code and the runtime's read-only data; not RELRO (relocated copies),
        // not writable data, not a mapping with swapped pages, locked, deleted, empty,
        // anonymous, shared or the vDSO.
        #expect(found.map(\.path) == ["/usr/bin/lumbung-agent", "/usr/lib/swift/linux/libswiftCore.so"])
        #expect(found.map(\.residentKiB) == [8192, 120])
        #expect(found.first.map { ($0.start, $0.end) } ?? (0, 0) == (0x55d0_c000_0000, 0x55d0_c100_0000))
        #expect(CodePages.releasable(smaps: "").isEmpty)
        #expect(CodePages.releasable(smaps: "garbage\nRss: 12 kB\n-\n").isEmpty)
    }

    @Test func releasingKeepsEveryByteAndDropsResidentCode() throws {
        // A file mapped twice, privately: one copy only read, the other written (a private copy
        // of the page, as relocations make). Releasing must drop the first and keep the second.
        let path = "/tmp/lumbung-codepages-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let size = 256 * 1024
        let pattern = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        #expect(pattern.withUnsafeBytes { write(fd, $0.baseAddress, size) } == size)
        let readOnly = try #require(mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)).assumingMemoryBound(to: UInt8.self)
        let written = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)).assumingMemoryBound(to: UInt8.self)
        defer {
            munmap(readOnly, size)
            munmap(written, size)
        }
        var sum = 0
        for i in stride(from: 0, to: size, by: 4096) { sum &+= Int(readOnly[i]) }
        #expect(sum > 0)
        for i in stride(from: 0, to: size, by: 4096) { written[i] = 0xEE }
        #expect(mprotect(written, size, PROT_READ) == 0)

        let before = CodePages.releasable(smaps: try #require(CodePages.readAll("/proc/self/smaps")))
        let mine = before.filter { $0.path == path }
        // The read-only copy qualifies; the written one (anonymous pages) does not.
        #expect(mine.count == 1)
        #expect(mine.first?.start == UInt(bitPattern: readOnly))
        let codeBefore = before.filter { $0.path != path }.reduce(0) { $0 + $1.residentKiB }
        #expect(codeBefore > 1024, "this test binary's code is mapped")

        let done = try #require(CodePages.release())
        #expect(done.mappings >= 2 && done.failed == 0)
        #expect(done.releasedKiB > codeBefore / 2)
        // The read-only copy is no longer resident (nothing in this process touches it); the
        // written copy still is.
        let released = try #require(CodePages.readAll("/proc/self/smaps"))
        #expect(!CodePages.releasable(smaps: released).contains { $0.start == UInt(bitPattern: readOnly) })
        #expect(residentKiB(of: UInt(bitPattern: written), in: released) == size / 1024)

        // Nothing was lost: the read-only copy reads the file again, the written copy kept its writes.
        for i in 0..<size where i % 4096 != 0 {
            guard readOnly[i] == pattern[i], written[i] == pattern[i] else {
                Issue.record("byte \(i) changed")
                return
            }
        }
        for i in stride(from: 0, to: size, by: 4096) {
            #expect(readOnly[i] == pattern[i] && written[i] == 0xEE)
        }
        // Read again, the copy is resident again, as code is when it runs.
        let after = CodePages.releasable(smaps: try #require(CodePages.readAll("/proc/self/smaps")))
        #expect(after.first { $0.start == UInt(bitPattern: readOnly) }?.residentKiB ?? 0 > 0)
        #expect(CodePages.residentKiB() ?? 0 > 0)
    }

    /// The `Rss:` of the mapping starting at `start` in an smaps text.
    func residentKiB(of start: UInt, in smaps: String) -> Int? {
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if !first.hasSuffix(":"), first.contains("-") {
                inside = first.split(separator: "-").first.flatMap { UInt($0, radix: 16) } == start
            } else if inside, first == "Rss:", fields.count > 1 {
                return Int(fields[1])
            }
        }
        return nil
    }

    @Test func theAgentsFunctionOrderPutsTheSteadyStateFirst() throws {
        // agent/lumbung-agent.order (agent/order/profile.sh, then refine.py): one symbol per
        // line, the steady state's functions (heartbeat and reconcile loops) above the marker,
        // code that only start-up runs below it.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("agent/lumbung-agent.order"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count > 1000)
        #expect(lines.allSatisfy { !$0.isEmpty && !$0.contains(" ") || $0 == "# start-up only below" })
        #expect(lines.filter { $0.hasPrefix("#") } == ["# start-up only below"])
        let marker = try #require(lines.firstIndex(of: "# start-up only below"))
        func first(_ fragment: String) -> Int? { lines.firstIndex { $0.contains(fragment) } }
        let report = try #require(first("LumbungAgent0B0C10reportLoop"))
        let tick = try #require(first("LumbungAgent0B0C8tickLoop"))
        let configLoad = try #require(first("LumbungAgent0B6ConfigV4load"))
        #expect(report < marker && tick < marker && configLoad > marker)
    }
}
