#!/usr/bin/env bash
# CI smoke for the benchmarks: runs the quick version of each one. It checks that they run,
# never how fast: no timing is asserted. Uses wrk for the server run when it is on PATH
# (installed with apt-get when missing and running as root), else the Python client.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${BENCH_OUT:-test-artifacts/bench}"
mkdir -p "$OUT"

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench-smoke: installing wrk"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } \
            >"$OUT/apt-wrk.log" 2>&1; then
            echo "bench-smoke: wrk install failed (see $OUT/apt-wrk.log); using the Python client"
        fi
    else
        echo "bench-smoke: wrk missing and not root; using the Python client"
    fi
fi

echo "== benchmarks.overhead --quick"
"$PYTHON" -m benchmarks.overhead --quick --json "$OUT/overhead.json"
echo "== benchmarks.server --quick"
"$PYTHON" -m benchmarks.server --quick --json "$OUT/server.json"
echo "== benchmarks.memory --quick"
"$PYTHON" -m benchmarks.memory --quick --json "$OUT/memory.json"
echo "== benchmarks.breakdown --quick"
"$PYTHON" -m benchmarks.breakdown --quick
echo "== benchmarks.templates --quick"
"$PYTHON" -m benchmarks.templates --quick --json "$OUT/templates.json"
echo "== benchmarks.multiproc --quick"
"$PYTHON" -m benchmarks.multiproc --quick --json "$OUT/multiproc.json"
echo "bench-smoke: all six benchmarks ran"
