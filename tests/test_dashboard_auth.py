"""Built-in dashboard auth: HTTP Basic and bearer tokens that fail closed, and a loopback helper
that refuses forwarded requests; behind a real reverse proxy on the same host (issue 13, item 1).
"""

from __future__ import annotations

import base64
import http.client
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server

from flask_routetimer import ConfigError, RouteTimer, basic_auth, loopback_only, token_auth
from flask_routetimer.dashboard_auth import PASSWORD_ENV, TOKEN_ENV

PASSWORD = "correct-horse-battery-staple"
TOKEN = "tK9-vX2_qL7~mN4.pR8+sW1/zY6"
ROOT = Path(__file__).resolve().parent.parent


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def make_production_app(make_app: Callable[..., tuple[Flask, RouteTimer]]) -> Callable[..., Flask]:
    """``make_production_app(auth)``: an app outside debug mode showing its dashboard behind
    ``auth``."""

    def factory(auth: Any, **config: Any) -> Flask:
        app, _ = make_app(ROUTETIMER_DASHBOARD=True, ROUTETIMER_DASHBOARD_AUTH=auth, **config)
        app.add_url_rule("/x", "x", lambda: "x")
        return app

    return factory


# --- basic_auth and token_auth ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/_routetimer/", "/_routetimer/api/stats", "/_routetimer/static/routetimer.css"]
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("routetimer", "wrong-password-but-long"),
        basic("admin", PASSWORD),
        basic("routetimer", PASSWORD + "x"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Bearer {PASSWORD}"},
        {"Authorization": "Basic " + base64.b64encode(b"routetimer:\xff\xfe").decode()},
    ],
    ids=["none", "wrong-password", "wrong-user", "longer", "bad-base64", "bearer", "not-utf8"],
)
def test_basic_auth_answers_401_with_a_challenge(make_production_app, url, headers):
    """Without the right user and password every page, API and static file is a 401 that asks
    for Basic credentials, with the dashboard's security headers and nothing of its content."""
    client = make_production_app(basic_auth(password=PASSWORD)).test_client()
    response = client.get(url, headers=headers, buffered=True)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Basic realm="flask-routetimer dashboard", charset="UTF-8"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in response.headers
    assert b"routes" not in response.data.lower()


def test_basic_auth_lets_the_right_credentials_in(make_production_app, monkeypatch):
    """The password from ROUTETIMER_DASHBOARD_PASSWORD (or passed in) and the user name open
    the dashboard outside debug mode."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    client = make_production_app(basic_auth("ops")).test_client()
    client.get("/x")
    response = client.get("/_routetimer/api/stats", headers=basic("ops", PASSWORD))
    assert response.status_code == 200 and response.json["routes"][0]["route"] == "/x"
    unicode_password = "pässwörd-ünïcødé-12345"
    client = make_production_app(basic_auth("ops", unicode_password)).test_client()
    assert client.get("/_routetimer/", headers=basic("ops", unicode_password)).status_code == 200


def test_token_auth_takes_a_bearer_token(make_production_app, monkeypatch):
    """A bearer token from ROUTETIMER_DASHBOARD_TOKEN opens the dashboard; anything else is 401
    with a Bearer challenge."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    client = make_production_app(token_auth()).test_client()
    assert (
        client.get("/_routetimer/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    for headers in [{}, {"Authorization": f"Bearer {TOKEN[:-1]}"}, basic("x", TOKEN)]:
        response = client.get("/_routetimer/", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="flask-routetimer dashboard"'


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: basic_auth(), f"basic_auth\\(\\) needs a password: set .*{PASSWORD_ENV}"),
        (lambda: token_auth(), f"token_auth\\(\\) needs a token: set .*{TOKEN_ENV}"),
        (lambda: basic_auth(password=""), "needs a password"),
        (lambda: basic_auth(password="short-secret"), "has 12 characters; at least 16"),
        (lambda: basic_auth(password="abababababababababab"), "fewer than 8 different"),
        (lambda: basic_auth(password=" " + PASSWORD), "starts or ends with a space"),
        (lambda: basic_auth(password=PASSWORD + "\n"), "starts or ends with a space"),
        (lambda: basic_auth("a:b", PASSWORD), "user name of basic_auth\\(\\) must be .* without"),
        (lambda: basic_auth("", PASSWORD), "user name of basic_auth\\(\\) must be a non-empty"),
        (lambda: token_auth("has spaces in the token"), "may hold only letters, digits"),
    ],
)
def test_a_missing_or_weak_secret_is_a_config_error(monkeypatch, make, message):
    """Refused when the app is built, naming the key and what would do."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"ROUTETIMER_DASHBOARD_AUTH: .*{message}"):
        make()


def test_a_weak_secret_from_the_environment_names_the_variable(monkeypatch):
    """The error says where the weak secret came from."""
    monkeypatch.setenv(PASSWORD_ENV, "hunter2")
    with pytest.raises(ConfigError, match=rf"\${PASSWORD_ENV} is too weak") as error:
        basic_auth()
    assert "hunter2" not in str(error.value)


def test_the_secret_never_shows_in_repr():
    """Neither the secret nor its digest is in the auth function's repr (tracebacks, logs)."""
    assert repr(basic_auth(password=PASSWORD)) == "<DashboardAuth basic>"
    assert TOKEN not in repr(token_auth(TOKEN))


# --- loopback_only ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("127.0.0.2", {}, True),
        ("::1", {}, True),
        ("::ffff:127.0.0.1", {}, True),
        ("10.0.0.7", {}, False),
        ("", {}, False),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, False),
        ("127.0.0.1", {"Forwarded": "for=203.0.113.9"}, False),
        ("127.0.0.1", {"X-Real-IP": "203.0.113.9"}, False),
        ("127.0.0.1", {"X-Forwarded-For": "127.0.0.1"}, False),
    ],
)
def test_loopback_only_refuses_forwarded_requests(make_production_app, remote, headers, allowed):
    """Only an unforwarded request from a loopback address is let in (403 otherwise)."""
    client = make_production_app(loopback_only).test_client()
    response = client.get("/_routetimer/", headers=headers, environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == (200 if allowed else 403)
    assert "WWW-Authenticate" not in response.headers


def test_loopback_only_judges_the_socket_peer_behind_proxy_fix(make_production_app):
    """ProxyFix rewrites REMOTE_ADDR from X-Forwarded-For; a client forging 127.0.0.1 there is
    still refused."""
    app = make_production_app(loopback_only)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    response = app.test_client().get(
        "/_routetimer/",
        headers={"X-Forwarded-For": "127.0.0.1"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 403


# --- Behind a real reverse proxy on the same host ---------------------------------------------


@contextmanager
def serve(app: Flask) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextmanager
def reverse_proxy(backend: int, forwarded_for: bool) -> Iterator[int]:
    """An nginx-style ``proxy_pass`` on 127.0.0.1: with ``forwarded_for`` it adds
    ``X-Forwarded-For`` (as nginx configs usually do), else it adds nothing."""

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            if forwarded_for:
                headers["X-Forwarded-For"] = "203.0.113.9"  # the internet client
            upstream = http.client.HTTPConnection("127.0.0.1", backend, timeout=10)
            upstream.request("GET", self.path, headers=headers)
            reply = upstream.getresponse()
            body = reply.read()
            self.send_response(reply.status)
            for name, value in reply.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            upstream.close()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def fetch(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/_routetimer/api/stats", headers=headers)
        reply = connection.getresponse()
        reply.read()
        return reply.status, dict(reply.getheaders())
    finally:
        connection.close()


def test_behind_a_same_host_proxy(make_production_app):
    """Behind a reverse proxy on the same host every client arrives from 127.0.0.1: the old
    documented ``remote_addr`` check lets the internet in; loopback_only refuses requests the
    proxy marks as forwarded; basic_auth holds whatever the proxy does."""
    old_docs = make_production_app(lambda: request.remote_addr in ("127.0.0.1", "::1"))
    loopback = make_production_app(loopback_only)
    with_basic = make_production_app(basic_auth(password=PASSWORD))
    with serve(old_docs) as a, serve(loopback) as b, serve(with_basic) as c:
        with reverse_proxy(a, True) as to_a, reverse_proxy(b, True) as to_b:
            assert fetch(to_a, {})[0] == 200  # fails open: the reason for issue 13
            assert fetch(to_b, {})[0] == 403
        with reverse_proxy(b, False) as to_b:
            # A proxy that adds no forwarding header makes every client look local: the limit
            # docs/dashboard.md states for loopback_only.
            assert fetch(to_b, {})[0] == 200
        for forwarded in (True, False):
            with reverse_proxy(c, forwarded) as to_c:
                status, headers = fetch(to_c, {})
                assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
                assert fetch(to_c, basic("routetimer", PASSWORD))[0] == 200


# --- Docs and examples --------------------------------------------------------------------------


def test_no_doc_or_example_shows_a_fail_open_remote_addr_check():
    """README, docs, docs examples and the example app never suggest ``remote_addr`` as
    dashboard auth (it fails open behind a same-host proxy)."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "docs").rglob("*.py")]
    files += list((ROOT / "example_app").rglob("*.py"))
    offending = [
        str(path.relative_to(ROOT))
        for path in files
        if re.search(r"remote_addr\s*(==|in\b)", path.read_text(encoding="utf-8"))
    ]
    assert offending == []
