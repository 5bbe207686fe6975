#!/usr/bin/env bash
# Run the test suite against the lowest supported dependency versions (constraints/lowest.txt),
# in .venv-lowest; fast when nothing changed. Tests needing tools absent there are deselected.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
venv=.venv-lowest
# Updated in place (a stale package would show in the drift check below).
venv_ensure --keep --upgrade-pip --what "flask-routetimer[test] at the lowest pins" \
    $venv pyproject.toml constraints/lowest.txt -- -c constraints/lowest.txt -e ".[test]"
# Fail loudly if the venv drifted from the pins (a hand install, a stale stamp).
$venv/bin/python - <<'PY'
from importlib import metadata

pins = {}
for line in open("constraints/lowest.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, version = line.split("==")
        pins[name] = version
wrong = {name: metadata.version(name) for name in pins if metadata.version(name) != pins[name]}
if wrong:
    raise SystemExit(f"test-lowest: .venv-lowest has {wrong}, want {pins}; delete .venv-lowest.")
print("test-lowest: " + ", ".join(f"{name} {version}" for name, version in pins.items()))
PY
# Deselect tests whose extras have no release at these versions, if such markers are registered
# (--strict-markers refuses unknown names in -m).
skip=""
for mark in $($venv/bin/python -m pytest -p no:cacheprovider --markers \
  | sed -nE 's/^@pytest\.mark\.(browser|e2e|load)\b.*/\1/p'); do
  skip="${skip:+$skip and }not $mark"
done
exec $venv/bin/python -m pytest -p no:cacheprovider ${skip:+-m "$skip"} "$@"
