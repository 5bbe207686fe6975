"""Credential query values are REDACTED wherever the query is recorded or shown: the span's
``url.query``, the trace page and the JSON API (issue 13, item 2)."""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from flask import Flask

from flask_routetimer import RouteTimer
from flask_routetimer.redaction import DEFAULT_QUERY_PARAMS, param_name, redact_query

SECRET = "hunter2-s3cr3t"
#: Spellings a client or a library may use; Flask reads each as the name on the right.
CREDENTIAL_KEYS = [
    "token",
    "api_key",
    "apikey",
    "password",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "X-Amz-Credential",
    "X-Goog-Credential",
    "Signature",
    "AWSAccessKeyId",
    "%73ig",  # sig, percent-encoded
    "api%5Fkey",  # api_key
    "ACCESS_TOKEN",
    "%54oken",  # Token
]


@pytest.fixture
def make_credential_app(make_app: Callable[..., tuple[Flask, RouteTimer]]) -> Callable[..., Flask]:
    """``make_credential_app(**config)``: an app in debug mode whose /p view makes a child span
    with credentials in its URL."""

    def factory(**config: Any) -> Flask:
        app, timer = make_app(**{"DEBUG": True, **config})  # the dashboard on: traces kept

        @app.get("/p")
        def page() -> str:
            url = f"https://api.example/v1?otp={SECRET}&x-amz-signature={SECRET}&page=2"
            with timer.timed("call.upstream", attributes={"url.full": url}):
                return "ok"

        return app

    return factory


def test_default_credential_parameters_never_reach_the_span(make_credential_app, server_spans):
    """Every credential name of the default list, in any case or percent-encoding, is REDACTED;
    other parameters are kept as sent."""
    app = make_credential_app()
    query = "&".join(f"{key}={SECRET}" for key in CREDENTIAL_KEYS) + "&page=2&q=a+b"
    app.test_client().get(f"/p?{query}")
    (span,) = server_spans()
    shown = span.attributes["url.query"]
    assert SECRET not in shown
    assert shown.endswith("&page=2&q=a+b")
    assert shown.count("=REDACTED") == len(CREDENTIAL_KEYS)
    assert "%73ig=REDACTED" in shown  # the key stays as sent


def test_added_names_apply_to_spans_pages_and_json(make_credential_app, server_spans):
    """ROUTETIMER_REDACT_QUERY_PARAMS adds names; spans, the trace page and the JSON API all
    hide them, and the defaults stay."""
    app = make_credential_app(ROUTETIMER_REDACT_QUERY_PARAMS="OTP, ticket")
    client = app.test_client()
    client.get(f"/p?otp={SECRET}&Ticket={SECRET}&token={SECRET}&page=2")
    (span,) = server_spans()
    assert span.attributes["url.query"] == "otp=REDACTED&Ticket=REDACTED&token=REDACTED&page=2"
    (trace_id,) = set(re.findall(r"/trace/([0-9a-f]{32})", client.get("/_routetimer/").text))
    page = client.get(f"/_routetimer/trace/{trace_id}").text
    data = client.get(f"/_routetimer/api/traces/{trace_id}").get_data(as_text=True)
    for shown in (page, data):
        assert SECRET not in shown
        assert "otp=REDACTED" in shown and "x-amz-signature=REDACTED" in shown


def test_names_set_explicitly_add_to_the_defaults(make_app):
    """The key's value lists only what is added; the defaults cannot be switched off."""
    app, _ = make_app(ROUTETIMER_REDACT_QUERY_PARAMS=["otp"])
    settings = RouteTimer.state(app).settings
    assert settings.redacted_query_params == DEFAULT_QUERY_PARAMS | {"otp"}


@pytest.mark.parametrize(
    ("raw", "name"),
    [("%73ig", "sig"), ("Api%5FKey", "api_key"), ("x+y", "x y"), ("%E2%82%AC", "€"), ("a", "a")],
)
def test_names_are_compared_as_the_app_reads_them(raw, name):
    """Percent-decoded, ``+`` as a space, lower case."""
    assert param_name(raw) == name


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("sig=a&sig=b&sig", "sig=REDACTED&sig=REDACTED&sig"),
        ("token=a=b;c&x=1", "token=REDACTED&x=1"),
        ("q=token%3Dsecret", "q=token%3Dsecret"),  # a value, not a name
        ("", ""),
    ],
)
def test_redact_query_edges(query, shown):
    """Repeated keys, values holding '=', and names inside values."""
    assert redact_query(query) == shown
