"""Under ``opentelemetry-instrument`` with the Flask instrumentation, each request is still one
trace with exactly one SERVER span: ours, since ``request_started`` fires before the
instrumentation's ``before_request`` hook, so its span nests under ours as INTERNAL.

The distro lives in its own venv (``scripts/setup-instrument.sh``; why: see
``tests/requirements-instrument.txt``), so the app runs there, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / ".venv-instrument" / "bin"

#: Runs inside the instrumented interpreter: the example app, one request per line of output.
SCRIPT = """
from flask_routetimer import request_timed
from opentelemetry import trace

from example_app import create_app

app = create_app()  # configure_sdk() keeps the distro's provider


@request_timed.connect_via(app)
def on_timed(sender, timing, **extra):
    print("TIMED", timing.trace_id, timing.span_id, flush=True)


client = app.test_client()
incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
client.get("/")
client.post("/v1/predict/", json={"text": "a b c"})
client.get("/v1/fail")
client.get("/no/such/page")
with client.get("/v1/stream?text=x+y") as response:
    response.get_data()
client.get("/", headers={"traceparent": incoming})
trace.get_tracer_provider().force_flush()
"""
REQUESTS = 6
INCOMING_TRACE, INCOMING_PARENT = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The ConsoleSpanExporter's JSON objects: each starts and ends with a brace at column 0."""
    spans, block = [], None
    for line in stdout.splitlines():
        if line == "{":
            block = [line]
        elif block is not None:
            block.append(line)
            if line == "}":
                spans.append(json.loads("\n".join(block)))
                block = None
    return spans


@pytest.fixture(scope="module")
def instrumented() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Console spans and (trace id, span id) of each request span, from one instrumented run."""
    if not (VENV_BIN / "opentelemetry-instrument").exists():
        reason = f"{VENV_BIN.parent} is missing; run scripts/setup-instrument.sh"
        if os.environ.get("E2E_REQUIRED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = subprocess.run(
        [str(VENV_BIN / "opentelemetry-instrument"), "python", "-c", textwrap.dedent(SCRIPT)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("TIMED ")]
    return console_spans(result.stdout), [(trace_id, span_id) for _, trace_id, span_id in lines]


def test_one_server_span_and_one_trace_per_request(instrumented):
    """Every request is one trace holding exactly one SERVER span, and that span is ours."""
    spans, timed = instrumented
    assert len(timed) == REQUESTS
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["context"]["trace_id"].removeprefix("0x")].append(span)
    assert sorted(by_trace) == sorted(trace_id for trace_id, _ in timed)
    for trace_id, span_id in timed:
        servers = [s for s in by_trace[trace_id] if s["kind"] == "SpanKind.SERVER"]
        assert [s["context"]["span_id"] for s in servers] == [f"0x{span_id}"]


def test_instrumentation_span_nests_under_ours(instrumented):
    """The Flask instrumentation's span (the other one with an HTTP method attribute, under
    either semantic-convention mode) is an INTERNAL child of the request span; the
    ``timer.timed`` spans, opened in the view, nest under it in turn."""
    spans, timed = instrumented
    ours = {f"0x{span_id}" for _, span_id in timed}
    by_id = {span["context"]["span_id"]: span for span in spans}
    theirs = [
        s
        for s in spans
        if s["context"]["span_id"] not in ours
        and {"http.method", "http.request.method"} & set(s["attributes"])
    ]
    assert len(theirs) == REQUESTS
    for span in theirs:
        assert span["kind"] == "SpanKind.INTERNAL"
        assert span["parent_id"] in ours
    (tokenize,) = [s for s in spans if s["name"] == "v1.tokenize"]
    assert by_id[tokenize["parent_id"]] in theirs


def test_incoming_traceparent_is_the_parent(instrumented):
    """An incoming traceparent parents our SERVER span; no second trace is started."""
    spans, timed = instrumented
    in_trace = [s for s in spans if s["context"]["trace_id"] == f"0x{INCOMING_TRACE}"]
    (server,) = [s for s in in_trace if s["kind"] == "SpanKind.SERVER"]
    assert server["parent_id"] == f"0x{INCOMING_PARENT}"
    assert all(s["parent_id"] is not None for s in in_trace)
    assert (INCOMING_TRACE, server["context"]["span_id"].removeprefix("0x")) in timed
