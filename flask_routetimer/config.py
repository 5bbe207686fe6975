"""The ``ROUTETIMER_*`` config keys: one table, from which defaults, validation and docs come.

Config is read once, in ``init_app``, and validated there: a wrong value is reported when the app
is built, naming the key and what would be valid, never at the first request. Each key is one
:class:`ConfigKey` in :data:`CONFIG_KEYS`; :func:`markdown_table` is the table that
docs/configuration.md shows (a test keeps the two equal).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, cast

from . import headers as header_capture
from .exclusion import Exclusion, exclusion
from .patterns import Matcher
from .redaction import param_names


class ConfigError(ValueError):
    """A ``ROUTETIMER_*`` config key or a constructor argument has an invalid value."""


def on_unless_set(value: Optional[bool], debug: bool) -> bool:
    """A tri-state switch: True/False as set, None meaning "on while the app is in debug mode"."""
    return debug if value is None else value


@dataclass(frozen=True)
class Settings:
    """Validated per-app settings; the hot path reads only these."""

    enabled: bool
    excluded: Optional[Exclusion]
    server_timing: Optional[bool]  # None: follow app.debug, read per request (app.run(debug=True))
    log_requests: Optional[bool]  # None: follow app.debug, read per request
    record_exceptions: bool
    max_routes: int
    trace_buffer: int
    dashboard: Optional[bool]  # None: on only while app.debug
    dashboard_url: str
    dashboard_auth: Optional[Callable[[], bool]]
    dashboard_host: Optional[str]
    configure_sdk: bool
    timing_allow_origin: Optional[str]  # Timing-Allow-Origin value sent with Server-Timing
    capture_request: list[str]
    capture_response: list[str]
    capture_sanitize: list[str]
    time_templates: bool
    #: Query parameter names (decoded, lower case) whose values are REDACTED, defaults included.
    redacted_query_params: frozenset[str]
    #: Header names whose values are REDACTED, captured or shown by the dashboard: the default
    #: credential headers plus ``capture_sanitize``.
    sanitized_headers: Matcher = field(init=False)
    #: Where the server's worker processes share statistics and traces; None: this process only.
    multiproc_dir: Optional[str] = None
    multiproc_interval: float = 1.0  # seconds between a worker's writes to multiproc_dir
    #: Built from the three capture lists; None when no header is captured (no work per request).
    headers: Optional[header_capture.HeaderCapture] = field(init=False)

    def __post_init__(self) -> None:
        sanitized = header_capture.sanitize_pattern(self.capture_sanitize)
        object.__setattr__(self, "sanitized_headers", sanitized)
        capture = header_capture.build(self.capture_request, self.capture_response, sanitized)
        object.__setattr__(self, "headers", capture)

    def dashboard_on(self, debug: bool) -> bool:
        """``ROUTETIMER_DASHBOARD`` if set, else the app's debug flag *now* (``app.run(debug=True)``
        sets it after ``init_app``)."""
        if not debug and self.dashboard_auth is None:
            # Outside debug an unauthenticated dashboard is never served, even if debug was on
            # when init_app accepted ROUTETIMER_DASHBOARD=True without an auth function.
            return False
        return on_unless_set(self.dashboard, debug)

    def dashboard_registered(self, debug: bool) -> bool:
        """Whether ``init_app`` adds the dashboard's routes: only if it can ever be on.

        With the dashboard off (the production default) the app is left exactly as it was: no
        URL rule, blueprint or template is added.
        """
        return on_unless_set(self.dashboard, debug)

    def server_timing_on(self, debug: bool) -> bool:
        """Whether to send ``Server-Timing`` now (None follows the debug flag, read per request)."""
        return on_unless_set(self.server_timing, debug)


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


_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def url_prefix(key: str, value: Any) -> str:
    """A URL prefix such as ``/_routetimer``: plain segments, no converter, no empty segment."""
    prefix = value[:-1] if isinstance(value, str) and value.endswith("/") else value
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"{key} must be a URL path of one or more segments, such as '/_routetimer' or "
            "'/admin/timings': each segment made of letters, digits and '-._~' (no converter "
            f"such as '<int:x>', no empty segment as in '//'), got {value!r}."
        )
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise ConfigError(f"{key} must not contain '.' or '..' segments, got {value!r}.")
    return prefix


def optional_host(key: str, value: Any) -> Optional[str]:
    """A host name (with an optional port) for apps that match URLs by host, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", value):
        raise ConfigError(
            f"{key} must be None or a host such as 'admin.example.com' or 'localhost:5000', "
            f"got {value!r}."
        )
    return value


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


_REPEAT = re.compile(r"\{\d*,?\d*\}")


def split_regexes(text: str) -> list[str]:
    """Split a comma-separated string of regular expressions.

    A comma separates two patterns unless it is escaped (``\\,``), inside a character class
    ``[...]``, a group ``(...)`` or a repeat count ``{m,n}``: ``^/a{1,2}$,^/b`` is two
    patterns, ``^/a{1,2}$`` and ``^/b``.
    """
    parts: list[str] = []
    start = index = depth = 0  # depth: open groups
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":  # to the closing "]"; a "]" first (or after "^") is a member
            index += 1
            if text.startswith("^", index):
                index += 1
            if text.startswith("]", index):
                index += 1
            while index < len(text) and text[index] != "]":
                index += 2 if text[index] == "\\" else 1
        elif char == "{":
            repeat = _REPEAT.match(text, index)
            if repeat is not None:
                index = repeat.end()
                continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def regex_list(key: str, value: Any, what: str) -> list[str]:
    """Like :func:`string_list`, but a string is split by :func:`split_regexes`."""
    if isinstance(value, str):
        return [part.strip() for part in split_regexes(value) if part.strip()]
    return string_list(key, value, what)


#: The splitting rule, said in errors about a pattern.
SPLITTING = (
    "In a comma-separated string a comma separates patterns unless it is inside (...), [...] "
    "or {m,n}, or escaped as '\\,'"
)


def valid_regexes(key: str, patterns: list[str], what: str, flags: int = 0) -> list[str]:
    """Refuse, naming the key and the entry, any entry that is not a valid regular expression
    on its own (each is used as written alone, see ``patterns.any_of``)."""
    for pattern in patterns:
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigError(
                f"{key} contains {pattern!r}, which is {what}: {exc}. {SPLITTING}."
            ) from None
    return patterns


def compile_patterns(key: str, value: Any) -> Optional[Exclusion]:
    """Compile a list of regexes (or one comma-separated string), each working as written alone."""
    what = "not a valid regular expression"
    names = next((k.env for k in CONFIG_KEYS if k.name == key), ())
    if names:
        what += f" (when the key is not set, its value comes from {' or '.join(names)})"
    patterns = valid_regexes(key, regex_list(key, value, "a list of regular expressions"), what)
    return exclusion(key, patterns)


def header_patterns(key: str, value: Any) -> list[str]:
    """A list of header names or case-insensitive regexes (or one comma-separated string)."""
    return valid_regexes(
        key,
        regex_list(
            key,
            value,
            "a list of header names (or regular expressions matching whole names, such as "
            "'x-request-id' or 'x-.*')",
        ),
        "neither a header name nor a valid regular expression",
        re.IGNORECASE,
    )


def query_params(key: str, value: Any) -> frozenset[str]:
    """Query parameter names to redact, added to ``redaction.DEFAULT_QUERY_PARAMS``."""
    return param_names(
        string_list(key, value, "a list of query parameter names, such as ['otp', 'ticket']")
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


def positive_seconds(key: str, value: Any) -> float:
    """A finite number of seconds > 0 (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{key} must be a number of seconds > 0, got {value!r}.")
    return float(value)


def shared_directory(key: str, value: Any) -> Optional[str]:
    """An existing directory this process can create files in, as an absolute path; or None.

    Checked at start-up by creating a file there: a silent writer thread would find out late.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{key} must be a directory path or None, got {value!r}.")
    path = os.path.abspath(os.fspath(value))
    if not os.path.isdir(path):
        raise ConfigError(
            f"{key} is {path!r}, which is not an existing directory. Create it (mode 0700) before "
            "the app starts, e.g. with flask_routetimer.multiproc.prepare_directory() in "
            "gunicorn.conf.py, or unset the key to keep statistics per process."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"{key} is {path!r}, where this process cannot create files ({exc.strerror}). Give "
            "the server's user write access to it, or choose another directory."
        ) from None
    return path


def _bool(key: str, value: Any) -> bool:
    return require_bool(key, value)


def _at_least(minimum: int) -> Callable[[str, Any], int]:
    return lambda key, value: require_int(key, value, minimum)


def _first_env(names: tuple[str, ...], environ: Mapping[str, str]) -> Any:
    """The first of OpenTelemetry's variables that is set, else the key's own default."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


@dataclass(frozen=True)
class ConfigKey:
    """One config key: its default, how it is validated, and what the docs say of it."""

    #: The key in ``app.config``.
    name: str
    #: The value ``init_app`` sets when the key is not set (and no environment variable is).
    default: object
    #: The valid values, as the docs and error messages describe them.
    valid: str
    #: What the key does.
    doc: str
    #: Validates a value and converts it to its ``Settings`` form; raises ``ConfigError``.
    read: Callable[[str, Any], Any] = field(repr=False)
    #: The ``Settings`` attribute the value goes to.
    attribute: str = ""
    #: Environment variables that seed the default when the key is not set.
    env: tuple[str, ...] = ()
    #: How the environment variables become the default (None: the variables' value as is).
    from_env: Optional[Callable[[tuple[str, ...], Mapping[str, str]], Any]] = field(
        default=None, repr=False
    )
    #: How the default reads in the docs, when ``repr(default)`` would not say it well.
    default_text: Optional[str] = None

    def default_for(self, environ: Mapping[str, str]) -> Any:
        """The default in this environment."""
        if self.env:
            seeded = (self.from_env or _first_env)(self.env, environ)
            if seeded is not None:
                return seeded
        # A fresh copy: one app changing its list must not change another app's default.
        return list(self.default) if isinstance(self.default, list) else self.default


_HEADER_LIST = "`list[str]`, or one comma-separated `str`"
#: Every config key, in the order the docs list them.
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "ROUTETIMER_ENABLED",
        True,
        "`bool`",
        "turn everything off for one app: no span, metric, statistic or signal",
        _bool,
        "enabled",
    ),
    ConfigKey(
        "ROUTETIMER_EXCLUDED_URLS",
        "",
        "`list[str]`, or one comma-separated `str`",
        "regular expressions searched in the path inside the app (`PATH_INFO`); never in the "
        "query string, the Host header or the mount prefix `SCRIPT_NAME`, which a client can "
        "choose (or a proxy take from its `X-Forwarded-*`). OpenTelemetry searches the full URL: "
        "a pattern containing `://` is searched in `http://localhost` or `https://localhost` "
        "followed by the path, so `healthz`, `client/.*/info` and `^https?://[^/]+/healthz` "
        "exclude the paths they name. A match gets no span, metric, statistic or signal",
        compile_patterns,
        "excluded",
        env=("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
        default_text='`""` (none)',
    ),
    ConfigKey(
        "ROUTETIMER_SERVER_TIMING",
        None,
        "`bool` or `None`",
        "add a `Server-Timing: app;dur=<ms>` response header. `None`: only while `app.debug` is "
        "on (checked per request, so `app.run(debug=True)` works)",
        optional_bool,
        "server_timing",
    ),
    ConfigKey(
        "ROUTETIMER_LOG_REQUESTS",
        None,
        "`bool` or `None`",
        "log one line per timed request when it ends, such as `POST /v1/predict/ 200 10.8 ms` "
        "(the route's template, `(no route)` without one; a streamed body adds its time to first "
        "byte), at INFO on the `flask_routetimer.requests` logger; shown on stderr when logging "
        "is not configured. `None`: only while `app.debug` is on (checked per request)",
        optional_bool,
        "log_requests",
    ),
    ConfigKey(
        "ROUTETIMER_RECORD_EXCEPTIONS",
        True,
        "`bool`",
        "record unhandled exceptions as `exception` events on the request span (the span's "
        "status is ERROR either way)",
        _bool,
        "record_exceptions",
    ),
    ConfigKey(
        "ROUTETIMER_MAX_ROUTES",
        1000,
        "`int` ≥ 1",
        "most (method, route) rows kept by the live statistics (`timer.stats()`); later ones are "
        "counted in one overflow row",
        _at_least(1),
        "max_routes",
    ),
    ConfigKey(
        "ROUTETIMER_TRACE_BUFFER",
        200,
        "`int` ≥ 0",
        "how many recent request traces to keep in memory for the dashboard (needs the "
        "OpenTelemetry SDK's `TracerProvider`); `0` keeps none. Kept only when the dashboard is "
        "on as the app serves its first request (or opens the dashboard): with it off, no span "
        "pays for the buffer",
        _at_least(0),
        "trace_buffer",
    ),
    ConfigKey(
        "ROUTETIMER_DASHBOARD",
        None,
        "`bool` or `None`",
        "serve the dashboard. `None`: only in debug mode. `True` outside debug mode requires "
        "`ROUTETIMER_DASHBOARD_AUTH`",
        optional_bool,
        "dashboard",
    ),
    ConfigKey(
        "ROUTETIMER_DASHBOARD_URL",
        "/_routetimer",
        "`str`",
        "URL prefix of the dashboard: starts with `/`; a trailing `/` is dropped",
        url_prefix,
        "dashboard_url",
    ),
    ConfigKey(
        "ROUTETIMER_DASHBOARD_AUTH",
        None,
        "callable `() -> bool`, or `None`",
        "called per dashboard request (it can read `flask.request`); returns True for requests "
        "allowed to see it. Use `flask_routetimer.basic_auth()` or `token_auth()` (see "
        "[dashboard.md](dashboard.md#running-the-dashboard-in-production)); never "
        "`request.remote_addr` alone",
        optional_callable,
        "dashboard_auth",
    ),
    ConfigKey(
        "ROUTETIMER_DASHBOARD_HOST",
        None,
        "`str` or `None`",
        "for apps with `host_matching=True`: the host the dashboard answers on. `None`: "
        "`SERVER_NAME`, else the host of the app's static files",
        optional_host,
        "dashboard_host",
    ),
    ConfigKey(
        "ROUTETIMER_CONFIGURE_SDK",
        False,
        "`bool`",
        "call `flask_routetimer.configure_sdk()` in `init_app`: build SDK providers from the "
        "environment (all the standard `OTEL_*` SDK variables, see [BACKENDS.md](BACKENDS.md)) "
        "unless some are already configured",
        _bool,
        "configure_sdk",
    ),
    ConfigKey(
        "ROUTETIMER_TIMING_ALLOW_ORIGIN",
        None,
        "`str`, `list[str]` or `None`",
        '`"*"`, an origin or a list of origins: sent as `Timing-Allow-Origin` next to '
        "`Server-Timing`, so browsers show the timing to those origins",
        timing_allow_origin,
        "timing_allow_origin",
        default_text="`None` (header not sent)",
    ),
    ConfigKey(
        "ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST",
        [],
        _HEADER_LIST,
        "request headers to record as `http.request.header.<name>` (case-insensitive names, or "
        "regexes matching the whole name)",
        header_patterns,
        "capture_request",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",),
        default_text="none",
    ),
    ConfigKey(
        "ROUTETIMER_CAPTURE_HEADERS_SERVER_RESPONSE",
        [],
        _HEADER_LIST,
        "the same for response headers (`http.response.header.<name>`)",
        header_patterns,
        "capture_response",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",),
        default_text="none",
    ),
    ConfigKey(
        "ROUTETIMER_CAPTURE_HEADERS_SANITIZE",
        [],
        _HEADER_LIST,
        "more headers whose value is recorded (and shown by the dashboard) as `REDACTED`, added "
        "to the default credential headers, which are always redacted: "
        + ", ".join(f"`{name}`" for name in header_capture.DEFAULT_SANITIZE),
        header_patterns,
        "capture_sanitize",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",),
        default_text="none (the defaults always apply)",
    ),
    ConfigKey(
        "ROUTETIMER_REDACT_QUERY_PARAMS",
        [],
        "`list[str]`, or one comma-separated `str`",
        "more query parameter names whose values are recorded (in `url.query`) and shown as "
        "`REDACTED`, added to a broad default list of credential names (`token`, `api_key`, "
        "`password`, `access_token`, `X-Amz-Signature`, …: see "
        "[dashboard.md](dashboard.md#what-the-dashboard-hides)); "
        "names are compared percent-decoded and case-insensitively",
        query_params,
        "redacted_query_params",
        default_text="none (the defaults always apply)",
    ),
    ConfigKey(
        "ROUTETIMER_TIME_TEMPLATES",
        True,
        "`bool`",
        "time each template render during a timed request as a child span "
        "`render <template name>` (`render <string>` for `render_template_string`), from "
        "Flask's `before_render_template` and `template_rendered` signals",
        _bool,
        "time_templates",
    ),
    ConfigKey(
        "ROUTETIMER_MULTIPROC_DIR",
        None,
        "`str`, path or `None`",
        "a directory the worker processes of one server share (gunicorn, uWSGI): each publishes "
        "its route statistics and recent traces there, and `timer.stats()` and the dashboard "
        "merge them all. It must exist and be writable at `init_app`. `None`: each process "
        "alone. Per host; see [multiprocess.md](multiprocess.md)",
        shared_directory,
        "multiproc_dir",
        env=("ROUTETIMER_MULTIPROC_DIR",),
        default_text="`None`",
    ),
    ConfigKey(
        "ROUTETIMER_MULTIPROC_INTERVAL",
        1.0,
        "`float` > 0",
        "seconds between a worker's writes to `ROUTETIMER_MULTIPROC_DIR` (from a background "
        "thread, only when something changed, and once more at exit)",
        positive_seconds,
        "multiproc_interval",
    ),
)


def set_defaults(config: MutableMapping[str, Any], environ: Mapping[str, str]) -> None:
    """Fill in every key the user did not set; OpenTelemetry's variables seed some defaults."""
    for key in CONFIG_KEYS:
        config.setdefault(key.name, key.default_for(environ))


def read_settings(config: Mapping[str, Any], debug: bool) -> Settings:
    """Validate the app's config; ``debug`` is the app's debug flag at ``init_app``."""
    values = {key.attribute: key.read(key.name, config[key.name]) for key in CONFIG_KEYS}
    settings = Settings(**values)
    if settings.dashboard and not debug and settings.dashboard_auth is None:
        raise ConfigError(
            "ROUTETIMER_DASHBOARD is True outside debug mode, so ROUTETIMER_DASHBOARD_AUTH must "
            "be set: a function returning True for requests allowed to see the dashboard, such "
            "as flask_routetimer.basic_auth() (a password from the environment variable "
            "ROUTETIMER_DASHBOARD_PASSWORD). Or leave ROUTETIMER_DASHBOARD unset to show it in "
            "debug mode only."
        )
    return settings


def markdown_table() -> str:
    """The config keys table of docs/configuration.md."""
    lines = [
        "| key | type | default | environment variable honoured | meaning |",
        "|---|---|---|---|---|",
    ]
    for key in CONFIG_KEYS:
        shown = f'"{key.default}"' if isinstance(key.default, str) else repr(key.default)
        default = key.default_text or f"`{shown}`"
        env = ", else ".join(f"`{name}`" for name in key.env) or "–"
        lines.append(f"| `{key.name}` | {key.valid} | {default} | {env} | {key.doc} |")
    return "\n".join(lines)


def environment() -> Mapping[str, str]:
    """The process environment, read when ``init_app`` runs (never at import time)."""
    return os.environ
