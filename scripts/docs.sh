#!/usr/bin/env bash
# Build the API reference (docs/api, Sphinx + autodoc) into docs/api/_build/html (gitignored);
# open docs/api/_build/html/index.html. Any warning fails the build (-W), and conf.py is
# nitpicky, so a broken cross-reference or docstring markup fails scripts/test.sh, which runs
# this. --keep-going lists every warning, not just the first. Extra args go to sphinx-build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=docs/api/_build
# A fresh build each time: an incremental one skips unchanged pages, and with them their
# warnings, so a second run would pass with the same broken reference.
rm -rf "$out"
.venv/bin/python -m sphinx -W --keep-going -q -b html -d "$out/doctrees" docs/api "$out/html" "$@"
echo "docs: API reference built in $out/html/index.html"
