#!/usr/bin/env bash
# Build the sdist and the wheel, check them with twine, check what the wheel holds, then install
# the wheel (not editable) into a fresh venv and import it from outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
py=$PWD/.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A stale SOURCES.txt from an earlier build would be reused as the file list: start clean.
rm -rf flask_routetimer.egg-info build
"$py" -m build --outdir "$tmp/dist" . > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
"$py" -m twine check --strict "$tmp"/dist/*

wheel=$(echo "$tmp"/dist/*.whl)
"$py" - "$wheel" <<'PY'
"""What must (py.typed, every module, dashboard files) and must not (tests...) be in the wheel."""
import pathlib
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
problems = []
for source in pathlib.Path("flask_routetimer").rglob("*"):
    if source.is_file() and "__pycache__" not in source.parts and source.suffix != ".pyc":
        packaged = source.as_posix()
        shipped = source.suffix in (".py", ".typed") or source.parts[1:3] in (
            ("dashboard", "templates"),
            ("dashboard", "static"),
        )
        if shipped and packaged not in names:
            problems.append(f"{packaged} is missing from the wheel")
for name in sorted(names):
    if name.split("/")[0] in ("tests", "example_app", "benchmarks", "docs", "scripts"):
        problems.append(f"{name} must not be in the wheel")
if "flask_routetimer/py.typed" not in names:
    problems.append("flask_routetimer/py.typed is missing: type checkers would ignore our hints")
if problems:
    sys.exit("check-package: " + "\n  ".join(["the wheel is wrong:", *problems]))
print(f"check-package: {len(names)} files in {pathlib.Path(sys.argv[1]).name}, contents ok")
PY

# A fresh venv without pip of its own; the project venv's pip installs into it (fast, cached).
"$py" -m venv --without-pip "$tmp/venv"
"$py" -m pip --python "$tmp/venv/bin/python" install --quiet --disable-pip-version-check "$wheel"
want=$("$py" -c 'import runpy; print(runpy.run_path("flask_routetimer/_version.py")["__version__"])')
cd "$tmp"
"$tmp/venv/bin/python" -I - "$want" <<'PY'
"""The installed wheel imports, has the right version, and times a request."""
import sys
from importlib import metadata, resources

import flask
import flask_routetimer

assert "site-packages" in flask_routetimer.__file__, flask_routetimer.__file__
assert flask_routetimer.__version__ == metadata.version("flask-routetimer") == sys.argv[1], (
    flask_routetimer.__version__, metadata.version("flask-routetimer"), sys.argv[1]
)
assert resources.files("flask_routetimer").joinpath("py.typed").is_file()
app = flask.Flask("smoke")
timer = flask_routetimer.RouteTimer(app)
app.add_url_rule("/", "index", lambda: "ok")
assert app.test_client().get("/").text == "ok"
assert [row.route for row in timer.stats(app).routes] == ["/"]
print(f"check-package: installed wheel {sys.argv[1]} imports and times a request")
PY
