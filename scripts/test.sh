#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the whole test suite (extra args go to pytest).
#
# As root (CI, the dev machines here) pytest runs inside a private network namespace with only
# loopback (scripts/in-netns.sh), where the end-to-end tests start a real Arize Phoenix; there
# they are required. Elsewhere they are skipped with the reason. The coexistence test runs the
# example app under opentelemetry-instrument from .venv-instrument/ (scripts/setup-instrument.sh);
# the docs' command recipes run in .venv-docs/ (scripts/setup-doc-recipes.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lint.sh  # sets up .venv (scripts/bootstrap.sh) first
bash scripts/docs.sh  # the API reference must build without a warning
bash scripts/check-package.sh
bash scripts/test-lowest.sh -q
# The browser tests drive Debian's chromium; install it when we may (never a browser download).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
fi
bash scripts/setup-phoenix.sh
bash scripts/setup-instrument.sh
# The docs' shell recipes run in venvs that hold only what each recipe installs; the pip install
# lines need the registry, so they run here (tests/docs_recipes.py). Their uWSGI also runs the
# uWSGI case of tests/test_multiproc_server.py.
bash scripts/setup-doc-recipes.sh
export UWSGI=$PWD/.venv-docs/uwsgi/bin/uwsgi
# The benchmarks must keep running (figures are printed, never asserted): a quick smoke run, in
# the venv that also has the OpenTelemetry Flask instrumentation they compare against.
PYTHON=.venv-instrument/bin/python bash scripts/bench-smoke.sh
# Flask's own test suite must pass the same with RouteTimer attached to every app (a peer's suite
# as proof of a drop-in; docs/RELIABILITY.md). Here, outside the network namespace: its set-up
# may download (once, then it is cached and offline).
bash scripts/peer-flask.sh
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
  E2E_REQUIRED=1 exec bash scripts/in-netns.sh .venv/bin/python -m pytest "$@"
fi
echo "test.sh: not root, so no private network namespace: end-to-end tests will be skipped." >&2
exec .venv/bin/python -m pytest "$@"
