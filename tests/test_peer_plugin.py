"""The harness that runs Flask's own suite with RouteTimer (scripts/peer-flask.sh) cannot pass
silently: its plugin fails each kind of leak on deliberately leaky apps, and passes clean ones."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Request

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "tests" / "peer"

#: Run by the plugin in a pytest of its own: each test shows one thing the plugin must (or must
#: not) report. Nothing here depends on flask-routetimer misbehaving.
LEAKY_SUITE = """
import contextvars
import logging

import pytest
from flask import Flask, Response, after_this_request
from opentelemetry import context as otel_context
from opentelemetry import trace

KEPT = []


def make_app():
    app = Flask("peer_demo")
    app.add_url_rule("/", "index", lambda: "ok")
    return app


def tracer(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("routetimer-plugin")
    return plugin.tracer_provider.get_tracer("demo")


def test_clean():
    app = make_app()
    assert "routetimer" in app.extensions
    with app.test_client() as client:
        assert client.get("/").text == "ok"
        assert client.get("/missing").status_code == 404


def test_streamed_body_left_unread():
    app = make_app()
    app.add_url_rule("/stream", "stream", lambda: Response(iter(["a", "b"])))
    assert app.test_client().get("/stream").status_code == 200


def test_context_left_attached_when_the_response_closes():
    app = make_app()

    @app.get("/leak")
    def leak():
        @after_this_request
        def leak_on_close(response):
            response.call_on_close(lambda: otel_context.attach(otel_context.set_value("k", "v")))
            return response

        return "ok"

    app.test_client().get("/leak").close()


def test_span_left_open(pytestconfig):
    app = make_app()

    @app.get("/open")
    def open_span():
        tracer(pytestconfig).start_span("forgotten")
        return "ok"

    app.test_client().get("/open")


def test_keeps_a_span(pytestconfig):
    span = tracer(pytestconfig).start_span("kept")
    span.end()
    KEPT.append(span)


def test_parent_from_another_test():
    with trace.use_span(KEPT[0]):
        make_app().test_client().get("/")


def test_routetimer_warns():
    app = make_app()

    @app.get("/warn")
    def warn():
        logging.getLogger("flask_routetimer").warning("a demo warning")
        return "ok"

    app.test_client().get("/warn")


def test_active_request_never_counted_out(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("routetimer-plugin")
    meter = plugin.meter_provider.get_meter("demo")
    meter.create_up_down_counter("http.server.active_requests").add(1, {"k": "v"})


def test_detach_fails():
    app = make_app()

    @app.get("/detach")
    def detach():
        token = otel_context.attach(otel_context.set_value("k", "v"))
        contextvars.Context().run(otel_context.detach, token)  # the wrong context: logged
        otel_context.detach(token)
        return "ok"

    app.test_client().get("/detach")
"""

#: What the plugin must say, per test of LEAKY_SUITE (None: the test passes).
EXPECTED = {
    "test_clean": None,
    "test_streamed_body_left_unread": None,
    "test_context_left_attached_when_the_response_closes": (
        "an OpenTelemetry context is still attached after the test"
    ),
    "test_span_left_open": "INTERNAL span 'forgotten' was never ended, though its request GET",
    "test_keeps_a_span": None,
    "test_parent_from_another_test": (
        "SERVER span 'GET /' has a parent span from another test: test_leaky.py::test_keeps_a_span"
    ),
    "test_routetimer_warns": "WARNING from flask_routetimer: a demo warning",
    # 2 and 1: the streamed body left unread is still an active request, rightly.
    "test_active_request_never_counted_out": (
        "http.server.active_requests is 2 while 1 request spans are open: +1 during this test"
    ),
    "test_detach_fails": "ERROR from opentelemetry.context: Failed to detach context",
}


def load(name: str) -> ModuleType:
    """A module of tests/peer (not a package: scripts/peer-flask.sh puts it on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"peer_{name}", PEER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_reports_each_leak_in_the_test_that_made_it(tmp_path: Path) -> None:
    """Each leaky test errors at teardown, naming its leak; clean ones and the next test pass."""
    (tmp_path / "test_leaky.py").write_text(LEAKY_SUITE, encoding="utf-8")
    outcomes = tmp_path / "outcomes.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PEER)])}
    # A pytest of its own: the plugin wraps Flask.__init__ for the whole session.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"),
            *("-p", "routetimer_plugin", "-p", "peer_outcomes", "--peer-outcomes", str(outcomes)),
            "test_leaky.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    tests = json.loads(outcomes.read_text(encoding="utf-8"))["tests"]
    got = {node.split("::")[-1]: entry for node, entry in tests.items()}
    assert set(got) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        if expected is None:
            assert got[name]["outcome"] == "passed", (name, got[name])
        else:
            assert got[name]["outcome"] == "error in teardown", (name, got[name])
            assert expected in got[name]["reason"], (name, got[name]["reason"])
    assert "RouteTimer attached to 7 apps" in result.stdout, result.stdout


def test_request_checks_need_one_span_with_the_clients_status() -> None:
    """A request that got a response needs exactly one request span, ended with its status."""
    plugin = load("routetimer_plugin")
    seen = plugin.RequestSeen(Request.from_values("/x"))
    check = plugin.LeakTracker._check_request
    assert check(seen, {}) == []  # no response (the exception reached the test): nothing to say
    seen.status = 500
    assert check(seen, {}) == ["request GET /x got a 500 response but has no request span"]
    seen.spans = [1]
    assert check(seen, {1: 500}) == []
    assert check(seen, {1: None}) == [
        "the span of request GET /x ended with http.response.status_code = None, but the "
        "client got 500"
    ]
    seen.spans = [1, 2]
    assert check(seen, {1: 500, 2: 500}) == ["request GET /x has 2 request spans"]
    # After the response, the app raised out of the WSGI call: a server sends 500 instead.
    seen.spans, seen.status = [1], 200
    assert check(seen, {1: 500}) == [
        "the span of request GET /x ended with http.response.status_code = 500, but the "
        "client got 200"
    ]
    seen.request.environ[plugin.RAISED] = True
    assert check(seen, {1: 500}) == check(seen, {1: 200}) == []
    assert check(seen, {1: None}) == [
        "the span of request GET /x ended with http.response.status_code = None, but the "
        "client got 200 or 500"
    ]


def outcomes(**tests: str) -> dict[str, Any]:
    return {
        "tests": {node: {"outcome": outcome, "reason": "why"} for node, outcome in tests.items()},
        "routetimer": {"apps": 1, "request_spans": 1},
    }


@pytest.mark.parametrize(
    ("bare", "timed", "ok", "said"),
    [
        (outcomes(a="passed", b="skipped"), outcomes(a="passed", b="skipped"), True, "a"),
        (outcomes(a="passed", b="failed"), outcomes(a="passed", b="failed"), True, "even without"),
        (outcomes(a="passed"), outcomes(a="error in teardown"), False, "FAIL ONLY WITH"),
        (outcomes(a="passed"), outcomes(), False, "not run"),
        (outcomes(a="failed"), outcomes(a="passed"), False, "pass only with"),
        (outcomes(a="passed"), {**outcomes(a="passed"), "routetimer": {}}, False, "to no app"),
    ],
)
def test_compare_passes_only_on_the_same_passing_tests(
    bare: dict[str, Any], timed: dict[str, Any], ok: bool, said: str
) -> None:
    """The same tests must pass with RouteTimer, and RouteTimer must have been attached."""
    got_ok, report = load("compare").compare(bare, timed)
    assert got_ok is ok, report
    assert said in report
