"""Excluded URLs and exempt views get no span and no signal."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.views import MethodView

from flask_routetimer import ConfigError, RouteTimer, request_timed


def add_routes(app: Flask, timer: RouteTimer) -> None:
    """An exempt /health, and /healthz and /api/<int:n> for the exclusion patterns."""

    @app.get("/health")
    @timer.exempt
    def health() -> str:
        return "ok"

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.get("/api/<int:n>")
    def api(n: int) -> str:
        return str(n)


def test_exempt_returns_the_same_function(app, timer):
    """@timer.exempt hands back the very function it was given."""

    def view() -> str:
        return "x"

    assert timer.exempt(view) is view


def test_exempt_route_gets_no_span_and_no_signal(app, timer, client, server_spans):
    """An exempt route is served normally but leaves no trace."""
    add_routes(app, timer)
    sent = []
    with request_timed.connected_to(lambda sender, timing: sent.append(timing), app):
        assert client.get("/health").data == b"ok"
        client.get("/api/1")
    assert [s.name for s in server_spans()] == ["GET /api/<int:n>"]
    assert [t.route for t in sent] == ["/api/<int:n>"]


def test_exempt_method_view(app, timer, client, server_spans):
    """A View class marked exempt covers the view function as_view makes from it."""

    @timer.exempt
    class Ping(MethodView):
        def get(self) -> str:
            return "pong"

    app.add_url_rule("/ping", view_func=Ping.as_view("ping"))
    assert client.get("/ping").data == b"pong"
    assert server_spans() == []


@pytest.mark.parametrize("excluded", [["^/health"], "^/health, ^/metrics", ("^/healthz$",)])
def test_excluded_urls(make_app, server_spans, excluded):
    """ROUTETIMER_EXCLUDED_URLS regexes are searched in the path; matches get no span."""
    app, timer = make_app(ROUTETIMER_EXCLUDED_URLS=excluded)
    add_routes(app, timer)
    client = app.test_client()
    client.get("/healthz")
    client.get("/api/2")
    assert [s.name for s in server_spans()] == ["GET /api/<int:n>"]


def test_excluded_urls_from_otel_environment(monkeypatch, make_app, server_spans):
    """OpenTelemetry's OTEL_PYTHON_FLASK_EXCLUDED_URLS seeds the default, read at init_app."""
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "ignored-generic")
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "healthz,api/3")
    app, timer = make_app()
    add_routes(app, timer)
    assert app.config["ROUTETIMER_EXCLUDED_URLS"] == "healthz,api/3"
    client = app.test_client()
    for path in ["/healthz", "/api/3", "/api/4"]:
        client.get(path)
    assert [s.attributes["url.path"] for s in server_spans()] == ["/api/4"]


def test_generic_otel_variable_is_the_fallback(monkeypatch, make_app):
    """OTEL_PYTHON_EXCLUDED_URLS applies when the Flask-specific variable is unset."""
    monkeypatch.delenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", raising=False)
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "ready")
    app, _ = make_app()
    assert app.config["ROUTETIMER_EXCLUDED_URLS"] == "ready"


def test_disabled_app_is_not_timed(make_app, server_spans):
    """ROUTETIMER_ENABLED=False turns everything off for that app."""
    app, _ = make_app(ROUTETIMER_ENABLED=False)
    app.add_url_rule("/x", "x", lambda: "x")
    assert app.test_client().get("/x").data == b"x"
    assert server_spans() == []


@pytest.mark.parametrize(
    ("excluded", "api"),
    [
        (["(?i)^/HEALTH", "^/api/9$"], "/api/9"),  # a global flag, valid only at the start
        (["^/(?P<x>health)z?$", "^/api/(?P<x>9)$"], "/api/9"),  # one group name, two patterns
        ([r"^/(h)ealthz$", r"^/api/(9)\1$"], "/api/99"),  # numbered groups, a backreference
        ("(?i)^/HEALTH,^/api/9$", "/api/9"),
        (r"^/he{1,2}alth,^/api/[9,]$", "/api/9"),  # commas inside {m,n} and [...] stay
        (r"^/(health|x,y)z?$,^/api/9$", "/api/9"),  # and inside (...)
    ],
)
def test_each_pattern_works_as_written_alone(make_app, server_spans, excluded, api):
    """Patterns valid on their own still work together: each matches as it would alone, and a
    comma-separated string splits only at commas outside (...), [...] and {m,n} (issue 13)."""
    app, timer = make_app(ROUTETIMER_EXCLUDED_URLS=excluded)
    add_routes(app, timer)
    client = app.test_client()
    for path in ["/healthz", api, "/api/8"]:
        client.get(path)
    assert [s.attributes["url.path"] for s in server_spans()] == ["/api/8"]


def test_patterns_from_the_otel_variable_work_alone(monkeypatch, make_app, server_spans):
    """The same holds for OTEL_PYTHON_EXCLUDED_URLS."""
    monkeypatch.delenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", raising=False)
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "(?i)^/HEALTHZ,^/api/[0-4]{1,2}$")
    app, timer = make_app()
    add_routes(app, timer)
    client = app.test_client()
    for path in ["/healthz", "/api/3", "/api/8"]:
        client.get(path)
    assert [s.attributes["url.path"] for s in server_spans()] == ["/api/8"]


def test_an_invalid_pattern_from_the_otel_variable_is_named(monkeypatch, make_app):
    """The message also says where an unset key's value came from."""
    monkeypatch.delenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", raising=False)
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "^/ok,(?")
    with pytest.raises(ConfigError, match=r"contains '\(\?'.*OTEL_PYTHON_EXCLUDED_URLS"):
        make_app()
