#!/usr/bin/env bash
# The static checks, in a few seconds: ruff (lint, then formatting) and mypy --strict (the
# package and tests/typing, as configured in pyproject.toml). Part of the quick loop
# (CONTRIBUTING.md); scripts/test.sh runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
