"""pytest plugin: write each test's outcome, and why it failed, to a JSON file for compare.py.

Loaded in both runs of scripts/peer-flask.sh with ``-p peer_outcomes --peer-outcomes PATH``. A test
passed when none of its phases (setup, call, teardown) failed and it was not skipped; a failure
in teardown (where routetimer_plugin reports a leak) makes the test an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

#: Lines of a failure's reason kept in the file.
REASON_LINES = 12


class OutcomeRecorder:
    """Collects one outcome per node id while the session runs, then writes them out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "reason": ""})
        if report.failed:
            # The first failing phase decides: a failure in the call, an error in setup/teardown.
            if entry["outcome"] in ("passed", "skipped", "xfailed", "xpassed"):
                entry["outcome"] = "failed" if report.when == "call" else f"error in {report.when}"
                entry["reason"] = reason(report)
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.when == "call" and hasattr(report, "wasxfail"):
            entry["outcome"] = "xpassed"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        data: dict[str, Any] = {"tests": self.tests}
        # Facts from other plugins, e.g. how much routetimer_plugin timed.
        for plugin in session.config.pluginmanager.get_plugins():
            summary = getattr(plugin, "peer_summary", None)
            if callable(summary):
                data.update(summary())
        self.path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def reason(report: pytest.TestReport) -> str:
    """Why a phase failed: pytest's ``E`` lines (the exception), or the start of a plain message
    (routetimer_plugin's leak report), then where the exception was raised."""
    lines = report.longreprtext.splitlines()
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    kept = (errors or [line for line in lines if line.strip()])[:REASON_LINES]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        kept.append(f"(raised at {os.path.relpath(crash.path)}:{crash.lineno})")
    return "\n".join(kept)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--peer-outcomes",
        metavar="PATH",
        help="write every test's outcome as JSON to PATH (for tests/peer/compare.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--peer-outcomes")
    if path:
        config.pluginmanager.register(OutcomeRecorder(Path(path)), "peer-outcome-recorder")
