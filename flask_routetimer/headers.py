"""Opt-in capture of HTTP headers as ``http.request.header.<name>`` span attributes (and response).

Nothing is captured unless a header name is allow-listed, the way OpenTelemetry's own
instrumentations do it (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``): each list entry is a
case-insensitive regular expression matched against the whole header name. Values of headers
matching the sanitize list become ``REDACTED``; credentials (``Authorization``, ``Cookie``,
``Set-Cookie``, ``Proxy-Authorization``) are always redacted, whatever the lists say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from .attributes import MAX_VALUE_LENGTH, REDACTED, Attributes, truncate
from .patterns import any_of
from .wsgi import header_name, wsgi_to_text

#: Redacted even when allow-listed and whatever the sanitize list says.
ALWAYS_REDACTED = ("authorization", "cookie", "set-cookie", "proxy-authorization")
#: Default sanitize list, on top of :data:`ALWAYS_REDACTED`.
DEFAULT_SANITIZE = (
    *ALWAYS_REDACTED,
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-xsrf-token",
    "proxy-authenticate",
    "www-authenticate",
)
_DEFAULT_SANITIZE_SET = frozenset(DEFAULT_SANITIZE)
#: At most this many headers are captured per request and per response.
MAX_HEADERS = 64

_CGI_HEADERS = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


def environ_headers(environ: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """``(lower-case name, value)`` for each request header of a WSGI environ."""
    for key, value in environ.items():
        name = header_name(key)
        if name is not None:
            yield name, value
        elif key in _CGI_HEADERS and value:
            yield _CGI_HEADERS[key], value


@dataclass(frozen=True)
class HeaderCapture:
    """Which headers to record, and which to redact; built once in ``init_app``."""

    request: Optional[re.Pattern[str]]
    response: Optional[re.Pattern[str]]
    sanitize: re.Pattern[str]

    def _value(self, name: str, value: str) -> str:
        if self.sanitize.fullmatch(name):
            return REDACTED
        return truncate(value, MAX_VALUE_LENGTH)

    def request_attributes(self, environ: Mapping[str, Any]) -> Attributes:
        """``http.request.header.<name>``: one-value lists (the server joins repeated headers)."""
        attrs: Attributes = {}
        if self.request is None:
            return attrs
        for name, value in environ_headers(environ):
            if len(attrs) >= MAX_HEADERS:
                break
            if isinstance(value, str) and self.request.fullmatch(name):
                attrs[f"http.request.header.{name}"] = [self._value(name, wsgi_to_text(value))]
        return attrs

    def response_attributes(self, headers: Iterable[tuple[str, str]]) -> Attributes:
        """``http.response.header.<name>``: every value of each allow-listed response header."""
        attrs: Attributes = {}
        if self.response is None:
            return attrs
        for raw_name, value in headers:
            name = raw_name.lower()
            if not self.response.fullmatch(name):
                continue
            values = attrs.get(f"http.response.header.{name}")
            if values is None:
                if len(attrs) >= MAX_HEADERS:
                    continue
                values = attrs[f"http.response.header.{name}"] = []
            if len(values) < MAX_HEADERS:
                values.append(self._value(name, value))
        return attrs


def is_credential(name: str) -> bool:
    """True for a header whose value is a credential by default (any case, ``-`` or ``_``)."""
    return name.lower().replace("_", "-") in _DEFAULT_SANITIZE_SET


def build(request: list[str], response: list[str], sanitize: list[str]) -> Optional[HeaderCapture]:
    """A :class:`HeaderCapture`, or None when no header is allow-listed (no work per request)."""
    request_pattern = any_of(request, re.IGNORECASE)
    response_pattern = any_of(response, re.IGNORECASE)
    if request_pattern is None and response_pattern is None:
        return None
    always = [re.escape(name) for name in ALWAYS_REDACTED]
    sanitize_pattern = any_of([*always, *sanitize], re.IGNORECASE)
    assert sanitize_pattern is not None  # ALWAYS_REDACTED is never empty
    return HeaderCapture(request_pattern, response_pattern, sanitize_pattern)
