"""Credential values in query strings: the one rule for what is never exported or shown.

The span's ``url.query`` (built in :mod:`flask_routetimer.attributes`) and every query string or
URL the dashboard shows (:mod:`flask_routetimer.dashboard.present`) go through
:func:`redact_query`, so an exporter and the dashboard never disagree. Names are compared the way
the app reads them: percent-decoded, ``+`` as a space, then case-insensitively, so ``%73ig`` (which
Flask reads as ``sig``) and ``X-AMZ-SIGNATURE`` are redacted too. Header names are in
:mod:`flask_routetimer.headers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_plus

REDACTED = "REDACTED"

#: Query parameters whose values are credentials (lower case). ``ROUTETIMER_REDACT_QUERY_PARAMS``
#: adds to these; none can be removed. Sources: the semantic conventions' minimum for
#: ``url.query`` (``AWSAccessKeyId``, ``Signature``, ``sig``, ``X-Goog-Signature``); pre-signed
#: URLs of AWS SigV4 (``X-Amz-*``), Google Cloud Storage V4 (``X-Goog-*``) and Azure SAS
#: (``sig``); OAuth 2.0 and OpenID Connect (RFC 6749 and 6750: tokens, ``client_secret``,
#: ``code`` and ``code_verifier``, JWT ``assertion``); and the names APIs commonly use for keys,
#: tokens, passwords and sessions (``key`` is Google APIs' API key, ``private_token`` GitLab's).
#: A harmless parameter of the same name (``?code=FR``) is hidden too: that costs a diagnostic,
#: exporting a credential to a tracing backend costs much more.
DEFAULT_QUERY_PARAMS = frozenset(
    {
        # semantic conventions, AWS, Google Cloud, Azure
        "awsaccesskeyid",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-security-token",
        "x-amz-credential",
        "x-goog-signature",
        "x-goog-credential",
        # OAuth 2.0 / OpenID Connect
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "assertion",
        "code",
        "code_verifier",
        # keys, tokens, passwords, sessions
        "token",
        "auth",
        "auth_token",
        "authorization",
        "jwt",
        "key",
        "api_key",
        "api-key",
        "apikey",
        "access_key",
        "secret",
        "secret_key",
        "private_token",
        "password",
        "passwd",
        "pwd",
        "session",
        "sessionid",
        "session_id",
    }
)


def param_name(raw: str) -> str:
    """A query parameter name as the app reads it (percent-decoded, ``+`` a space), lower case."""
    if "%" in raw or "+" in raw:
        raw = unquote_plus(raw)
    return raw.lower()


def param_names(names: Iterable[str]) -> frozenset[str]:
    """The default names plus ``names``, in the form :func:`redact_query` compares."""
    return DEFAULT_QUERY_PARAMS | {param_name(name) for name in names}


def redact_query(query: str, names: frozenset[str] = DEFAULT_QUERY_PARAMS) -> str:
    """Replace the values of credential parameters with ``REDACTED``; the rest is kept as sent.

    Parameters are separated by ``&`` only, as Werkzeug and ``urllib.parse`` read them.
    """
    if not query:
        return query
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        key, sep, _ = part.partition("=")
        if sep and param_name(key) in names:
            parts[index] = f"{key}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else query


def redact_url(url: str, names: frozenset[str] = DEFAULT_QUERY_PARAMS) -> str:
    """Hide credential query values and any ``user:password@`` part of a URL or target."""
    base, sep, rest = url.partition("?")
    query, hash_sep, fragment = rest.partition("#")
    scheme, slashes, authority = base.partition("://")
    if slashes and "@" in authority.split("/", 1)[0]:
        base = f"{scheme}://{REDACTED}@{authority.split('@', 1)[1]}"
    return f"{base}{sep}{redact_query(query, names)}{hash_sep}{fragment}"
