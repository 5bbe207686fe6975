"""The last N request traces, kept in memory for the dashboard by an SDK span processor.

Spans of a trace end child-first, so they wait in a bounded "pending" area until the trace's
request span (one of ours) ends; only then does the trace enter the ring of recent traces. Traces
that never contain a request span (background jobs) fall out of the pending area, so they never
push request traces out. Several requests of one trace (a caller that calls twice, or a client
re-sending one ``traceparent``) stay grouped in that trace.

Memory is bounded in total, whatever clients send: at most ``capacity`` traces, ``max_spans``
spans and ``max_bytes`` of attribute and event text over the ring and the pending area together
(the oldest traces go first), and per trace at most :data:`MAX_SPANS_PER_TRACE` spans and
:data:`MAX_TRACE_BYTES`, which also bounds the size of one trace's dashboard page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD, HTTP_ROUTE
from opentelemetry.trace import ProxyTracerProvider, SpanKind
from opentelemetry.util.types import Attributes

from .telemetry import SCOPE_NAME

#: Most spans kept for one trace (the dashboard counts the rest as dropped).
MAX_SPANS_PER_TRACE = 256
#: Most attribute and event text kept for one trace, in characters (a bound on its page too).
MAX_TRACE_BYTES = 512 * 1024
#: Spans and text kept over all traces, per trace of ``capacity`` on average.
SPANS_PER_TRACE = 16
BYTES_PER_TRACE = 32 * 1024
#: What a span's fixed fields, and an event's, count for in the bound.
_SPAN_WEIGHT = 256
_EVENT_WEIGHT = 32
#: Why the trace buffer is empty when it was never attached.
TRACES_NOT_KEPT = (
    "Recent traces are kept only when the dashboard is on as the app serves its first request: "
    "start in debug mode, or set ROUTETIMER_DASHBOARD = True (with ROUTETIMER_DASHBOARD_AUTH "
    "outside debug). ROUTETIMER_TRACE_BUFFER = 0 keeps none."
)


@dataclass(frozen=True)
class TraceRecord:
    """One finished request trace: its spans, oldest start first."""

    trace_id: str
    request_span: ReadableSpan
    spans: tuple[ReadableSpan, ...]
    dropped_spans: int

    @property
    def duration(self) -> float:
        """Seconds the request span lasted."""
        span = self.request_span
        return max(((span.end_time or 0) - (span.start_time or 0)) / 1e9, 0.0)

    @property
    def route(self) -> Optional[str]:
        value = (self.request_span.attributes or {}).get(HTTP_ROUTE)
        return value if isinstance(value, str) else None


def _text_weight(attributes: Attributes) -> int:
    """Characters of the keys and of the values as text (a sequence as its repr): ``map`` keeps
    the loop in C, three times faster than testing each value's type."""
    if not attributes:
        return 0
    return sum(map(len, attributes)) + sum(map(len, map(str, attributes.values())))


def span_weight(span: ReadableSpan) -> int:
    """Roughly the characters a span holds: name, attributes and events (exception stack
    traces), plus a fixed part for the span itself. Links are left out: the SDK bounds their
    number, and no client chooses their attributes."""
    weight = _SPAN_WEIGHT + len(span.name) + _text_weight(span.attributes)
    for event in span.events:
        weight += _EVENT_WEIGHT + len(event.name) + _text_weight(event.attributes)
    return weight


class _Trace:
    __slots__ = ("spans", "dropped", "request_span", "weight")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.dropped = 0
        self.request_span: Optional[ReadableSpan] = None
        self.weight = 0

    def add(self, span: ReadableSpan, weight: int, first_request: bool) -> bool:
        """Keep the span if the trace has room for it (always for its first request span, so
        children cannot hide the trace); else count it as dropped."""
        if first_request or (
            len(self.spans) < MAX_SPANS_PER_TRACE and self.weight + weight <= MAX_TRACE_BYTES
        ):
            self.spans.append(span)
            self.weight += weight
            return True
        self.dropped += 1
        return False


def is_request_span(span: ReadableSpan) -> bool:
    """A span made by flask-routetimer for a request (SERVER, or INTERNAL under a middleware).

    Our SERVER spans are all request spans; an INTERNAL one of ours is a request span only
    with the request's method (``timed()`` spans have none). Cheapest checks first: this runs
    for every span the provider ends.
    """
    scope = span.instrumentation_scope
    if scope is None or scope.name != SCOPE_NAME:
        return False
    kind = span.kind
    if kind is SpanKind.SERVER:
        return True
    return (
        kind is SpanKind.INTERNAL
        and span.attributes is not None
        and HTTP_REQUEST_METHOD in span.attributes
    )


class TraceBuffer(SpanProcessor):
    """Keeps the most recent ``capacity`` request traces; ``capacity=0`` keeps none.

    ``max_spans`` and ``max_bytes`` bound all kept spans and their text together (defaults:
    :data:`SPANS_PER_TRACE` and :data:`BYTES_PER_TRACE` times ``capacity``, never less than one
    full trace).
    """

    def __init__(
        self, capacity: int, max_spans: Optional[int] = None, max_bytes: Optional[int] = None
    ) -> None:
        self.capacity = capacity
        self.max_spans = max(
            max_spans if max_spans is not None else SPANS_PER_TRACE * capacity, MAX_SPANS_PER_TRACE
        )
        self.max_bytes = max(
            max_bytes if max_bytes is not None else BYTES_PER_TRACE * capacity, MAX_TRACE_BYTES
        )
        self._done: OrderedDict[int, _Trace] = OrderedDict()
        self._pending: OrderedDict[int, _Trace] = OrderedDict()
        self._spans = 0  # kept in _done and _pending together
        self._bytes = 0
        self._lock = threading.Lock()
        #: Why no traces can be shown (no SDK provider), or None when attached.
        self.unavailable: Optional[str] = "No tracer provider has been seen yet."
        #: Whether to attach is decided once (see :meth:`decide`); until then each request asks.
        self.decided = False
        self._decide_lock = threading.Lock()  # two first requests must not attach it twice

    # -- SpanProcessor -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.capacity <= 0 or span.context is None:
            return
        trace_id = span.context.trace_id
        request = is_request_span(span)  # decided outside the lock
        weight = span_weight(span)
        with self._lock:
            trace = self._done.get(trace_id)
            if trace is None:
                if request:  # usually the whole trace: straight to the ring, no pending entry
                    trace = self._pending.pop(trace_id, None) or _Trace()
                    self._done[trace_id] = trace
                    if len(self._done) > self.capacity:
                        self._forget(self._done.popitem(last=False)[1])
                else:
                    trace = self._pending.get(trace_id)
                    if trace is None:
                        trace = self._pending[trace_id] = _Trace()
                        if len(self._pending) > self.capacity:
                            self._forget(self._pending.popitem(last=False)[1])
            # A late child, or another request of a trace already shown, joins it.
            first_request = request and trace.request_span is None
            if not trace.add(span, weight, first_request):
                return
            if first_request:
                trace.request_span = span
            self._spans += 1
            self._bytes += weight
            if self._spans > self.max_spans or self._bytes > self.max_bytes:
                self._shrink(trace)

    def _forget(self, trace: _Trace) -> None:
        self._spans -= len(trace.spans)
        self._bytes -= trace.weight

    def _shrink(self, keep: _Trace) -> None:
        """Drop the oldest traces, pending ones first, until the totals are within bounds;
        ``keep`` (the trace just added to) goes last, and is within bounds on its own."""
        for area in (self._pending, self._done):
            while area and (self._spans > self.max_spans or self._bytes > self.max_bytes):
                oldest = next(iter(area))
                if area[oldest] is keep:
                    if len(area) == 1:
                        break
                    area.move_to_end(oldest)
                    continue
                self._forget(area.pop(oldest))

    def size(self) -> tuple[int, int, int]:
        """``(traces, spans, bytes)`` kept now, pending traces included."""
        with self._lock:
            return len(self._done) + len(self._pending), self._spans, self._bytes

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- attaching ---------------------------------------------------------------------------

    def decide(self, shown: bool, provider: Callable[[], object]) -> None:
        """Attach to the provider in use if the dashboard can show the traces, once.

        Called on the first request with a provider configured (when debug mode is known, also
        after ``app.run(debug=True)``) or the first dashboard visit. With the dashboard off
        nobody reads the buffer, so no span pays for it: a span processor runs for every span
        the provider ends.
        """
        with self._decide_lock:
            if self.decided:
                return
            if self.capacity <= 0 or not shown:
                self.decided = True
                self.unavailable = TRACES_NOT_KEPT
                return
            current = provider()
            if isinstance(current, ProxyTracerProvider):
                self.unavailable = "No OpenTelemetry tracer provider is configured yet."
                return  # the global provider may still be set: look again next request
            self.decided = True
            self.attach_to(current)

    def attach_to(self, provider: object) -> None:
        """Add this buffer to an SDK tracer provider, or note why it cannot be."""
        if isinstance(provider, TracerProvider):
            provider.add_span_processor(self)
            self.unavailable = None
        else:
            self.unavailable = (
                f"The tracer provider is {type(provider).__module__}.{type(provider).__qualname__}"
                ", not the OpenTelemetry SDK's TracerProvider, so recent traces cannot be kept "
                "here. Configure the SDK (see docs) to see them."
            )

    # -- reading -----------------------------------------------------------------------------

    def traces(self) -> list[TraceRecord]:
        """Recent request traces, newest first."""
        with self._lock:
            items = [
                (tid, t.request_span, tuple(t.spans), t.dropped) for tid, t in self._done.items()
            ]
        return [
            TraceRecord(format(tid, "032x"), request, tuple(by_start(spans)), dropped)
            for tid, request, spans, dropped in reversed(items)
            if request is not None
        ]

    def get(self, trace_id: str) -> Optional[TraceRecord]:
        """One trace by its 32-hex-digit id, or None (unknown, evicted, or a malformed id)."""
        try:
            key = int(trace_id, 16)
        except ValueError:
            return None
        with self._lock:
            found = self._done.get(key)
            if found is None or found.request_span is None:
                return None
            record = (found.request_span, tuple(found.spans), found.dropped)
        return TraceRecord(format(key, "032x"), record[0], tuple(by_start(record[1])), record[2])


def by_start(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    """Spans oldest start first (the order waterfalls and traces are shown in)."""
    return sorted(spans, key=lambda span: span.start_time or 0)
