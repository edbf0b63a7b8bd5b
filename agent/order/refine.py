#!/usr/bin/env python3
"""Refines agent/lumbung-agent.order with page faults of the real (uninstrumented) agent.

The instrumented build (profile.sh) misses functions the optimiser makes after instrumenting
(merged functions, value witnesses, some specialisations), and those are exactly what the
release binary runs. This tool links the release agent with the current order, runs it
against an enrolled configuration, lets it release its code pages (10 s after start), records
the page faults on its code for the next 20 s with `perf record -e page-faults -d` while
scraping /metrics, and moves each function that faulted into the steady-state part. Each
fault maps a 64 KiB block, so each round finds one function per block; repeat until few
faults remain.

    python3 agent/order/refine.py --scratch /tmp/lumbung-release --config agent.yaml \
        --metrics 127.0.0.1:9465 --rounds 16

--scratch is the scratch path of a release build made with one section per function
(agent/build-release.sh --scratch-path DIR --product lumbung-agent); --config an agent.yaml
whose agent is enrolled (simulated driver is fine; give its host VMs first so the per-VM code
runs). Needs root (perf) and `perf`.
"""
import argparse, bisect, json, os, re, signal, subprocess, sys, tempfile, time

MARKER = "# start-up only below"

def link_args(scratch):
    text = open(os.path.join(scratch, "release.yaml")).read()
    m = re.search(r'description: "Linking [^"]*/lumbung-agent"\n\s+args: (\[.*\])', text)
    if not m:
        sys.exit("no link step of lumbung-agent in %s/release.yaml" % scratch)
    return json.loads(m.group(1))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--metrics", default="127.0.0.1:9465")
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--order", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lumbung-agent.order"))
    o = ap.parse_args()
    lines = [l.rstrip("\n") for l in open(o.order)]
    if MARKER not in lines:
        sys.exit("%s has no '%s' line" % (o.order, MARKER))
    args = link_args(o.scratch)
    work = tempfile.mkdtemp(prefix="lumbung-refine.")
    binary, current = os.path.join(work, "lumbung-agent"), os.path.join(work, "order")
    for round_ in range(o.rounds):
        open(current, "w").write("".join(l + "\n" for l in lines))
        a = [("--symbol-ordering-file=" + current) if x.startswith("--symbol-ordering-file=") else x for x in args]
        a[a.index("-o") + 1] = binary
        subprocess.run(a, check=True)
        agent = subprocess.Popen([binary, "run", "--config", o.config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            time.sleep(7)
            trace = os.path.join(work, "faults.data")
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-d", "-p", str(agent.pid), "-o", trace],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(5):
                time.sleep(4)
                subprocess.run(["curl", "-s", "-o", "/dev/null", "http://%s/metrics" % o.metrics])
            rss = next(l.split()[1] for l in open("/proc/%d/status" % agent.pid) if l.startswith("VmRSS"))
            maps = [l.split() for l in open("/proc/%d/maps" % agent.pid)]
            perf.send_signal(signal.SIGINT)
            perf.wait()
        finally:
            agent.terminate()
            agent.wait()
        mine = [m for m in maps if len(m) >= 6 and m[5] == binary]
        base = min(int(m[0].split("-")[0], 16) - int(m[2], 16) for m in mine)
        code = [tuple(int(x, 16) for x in m[0].split("-")) for m in mine if m[1] == "r-xp"]
        nm = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
        syms = [(int(f[0], 16), f[2]) for f in (l.split(maxsplit=2) for l in nm.splitlines()) if len(f) == 3 and f[1] in "tTwW"]
        starts = [s for s, _ in syms]
        out = subprocess.run(["perf", "script", "-i", trace, "-F", "addr"], capture_output=True, text=True, check=True).stdout
        cut = lines.index(MARKER)
        steady = set(lines[:cut])
        new, faults = [], 0
        for l in out.split():
            addr = int(l, 16)
            if not any(a <= addr < b for a, b in code):
                continue
            faults += 1
            i = bisect.bisect_right(starts, addr - base) - 1
            if i >= 0 and syms[i][1] not in steady and syms[i][1] not in new:
                new.append(syms[i][1])
        print("round %d: RSS %s KiB, %d faults on code, %d functions moved to the steady part" % (round_, rss, faults, len(new)), flush=True)
        if not new:
            break
        moved = set(new)
        lines = lines[:cut] + new + [l for l in lines[cut:] if l not in moved]
        open(o.order, "w").write("".join(l + "\n" for l in lines))

main()
