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
req="$root/tests/e2e/requirements-phoenix.txt"
venv="$root/.venv-phoenix"
stamp="$venv/.requirements.sha256"
log="$venv/pip-install.log"
python="${PYTHON:-python3}"

want="$({ cat "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/phoenix" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "setup-phoenix: $venv is up to date"
    exit 0
fi

echo "setup-phoenix: installing Arize Phoenix into $venv (about a minute; log: $log)"
start=$SECONDS
rm -rf "$venv"
"$python" -m venv "$venv"
# pip's output goes to a log: this machine's pip config adds missing local indexes that
# print one warning per package, which would bury real errors in CI's output.
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -r "$req" >"$log" 2>&1 \
    || ! "$venv/bin/python" -m pip check >>"$log" 2>&1; then
    grep -v "^WARNING: Location 'file://" "$log" | tail -n 40 >&2
    echo "setup-phoenix: install failed; full log: $log" >&2
    exit 1
fi
"$venv/bin/phoenix" --help >/dev/null  # the entry point imports cleanly
echo "$want" >"$stamp"
echo "setup-phoenix: done in $((SECONDS - start))s, $(du -sh "$venv" | cut -f1)"
