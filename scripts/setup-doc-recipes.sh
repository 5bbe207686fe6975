#!/usr/bin/env bash
# Create .venv-docs/NAME/ (gitignored) for each shell recipe of the docs that installs something
# (a block after <!-- run: NAME --> with a `pip install` line): this checkout (`pip install -e .`),
# then the block's own `pip install` lines, run as written. tests/test_docs_commands.py runs the
# rest of each block in its venv, so a recipe that needs a package it does not install fails.
#
# Idempotent: each venv is stamped with the hash of its install lines, pyproject.toml and the
# interpreter version (tests/docs_recipes.py), and rebuilt from scratch when that changes.
#
# Usage: scripts/setup-doc-recipes.sh    (PYTHON=/path/to/python3 to choose the interpreter)
# Needs the package registry, so run it OUTSIDE scripts/in-netns.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
exec .venv/bin/python tests/docs_recipes.py install
