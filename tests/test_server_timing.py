"""Server-Timing: the app's duration sent to the browser, in debug or when configured, and
Timing-Allow-Origin beside it."""

from __future__ import annotations

import re

import pytest


def test_off_by_default_outside_debug(routed, client):
    """No Server-Timing header unless debug or configured."""
    assert "Server-Timing" not in client.get("/hello/x").headers


def test_on_in_debug(routed, client):
    """In debug mode the header is added, in milliseconds."""
    routed.debug = True
    header = client.get("/hello/x").headers["Server-Timing"]
    assert re.fullmatch(r"app;dur=\d+\.\d", header)


def test_forced_on_outside_debug(make_app):
    """ROUTETIMER_SERVER_TIMING=True adds the header outside debug."""
    app, _ = make_app(ROUTETIMER_SERVER_TIMING=True)
    app.add_url_rule("/x", "x", lambda: "x")
    assert app.test_client().get("/x").headers["Server-Timing"].startswith("app;dur=")


def test_forced_off_in_debug(make_app):
    """ROUTETIMER_SERVER_TIMING=False wins over debug."""
    app, _ = make_app(ROUTETIMER_SERVER_TIMING=False, DEBUG=True)
    app.add_url_rule("/x", "x", lambda: "x")
    assert "Server-Timing" not in app.test_client().get("/x").headers


@pytest.mark.parametrize(
    "origin, sent",
    [
        (None, None),
        ("*", "*"),
        ("https://a.example", "https://a.example"),
        (["https://a.example", "https://b.example"], "https://a.example, https://b.example"),
    ],
)
def test_timing_allow_origin_goes_with_server_timing(make_app, origin, sent):
    """Timing-Allow-Origin is sent only when configured, and only next to Server-Timing."""
    app, _ = make_app(ROUTETIMER_SERVER_TIMING=True, ROUTETIMER_TIMING_ALLOW_ORIGIN=origin)
    app.add_url_rule("/", "index", lambda: "ok")
    response = app.test_client().get("/")
    assert response.headers.get("Server-Timing", "").startswith("app;dur=")
    assert response.headers.get("Timing-Allow-Origin") == sent


def test_no_timing_headers_outside_debug(make_app):
    """Outside debug mode, neither Server-Timing nor Timing-Allow-Origin is sent by default."""
    app, _ = make_app(ROUTETIMER_TIMING_ALLOW_ORIGIN="*")
    app.add_url_rule("/", "index", lambda: "ok")
    response = app.test_client().get("/")
    assert "Server-Timing" not in response.headers
    assert "Timing-Allow-Origin" not in response.headers
