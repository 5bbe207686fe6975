#!/usr/bin/env bash
# The quick test run (well under a minute): the pytest suite without the tests marked e2e
# (a real Arize Phoenix), browser (headless chromium) or load (real servers, long loads), so it
# needs nothing but .venv. Extra args go to pytest, e.g. `bash scripts/unit.sh tests/test_spans.py
# -x`. The full run, before landing, is scripts/test.sh (CONTRIBUTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -m "not e2e and not browser and not load" "$@"
