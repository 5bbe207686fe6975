#!/usr/bin/env bash
# The static checks, in a few seconds: ruff (lint, then formatting) and mypy --strict over the
# files [tool.mypy] in pyproject.toml names (the package, typing tests, the Sphinx code in
# docs/api). Part of the quick loop (CONTRIBUTING.md); scripts/test.sh runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
