"""Pure helpers that turn statistics and spans into what the dashboard shows.

Nothing here touches Flask: redaction, formatting, sorting and the trace's JSON shape are plain
functions of their inputs, tested on their own. Redaction happens here, once, so the HTML pages
and the JSON API can never disagree about what is hidden.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import unquote

from ..attributes import is_failure, truncate
from ..headers import DEFAULT_SANITIZE_PATTERN
from ..multiproc import WorkerInfo
from ..patterns import Matcher
from ..redaction import DEFAULT_QUERY_PARAMS, REDACTED, redact_query, redact_url
from ..stats import RouteStats
from ..tracedata import SpanData, TraceData

#: Attributes holding a query string (``url.query``) or a URL that may carry one.
QUERY_KEYS = frozenset({"url.query"})
URL_KEYS = frozenset({"url.full", "http.url", "http.target"})
HEADER_PREFIXES = ("http.request.header.", "http.response.header.")
#: Longest attribute value shown; the full value stays in the exporter's copy.
MAX_SHOWN = 2000


# --- Redaction --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redaction:
    """What the dashboard hides: an app's ``redacted_query_params`` and ``sanitized_headers``
    settings (the same rules its spans were recorded with)."""

    query_params: frozenset[str] = DEFAULT_QUERY_PARAMS
    headers: Matcher = DEFAULT_SANITIZE_PATTERN


DEFAULT_REDACTION = Redaction()


def _is_sensitive_header(key: str, headers: Matcher) -> bool:
    for prefix in HEADER_PREFIXES:
        if key.startswith(prefix):
            return headers.fullmatch(key[len(prefix) :].lower().replace("_", "-")) is not None
    return False


def redact_value(key: str, value: Any, redaction: Redaction = DEFAULT_REDACTION) -> Any:
    """The value as it may be shown: credentials replaced by ``REDACTED``, type kept otherwise."""
    if _is_sensitive_header(key, redaction.headers):
        return REDACTED
    if key in QUERY_KEYS and isinstance(value, str):
        return redact_query(value, redaction.query_params)
    if key in URL_KEYS and isinstance(value, str):
        return redact_url(value, redaction.query_params)
    return value


def redact_attributes(
    attributes: Optional[Mapping[str, Any]], redaction: Redaction = DEFAULT_REDACTION
) -> dict[str, Any]:
    """A JSON-ready copy of span or event attributes with sensitive values redacted."""
    shown: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        value = redact_value(key, value, redaction)
        shown[key] = list(value) if isinstance(value, (tuple, list)) else value
    return shown


def show_value(value: Any) -> str:
    """One attribute value as bounded text (sequences joined by commas)."""
    if isinstance(value, (tuple, list)):
        value = ", ".join(str(item) for item in value)
    return truncate(str(value), MAX_SHOWN)


# --- Formatting -------------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """A duration with three significant digits in a unit a person reads at a glance."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_percent(fraction: float) -> str:
    """``0.125`` -> ``12.5%``; no decimals for whole numbers."""
    percent = fraction * 100
    return f"{percent:.0f}%" if percent == int(percent) else f"{percent:.1f}%"


def format_clock(epoch_ns: Optional[int]) -> str:
    """A span's start as ``HH:MM:SS.mmm`` UTC (the wall clock of the request)."""
    if not epoch_ns:
        return ""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1_000_000:03d}"


# --- Sorting the routes table -----------------------------------------------------------------

SORT_KEYS: dict[str, Callable[[RouteStats], Any]] = {
    "method": lambda row: row.method,
    "route": lambda row: row.route or "",
    "count": lambda row: row.count,
    "error_rate": lambda row: row.error_rate,
    "p50": lambda row: row.p50,
    "p95": lambda row: row.p95,
    "p99": lambda row: row.p99,
    # Routes that never streamed sort below every real time to first byte.
    "ttfb_p50": lambda row: -1.0 if row.ttfb_p50 is None else row.ttfb_p50,
    "max": lambda row: row.max,
    "total": lambda row: row.total,
}
TEXT_KEYS = frozenset({"method", "route"})
DEFAULT_SORT = "total"


def sort_order(key: Optional[str], order: Optional[str]) -> tuple[str, bool]:
    """Validated ``(key, descending)``: unknown keys fall back to the worst-first default."""
    if key not in SORT_KEYS:
        return DEFAULT_SORT, True
    if order in ("asc", "desc"):
        return key, order == "desc"
    return key, key not in TEXT_KEYS  # numbers read worst first, names alphabetically


def sort_rows(rows: Sequence[RouteStats], key: str, descending: bool) -> list[RouteStats]:
    """Rows sorted by one column; ties keep the snapshot's heaviest-first order."""
    return sorted(rows, key=SORT_KEYS[key], reverse=descending)


# --- Traces -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceSummary:
    """One line of a trace list."""

    trace_id: str
    method: str
    route: Optional[str]
    path: str
    status_code: Optional[int]
    #: The request failed: its span's status is ERROR, or it answered 5xx.
    error: bool
    duration: float
    started: str


def decoded_path(attributes: Optional[Mapping[str, Any]]) -> str:
    """The request path as the client typed it (percent-decoded; escaping happens in HTML)."""
    path = (attributes or {}).get("url.path")
    return unquote(path) if isinstance(path, str) else ""


def summarize(record: TraceData) -> TraceSummary:
    span = record.request_span
    attributes = span.attributes
    value = attributes.get("http.response.status_code")
    status = value if isinstance(value, int) else None
    method = attributes.get("http.request.method")
    return TraceSummary(
        trace_id=record.trace_id,
        method=method if isinstance(method, str) else "",
        route=record.route,
        path=decoded_path(attributes),
        status_code=status,
        error=span.failed or is_failure(None, status),
        duration=record.duration,
        started=format_clock(span.start_time),
    )


def slowest(
    records: Sequence[TraceData], method: str, route: Optional[str], limit: int
) -> list[TraceSummary]:
    """The slowest of the buffered traces of one route, slowest first."""
    mine = [summarize(record) for record in records]
    mine = [t for t in mine if t.method == method and t.route == route]
    return sorted(mine, key=lambda t: t.duration, reverse=True)[:limit]


def span_json(
    span: SpanData, origin: int, depth: int, redaction: Redaction = DEFAULT_REDACTION
) -> dict[str, Any]:
    """A span for scripts: hex ids, seconds relative to the trace start, redacted attributes."""
    start = span.start_time or origin
    end = span.end_time or start
    parent = span.parent_id
    return {
        "span_id": format(span.span_id, "016x"),
        "parent_id": format(parent, "016x") if parent is not None else None,
        "name": span.name,
        "kind": span.kind,
        "status": {"code": span.status_code, "description": span.status_description},
        "depth": depth,
        "start_offset": max(start - origin, 0) / 1e9,
        "duration": max(end - start, 0) / 1e9,
        "attributes": redact_attributes(span.attributes, redaction),
        "events": [
            {
                "name": event.name,
                "offset": max(event.timestamp - origin, 0) / 1e9,
                "attributes": redact_attributes(event.attributes, redaction),
            }
            for event in span.events
        ],
    }


# --- Workers ----------------------------------------------------------------------------------


def worker_json(worker: WorkerInfo) -> dict[str, Any]:
    """One worker process of a merged view, for ``/api/stats``."""
    return {
        "pid": worker.pid,
        "alive": worker.alive,
        "current": worker.current,
        "processes": worker.processes,
        "requests": worker.requests,
        "age": worker.age,
    }
