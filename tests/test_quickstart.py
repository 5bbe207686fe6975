"""The README's quickstart as a newcomer runs it: ``flask --app quickstart run --debug`` prints
what the README shows, and its one line about spans works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from serving import free_port, output_around_one_get

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    "PYTHONUNBUFFERED": "1",
}
OUTPUT_MARKER = "<!-- not run: output, which tests/test_quickstart.py compares with a real run -->"


def readme_output() -> list[str]:
    """The lines of the ```text block after the quickstart's output marker."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(re.escape(OUTPUT_MARKER) + r"\n```text\n(.*?)^```$", text, re.S | re.M)
    assert block, "README.md: the quickstart's output block is missing"
    return block.group(1).splitlines()


def shape(line: str) -> str:
    """A line with its numbers (times, dates, ports) and colours taken out."""
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    line = re.sub(r"\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]", "[date]", line)
    return re.sub(r"\d+(\.\d+)?", "0", line)


def serve_quickstart_once(port: int) -> str:
    """Everything ``flask --app quickstart run --debug`` prints around one GET /hello/you."""
    args = [sys.executable, "-m", "flask", "--app", "quickstart", "run", "--debug"]
    args += ["--no-reload", "--port", str(port)]
    return output_around_one_get(args, port, "/hello/you", b"Hello, you!", cwd=EXAMPLES, env=ENV)


def test_readme_shows_what_the_quickstart_prints():
    """Each line the README shows comes out of the dev server, in that order, numbers aside."""
    assert any(line.startswith("[routetimer] GET /hello/<name> 200 ") for line in readme_output())
    shown = [shape(line) for line in readme_output()]
    printed = [shape(line) for line in serve_quickstart_once(free_port()).splitlines()]
    found = [line for line in printed if line in shown]
    assert found == shown, "\n".join(printed)


def run_quickstart(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The README's hint: configure_sdk() beside RouteTimer(app), one request, a normal exit."""
    code = (
        "from flask_routetimer import configure_sdk\n"
        "from quickstart import app\n"
        "configure_sdk()\n"
        "assert app.test_client().get('/hello/you').status_code == 200\n"
    )
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=EXAMPLES,
        env={**ENV, **extra_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_console_exporter_prints_the_spans():
    """OTEL_TRACES_EXPORTER=console prints the request span and its child; OTEL_SDK_DISABLED
    turns that off."""
    printed = run_quickstart({"OTEL_TRACES_EXPORTER": "console"}).stdout
    assert '"name": "GET /hello/<name>"' in printed and '"name": "greeting"' in printed
    disabled = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    assert '"name"' not in run_quickstart(disabled).stdout
