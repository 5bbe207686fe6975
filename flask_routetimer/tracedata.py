"""Recent traces as plain data: what the dashboard shows, free of the SDK's span objects.

The dashboard renders traces of its own process and, with ``ROUTETIMER_MULTIPROC_DIR``, traces
other worker processes wrote to disk. Both become the same small frozen form here, which keeps
exactly what the pages and ``/api/traces/<id>`` show: names, ids, parent ids, kinds, times,
attributes, events, status and instrumentation scope. The JSON form is read back with
validation, since a file in a shared directory is input, not trusted state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

__all__ = [
    "EventData",
    "SpanData",
    "TraceData",
    "by_start",
    "from_record",
    "from_span",
    "trace_from_data",
]

Scalar = Union[str, bool, int, float]
AttributeValue = Union[Scalar, tuple[Scalar, ...]]
Attributes = Mapping[str, AttributeValue]
KINDS = frozenset({"INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"})
STATUS_CODES = frozenset({"UNSET", "OK", "ERROR"})


@dataclass(frozen=True)
class EventData:
    """A span event (an exception, a log line): its name, epoch ns time and attributes."""

    name: str
    timestamp: int
    attributes: Attributes


@dataclass(frozen=True)
class SpanData:
    """One finished span; ids are ints, times epoch nanoseconds, kind/status code as names."""

    span_id: int
    parent_id: Optional[int]
    name: str
    kind: str
    start_time: int
    end_time: int
    attributes: Attributes
    events: tuple[EventData, ...]
    status_code: str
    status_description: Optional[str]
    scope: Optional[str]

    @property
    def failed(self) -> bool:
        """The span's status is ERROR (UNSET and OK are not failures)."""
        return self.status_code == "ERROR"


@dataclass(frozen=True)
class TraceData:
    """One request's trace: its spans oldest start first, and the request span among them."""

    trace_id: str
    request_span: SpanData
    spans: tuple[SpanData, ...]
    dropped_spans: int
    pid: Optional[int] = None  # the worker process that served it, when known

    @property
    def duration(self) -> float:
        """Seconds the request span lasted."""
        span = self.request_span
        return max((span.end_time - span.start_time) / 1e9, 0.0)

    @property
    def route(self) -> Optional[str]:
        value = self.request_span.attributes.get(HTTP_ROUTE)
        return value if isinstance(value, str) else None


def by_start(spans: Iterable[SpanData]) -> list[SpanData]:
    """Spans oldest start first (the order waterfalls and traces are shown in)."""
    return sorted(spans, key=lambda span: span.start_time)


# --- From the SDK -----------------------------------------------------------------------------


def _attributes(attributes: Optional[Mapping[str, Any]]) -> dict[str, AttributeValue]:
    return {
        key: tuple(value) if isinstance(value, (list, tuple)) else value
        for key, value in (attributes or {}).items()
    }


def from_span(span: ReadableSpan) -> SpanData:
    """The data form of an SDK span (ended, so its times are set)."""
    start = span.start_time or 0
    scope = span.instrumentation_scope
    return SpanData(
        span_id=span.context.span_id if span.context is not None else 0,
        parent_id=span.parent.span_id if span.parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        start_time=start,
        end_time=span.end_time or start,
        attributes=_attributes(span.attributes),
        events=tuple(
            EventData(event.name, event.timestamp, _attributes(event.attributes))
            for event in span.events
        ),
        status_code=span.status.status_code.name,
        status_description=span.status.description,
        scope=scope.name if scope is not None else None,
    )


def from_record(record: Any, pid: Optional[int] = None) -> TraceData:
    """The data form of a ``tracebuffer.TraceRecord`` (its spans are already start-ordered)."""
    spans = tuple(from_span(span) for span in record.spans)
    request = from_span(record.request_span)
    mine = next((span for span in spans if span.span_id == request.span_id), request)
    return TraceData(record.trace_id, mine, spans, record.dropped_spans, pid)


# --- JSON -------------------------------------------------------------------------------------


def _span_to_data(span: SpanData) -> dict[str, Any]:
    return {
        "span_id": format(span.span_id, "016x"),
        "parent_id": None if span.parent_id is None else format(span.parent_id, "016x"),
        "name": span.name,
        "kind": span.kind,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": dict(span.attributes),
        "events": [[e.name, e.timestamp, dict(e.attributes)] for e in span.events],
        "status": [span.status_code, span.status_description],
        "scope": span.scope,
    }


def trace_to_data(trace: TraceData) -> dict[str, Any]:
    """JSON-ready form of a trace (hex ids, epoch ns, attribute tuples as lists)."""
    return {
        "trace_id": trace.trace_id,
        "request_span": format(trace.request_span.span_id, "016x"),
        "dropped_spans": trace.dropped_spans,
        "pid": trace.pid,
        "spans": [_span_to_data(span) for span in trace.spans],
    }


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"not a trace: {what}")


def _text(value: Any, what: str, optional: bool = False) -> Any:
    _need(isinstance(value, str) or (optional and value is None), f"{what} must be a string")
    return value


def _nanos(value: Any, what: str) -> int:
    _need(isinstance(value, int) and not isinstance(value, bool) and value >= 0, what)
    return int(value)


def _hex_id(value: Any, digits: int, what: str) -> int:
    _need(isinstance(value, str) and len(value) == digits, f"{what} must be {digits} hex digits")
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"not a trace: {what} must be hex") from None


def _attributes_from(value: Any) -> dict[str, AttributeValue]:
    _need(isinstance(value, dict), "attributes must be an object")
    shown: dict[str, AttributeValue] = {}
    for key, item in value.items():
        if isinstance(item, list):
            _need(all(isinstance(v, (str, bool, int, float)) for v in item), "attribute list")
            shown[key] = tuple(item)
        else:
            _need(isinstance(item, (str, bool, int, float)), f"attribute {key!r}")
            shown[key] = item
    return shown


def _event_from(value: Any) -> EventData:
    _need(isinstance(value, list) and len(value) == 3, "an event must be [name, ns, attributes]")
    name, timestamp, attributes = value
    return EventData(
        _text(name, "event name"), _nanos(timestamp, "event time"), _attributes_from(attributes)
    )


def _span_from(value: Any) -> SpanData:
    _need(isinstance(value, dict), "a span must be an object")
    status = value.get("status")
    _need(isinstance(status, list) and len(status) == 2, "status must be [code, description]")
    _need(status[0] in STATUS_CODES and value.get("kind") in KINDS, "unknown kind or status")
    events = value.get("events")
    _need(isinstance(events, list), "events must be a list")
    parent = value.get("parent_id")
    start = _nanos(value.get("start"), "start")
    return SpanData(
        span_id=_hex_id(value.get("span_id"), 16, "span_id"),
        parent_id=None if parent is None else _hex_id(parent, 16, "parent_id"),
        name=_text(value.get("name"), "span name"),
        kind=value["kind"],
        start_time=start,
        end_time=max(_nanos(value.get("end"), "end"), start),
        attributes=_attributes_from(value.get("attributes")),
        events=tuple(_event_from(event) for event in events),
        status_code=status[0],
        status_description=_text(status[1], "status description", optional=True),
        scope=_text(value.get("scope"), "scope", optional=True),
    )


def trace_from_data(value: Any) -> TraceData:
    """Read :func:`trace_to_data`'s form back; ValueError for anything else."""
    _need(isinstance(value, dict), "a trace must be an object")
    trace_id = format(_hex_id(value.get("trace_id"), 32, "trace_id"), "032x")
    spans = value.get("spans")
    _need(isinstance(spans, list) and bool(spans), "spans must be a non-empty list")
    parsed = tuple(_span_from(span) for span in spans)
    request_id = _hex_id(value.get("request_span"), 16, "request_span")
    request = next((span for span in parsed if span.span_id == request_id), None)
    _need(request is not None, "the request span must be one of its spans")
    pid = value.get("pid")
    _need(pid is None or (isinstance(pid, int) and not isinstance(pid, bool)), "pid")
    assert request is not None
    return TraceData(
        trace_id, request, parsed, _nanos(value.get("dropped_spans"), "dropped_spans"), pid
    )
