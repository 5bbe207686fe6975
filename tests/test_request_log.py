"""ROUTETIMER_LOG_REQUESTS: one line per timed request, on in debug mode, visible without any
logging configured, never a forged line, never a broken request."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from flask import Flask, Response, stream_with_context

from flask_routetimer.requestlog import logger as request_logger

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(
    r"(?P<method>\S+) (?P<route>.+) (?P<status>\d{3}|-) (?P<ms>\d+\.\d) ms(?P<tail>.*)"
)


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The request lines logged so far (INFO enabled, so an unwanted line would be caught)."""
    caplog.set_level(logging.INFO, logger=request_logger.name)
    return lambda: [r.getMessage() for r in caplog.records if r.name == request_logger.name]


def add_views(app: Flask) -> Flask:
    app.add_url_rule("/hello/<name>", "hello", lambda name: f"hello {name}")
    app.add_url_rule("/v1/predict/", "predict", lambda: {"ok": True}, methods=["POST"])

    def fail() -> str:
        raise RuntimeError("nope")

    app.add_url_rule("/fail", "fail", fail)

    def stream() -> Response:
        @stream_with_context
        def body() -> Iterator[str]:
            yield ""  # no byte yet
            yield "first"
            yield "second"

        return Response(body())

    app.add_url_rule("/stream", "stream", stream)
    return app


def test_off_by_default_outside_debug(make_app, lines):
    """Production default (debug off, key unset): no line at all."""
    app = add_views(make_app()[0])
    assert app.test_client().get("/hello/x").status_code == 200
    assert app.config["ROUTETIMER_LOG_REQUESTS"] is None
    assert lines() == []


def test_on_in_debug_mode(make_app, lines):
    """In debug mode each request is one line: method, route template, status, milliseconds."""
    app = add_views(make_app(DEBUG=True)[0])
    client = app.test_client()
    client.get("/hello/you")
    client.post("/v1/predict/", json={})
    assert len(lines()) == 2
    first, second = (LINE.fullmatch(line) for line in lines())
    assert first and first["method"] == "GET" and first["route"] == "/hello/<name>"
    assert first["status"] == "200" and first["tail"] == ""
    assert second and (second["method"], second["route"]) == ("POST", "/v1/predict/")


def test_debug_flag_is_read_per_request(make_app, lines):
    """``app.run(debug=True)`` sets debug after init_app: the next request is logged."""
    app = add_views(make_app()[0])
    client = app.test_client()
    client.get("/hello/a")
    app.debug = True
    client.get("/hello/b")
    app.debug = False
    client.get("/hello/c")
    assert len(lines()) == 1


@pytest.mark.parametrize("debug", [False, True])
def test_explicit_setting_wins_over_debug(make_app, lines, debug):
    """True logs outside debug mode; False logs nothing in debug mode."""
    on = add_views(make_app(ROUTETIMER_LOG_REQUESTS=True, DEBUG=debug)[0])
    off = add_views(make_app(ROUTETIMER_LOG_REQUESTS=False, DEBUG=debug)[0])
    on.test_client().get("/hello/x")
    off.test_client().get("/hello/x")
    assert len(lines()) == 1 and lines()[0].startswith("GET /hello/<name> 200 ")


def test_duration_is_the_requests(make_app, lines):
    """The milliseconds shown are the request's duration, as request_timed reports it."""
    app, _ = make_app(ROUTETIMER_LOG_REQUESTS=True)
    app.add_url_rule("/slow", "slow", lambda: __import__("time").sleep(0.05) or "ok")
    app.test_client().get("/slow")
    (line,) = lines()
    match = LINE.fullmatch(line)
    assert match and 50.0 <= float(match["ms"]) < 5000


def test_a_stream_is_logged_when_its_body_ends(make_app, lines):
    """A streamed body: the line comes once the body is sent, with the time to first byte."""
    app = add_views(make_app(ROUTETIMER_LOG_REQUESTS=True)[0])
    response = app.test_client().get("/stream", buffered=False)
    assert lines() == []  # the view returned; the body is not sent yet
    assert b"".join(response.response) == b"firstsecond"
    response.close()
    (line,) = lines()
    match = LINE.fullmatch(line)
    assert match and (match["route"], match["status"]) == ("/stream", "200")
    first_byte = re.fullmatch(r" \(first byte (\d+\.\d) ms\)", match["tail"])
    assert first_byte and float(first_byte[1]) <= float(match["ms"])


def test_a_failed_request_names_its_exception(make_app, lines):
    """An unhandled exception: status 500 and the exception's class."""
    app = add_views(make_app(ROUTETIMER_LOG_REQUESTS=True, PROPAGATE_EXCEPTIONS=False)[0])
    assert app.test_client().get("/fail").status_code == 500
    (line,) = lines()
    assert re.fullmatch(r"GET /fail 500 \d+\.\d ms RuntimeError", line)


def test_no_route_never_echoes_the_raw_path(make_app, lines):
    """A 404 has no route: the line says so and never shows what the client sent."""
    app = add_views(make_app(ROUTETIMER_LOG_REQUESTS=True)[0])
    client = app.test_client()
    client.get("/nope%0A200 GET /admin 1.0 ms")
    client.get("/nope\x1b[31m")
    assert len(lines()) == 2
    for line in lines():
        assert re.fullmatch(r"GET \(no route\) 404 \d+\.\d ms", line), line


def test_hostile_method_is_not_written(make_app, lines):
    """A method with control characters is logged as OpenTelemetry's ``_OTHER``."""
    app = add_views(make_app(ROUTETIMER_LOG_REQUESTS=True)[0])
    app.test_client().open("/hello/x", method="GET\r\nFORGED /x 200 1.0 ms")
    (line,) = lines()
    assert "FORGED" not in line and "\n" not in line and line.startswith("_OTHER ")


def test_unprintable_route_template_is_escaped(make_app, lines):
    """Even a route template (the app's own) cannot split or colour the line."""
    app, _ = make_app(ROUTETIMER_LOG_REQUESTS=True)
    app.add_url_rule("/odd\x1b[31m\u2028x", "odd", lambda: "ok")
    app.test_client().get("/odd\x1b[31m\u2028x")
    (line,) = lines()
    assert line.startswith("GET /odd\\x1b[31m\\u2028x 200 ")
    assert line.isprintable()


class Broken(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise OSError("the log disk is full")


class Quiet(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


class BrokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raise ValueError("a filter with a bug")


@pytest.mark.parametrize("where", ["flask_routetimer.requests", "flask_routetimer"])
@pytest.mark.parametrize("breakage", ["handler", "filter"])
def test_a_broken_log_handler_never_breaks_the_request(make_app, lines, caplog, where, breakage):
    """A handler or filter that raises: the response is still sent, the stream still ends, and
    the failure is reported once where a working handler can see it."""
    app = add_views(make_app(ROUTETIMER_LOG_REQUESTS=True)[0])
    target = logging.getLogger(where)
    handler: logging.Handler = Broken()
    if breakage == "filter":
        handler = Quiet()  # NullHandler would never call its filters
        handler.addFilter(BrokenFilter())
    target.addHandler(handler)
    try:
        client = app.test_client()
        assert client.get("/hello/x").data == b"hello x"
        with client.get("/stream") as response:
            assert response.data == b"firstsecond"
        assert client.get("/hello/y").status_code == 200
    finally:
        target.removeHandler(handler)
    reported = [r for r in caplog.records if "logging a request" in r.getMessage()]
    # Reported on the parent logger: seen unless the broken handler sits there too.
    assert len(reported) == (1 if where == request_logger.name else 0)


# -- what a newcomer sees: a real interpreter, no logging configured ------------------------

SCRIPT = """
import logging, sys
from flask import Flask
from flask_routetimer import RouteTimer
{before}
app = Flask("demo")
app.config.update(DEBUG=True)
RouteTimer(app)
app.add_url_rule("/hello/<name>", "hello", lambda name: "hi")
app.test_client().get("/hello/a")
{between}
app.test_client().get("/hello/b")
"""


def run(before: str = "", between: str = "") -> str:
    """stderr of a fresh interpreter serving two requests in debug mode."""
    code = SCRIPT.format(before=textwrap.dedent(before), between=textwrap.dedent(between))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


def request_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "/hello/<name> 200 " in line]


def test_shown_on_stderr_without_any_logging_configured():
    """``flask --debug run`` with no logging set up: each line is on stderr, once."""
    shown = request_lines(run())
    assert len(shown) == 2
    assert all(re.fullmatch(r"\[routetimer\] GET /hello/<name> 200 \d+\.\d ms", s) for s in shown)


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_configured_logging_shows_each_line_once(level):
    """Root handlers configured (at INFO or at the default WARNING): one line each, theirs."""
    stderr = run(before=f"logging.basicConfig(level=logging.{level})")
    assert request_lines(stderr) == [
        line for line in stderr.splitlines() if line.startswith("INFO:flask_routetimer.requests:")
    ]
    assert len(request_lines(stderr)) == 2


def test_logging_configured_after_the_first_line_does_not_double():
    """Logging set up between two requests: the second line is shown by it alone."""
    stderr = run(between="logging.basicConfig(level=logging.INFO, format='mine: %(message)s')")
    shown = request_lines(stderr)
    assert len(shown) == 2
    assert shown[0].startswith("[routetimer] ") and shown[1].startswith("mine: ")


def test_a_level_the_user_set_is_respected():
    """``logging.getLogger("flask_routetimer.requests").setLevel(WARNING)`` silences the lines."""
    stderr = run(before="logging.getLogger('flask_routetimer.requests').setLevel(logging.WARNING)")
    assert request_lines(stderr) == []
