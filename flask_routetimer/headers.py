"""Opt-in capture of HTTP headers as ``http.request.header.<name>`` span attributes (and response).

Nothing is captured unless a header name is allow-listed, the way OpenTelemetry's own
instrumentations do it (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``): each list entry is a
case-insensitive regular expression matched against the whole header name. Values of headers
matching the sanitize list become ``REDACTED``; the sanitize list adds to
:data:`DEFAULT_SANITIZE`, so credentials are always redacted, whatever the lists say. This is the
one definition of credential headers: the dashboard redacts with the same pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, cast

from .attributes import MAX_VALUE_LENGTH, AttributeDict, truncate
from .patterns import Matcher, any_of
from .redaction import REDACTED
from .wsgi import header_name, wsgi_to_text

#: Headers always redacted, even when allow-listed: ``ROUTETIMER_CAPTURE_HEADERS_SANITIZE`` (and
#: OpenTelemetry's ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``) add to these.
DEFAULT_SANITIZE = (
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-xsrf-token",
    "proxy-authenticate",
    "www-authenticate",
)
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

    request: Optional[Matcher]
    response: Optional[Matcher]
    sanitize: Matcher

    def _value(self, name: str, value: str) -> str:
        if self.sanitize.fullmatch(name):
            return REDACTED
        return truncate(value, MAX_VALUE_LENGTH)

    def request_attributes(self, environ: Mapping[str, Any]) -> AttributeDict:
        """``http.request.header.<name>``: one-value lists (the server joins repeated headers)."""
        attrs: AttributeDict = {}
        if self.request is None:
            return attrs
        for name, value in environ_headers(environ):
            if len(attrs) >= MAX_HEADERS:
                break
            if isinstance(value, str) and self.request.fullmatch(name):
                attrs[f"http.request.header.{name}"] = [self._value(name, wsgi_to_text(value))]
        return attrs

    def response_attributes(self, headers: Iterable[tuple[str, str]]) -> AttributeDict:
        """``http.response.header.<name>``: every value of each allow-listed response header."""
        attrs: AttributeDict = {}
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


def sanitize_pattern(extra: Iterable[str] = ()) -> Matcher:
    """Whole lower-case header names whose values are redacted: the defaults plus ``extra``."""
    names = [re.escape(name) for name in DEFAULT_SANITIZE]
    return cast(Matcher, any_of([*names, *extra], re.IGNORECASE))  # never empty


#: The default sanitize pattern, for callers without an app's settings.
DEFAULT_SANITIZE_PATTERN = sanitize_pattern()


def build(request: list[str], response: list[str], sanitize: Matcher) -> Optional[HeaderCapture]:
    """A :class:`HeaderCapture`, or None when no header is allow-listed (no work per request)."""
    request_pattern = any_of(request, re.IGNORECASE)
    response_pattern = any_of(response, re.IGNORECASE)
    if request_pattern is None and response_pattern is None:
        return None
    return HeaderCapture(request_pattern, response_pattern, sanitize)
