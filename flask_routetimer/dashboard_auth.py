"""Ready-made ``ROUTETIMER_DASHBOARD_AUTH`` functions: HTTP Basic, a bearer token, loopback only.

:func:`basic_auth` (for people, with a browser) and :func:`token_auth` (for scripts) are the way to
show the dashboard outside debug mode. Their secret comes from an argument (read it from your own
config or secret store) or an environment variable, is read once when the function is made (so a
missing or weak secret is a ``ConfigError`` when the app is built), and is compared in constant
time. A request without valid credentials gets a 401 with ``WWW-Authenticate``, so browsers ask
for the user name and password. Serve the dashboard over HTTPS only: both schemes send the secret
with every request.

:func:`loopback_only` is for a developer machine, not for production: see docs/dashboard.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any, Optional

from flask import request

from .config import ConfigError

AUTH_KEY = "ROUTETIMER_DASHBOARD_AUTH"
#: Where :func:`basic_auth` and :func:`token_auth` read their secret unless it is given.
PASSWORD_ENV = "ROUTETIMER_DASHBOARD_PASSWORD"
TOKEN_ENV = "ROUTETIMER_DASHBOARD_TOKEN"
#: A secret must have at least this many characters, and :data:`MIN_DISTINCT` different ones.
MIN_LENGTH = 16
MIN_DISTINCT = 8
REALM = "flask-routetimer dashboard"
#: Headers a reverse proxy adds (environ keys): :func:`loopback_only` refuses requests with any.
FORWARDING_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_REAL_IP",
    "HTTP_X_CLIENT_IP",
    "HTTP_TRUE_CLIENT_IP",
    "HTTP_CF_CONNECTING_IP",
    "HTTP_FASTLY_CLIENT_IP",
    "HTTP_X_CLUSTER_CLIENT_IP",
)
_MAKE_ONE = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
#: RFC 6750's b64token: what a bearer token may hold to be sent in a header.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _digest(value: str) -> bytes:
    # Equal-length digests: compare_digest then takes the same time whatever was sent.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _secret(given: Optional[str], env: str, what: str, helper: str) -> str:
    """The secret given, else the environment variable's; refused when missing or weak."""
    source = f"the {what} passed to {helper}()" if given is not None else f"${env}"
    secret = given if given is not None else os.environ.get(env)
    if not secret:
        raise ConfigError(
            f"{AUTH_KEY}: {helper}() needs a {what}: set the environment variable {env}, or pass "
            f"{what}=..., to a random secret of at least {MIN_LENGTH} characters ({_MAKE_ONE})."
        )
    if not isinstance(secret, str):
        raise ConfigError(f"{AUTH_KEY}: {source} must be a str, got {type(secret).__name__}.")
    problem = ""
    if len(secret) < MIN_LENGTH:
        problem = f"has {len(secret)} characters; at least {MIN_LENGTH} are needed"
    elif len(set(secret)) < MIN_DISTINCT:
        problem = f"has fewer than {MIN_DISTINCT} different characters"
    elif secret != secret.strip() or not secret.isprintable():
        problem = "starts or ends with a space, or holds a control character"
    if problem:
        raise ConfigError(
            f"{AUTH_KEY}: {source} is too weak for the dashboard: it {problem}. Use a random "
            f"secret ({_MAKE_ONE})."
        )
    return secret


class DashboardAuth:
    """A ``ROUTETIMER_DASHBOARD_AUTH`` function that checks an ``Authorization`` header.

    Called with no arguments per dashboard request, it returns True for valid credentials. The
    dashboard answers any other request 401 with :attr:`challenge` as ``WWW-Authenticate``.
    """

    def __init__(self, scheme: str, expected: str, challenge: str) -> None:
        self._scheme = scheme.lower()
        self._expected = _digest(expected)
        #: The ``WWW-Authenticate`` value sent with a 401.
        self.challenge = challenge

    def __call__(self) -> bool:
        return self.check(request.environ)

    def check(self, environ: Mapping[str, Any]) -> bool:
        """True when the request's ``Authorization`` header carries the expected credentials."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != self._scheme:
            return False
        presented = self._decode(credentials.strip())
        # Always one comparison, whatever was sent (a missing value compares as "").
        return hmac.compare_digest(_digest(presented or ""), self._expected) and bool(presented)

    def _decode(self, credentials: str) -> Optional[str]:
        if self._scheme != "basic":
            return credentials
        try:
            return base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None

    def __repr__(self) -> str:  # never the secret, not even its digest
        return f"<DashboardAuth {self._scheme}>"


def basic_auth(
    username: str = "routetimer", password: Optional[str] = None, *, env: str = PASSWORD_ENV
) -> DashboardAuth:
    """HTTP Basic authentication for the dashboard (a browser asks for the user and password).

    The password is ``password``, else the environment variable ``env``
    (``ROUTETIMER_DASHBOARD_PASSWORD``); at least 16 characters, 8 of them different.
    """
    if not isinstance(username, str) or not username or ":" in username:
        raise ConfigError(
            f"{AUTH_KEY}: the user name of basic_auth() must be a non-empty str without ':', "
            f"got {username!r}."
        )
    if not username.isprintable():
        raise ConfigError(f"{AUTH_KEY}: the user name of basic_auth() holds a control character.")
    secret = _secret(password, env, "password", "basic_auth")
    challenge = f'Basic realm="{REALM}", charset="UTF-8"'
    return DashboardAuth("basic", f"{username}:{secret}", challenge)


def token_auth(token: Optional[str] = None, *, env: str = TOKEN_ENV) -> DashboardAuth:
    """A bearer token for the dashboard (``Authorization: Bearer <token>``, for scripts).

    The token is ``token``, else the environment variable ``env`` (``ROUTETIMER_DASHBOARD_TOKEN``);
    at least 16 characters, 8 of them different, from RFC 6750's ``A-Z a-z 0-9 - . _ ~ + /``.
    """
    secret = _secret(token, env, "token", "token_auth")
    if _TOKEN.fullmatch(secret) is None:
        raise ConfigError(
            f"{AUTH_KEY}: the token of token_auth() may hold only letters, digits and "
            f"'-._~+/' (then '=' padding), as an Authorization header can carry ({_MAKE_ONE})."
        )
    return DashboardAuth("bearer", secret, f'Bearer realm="{REALM}"')


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def loopback_only() -> bool:
    """True for a request from this machine that no reverse proxy forwarded.

    Refuses any request carrying a forwarding header (``Forwarded``, ``X-Forwarded-For``,
    ``X-Real-IP``, ...), and judges the socket's peer address even behind ``ProxyFix``. Still
    unsafe behind a proxy on the same host that adds none of these headers: every client then
    arrives from 127.0.0.1. For development machines only; see docs/dashboard.md.
    """
    environ = request.environ
    if any(name in environ for name in FORWARDING_HEADERS):
        return False
    original = environ.get("werkzeug.proxy_fix.orig")
    peer = original.get("REMOTE_ADDR") if isinstance(original, dict) else None
    address = peer if peer is not None else environ.get("REMOTE_ADDR")
    return isinstance(address, str) and _is_loopback(address)
