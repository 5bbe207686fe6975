"""Config and constructor arguments are validated at init_app, with messages naming the key."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap

import pytest
from flask import Flask
from flask.signals import request_started

from flask_routetimer import ConfigError, RouteTimer


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ROUTETIMER_ENABLED", "yes", "must be True or False, got 'yes'"),
        ("ROUTETIMER_RECORD_EXCEPTIONS", 1, "must be True or False"),
        ("ROUTETIMER_SERVER_TIMING", "on", "must be True, False or None"),
        ("ROUTETIMER_LOG_REQUESTS", "false", "must be True, False or None"),
        ("ROUTETIMER_TIME_TEMPLATES", "false", "must be True or False"),
        ("ROUTETIMER_MAX_ROUTES", 0, "must be an integer >= 1, got 0"),
        ("ROUTETIMER_TRACE_BUFFER", -1, "must be an integer >= 0, got -1"),
        ("ROUTETIMER_EXCLUDED_URLS", 42, "must be a list of regular"),
        ("ROUTETIMER_EXCLUDED_URLS", ["ok", 3], "must be a list"),
        ("ROUTETIMER_EXCLUDED_URLS", ["(unclosed"], "'(unclosed', which is not a valid regular"),
        ("ROUTETIMER_EXCLUDED_URLS", ["^/ok", "^/(bad"], "contains '^/(bad'"),
        ("ROUTETIMER_EXCLUDED_URLS", "^/ok,^/a{2,1}", "contains '^/a{2,1}'"),
        ("ROUTETIMER_EXCLUDED_URLS", ["a)"], "contains 'a)'"),
        ("ROUTETIMER_REDACT_QUERY_PARAMS", 42, "must be a list of query"),
        ("ROUTETIMER_REDACT_QUERY_PARAMS", ["otp", 3], "must be a list of query"),
        ("ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST", 3, "must be a list of header names"),
        ("ROUTETIMER_CAPTURE_HEADERS_SERVER_RESPONSE", ["ok", None], "must be a list of header"),
        ("ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST", ["x-(oops"], "'x-(oops', which is neither"),
        ("ROUTETIMER_CAPTURE_HEADERS_SANITIZE", {"a": 1}, "must be a list of header names"),
        ("ROUTETIMER_TIMING_ALLOW_ORIGIN", 1, "must be None"),
        ("ROUTETIMER_TIMING_ALLOW_ORIGIN", [], "must be None"),
        ("ROUTETIMER_TIMING_ALLOW_ORIGIN", "https://a.example\r\nX: y", "must be None"),
        ("ROUTETIMER_TIMING_ALLOW_ORIGIN", ["https://a.example, *"], "must be None"),
    ],
)
def test_bad_values_raise_at_init_app(key, value, message):
    """A wrong type, size, header list, origin or regular expression is a ConfigError raised when
    the app is built, naming the key and what is wrong (never a bare re.error)."""
    app = Flask("bad")
    app.config[key] = value
    with pytest.raises(ConfigError, match=f"{key} .*{re.escape(message)}"):
        RouteTimer(app)


def test_defaults_are_set_with_setdefault():
    """init_app fills in defaults but never overrides what the user set."""
    app = Flask("defaults")
    app.config["ROUTETIMER_SERVER_TIMING"] = True
    RouteTimer(app)
    assert app.config["ROUTETIMER_ENABLED"] is True
    assert app.config["ROUTETIMER_SERVER_TIMING"] is True
    assert app.config["ROUTETIMER_RECORD_EXCEPTIONS"] is True


def test_second_registration_is_refused():
    """Registering twice on one app is an error that says what to do instead."""
    app = Flask("twice")
    RouteTimer(app)
    with pytest.raises(RuntimeError, match="already registered.*once per app"):
        RouteTimer().init_app(app)


def test_extension_state_is_per_app():
    """The per-app state lives in app.extensions['routetimer']; the timer keeps no app."""
    app = Flask("state")
    timer = RouteTimer(app)
    assert RouteTimer.state(app) is app.extensions["routetimer"]
    assert not any(value is app for value in vars(timer).values())


@pytest.mark.parametrize("argument", ["tracer_provider", "meter_provider"])
def test_wrong_provider_type_is_named(argument):
    """Passing something that is not a provider names the argument."""
    with pytest.raises(TypeError, match=argument):
        RouteTimer(**{argument: object()})


def test_views_are_untouched(tracer_provider):
    """init_app wraps, replaces or renames nothing in app.view_functions (it only adds the
    dashboard's own endpoints)."""
    app = Flask("untouched")

    @app.get("/a")
    def a() -> str:
        return "a"

    before = dict(app.view_functions)
    RouteTimer(app, tracer_provider=tracer_provider)
    app.test_client().get("/a")
    ours = {name: view for name, view in app.view_functions.items() if name in before}
    assert ours == before
    assert all(name.startswith("routetimer.") for name in app.view_functions.keys() - before)
    assert all(app.view_functions[name] is view for name, view in before.items())


def test_global_provider_configured_after_init_app_is_used():
    """Without explicit providers the global one is looked up lazily, even if set later."""
    code = textwrap.dedent(
        """
        from flask import Flask
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from flask_routetimer import RouteTimer

        app = Flask("late")
        RouteTimer(app)
        app.add_url_rule("/x", "x", lambda: "x")
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        app.test_client().get("/x")
        print([span.name for span in exporter.get_finished_spans()])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "['GET /x']"


# -- keys set after init_app ------------------------------------------------------------------


def late_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "after init_app" in r.getMessage()
    ]


def serve(app: Flask, times: int = 2) -> None:
    app.add_url_rule("/x", "x", lambda: "x")
    for _ in range(times):
        assert app.test_client().get("/x").status_code == 200


def test_a_key_set_after_init_app_is_named_once(make_app, caplog):
    """The first request warns, naming the key changed since init_app; later ones say nothing."""
    app, _ = make_app()
    app.config["ROUTETIMER_SERVER_TIMING"] = True
    app.config["ROUTETIMER_TIME_TEMPLATES"] = False
    serve(app, times=3)
    (warning,) = late_warnings(caplog)
    assert "ROUTETIMER_SERVER_TIMING, ROUTETIMER_TIME_TEMPLATES changed" in warning
    assert "still uses the values read then" in warning and "before RouteTimer(app)" in warning
    assert "ROUTETIMER_ENABLED" not in warning


def test_unchanged_keys_are_not_named(make_app, caplog, monkeypatch):
    """Defaults, values from environment variables and equal values set again: no warning."""
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "^/health")
    app, _ = make_app(
        ROUTETIMER_TIMING_ALLOW_ORIGIN=["https://a.example"], ROUTETIMER_CAPTURE_HEADERS_SANITIZE=[]
    )
    assert app.config["ROUTETIMER_EXCLUDED_URLS"] == "^/health"
    app.config["ROUTETIMER_TIMING_ALLOW_ORIGIN"] = ["https://a.example"]  # a new, equal list
    app.config.update(ROUTETIMER_ENABLED=True)
    serve(app)
    assert late_warnings(caplog) == []


def test_a_list_changed_in_place_is_named(make_app, caplog):
    """A list appended to after init_app is a change (compared with a copy, not itself)."""
    app, _ = make_app()
    app.config["ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST"].append("x-request-id")
    del app.config["ROUTETIMER_MAX_ROUTES"]
    serve(app)
    (warning,) = late_warnings(caplog)
    assert "ROUTETIMER_MAX_ROUTES, ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST changed" in warning


def test_enabling_a_disabled_app_late_is_named(make_app, caplog):
    """An app turned off at init_app is not timed, but turning it on too late is still said."""
    app, timer = make_app(ROUTETIMER_ENABLED=False)
    app.config["ROUTETIMER_ENABLED"] = True
    serve(app)
    assert "ROUTETIMER_ENABLED changed" in late_warnings(caplog)[0]
    assert timer.stats(app).routes == ()


def test_the_first_request_check_disconnects_itself(make_app):
    """After the first request the check is gone: later requests pay nothing for it."""
    app, _ = make_app()
    before = len(list(request_started.receivers_for(app)))
    serve(app, times=1)
    assert len(list(request_started.receivers_for(app))) == before - 1
