#!/usr/bin/env python3
"""Turns a function-entry trace of an instrumented lumbung-agent (covrt.c) into a linker
symbol ordering file: the functions the steady state ran (after the trace's marker) first,
in the order they first ran, then those only start-up ran. Usage:
    make-order.py INSTRUMENTED-BINARY TRACE > lumbung-agent.order
"""
import bisect, struct, subprocess, sys

def main():
    binary, trace = sys.argv[1], sys.argv[2]
    # Function symbols (with sizes) of the instrumented binary, by address.
    nm = subprocess.run(["nm", "--defined-only", "-S", "-n", binary], check=True, capture_output=True, text=True).stdout
    starts, spans = [], []
    init = None
    for line in nm.splitlines():
        f = line.split(maxsplit=3)
        if len(f) != 4 or f[2] not in "tTwW":
            continue
        addr, size, name = int(f[0], 16), int(f[1], 16), f[3]
        if name == "__sanitizer_cov_trace_pc_guard_init":
            init = addr
        if size == 0:
            continue
        if starts and starts[-1] == addr:
            spans[-1][2].append(name)
        else:
            starts.append(addr)
            spans.append([addr, addr + size, [name]])
    if init is None:
        sys.exit("no __sanitizer_cov_trace_pc_guard_init in %s: not an instrumented build" % binary)
    data = open(trace, "rb").read()
    words = struct.unpack("<%dQ" % (len(data) // 8), data[: len(data) // 8 * 8])
    if len(words) < 2 or words[0] != 0xC0C0C0C0:
        sys.exit("%s is not a trace written by covrt.c" % trace)
    base = words[1] - init
    phases, current, missed = [[], []], 0, 0
    for w in words[2:]:
        if w == 0xFFFFFFFFFFFFFFFF:
            current = 1
            continue
        off = w - base
        i = bisect.bisect_right(starts, off) - 1
        if i < 0 or not (spans[i][0] <= off < spans[i][1]):
            missed += 1
            continue
        phases[current].append(i)
    seen, out = set(), []
    for phase in (phases[1], phases[0]):
        for i in phase:
            if i not in seen:
                seen.add(i)
                out.extend(n for n in spans[i][2] if not n.startswith("__sanitizer_cov") and not n.startswith("__asan"))
        if phase is phases[1]:
            out.append("# start-up only below")  # refine.py moves functions above this line
    steady = len(set(phases[1]))
    size = lambda ids: sum(spans[i][1] - spans[i][0] for i in ids)
    print("%d steady-state functions (%d KiB instrumented), %d start-up only (%d KiB), %d addresses outside functions"
          % (steady, size(set(phases[1])) // 1024, len(seen) - steady, size(seen - set(phases[1])) // 1024, missed), file=sys.stderr)
    sys.stdout.write("".join(n + "\n" for n in out))

main()
