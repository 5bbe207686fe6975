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
venv="$root/.venv-instrument"
stamp="$venv/.requirements.sha256"
log="$venv/pip-install.log"
python="${PYTHON:-python3}"

want="$({ cat "$req" "$root/pyproject.toml"; "$python" -c 'import sys; print(sys.version)'; } \
    | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/opentelemetry-instrument" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "setup-instrument: $venv is up to date"
    exit 0
fi

echo "setup-instrument: installing opentelemetry-distro into $venv (log: $log)"
rm -rf "$venv"
"$python" -m venv "$venv"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root[test]" -r "$req" \
        >"$log" 2>&1 \
    || ! "$venv/bin/python" -m pip check >>"$log" 2>&1; then
    grep -v "^WARNING: Location 'file://" "$log" | tail -n 40 >&2
    echo "setup-instrument: install failed; full log: $log" >&2
    exit 1
fi
echo "$want" >"$stamp"
echo "setup-instrument: done"
