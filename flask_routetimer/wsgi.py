"""The WSGI environ, read directly: header keys, the request path, and text from latin-1.

One definition of each rule, used by span attributes, header capture, propagation and exclusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

HEADER_PREFIX = "HTTP_"


def environ_key(header: str) -> str:
    """The environ key of a request header: ``x-request-id`` -> ``HTTP_X_REQUEST_ID``."""
    return HEADER_PREFIX + header.upper().replace("-", "_")


def header_name(key: str) -> Optional[str]:
    """The lower-case header name of an environ key (None for a key that is not a header)."""
    if key.startswith(HEADER_PREFIX):
        return key[5:].lower().replace("_", "-")
    return None


def raw_path(environ: Mapping[str, Any]) -> str:
    """``SCRIPT_NAME + PATH_INFO`` as the server gave them (latin-1 decoded bytes)."""
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def app_path(environ: Mapping[str, Any]) -> str:
    """The path inside the app (``PATH_INFO``) as text, without the mount prefix.

    The prefix (``SCRIPT_NAME``) is left out on purpose: behind ``ProxyFix(x_prefix=1)`` it is
    whatever the client sent as ``X-Forwarded-Prefix``, so matching it would let a client move a
    request into an excluded path.
    """
    return wsgi_to_text(str(environ.get("PATH_INFO", "")))


def wsgi_to_text(value: str) -> str:
    """Undo WSGI's latin-1 decoding of raw bytes, the way Werkzeug does for ``request.path``."""
    if value.isascii():
        return value  # the same in latin-1 and UTF-8
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value
