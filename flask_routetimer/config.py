"""Reading and validating the ``ROUTETIMER_*`` config keys.

Config is read once, in ``init_app``, and validated there: a wrong value is reported when the app
is built, naming the key and what would be valid, never at the first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, cast

from . import headers as header_capture

EXCLUDED_URLS_ENV = ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
REQUEST_HEADERS = "ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST"
RESPONSE_HEADERS = "ROUTETIMER_CAPTURE_HEADERS_SERVER_RESPONSE"
SANITIZE_HEADERS = "ROUTETIMER_CAPTURE_HEADERS_SANITIZE"
#: OpenTelemetry's variables for header capture, used as defaults of the ``ROUTETIMER_`` keys.
CAPTURE_HEADERS_ENV = {
    REQUEST_HEADERS: "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    RESPONSE_HEADERS: "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
    SANITIZE_HEADERS: "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
}


class ConfigError(ValueError):
    """A ``ROUTETIMER_*`` config key or a constructor argument has an invalid value."""


@dataclass(frozen=True)
class Settings:
    """Validated per-app settings; the hot path reads only these."""

    enabled: bool
    excluded: Optional[re.Pattern[str]]
    server_timing: Optional[bool]  # None: follow app.debug, read per request (app.run(debug=True))
    record_exceptions: bool
    max_routes: int
    trace_buffer: int
    dashboard: Optional[bool]  # None: on only while app.debug
    dashboard_url: str
    dashboard_auth: Optional[Callable[[], bool]]
    configure_sdk: bool
    headers: Optional[header_capture.HeaderCapture] = None  # None: no header is captured
    timing_allow_origin: Optional[str] = None  # Timing-Allow-Origin value sent with Server-Timing

    def dashboard_on(self, debug: bool) -> bool:
        """``ROUTETIMER_DASHBOARD`` if set, else the app's debug flag *now* (``app.run(debug=True)``
        sets it after ``init_app``)."""
        if not debug and self.dashboard_auth is None:
            # Outside debug an unauthenticated dashboard is never served, even if debug was on
            # when init_app accepted ROUTETIMER_DASHBOARD=True without an auth function.
            return False
        return debug if self.dashboard is None else self.dashboard


def _excluded_default(environ: Mapping[str, str]) -> str:
    for name in EXCLUDED_URLS_ENV:
        value = environ.get(name, "").strip()
        if value:
            return value
    return ""


def set_defaults(config: MutableMapping[str, Any], environ: Mapping[str, str]) -> None:
    """Fill in every key the user did not set; OpenTelemetry's env variables seed exclusions."""
    config.setdefault("ROUTETIMER_ENABLED", True)
    config.setdefault("ROUTETIMER_EXCLUDED_URLS", _excluded_default(environ))
    config.setdefault("ROUTETIMER_SERVER_TIMING", None)
    config.setdefault("ROUTETIMER_RECORD_EXCEPTIONS", True)
    config.setdefault("ROUTETIMER_MAX_ROUTES", 1000)
    config.setdefault("ROUTETIMER_TRACE_BUFFER", 200)
    config.setdefault("ROUTETIMER_DASHBOARD", None)
    config.setdefault("ROUTETIMER_DASHBOARD_URL", "/_routetimer")
    config.setdefault("ROUTETIMER_DASHBOARD_AUTH", None)
    config.setdefault("ROUTETIMER_CONFIGURE_SDK", False)
    for key, name in CAPTURE_HEADERS_ENV.items():
        extra = string_list(name, environ.get(name, ""), "header names")
        if key == SANITIZE_HEADERS:
            config.setdefault(key, [*header_capture.DEFAULT_SANITIZE, *extra])
        else:
            config.setdefault(key, extra)
    config.setdefault("ROUTETIMER_TIMING_ALLOW_ORIGIN", None)


def require_bool(key: str, value: Any) -> bool:
    """Accept only real booleans: ``"false"`` being truthy is a classic config bug."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be True or False, got {value!r} ({type(value).__name__}).")
    return value


def optional_bool(key: str, value: Any) -> Optional[bool]:
    """A boolean, or None for "decide from the app" (e.g. on in debug mode)."""
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(
            f"{key} must be True, False or None, got {value!r} ({type(value).__name__})."
        )
    return value


def require_int(key: str, value: Any, minimum: int) -> int:
    """An integer of at least ``minimum`` (booleans are refused: True is not a size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}.")
    return value


def url_prefix(key: str, value: Any) -> str:
    """A URL prefix such as ``/_routetimer``: starts with a slash, no trailing slash."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) < 2:
        raise ConfigError(
            f"{key} must be a URL path starting with '/', such as '/_routetimer', got {value!r}."
        )
    return value.rstrip("/")


def optional_callable(key: str, value: Any) -> Optional[Callable[[], bool]]:
    if value is not None and not callable(value):
        raise ConfigError(
            f"{key} must be a function taking no arguments that returns True for an allowed "
            f"request (it can read flask.request), or None; got {type(value).__name__}."
        )
    return cast(Optional[Callable[[], bool]], value)


def string_list(key: str, value: Any, what: str) -> list[str]:
    """A list of strings, or one comma-separated string (as env variables are); blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)) and all(
        isinstance(part, str) for part in value
    ):
        parts = list(value)
    else:
        raise ConfigError(
            f"{key} must be {what}, or a comma-separated string; got {value!r} "
            f"({type(value).__name__})."
        )
    return [part.strip() for part in parts if part.strip()]


def valid_regexes(key: str, patterns: list[str], what: str) -> list[str]:
    """Refuse, naming the key, any entry that is not a valid regular expression."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{key} contains {pattern!r}, which is {what}: {exc}.") from None
    return patterns


def compile_patterns(key: str, value: Any) -> Optional[re.Pattern[str]]:
    """Compile a list of regexes (or one comma-separated string) into a single pattern."""
    patterns = valid_regexes(
        key,
        string_list(key, value, "a list of regular expressions"),
        "not a valid regular expression",
    )
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


def header_patterns(key: str, value: Any) -> list[str]:
    """A list of header names or case-insensitive regexes (or one comma-separated string)."""
    return valid_regexes(
        key,
        string_list(
            key,
            value,
            "a list of header names (or regular expressions matching whole names, such as "
            "'x-request-id' or 'x-.*')",
        ),
        "neither a header name nor a valid regular expression",
    )


def timing_allow_origin(key: str, value: Any) -> Optional[str]:
    """The ``Timing-Allow-Origin`` header value: ``"*"``, an origin, or a list of origins."""
    if value is None:
        return None
    origins = [value] if isinstance(value, str) else value
    if (
        not isinstance(origins, (list, tuple))
        or not origins
        or not all(
            isinstance(origin, str)
            and origin.strip()
            and "," not in origin
            and origin.isprintable()
            for origin in origins
        )
    ):
        raise ConfigError(
            f"{key} must be None (no Timing-Allow-Origin header), '*', or an origin such as "
            f"'https://example.com', or a non-empty list of origins (each printable, without "
            f"commas); got {value!r}."
        )
    return ", ".join(origin.strip() for origin in origins)


def read_settings(config: Mapping[str, Any], debug: bool) -> Settings:
    """Validate the app's config; ``debug`` is the app's debug flag at ``init_app``."""
    settings = Settings(
        enabled=require_bool("ROUTETIMER_ENABLED", config["ROUTETIMER_ENABLED"]),
        excluded=compile_patterns("ROUTETIMER_EXCLUDED_URLS", config["ROUTETIMER_EXCLUDED_URLS"]),
        server_timing=optional_bool("ROUTETIMER_SERVER_TIMING", config["ROUTETIMER_SERVER_TIMING"]),
        record_exceptions=require_bool(
            "ROUTETIMER_RECORD_EXCEPTIONS", config["ROUTETIMER_RECORD_EXCEPTIONS"]
        ),
        max_routes=require_int("ROUTETIMER_MAX_ROUTES", config["ROUTETIMER_MAX_ROUTES"], 1),
        trace_buffer=require_int("ROUTETIMER_TRACE_BUFFER", config["ROUTETIMER_TRACE_BUFFER"], 0),
        dashboard=optional_bool("ROUTETIMER_DASHBOARD", config["ROUTETIMER_DASHBOARD"]),
        dashboard_url=url_prefix("ROUTETIMER_DASHBOARD_URL", config["ROUTETIMER_DASHBOARD_URL"]),
        dashboard_auth=optional_callable(
            "ROUTETIMER_DASHBOARD_AUTH", config["ROUTETIMER_DASHBOARD_AUTH"]
        ),
        configure_sdk=require_bool("ROUTETIMER_CONFIGURE_SDK", config["ROUTETIMER_CONFIGURE_SDK"]),
        headers=header_capture.build(
            request=header_patterns(REQUEST_HEADERS, config[REQUEST_HEADERS]),
            response=header_patterns(RESPONSE_HEADERS, config[RESPONSE_HEADERS]),
            sanitize=header_patterns(SANITIZE_HEADERS, config[SANITIZE_HEADERS]),
        ),
        timing_allow_origin=timing_allow_origin(
            "ROUTETIMER_TIMING_ALLOW_ORIGIN", config["ROUTETIMER_TIMING_ALLOW_ORIGIN"]
        ),
    )
    if settings.dashboard and not debug and settings.dashboard_auth is None:
        raise ConfigError(
            "ROUTETIMER_DASHBOARD is True outside debug mode, so ROUTETIMER_DASHBOARD_AUTH must "
            "be set: a function returning True for requests allowed to see the dashboard "
            "(e.g. lambda: request.remote_addr == '127.0.0.1'). Or leave ROUTETIMER_DASHBOARD "
            "unset to show it in debug mode only."
        )
    return settings


def environment() -> Mapping[str, str]:
    """The process environment, read when ``init_app`` runs (never at import time)."""
    return os.environ
