#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a finished command did.
struct SubprocessResult: Sendable {
    /// The exit status, or 128 + the signal that killed it.
    var status: Int32
    /// Everything it wrote to standard output.
    var stdout: [UInt8]
    /// Everything it wrote to standard error.
    var stderr: [UInt8]
    /// True when it was killed because it outlived its timeout.
    var timedOut: Bool
}

/// Why a command could not be run at all (its exit status is never an error here).
struct SubprocessError: Error, Sendable, CustomStringConvertible {
    var description: String
}

/// Runs external commands with `posix_spawn`, without Foundation (the agent does not link it):
/// standard output and error are read through pipes with `poll` on the calling thread (neither
/// can fill up and block the command), standard input is fed from `input` (a socket pair, so a
/// command that exits early cannot raise `SIGPIPE` in the agent) or is `/dev/null`, every other
/// descriptor is closed in the child, and signal dispositions and mask are reset to defaults.
enum Subprocess {
    /// Runs `path` (absolute) with `arguments` and waits for it. `environment` nil passes the
    /// agent's own. With a `timeout`, a command still running then is killed (`SIGKILL`) and
    /// the result says `timedOut`.
    static func run(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil, input: [UInt8]? = nil, timeout: Duration? = nil
    ) throws(SubprocessError) -> SubprocessResult {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var inPair: [Int32] = [-1, -1]
        defer { for fd in outPipe + errPipe + inPair where fd >= 0 { close(fd) } }
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw SubprocessError(description: "cannot run \(path): pipe: \(errnoText())")
        }
        // Close-on-exec, so that no other child inherits them (children get them through dup2).
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        if input != nil {
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &inPair) == 0 else {
                throw SubprocessError(description: "cannot run \(path): socketpair: \(errnoText())")
            }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if input != nil {
            posix_spawn_file_actions_adddup2(&actions, inPair[1], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let pid = try spawn(path, arguments, environment: environment, actions: &actions)
        // The child's ends belong to the child now.
        close(outPipe[1]); outPipe[1] = -1
        close(errPipe[1]); errPipe[1] = -1
        if input != nil { close(inPair[1]); inPair[1] = -1 }

        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        var output: [[UInt8]] = [[], []]
        var pending = input ?? []
        var written = 0
        var timedOut = false
        if input != nil && pending.isEmpty { close(inPair[0]); inPair[0] = -1 }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while outPipe[0] >= 0 || errPipe[0] >= 0 {
            var fds: [pollfd] = []
            if outPipe[0] >= 0 { fds.append(pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0)) }
            if errPipe[0] >= 0 { fds.append(pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)) }
            if inPair[0] >= 0 { fds.append(pollfd(fd: inPair[0], events: Int16(POLLOUT), revents: 0)) }
            var waitMS: Int32 = -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero {
                    timedOut = true
                    break
                }
                let c = left.components
                waitMS = Int32(clamping: c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000 + 1)
            }
            let ready = poll(&fds, nfds_t(fds.count), waitMS)
            if ready < 0 {
                if errno == EINTR { continue }
                kill(pid, SIGKILL)
                _ = reap(pid)
                throw SubprocessError(description: "cannot read the output of \(path): poll: \(errnoText())")
            }
            for entry in fds where entry.revents != 0 {
                if entry.fd == inPair[0] {
                    let n = pending.withUnsafeBytes { raw in
                        send(entry.fd, raw.baseAddress! + written, pending.count - written, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                    }
                    if n > 0 { written += n }
                    if written >= pending.count || (n < 0 && errno != EAGAIN && errno != EINTR) || entry.revents & Int16(POLLERR | POLLHUP) != 0 {
                        close(inPair[0]); inPair[0] = -1
                        pending = []
                    }
                    continue
                }
                let index = entry.fd == outPipe[0] ? 0 : 1
                let n = read(entry.fd, &buffer, buffer.count)
                if n > 0 {
                    output[index].append(contentsOf: buffer[0..<n])
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(entry.fd)
                    if index == 0 { outPipe[0] = -1 } else { errPipe[0] = -1 }
                }
            }
        }
        if timedOut { kill(pid, SIGKILL) }
        let status = reap(pid)
        return SubprocessResult(status: status, stdout: output[0], stderr: output[1], timedOut: timedOut)
    }

    /// Starts `path` with the descriptors `actions` sets up, every other descriptor closed
    /// (where libc can), default signal dispositions and an empty signal mask whatever the
    /// agent's are, and `environment` (nil: the agent's own). Returns the child's pid.
    static func spawn(
        _ path: String, _ arguments: [String], environment: [String: String]?, actions: inout posix_spawn_file_actions_t
    ) throws(SubprocessError) -> pid_t {
        if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let envStrings = environment.map { env in env.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for entry in envStrings ?? [] { free(entry) } }
        var pid: pid_t = 0
        let rc: Int32
        if let envStrings {
            rc = envStrings.withUnsafeBufferPointer { envp in
                posix_spawn(&pid, path, &actions, &attributes, argv, UnsafeMutablePointer(mutating: envp.baseAddress))
            }
        } else {
            rc = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        }
        guard rc == 0 else { throw SubprocessError(description: "cannot run \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits for `pid` and returns its exit status (128 + signal when killed).
    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros).
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np` (not in Swift's Glibc module),
    /// so a child inherits no descriptor of the agent's; nil on older libcs (the agent's own
    /// descriptors are close-on-exec anyway).
    static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(
            symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()
}
