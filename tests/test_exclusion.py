"""Excluded URLs and exempt views get no span and no signal."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask, request
from flask.views import MethodView
from werkzeug.middleware.proxy_fix import ProxyFix

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


# --- Patterns written for OpenTelemetry's full-URL matching, and clients trying to steer them ---


def full_url_app(make_app, **config):
    """An app with add_routes and /client/<int:n>/info behind ProxyFix trusting every
    X-Forwarded-* header; it records what OpenTelemetry would search (``request.url``)."""
    app, timer = make_app(**config)
    add_routes(app, timer)
    app.add_url_rule("/client/<int:n>/info", "info", lambda n: "info")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
    seen = []
    app.before_request(lambda: seen.append(request.url))
    return app, seen


OTEL_PATTERNS = "healthz,client/.*/info,^https?://[^/]+/healthz$"


@pytest.mark.parametrize(
    ("pattern", "excluded"),
    [
        ("healthz", "/healthz"),
        ("client/.*/info", "/client/7/info"),
        (r"^https?://[^/]+/healthz$", "/healthz"),
        (r"^https://[^/]+/healthz$", "/healthz"),  # either scheme
        (r"^https?:\/\/[^/]+/healthz", "/healthz"),  # escaped slashes
    ],
)
def test_otel_full_url_patterns_exclude_the_paths_they_name(
    monkeypatch, make_app, server_spans, pattern, excluded
):
    """OpenTelemetry's documented pattern forms exclude the path they name, with or without a
    query string (OpenTelemetry's ``$`` misses ``/healthz?x=1``); other paths stay timed."""
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", pattern)
    app, _ = full_url_app(make_app)
    client = app.test_client()
    paths = ["/healthz", "/client/7/info", "/api/1"]
    for path in paths:
        client.get(path)
        client.get(f"{path}?x=1", headers={"X-Forwarded-Proto": "https"})
    timed = [s.attributes["url.path"] for s in server_spans()]
    assert timed == [path for path in paths if path != excluded for _ in range(2)]


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, "?healthz"),
        ({}, "?next=/client/1/info"),
        ({"Host": "healthz"}, ""),
        ({"Host": "healthz.example.com"}, ""),
        ({"X-Forwarded-Host": "healthz"}, ""),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "healthz"}, ""),
        ({"X-Forwarded-Prefix": "/healthz"}, ""),
        ({"X-Forwarded-Prefix": "/client/1/info"}, ""),
    ],
)
def test_a_client_cannot_exclude_its_own_request(
    monkeypatch, make_app, server_spans, headers, query
):
    """Host, query string and X-Forwarded-* never decide exclusion, though OpenTelemetry's
    full URL (``request.url``, searched with re.search) matches a pattern for each request."""
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", OTEL_PATTERNS)
    app, seen = full_url_app(make_app)
    assert app.test_client().get(f"/api/1{query}", headers=headers).data == b"1"
    assert [s.attributes["http.route"] for s in server_spans()] == ["/api/<int:n>"]
    otel = re.compile("|".join(OTEL_PATTERNS.split(",")))
    assert otel.search(seen[0]), seen  # OpenTelemetry's instrumentation would not time it


def test_a_full_url_pattern_naming_a_host_is_warned_about(make_app, server_spans, caplog):
    """The Host header never decides: a pattern naming a host is warned about at init_app and
    does not exclude that host's requests; one writing the host as [^/]+ does."""
    patterns = [r"^https://api\.example\.com/healthz$", r"^https?://[^/]+/api/2$"]
    with caplog.at_level(logging.WARNING, "flask_routetimer"):
        app, _ = full_url_app(make_app, ROUTETIMER_EXCLUDED_URLS=patterns)
    assert len(caplog.messages) == 1
    assert r"'^https://api\\.example\\.com/healthz$'" in caplog.messages[0]
    assert "[^/]+" in caplog.messages[0] and "ROUTETIMER_EXCLUDED_URLS" in caplog.messages[0]
    client = app.test_client()
    client.get("/healthz", base_url="https://api.example.com")
    client.get("/api/2", base_url="https://api.example.com")
    assert [s.attributes["url.path"] for s in server_spans()] == ["/healthz"]


def test_path_only_patterns_compile_as_before(make_app):
    """Without a full-URL pattern the matcher is a plain compiled pattern: no work added per
    request."""
    app, _ = make_app(ROUTETIMER_EXCLUDED_URLS=["^/health", "metrics"])
    assert isinstance(app.extensions["routetimer"].settings.excluded, re.Pattern)


def test_routes_command_applies_full_url_patterns(monkeypatch, make_app):
    """``flask routetimer routes`` shows a rule a full-URL pattern names as excluded."""
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", r"^https?://[^/]+/healthz$")
    app, timer = make_app()
    add_routes(app, timer)
    result = app.test_cli_runner().invoke(args=["routetimer", "routes"])
    lines = {line.split()[0]: line for line in result.output.splitlines()[2:]}
    assert lines["healthz"].endswith("excluded (by path)")
    assert lines["api"].endswith("timed")
