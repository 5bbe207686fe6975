#!/usr/bin/env bash
# Create .venv-phoenix/ (gitignored) holding Arize Phoenix for the end-to-end tests.
#
# Why a separate venv: Phoenix and its ~140 pinned dependencies are large and must not leak
# into flask-routetimer's own environment. Idempotent: a stamp file holds the hash of the
# requirements file and the interpreter version, so a second run returns in well under a
# second; any change to either rebuilds the venv from scratch.
#
# Usage: scripts/setup-phoenix.sh        (PYTHON=/path/to/python3 to choose the interpreter)
# Needs the package registry, so run it OUTSIDE scripts/in-netns.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/_venv.sh"
venv_ensure --check phoenix --what "Arize Phoenix (about a minute)" \
    "$root/.venv-phoenix" "$root/tests/e2e/requirements-phoenix.txt" \
    -- -r "$root/tests/e2e/requirements-phoenix.txt"
