#!/usr/bin/env bash
# Regenerates agent/lumbung-agent.order, the order in which the release link lays out the
# agent's functions (steady-state code first, then start-up code; see README.md here).
#
#   bash agent/order/profile.sh            # from the repository root; ~40 min on 2 cores
#
# 1. builds an instrumented agent (every function's first entry is recorded by covrt.c;
#    -sanitize-coverage needs a sanitizer in swiftc, so address is used) in its own scratch path;
# 2. runs the footprint benchmark's scenario with it (join, idle, 100 then 500 simulated VMs,
#    /metrics scrapes), re-arming the recorder 20 s after start so that what runs afterwards
#    counts as the steady state;
# 3. maps the recorded addresses to function names (make-order.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
scratch=${SCRATCH:-/tmp/lumbung-order-build}
work=$(mktemp -d /tmp/lumbung-order.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$root"
clang -O2 -fPIC -c agent/order/covrt.c -o "$work/covrt.o"
swift build -c release --product lumbung-agent --scratch-path "$scratch" \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=func,trace-pc-guard \
  -Xcc -fsanitize-coverage=func,trace-pc-guard -Xlinker "$work/covrt.o"
swift build -c release --product lumbung-bench
export COV_OUT="$work/trace" COV_REARM=20 ASAN_OPTIONS=detect_leaks=0
.build/release/lumbung-bench footprint --agent "$scratch/release/lumbung-agent" \
  --idle-seconds 30 --settle-seconds 5 --scrapes 50 --output table > "$work/report.txt"
unset COV_OUT COV_REARM
python3 agent/order/make-order.py "$scratch/release/lumbung-agent" "$work/trace" > agent/lumbung-agent.order
echo "wrote agent/lumbung-agent.order ($(wc -l < agent/lumbung-agent.order) lines); next: agent/order/refine.py (README.md)"
