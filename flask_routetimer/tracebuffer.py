"""The last N request traces, kept in memory for the dashboard by an SDK span processor.

Spans of a trace end child-first, so they wait in a bounded "pending" area until the trace's
request span (one of ours) ends; only then does the trace enter the ring of recent traces. Traces
that never contain a request span (background jobs) fall out of the pending area, so they never
push request traces out. Memory is bounded by traces, spans per trace and pending traces.
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

from .telemetry import SCOPE_NAME

MAX_SPANS_PER_TRACE = 256
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


class _Trace:
    __slots__ = ("spans", "dropped", "request_span")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.dropped = 0
        self.request_span: Optional[ReadableSpan] = None

    def add(self, span: ReadableSpan) -> None:
        if len(self.spans) < MAX_SPANS_PER_TRACE:
            self.spans.append(span)
        else:
            self.dropped += 1


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
    """Keeps the most recent ``capacity`` request traces; ``capacity=0`` keeps none."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._done: OrderedDict[int, _Trace] = OrderedDict()
        self._pending: OrderedDict[int, _Trace] = OrderedDict()
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
        with self._lock:
            done = self._done.get(trace_id)
            if done is not None:  # a late child of a request already shown
                done.add(span)
                return
            if request:  # usually the whole trace: straight to the ring, no pending entry
                trace = self._pending.pop(trace_id, None) or _Trace()
                trace.add(span)
                trace.request_span = span
                self._done[trace_id] = trace
                if len(self._done) > self.capacity:
                    self._done.popitem(last=False)
                return
            pending = self._pending.get(trace_id)
            if pending is None:
                pending = self._pending[trace_id] = _Trace()
                if len(self._pending) > 4 * self.capacity:
                    self._pending.popitem(last=False)
            pending.add(span)

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
