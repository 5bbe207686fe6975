"""Pure functions that turn a WSGI request into OpenTelemetry span attributes.

Everything here reads the WSGI environ directly (cheaper than Flask's request proxies) and follows
the stable HTTP server semantic conventions. Nothing here raises on hostile input: values are
bounded in length and malformed parts are dropped.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Optional
from urllib.parse import quote

from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL

from .redaction import DEFAULT_QUERY_PARAMS, redact_query
from .wsgi import raw_path, wsgi_to_text

#: Flask-specific attributes; no semantic convention exists for them.
FLASK_ENDPOINT = "flask.endpoint"
FLASK_BLUEPRINT = "flask.blueprint"

#: Methods the semantic conventions call "known"; anything else is reported as ``_OTHER``.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
OTHER_METHOD = "_OTHER"

#: ``url.scheme`` values kept as sent; ``wsgi.url_scheme`` can come from a client's
#: ``X-Forwarded-Proto`` (``ProxyFix``), so anything else is reported as ``_OTHER``.
KNOWN_SCHEMES = frozenset({"http", "https"})
OTHER_SCHEME = "_OTHER"
#: ``SERVER_PROTOCOL`` -> ``network.protocol.version``, for the HTTP versions the semantic
#: conventions know. Werkzeug's server accepts any ``HTTP/1.<digits>``: other versions are left
#: out (the attribute is optional) rather than given a made-up value.
KNOWN_PROTOCOLS = {
    "HTTP/1.0": "1.0",
    "HTTP/1.1": "1.1",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
    "HTTP/3": "3",
    "HTTP/3.0": "3",
}

#: Longest attribute value kept; hostile clients must not make spans arbitrarily large.
MAX_VALUE_LENGTH = 1024

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
#: A character ``quote(..., safe=_PATH_SAFE)`` would change; most paths have none, and a
#: search is a third of what ``quote`` costs.
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/:@!$&'()*+,;=\-._~%]")

#: The attributes we build: a plain dict, mutable until handed to the SDK (the API's
#: ``opentelemetry.util.types.Attributes`` is the read-only mapping spans give back).
AttributeDict = dict[str, Any]


def truncate(value: str, limit: int = MAX_VALUE_LENGTH) -> str:
    """Bound an attribute value so one request cannot bloat every exporter downstream."""
    return value if len(value) <= limit else value[:limit]


def normalize_method(raw: str) -> tuple[str, Optional[str]]:
    """Return ``(http.request.method, http.request.method_original or None)``.

    Werkzeug upper-cases the method before routing, so ``get`` is served as ``GET``; we report the
    method it was served as and keep the spelling the client sent as the original.
    """
    upper = raw.upper()
    if upper in KNOWN_METHODS:
        return upper, (truncate(raw, 64) if raw != upper else None)
    return OTHER_METHOD, truncate(raw, 64)


def span_name(method: str, route: Optional[str]) -> str:
    """``{METHOD} {route}``, ``{METHOD}`` without a route, ``HTTP`` for an unknown method."""
    if method == OTHER_METHOD:
        return "HTTP"
    return f"{method} {route}" if route else method


def url_path(environ: Mapping[str, Any]) -> str:
    """The path the client asked for, prefix (``SCRIPT_NAME``) included, percent-encoded."""
    raw = raw_path(environ)
    if raw and _NEEDS_QUOTING.search(raw) is None:  # ASCII, nothing to encode
        return raw if len(raw) <= MAX_VALUE_LENGTH else raw[:MAX_VALUE_LENGTH]
    return truncate(quote(wsgi_to_text(raw), safe=_PATH_SAFE) or "/")


@lru_cache(maxsize=256)  # an app sees few Host values; a hostile client only churns the cache
def split_host(host: str) -> tuple[str, Optional[int]]:
    """Split a Host header into address and port; a malformed port is dropped, not raised."""
    if host.startswith("["):  # IPv6 literal: [::1]:8080
        address, _, rest = host[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port_text = host.partition(":")
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    if port is not None and port > 65535:
        port = None
    return truncate(address, 255), port


#: The port a client uses when its Host header names none.
DEFAULT_PORTS = {"http": 80, "https": 443}


@lru_cache(maxsize=256)  # per (Host, scheme): one cached call on every request
def host_address(host: str, scheme: str) -> tuple[str, Optional[int]]:
    """Address and port of a Host header; without a port, the scheme's default port."""
    address, port = split_host(host)
    if port is None and not host.endswith(":"):
        port = DEFAULT_PORTS.get(scheme)
    return address, port


def server_address(environ: Mapping[str, Any]) -> tuple[str, Optional[int]]:
    """Server address and port, from the Host header when present (as clients see it).

    A Host without a port means the scheme's default port, which the semantic conventions ask
    for (``server.port`` is conditionally required when known).
    """
    host = environ.get("HTTP_HOST")
    if host:
        return host_address(host, environ.get("wsgi.url_scheme", ""))
    port_text = environ.get("SERVER_PORT", "")
    port = int(port_text) if str(port_text).isdigit() else None
    return truncate(environ.get("SERVER_NAME", "")), port


def protocol_version(environ: Mapping[str, Any]) -> Optional[str]:
    """``HTTP/1.1`` -> ``1.1``; a version the semantic conventions do not know is left out."""
    return KNOWN_PROTOCOLS.get(environ.get("SERVER_PROTOCOL", ""))


def url_scheme(environ: Mapping[str, Any]) -> str:
    """``http`` or ``https``; any other (forged) scheme is ``_OTHER``, for spans and metrics."""
    scheme = environ.get("wsgi.url_scheme", "http")
    return scheme if scheme in KNOWN_SCHEMES else OTHER_SCHEME


def route_attributes(
    method: str, route: Optional[str], endpoint: Optional[str], blueprint: Optional[str]
) -> AttributeDict:
    """The span attributes every request to one (URL rule, method) has: built once per pair."""
    attrs: AttributeDict = {HTTP_REQUEST_METHOD: method}
    if route is not None:
        attrs[HTTP_ROUTE] = route
    if endpoint:
        attrs[FLASK_ENDPOINT] = endpoint
    if blueprint:
        attrs[FLASK_BLUEPRINT] = blueprint
    return attrs


def span_attributes(
    environ: Mapping[str, Any],
    route_attrs: AttributeDict,
    original_method: Optional[str],
    scheme: str,
    protocol: Optional[str],
    redacted_params: frozenset[str] = DEFAULT_QUERY_PARAMS,
) -> AttributeDict:
    """Every attribute known when the request starts, all useful to samplers.

    ``route_attrs`` come from :func:`route_attributes` (copied, never changed); ``scheme`` from
    :func:`url_scheme`, which the metrics read too.
    """
    attrs = route_attrs.copy()
    attrs[URL_PATH] = url_path(environ)
    attrs[URL_SCHEME] = scheme
    if original_method is not None:
        attrs[HTTP_REQUEST_METHOD_ORIGINAL] = original_method
    query = environ.get("QUERY_STRING")
    if query:
        attrs[URL_QUERY] = truncate(redact_query(wsgi_to_text(query), redacted_params))
    host = environ.get("HTTP_HOST")  # server_address(), one call fewer with a Host header
    if host:
        address, port = host_address(host, environ.get("wsgi.url_scheme", ""))
    else:
        address, port = server_address(environ)
    if address:
        attrs[SERVER_ADDRESS] = address
    if port is not None:
        attrs[SERVER_PORT] = port
    client = environ.get("REMOTE_ADDR")
    if client:
        attrs[CLIENT_ADDRESS] = client if len(client) <= 255 else client[:255]
    if protocol:
        attrs[NETWORK_PROTOCOL_VERSION] = protocol
    agent = environ.get("HTTP_USER_AGENT")
    if agent:  # the usual agent: ASCII (the same as text) and short enough, so no calls
        short = len(agent) <= MAX_VALUE_LENGTH and agent.isascii()
        attrs[USER_AGENT_ORIGINAL] = agent if short else truncate(wsgi_to_text(agent))
    return attrs


def is_failure(exception: Optional[BaseException], status_code: Optional[int]) -> bool:
    """A request failed when it raised or answered 5xx (the one definition of "failed")."""
    return exception is not None or (status_code is not None and status_code >= 500)


#: Longest ``exception.stacktrace`` kept (its start and its end, where the message is).
MAX_STACKTRACE_LENGTH = 16 * 1024


def exception_description(exception: BaseException) -> str:
    """``Type: message`` for the span status, bounded like an attribute value."""
    return truncate(f"{type(exception).__qualname__}: {exception}")


def exception_attributes(exception: BaseException) -> Optional[AttributeDict]:
    """Bounded ``exception.message`` and ``exception.stacktrace`` for ``record_exception``, when
    the message is too long (it may hold client input); None leaves the SDK's own."""
    message = str(exception)
    if len(message) <= MAX_VALUE_LENGTH:
        return None
    stack = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    if len(stack) > MAX_STACKTRACE_LENGTH:
        half = MAX_STACKTRACE_LENGTH // 2
        left_out = f"\n[... {len(stack) - 2 * half} characters left out ...]\n"
        stack = stack[:half] + left_out + stack[-half:]
    return {"exception.message": truncate(message), "exception.stacktrace": stack}


def error_type(exception: Optional[BaseException], status_code: Optional[int]) -> Optional[str]:
    """``error.type``: the exception's qualified class name, else the 5xx status code."""
    if exception is not None:
        return type(exception).__qualname__
    if is_failure(None, status_code):
        return str(status_code)
    return None


def blueprint_of(endpoint: Optional[str]) -> Optional[str]:
    """Blueprint part of an endpoint name (``admin.users.list`` -> ``admin.users``)."""
    if endpoint and "." in endpoint:
        return endpoint.rpartition(".")[0]
    return None
