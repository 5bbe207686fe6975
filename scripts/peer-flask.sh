#!/usr/bin/env bash
# Run Flask's own test suite twice, as released and with flask-routetimer attached to every Flask
# app it builds; pass when exactly the same tests pass both ways (a peer's suite as proof that the
# extension is a drop-in). Extra args go to both pytest runs, e.g. -k appctx.
#
# The suite is the sdist of the Flask installed in .venv-peer/ (its tests/ and the tutorial's
# examples/tutorial/tests), with what it needs pinned in tests/peer/requirements-flask.txt. The
# timed run loads tests/peer/routetimer_plugin.py, which also fails a test that leaks an
# OpenTelemetry context or a finished request's span, mis-records a request, or makes
# flask_routetimer warn (the list: docs/RELIABILITY.md).
#
# Set-up needs the package registry (run it OUTSIDE scripts/in-netns.sh); it is idempotent, like
# setup-instrument.sh: a stamp holds the hash of the requirements, pyproject.toml and the
# interpreter version, and the sdist is kept in the venv, so later runs are offline.
#
# Usage: scripts/peer-flask.sh [PYTEST_ARG...]   (PYTHON=/path/to/python3 to choose the interpreter)
# Stop at the first failing step (and on unset names): a half-built venv must never be stamped
# as good, and a failed run must never reach the comparison as if it had passed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/tests/peer/requirements-flask.txt"
venv="$root/.venv-peer"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
log="$venv/pip-install.log"
sdists="$venv/sdist"
python="${PYTHON:-python3}"

want="$({ cat "$req" "$root/pyproject.toml"; "$python" -c 'import sys; print(sys.version)'; } \
    | sha256sum | cut -d' ' -f1)"

# pip's output goes to a log: this machine's pip config prints a warning per package for missing
# local indexes, which would bury a real error.
pip_or_die() {
    if ! "$py" -m pip --disable-pip-version-check "$@" >>"$log" 2>&1; then
        grep -v "^WARNING: Location 'file://" "$log" | tail -n 40 >&2
        echo "peer-flask: pip $1 failed; full log: $log" >&2
        exit 1
    fi
}

if [[ ! -x "$py" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "peer-flask: installing Flask's test suite and this project into $venv (log: $log)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # Editable: the timed run always exercises the checkout's current code.
    pip_or_die install -e "$root" -r "$req"
    version="$("$py" -c 'from importlib.metadata import version; print(version("flask"))')"
    # The test suite is only in the sdist; --no-binary makes pip fetch that, not the wheel.
    pip_or_die download --no-deps --no-binary :all: --dest "$sdists" "flask==$version"
    tar -xzf "$sdists/flask-$version.tar.gz" -C "$sdists"
    # The tutorial's tests import its app, flaskr; flit_core is pinned in the requirements, so no
    # build environment is downloaded.
    pip_or_die install --no-deps --no-build-isolation "$sdists/flask-$version/examples/tutorial"
    pip_or_die check
    echo "$want" >"$stamp"
fi

version="$("$py" -c 'from importlib.metadata import version; print(version("flask"))')"
suite="$sdists/flask-$version"
if [[ ! -d "$suite/tests" ]]; then
    echo "peer-flask: $suite/tests is missing; delete $venv to set up again." >&2
    exit 1
fi
out="$venv/runs"
rm -rf "$out"
mkdir -p "$out"
# Temporary files of the tests go outside the venv: Flask's instance-path tests take any module
# under sys.prefix for an installed one.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Run pytest from the sdist's root, so Flask's own pytest settings (filterwarnings = error) apply
# and node ids read tests/test_x.py::name; each run has its own temporary directory, since both
# run at once. Exit status 1 only means some tests failed, which the comparison judges; anything
# else (usage error, crash, nothing collected) stops here.
run_suite() {
    local name=$1
    shift
    local status=0
    (cd "$suite" && PYTHONPATH="$root/tests/peer" "$py" -m pytest -p no:cacheprovider -q \
        --basetemp "$tmp/$name" -p peer_outcomes --peer-outcomes "$out/$name.json" "$@" \
        tests examples/tutorial/tests >"$out/$name.log" 2>&1) || status=$?
    if [[ $status -gt 1 ]]; then
        tail -n 40 "$out/$name.log" >&2
        echo "peer-flask: the $name run stopped with status $status; log: $out/$name.log" >&2
        return 1
    fi
    echo "peer-flask: $name: $(tail -n 1 "$out/$name.log")"
}

echo "peer-flask: Flask $version's test suite, without and with flask-routetimer"
start=$SECONDS
# Both runs at once: the same CPU time, about half the wall time on two cores.
run_suite bare "$@" &
bare=$!
run_suite timed -p routetimer_plugin "$@" &
timed=$!
failed=0
wait "$bare" || failed=1
wait "$timed" || failed=1
if [[ $failed -ne 0 ]]; then
    exit 1
fi
if ! "$py" "$root/tests/peer/compare.py" "$out/bare.json" "$out/timed.json"; then
    echo "peer-flask: FAILED after $((SECONDS - start)) s; full output: $out/bare.log, $out/timed.log" >&2
    exit 1
fi
echo "peer-flask: the same tests pass with flask-routetimer attached ($((SECONDS - start)) s)"
