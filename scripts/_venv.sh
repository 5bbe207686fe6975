# shellcheck shell=bash
# Sourced, never run: the one definition of "create a venv, install into it, stamp it", shared by
# bootstrap.sh (.venv), test-lowest.sh (.venv-lowest), setup-phoenix.sh (.venv-phoenix),
# setup-instrument.sh (.venv-instrument) and peer-flask.sh (.venv-peer).
#
# Why a stamp: these scripts run before every test run, so they must return at once when nothing
# changed. The stamp holds a hash of the files that decide what is installed, plus the version of
# the interpreter that builds the venv; a change to any of them installs again.
#
#   venv_ensure [--keep] [--upgrade-pip] [--check EXE] [--after FUNC] [--what TEXT] \
#       VENV FILE... -- PIP_ARGS...
#
# VENV        the venv's directory (gitignored)
# FILE...     the files whose contents decide what is installed (requirements, pyproject.toml)
# PIP_ARGS    what `pip install` gets, e.g. -e ".[dev]"
# --keep      install into an existing venv instead of rebuilding it from scratch: for .venv,
#             where rebuilding would drop what a developer added by hand and leave every tool
#             missing meanwhile, and .venv-lowest, whose drift check catches leftovers. The venv
#             keeps its interpreter (delete it to change that). Without --keep a stale venv is
#             deleted first, so a requirement removed from FILE... does not linger.
# --upgrade-pip  upgrade pip before installing (the interpreter's bundled pip may be old)
# --check EXE the venv counts as installed only while VENV/bin/EXE exists, and after installing,
#             `EXE --help` must run (the entry point imports)
# --after FUNC  a shell function to run after `pip install`, before `pip check` and the stamp,
#             for set-up beyond one install (peer-flask.sh fetches Flask's sdist); its output goes
#             to the log. It runs inside a condition, where set -e is off: chain its steps with &&.
# --what TEXT what is installed, for the progress message
#
# PYTHON chooses the interpreter (default python3). pip's output goes to VENV/pip-install.log:
# this machine's pip config names local indexes that may be missing, which prints one warning
# per package and would bury real errors; on failure the end of the log is shown.

venv_ensure() {
    local keep=0 upgrade_pip=0 check="" after="" what="" who
    who=$(basename "$0" .sh)
    while [[ $# -gt 0 && $1 == --* ]]; do
        case $1 in
            --keep) keep=1 ;;
            --upgrade-pip) upgrade_pip=1 ;;
            --check) check=$2; shift ;;
            --after) after=$2; shift ;;
            --what) what=$2; shift ;;
            *) echo "venv_ensure: unknown option $1" >&2; return 2 ;;
        esac
        shift
    done
    local venv=${1:?venv_ensure: VENV missing}
    shift
    local files=()
    while [[ $# -gt 0 && $1 != -- ]]; do
        files+=("$1")
        shift
    done
    if [[ $# -eq 0 ]]; then
        echo "venv_ensure: '-- PIP_ARGS...' missing" >&2
        return 2
    fi
    shift  # the --

    local python=${PYTHON:-python3}
    local stamp=$venv/.routetimer-installed log=$venv/pip-install.log want
    want=$({ cat "${files[@]}"; "$python" -c 'import sys; print(sys.version)'; } \
        | sha256sum | cut -d' ' -f1)
    if [[ -x $venv/bin/python && -x $venv/bin/${check:-python} && -f $stamp \
        && "$(cat "$stamp")" == "$want" ]]; then
        echo "$who: $venv is up to date"
        return 0
    fi

    local start=$SECONDS
    echo "$who: installing ${what:-$*} into $venv (log: $log)"
    if [[ $keep == 0 ]]; then
        rm -rf "${venv:?}"
    fi
    if [[ ! -x $venv/bin/python ]]; then
        "$python" -m venv "$venv"
    fi
    rm -f "$stamp"  # an install that fails half-way must not look up to date
    : >"$log"
    local pip=("$venv/bin/python" -m pip --disable-pip-version-check)
    if ! {
        if [[ $upgrade_pip == 1 ]]; then "${pip[@]}" install --upgrade pip; fi \
            && "${pip[@]}" install "$@" \
            && { [[ -z $after ]] || "$after"; } \
            && "${pip[@]}" check
    } >>"$log" 2>&1; then
        grep -v "^WARNING: Location 'file://" "$log" | tail -n 40 >&2
        echo "$who: install failed; full log: $log" >&2
        return 1
    fi
    if [[ -n $check ]]; then
        "$venv/bin/$check" --help >/dev/null
    fi
    echo "$want" >"$stamp"
    echo "$who: done in $((SECONDS - start))s, $(du -sh "$venv" | cut -f1)"
}
