"""Opt-in header capture and credential redaction in captured headers."""

from __future__ import annotations

import pytest
from flask import Response
from werkzeug.test import EnvironBuilder, run_wsgi_app

from flask_routetimer.attributes import MAX_VALUE_LENGTH
from flask_routetimer.headers import MAX_HEADERS

SECRET = "s3cr3t-value"


@pytest.fixture
def make_header_app(make_app):
    def factory(**config):
        app, timer = make_app(**config)

        @app.get("/h")
        def h() -> Response:
            response = Response("ok")
            response.headers["X-Served-By"] = "node-1"
            response.headers.add("X-Multi", "a")
            response.headers.add("X-Multi", "b")
            response.set_cookie("session", SECRET)
            return response

        return app

    return factory


def span_attributes(server_spans):
    (span,) = server_spans()
    return dict(span.attributes)


def test_nothing_is_captured_by_default(make_header_app, server_spans):
    """Without an allow-list no header, secret or not, becomes an attribute."""
    app = make_header_app()
    assert app.extensions["routetimer"].settings.headers is None  # no per-request work
    app.test_client().get("/h", headers={"Authorization": SECRET, "X-Request-Id": "r1"})
    attributes = span_attributes(server_spans)
    assert not [key for key in attributes if ".header." in key]
    assert SECRET not in repr(attributes)


def test_allow_listed_headers_are_captured(make_header_app, server_spans):
    """Allow-listed request and response headers become lists of values, names in lower case."""
    app = make_header_app(
        ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=["X-Request-Id", "content-type"],
        ROUTETIMER_CAPTURE_HEADERS_SERVER_RESPONSE="x-served-by, X-MULTI",
    )
    app.test_client().get(
        "/h", headers={"X-Request-Id": "r1", "Content-Type": "text/plain", "X-Other": "no"}
    )
    attributes = span_attributes(server_spans)
    assert attributes["http.request.header.x-request-id"] == ("r1",)
    assert attributes["http.request.header.content-type"] == ("text/plain",)
    assert attributes["http.response.header.x-served-by"] == ("node-1",)
    assert attributes["http.response.header.x-multi"] == ("a", "b")
    assert "http.request.header.x-other" not in attributes


def test_credentials_are_redacted_even_when_allow_listed(make_header_app, server_spans):
    """Authorization, Cookie, Set-Cookie, Proxy-Authorization: always REDACTED, even with '.*'."""
    app = make_header_app(
        ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=".*",
        ROUTETIMER_CAPTURE_HEADERS_SERVER_RESPONSE=[".*"],
        ROUTETIMER_CAPTURE_HEADERS_SANITIZE=[],  # even an empty sanitize list keeps them
    )
    environ = EnvironBuilder(
        path="/h",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "Proxy-Authorization": SECRET,
            "X-Request-Id": "r1",
        },
    ).get_environ()
    environ["HTTP_COOKIE"] = f"session={SECRET}"  # the test client's cookie jar would drop it
    run_wsgi_app(app, environ, buffered=True)
    attributes = span_attributes(server_spans)
    assert SECRET not in repr(attributes)
    for key in (
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.request.header.proxy-authorization",
        "http.response.header.set-cookie",
    ):
        assert attributes[key] == ("REDACTED",), key
    assert attributes["http.request.header.x-request-id"] == ("r1",)


@pytest.mark.parametrize("sanitize", [["x-secret-.*"], "x-secret-.*", "x-secret-.{1,9}"])
def test_sanitize_list_adds_to_the_defaults(make_header_app, server_spans, sanitize):
    """Names (or regexes) on the sanitize list are REDACTED, and so are the default credential
    headers: the key adds to the default list, as OpenTelemetry's variable does (issue 13)."""
    app = make_header_app(
        ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=["x-.*"],
        ROUTETIMER_CAPTURE_HEADERS_SANITIZE=sanitize,
    )
    defaults = {"X-Api-Key": SECRET, "X-Auth-Token": SECRET, "X-CSRF-Token": SECRET}
    app.test_client().get("/h", headers={"X-Secret-Token": SECRET, **defaults, "X-Seen": "1"})
    attributes = span_attributes(server_spans)
    for name in ["x-secret-token", "x-api-key", "x-auth-token", "x-csrf-token"]:
        assert attributes[f"http.request.header.{name}"] == ("REDACTED",), name
    assert attributes["http.request.header.x-seen"] == ("1",)
    assert SECRET not in repr(attributes)


def test_default_sanitize_list_covers_api_keys(make_header_app, server_spans):
    """By default the common credential headers are redacted too."""
    app = make_header_app(ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=["x-api-key"])
    app.test_client().get("/h", headers={"X-Api-Key": SECRET})
    assert span_attributes(server_spans)["http.request.header.x-api-key"] == ("REDACTED",)


def test_otel_environment_variables_are_the_defaults(monkeypatch, make_header_app, server_spans):
    """OpenTelemetry's OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* seed the keys."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-a,x-b")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-served-by")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "x-b")
    app = make_header_app()
    app.test_client().get("/h", headers={"X-A": "1", "X-B": SECRET})
    attributes = span_attributes(server_spans)
    assert attributes["http.request.header.x-a"] == ("1",)
    assert attributes["http.request.header.x-b"] == ("REDACTED",)
    assert attributes["http.response.header.x-served-by"] == ("node-1",)
    assert app.config["ROUTETIMER_CAPTURE_HEADERS_SANITIZE"] == "x-b"  # added to the defaults


def test_captured_values_and_counts_are_bounded(make_header_app, server_spans):
    """An overlong value is truncated and at most MAX_HEADERS headers are captured."""
    app = make_header_app(ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=["x-.*"])
    headers = {f"X-H{index}": "v" for index in range(MAX_HEADERS + 20)}
    headers["X-Long"] = "x" * (MAX_VALUE_LENGTH * 4)
    app.test_client().get("/h", headers=headers)
    captured = {k: v for k, v in span_attributes(server_spans).items() if ".header." in k}
    assert len(captured) <= MAX_HEADERS
    assert all(len(value) <= MAX_VALUE_LENGTH for values in captured.values() for value in values)


def test_header_patterns_each_work_alone(make_header_app, server_spans):
    """A pattern with an inline (?i) flag beside others works (issue 13: never a bare re.error)."""
    app = make_header_app(
        ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST="(?i)x-a,x-b{1,2}",
        ROUTETIMER_CAPTURE_HEADERS_SANITIZE=["(?i)x-b+", "x-c"],
    )
    app.test_client().get("/h", headers={"X-A": "1", "X-Bb": SECRET})
    attributes = span_attributes(server_spans)
    assert attributes["http.request.header.x-a"] == ("1",)
    assert attributes["http.request.header.x-bb"] == ("REDACTED",)
