#!/usr/bin/env bash
# Release build with one section per function (Swift and C), so that the agent's link lays
# out its code in the order of agent/lumbung-agent.order (see agent/order/README.md) and
# --gc-sections drops unused functions one by one. Extra arguments go to `swift build`, e.g.
#   bash agent/build-release.sh --product lumbung-agent
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift build -c release -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections "$@"
