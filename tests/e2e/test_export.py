"""The example app's spans reach a real OTLP backend (Phoenix) intact, configured only by the
standard ``OTEL_*`` variables: in one process (threaded Werkzeug server) and under gunicorn
with two workers (with and without ``--preload``), over OTLP/HTTP and OTLP/gRPC.

Every request carries its own ``traceparent``, so the test knows each trace id in advance and
asks Phoenix for exactly that trace. ``/`` answers with the worker's pid, which ties traces to
gunicorn workers.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import KNOWN_SETTINGS

from .phoenix import LOOPBACK, REPO_ROOT, Phoenix, Span, free_port, screenshot

HERE = Path(__file__).resolve().parent
ARTIFACTS = REPO_ROOT / "test-artifacts"


@dataclass(frozen=True)
class Call:
    """One planned request and the spans its trace must hold (the route span first)."""

    method: str
    path: str
    body: Any
    status: int
    spans: tuple[str, ...]  # empty: the route is exempt, no span at all


PLAN = (
    Call("GET", "/", None, 200, ("GET /",)),
    Call(
        "POST",
        "/v1/predict/",
        {"text": "a b c"},
        200,
        ("POST /v1/predict/", "v1.tokenize", "model.predict"),
    ),
    Call(
        "POST",
        "/v2/predict/",
        {"text": "Hi, you"},
        200,
        ("POST /v2/predict/", "v2.normalize", "v2.embed", "model.predict"),
    ),
    Call("GET", "/v1/stream?text=a+b", None, 200, ("GET /v1/stream",)),
    Call("GET", "/v1/fail", None, 500, ("GET /v1/fail",)),
    Call("POST", "/v1/predict/", {}, 400, ("POST /v1/predict/",)),
    Call("GET", "/no/such/page", None, 404, ("GET",)),
    Call("GET", "/health", None, 200, ()),
)


@dataclass(frozen=True)
class Sent:
    """A request as sent: the trace it belongs to, its parent span, and what came back."""

    call: Call
    trace_id: str
    parent_id: str
    status: int
    body: bytes


def send(port: int, call: Call) -> Sent:
    """One request on a fresh connection (so gunicorn may hand it to any worker)."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    payload = None
    if call.body is not None:
        payload = json.dumps(call.body)
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request(call.method, call.path, body=payload, headers=headers)
        response = conn.getresponse()
        return Sent(call, trace_id, parent_id, response.status, response.read())
    finally:
        conn.close()


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Until something accepts on ``port``; fail early with the log if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before listening")
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s")


def otel_env(
    phoenix: Phoenix, protocol: str, project: str, variable: str = "base", **extra: str
) -> dict[str, str]:
    """The caller's environment without OTEL_*, plus the standard variables for ``protocol``.

    ``variable="traces"`` (OTLP/HTTP only) is the README's one variable for Phoenix,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: a full URL, used as is, that turns on traces only.
    ``"base"`` is ``OTEL_EXPORTER_OTLP_ENDPOINT``, which turns on every signal (the HTTP
    exporter appends ``/v1/traces``); Phoenix answers metrics with 405, so those are switched
    off with ``OTEL_METRICS_EXPORTER=none``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"openinference.project.name={project}"
    if variable == "traces":
        assert protocol == "http"
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = phoenix.http_endpoint
    elif protocol == "http":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = phoenix.base_url
        env["OTEL_METRICS_EXPORTER"] = "none"
    else:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = phoenix.grpc_endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
        env["OTEL_METRICS_EXPORTER"] = "none"
    env.update(extra)
    return env


@contextmanager
def running(
    cmd: list[str], env: dict[str, str], port: int, log: Path, capture: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """Start ``cmd`` with output to ``log`` (stdin and, if ``capture``, stdout as pipes), wait
    for ``port``, and always stop it: SIGTERM (a graceful stop), bounded wait, SIGKILL."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if capture else out,
            stderr=out,
            text=True,
        )
        try:
            wait_for_port(port, process)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.communicate(timeout=10)


def check_trace(phoenix: Phoenix, project: str, sent: Sent) -> dict[str, Span]:
    """Phoenix holds the request's whole trace, as the example app made it; spans by name."""
    call = sent.call
    assert sent.status == call.status, sent.body[:300]
    stored = phoenix.wait_for_spans(project, sent.trace_id, count=len(call.spans))
    by_name = {span["name"]: span for span in stored}
    assert sorted(span["name"] for span in stored) == sorted(call.spans)
    route = by_name[call.spans[0]]
    # The incoming traceparent is the route span's parent; every other span is its child.
    assert route["parent_id"] == sent.parent_id
    for name in call.spans[1:]:
        assert by_name[name]["parent_id"] == route["context"]["span_id"]
        assert by_name[name]["context"]["trace_id"] == sent.trace_id
    attributes = route["attributes"]
    assert attributes["http.response.status_code"] == call.status
    assert attributes["http.request.method"] == call.method
    if call.status == 404:
        assert "http.route" not in attributes
    else:
        assert attributes["http.route"] == call.path.split("?")[0]
    if call.status >= 500:
        assert route["status_code"] == "ERROR"
        (event,) = route["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "RuntimeError"
        assert "the model file is missing" in event["attributes"]["exception.message"]
    else:
        assert route["status_code"] == "UNSET"
        assert route["events"] == []
    return by_name


def check_exempt_route(phoenix: Phoenix, project: str, sent: list[Sent]) -> None:
    """/health is exempt: once every other trace has arrived, it still has no span."""
    for one in sent:
        if not one.call.spans:
            assert phoenix.spans(project, trace_id=one.trace_id) == []


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_in_process(phoenix: Phoenix, protocol: str) -> None:
    """A threaded Werkzeug server: every trace arrives intact, and the SDK's own copy (same
    provider) shows what Phoenix drops: SERVER/INTERNAL kinds and the resource."""
    project = f"export-inprocess-{protocol}"
    port = free_port()
    cmd = [sys.executable, str(HERE / "serve_example.py"), str(port)]
    # Over HTTP exactly as the README says: one variable (plus the test's project name).
    env = otel_env(phoenix, protocol, project, "traces" if protocol == "http" else "base")
    log = ARTIFACTS / f"{project}.log"
    with running(cmd, env, port, log, capture=True) as server:
        sent = [send(port, call) for call in PLAN]
        stdout, _ = server.communicate(timeout=30)  # closes stdin: stop, flush, report
    assert server.returncode == 0, log.read_text()[-2000:]
    for one in sent:
        if one.call.spans:
            check_trace(phoenix, project, one)
    check_exempt_route(phoenix, project, sent)
    assert "Failed to export" not in log.read_text()

    (line,) = [line for line in stdout.splitlines() if line.startswith("SPANS ")]
    memory = json.loads(line.removeprefix("SPANS "))
    traces = {one.trace_id: one for one in sent}
    assert {span["trace_id"] for span in memory} == {t for t, s in traces.items() if s.call.spans}
    for span in memory:
        route_span = span["name"] == traces[span["trace_id"]].call.spans[0]
        assert span["kind"] == ("SERVER" if route_span else "INTERNAL")
        assert span["resource"]["service.name"] == "example-ml-api"
        assert span["resource"]["openinference.project.name"] == project


def serve_each_worker(port: int, workers: int, rounds: int = 25) -> dict[int, list[Sent]]:
    """Concurrent ``GET /`` rounds until every worker has answered (bounded); by pid."""
    by_pid: dict[int, list[Sent]] = {}
    index = PLAN[0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(rounds):
            for one in pool.map(lambda _: send(port, index), range(8)):
                by_pid.setdefault(json.loads(one.body)["pid"], []).append(one)
            if len(by_pid) >= workers:
                break
    return by_pid


@pytest.mark.parametrize(
    "protocol, preload",
    [("http", False), ("grpc", False), ("http", True), ("grpc", True)],
    ids=["http", "grpc", "http-preload", "grpc-preload"],
)
def test_gunicorn_workers(phoenix: Phoenix, protocol: str, preload: bool) -> None:
    """Under gunicorn with two workers, every worker's spans arrive, with no gunicorn setting
    beyond the app factory. The batch delay is set past the test's length, so the spans can
    only leave at the workers' graceful shutdown (atexit flush on SIGTERM)."""
    project = f"export-gunicorn-{protocol}{'-preload' if preload else ''}"
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"{LOOPBACK}:{port}"]
    cmd += ["--preload"] if preload else []
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        cmd += ["--no-control-socket"]  # else newer gunicorn puts a socket in $HOME
    cmd += ["example_app:create_app()"]
    env = otel_env(phoenix, protocol, project, OTEL_BSP_SCHEDULE_DELAY="600000")
    log = ARTIFACTS / f"{project}.log"
    with running(cmd, env, port, log) as server:
        sent = [send(port, call) for call in PLAN]
        by_pid = serve_each_worker(port, workers=2)
        # Nothing has been exported yet: the spans wait in each worker's batch queue.
        assert phoenix.spans(project, trace_id=sent[1].trace_id) == []
    output = log.read_text()
    assert server.returncode == 0, output[-2000:]
    assert len(by_pid) == 2, f"only workers {sorted(by_pid)} answered"
    # With --preload the master builds the app (and the SDK) once and the workers inherit it.
    assert output.count("flask-routetimer: traces go to otlp") == (1 if preload else 2)
    for one in sent:
        if one.call.spans:
            check_trace(phoenix, project, one)
    for answered in by_pid.values():
        check_trace(phoenix, project, answered[0])
        check_trace(phoenix, project, answered[-1])
    check_exempt_route(phoenix, project, sent)
    assert "Failed to export" not in output


def test_trace_screenshot(phoenix: Phoenix) -> None:
    """Phoenix's UI shows the example app's predict trace. The PNG is kept in test-artifacts/;
    with ROUTETIMER_UPDATE_SCREENSHOTS=1 it also becomes docs/images/phoenix-trace.png."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    project = "example-ml-api"
    port = free_port()
    cmd = [sys.executable, str(HERE / "serve_example.py"), str(port)]
    env = otel_env(phoenix, "http", project, "traces")
    with running(cmd, env, port, ARTIFACTS / "screenshot-server.log", True) as server:
        sent = send(port, PLAN[2])
        server.communicate(timeout=30)
    by_name = check_trace(phoenix, project, sent)
    url = phoenix.trace_ui_url(project, sent.trace_id, by_name["POST /v2/predict/"]["id"])
    out = ARTIFACTS / "phoenix-trace.png"
    screenshot(url, out)
    assert out.stat().st_size > 30_000, f"screenshot looks blank: {out}"
    if os.environ.get("ROUTETIMER_UPDATE_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "images" / "phoenix-trace.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out.read_bytes())
