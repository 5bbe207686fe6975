#!/usr/bin/env bash
# Create .venv and install the project with its dev extras (tests, linters, docs); fast when
# nothing changed. Updated in place, never rebuilt: it is the developers' everyday venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
venv_ensure --keep --upgrade-pip --what 'flask-routetimer[dev]' .venv pyproject.toml \
    -- -e ".[dev]"
