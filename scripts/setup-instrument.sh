#!/usr/bin/env bash
# Create .venv-instrument/ (gitignored): this project (with its test extra) plus
# opentelemetry-distro and the Flask instrumentation, for the coexistence test
# (tests/test_coexistence.py) and the benchmarks, which compare against that instrumentation.
#
# Why a separate venv: the contrib packages pin an older semantic-conventions beta than the
# newest SDK needs, so together they would hold the main .venv back on an older SDK (see
# tests/requirements-instrument.txt). Idempotent like setup-phoenix.sh: a stamp holds the hash
# of the requirements, pyproject.toml and the interpreter version.
#
# Usage: scripts/setup-instrument.sh     (PYTHON=/path/to/python3 to choose the interpreter)
# Needs the package registry, so run it OUTSIDE scripts/in-netns.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/tests/requirements-instrument.txt"
source "$root/scripts/_venv.sh"
venv_ensure --check opentelemetry-instrument --what "opentelemetry-distro" \
    "$root/.venv-instrument" "$req" "$root/pyproject.toml" -- -e "${root}[test]" -r "$req"
