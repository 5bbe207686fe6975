"""The Python samples in docs/BACKENDS.md run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "BACKENDS.md"
SAMPLES = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_there_are_samples():
    """The pattern finds the page's samples, so the test below cannot pass vacuously."""
    assert len(SAMPLES) == 2


@pytest.mark.parametrize("code", SAMPLES, ids=lambda code: code.splitlines()[-1].strip())
def test_sample_runs(code):
    """Each sample runs in a fresh interpreter (global providers are set once per process),
    with no OTEL_* variables, and leaves an app timed by flask-routetimer behind. No request
    is made: a span would make the OTLP sample try to export to a collector at exit."""
    check = "\napp = create_app()\n" if "def create_app" in code else "\n"
    check += "assert 'routetimer' in app.extensions\n"
    result = subprocess.run(
        [sys.executable, "-c", code + check],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
