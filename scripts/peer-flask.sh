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
sdists="$venv/sdist"
source "$root/scripts/_venv.sh"

# After the install, before the stamp (venv_ensure --after; steps chained with &&, as set -e is
# off there): Flask's test suite is only in its sdist.
fetch_suite() {
    local version
    version="$("$py" -c 'from importlib.metadata import version; print(version("flask"))')" \
        && "$py" -m pip --disable-pip-version-check download --no-deps --no-binary :all: \
            --dest "$sdists" "flask==$version" \
        && tar -xzf "$sdists/flask-$version.tar.gz" -C "$sdists" \
        && "$py" -m pip --disable-pip-version-check install --no-deps --no-build-isolation \
            "$sdists/flask-$version/examples/tutorial"
    # --no-binary: pip fetches the sdist, not the wheel. The tutorial's tests import its app,
    # flaskr; flit_core is pinned in the requirements, so no build environment is downloaded.
}

# Editable: the timed run always exercises the checkout's current code.
venv_ensure --after fetch_suite --what "Flask's test suite and this project" \
    "$venv" "$req" "$root/pyproject.toml" -- -e "$root" -r "$req"

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
