#!/usr/bin/env bash
# Set up, then run the side-by-side overhead benchmark (bare Flask, flask-routetimer, the
# OpenTelemetry Flask instrumentation, the SDK floor) in one process; extra args go to it, e.g.
#   bash scripts/bench.sh --quick
# The server and memory benchmarks run the same way:
#   .venv-instrument/bin/python -m benchmarks.server / -m benchmarks.memory
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-instrument.sh >&2
exec .venv-instrument/bin/python -m benchmarks.overhead "$@"
