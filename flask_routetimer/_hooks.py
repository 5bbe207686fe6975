"""The hot path: per-app state and the Flask signal receivers that time each request.

A request's span starts on ``request_started``, learns its status on ``request_finished``, and
ends in exactly one place, :meth:`AppState.finish`, called from teardown for an ordinary response
or from ``Response.call_on_close`` for a streamed body. Every receiver is fenced: a failure here
is logged once per cause and the user's request goes on untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from time import perf_counter
from typing import TYPE_CHECKING, Any, Optional, cast

from flask import Flask, Request, Response, request
from flask import signals as flask_signals
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import SpanKind, Status, StatusCode
from werkzeug.routing import Rule
from werkzeug.wsgi import ClosingIterator

from . import attributes as attrs
from ._body import WatchedBody, sends_body
from ._fence import report
from .config import Settings
from .metrics import ActiveKey, InFlight
from .signals import request_timed
from .stats import RouteStatsTable
from .timing import RouteTiming
from .tracebuffer import TraceBuffer

if TYPE_CHECKING:
    from .extension import RouteTimer

#: The request being timed in this thread/context. Like ``flask.g`` it is per request and
#: invisible to other threads (``copy_current_request_context``), but reading it costs ~30 ns
#: against ~0.5 us for a ``g`` lookup through Flask's proxy, four times on every request.
_current: ContextVar[Optional[RequestRecord]] = ContextVar("flask_routetimer.request", default=None)


def current_record(app: Flask) -> Optional[RequestRecord]:
    """This app's request being timed here, if any (a nested request to another app is not)."""
    record = _current.get()
    return record if record is not None and record.app is app else None


#: Set (True) on a span whose streamed body the server stopped sending before its end.
BODY_INCOMPLETE = "routetimer.body_incomplete"
#: Key of the per-app state in ``app.extensions``.
EXTENSION_KEY = "routetimer"
#: Why the trace buffer is empty when it was never attached.
TRACES_NOT_KEPT = (
    "Recent traces are kept only when the dashboard is on as the app serves its first request: "
    "start in debug mode, or set ROUTETIMER_DASHBOARD = True (with ROUTETIMER_DASHBOARD_AUTH "
    "outside debug). ROUTETIMER_TRACE_BUFFER = 0 keeps none."
)
#: Name of the dashboard's blueprint; its endpoints are never timed.
DASHBOARD_BLUEPRINT = "routetimer"


class EnvironGetter(Getter[Mapping[str, Any]]):
    """Reads propagation headers (``traceparent``, ``baggage``, ...) straight from the environ."""

    def get(self, carrier: Mapping[str, Any], key: str) -> Optional[list[str]]:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(attrs.environ_keys(carrier))


ENVIRON_GETTER = EnvironGetter()
_propagation_keys: dict[int, tuple[object, tuple[str, ...]]] = {}


def propagation_keys(propagator: TextMapPropagator) -> tuple[str, ...]:
    """Environ keys of the headers the propagator reads, computed once per propagator."""
    cached = _propagation_keys.get(id(propagator))
    if cached is None or cached[0] is not propagator:
        keys = tuple(
            sorted({"HTTP_" + name.upper().replace("-", "_") for name in propagator.fields})
        )
        cached = _propagation_keys[id(propagator)] = (propagator, keys)
    return cached[1]


def extract_parent(environ: Mapping[str, Any]) -> Optional[otel_context.Context]:
    """The remote parent from propagation headers; None (no parsing) when there are none."""
    propagator = propagate.get_global_textmap()
    for key in propagation_keys(propagator):
        if key in environ:
            return propagator.extract(environ, getter=ENVIRON_GETTER)
    return None


class RouteInfo:
    """What is known about a (URL rule, method) pair; computed once, then reused."""

    __slots__ = ("rule", "route", "endpoint", "blueprint", "method", "name", "exempt")

    def __init__(self, rule: Optional[Rule], method: str, exempt: bool) -> None:
        self.rule = rule
        self.route = rule.rule if rule is not None else None
        self.endpoint = rule.endpoint if rule is not None else None
        self.blueprint = attrs.blueprint_of(self.endpoint)
        self.method = method
        self.name = attrs.span_name(method, self.route)
        self.exempt = exempt


class RequestRecord:
    """One timed request in flight."""

    __slots__ = (
        "app",
        "info",
        "span",
        "token",
        "thread",
        "start",
        "context",
        "counted",
        "protocol",
        "status_code",
        "exception",
        "streaming",
        "body",
        "ended",
        "slot",
    )

    def __init__(self, app: Flask, info: RouteInfo, start: float) -> None:
        self.app = app
        self.info = info
        self.span: trace.Span = trace.INVALID_SPAN
        self.context: Optional[otel_context.Context] = None
        self.token: Optional[object] = None
        self.thread = threading.get_ident()
        self.start = start
        # Once counted in active requests: its (method, scheme), the set it was counted in, and
        # its token there (a bare object, so a request whose body a server never closes leaves
        # 16 bytes behind, not its span).
        self.counted: Optional[tuple[ActiveKey, InFlight, object]] = None
        self.protocol: Optional[str] = None
        self.status_code: Optional[int] = None
        self.exception: Optional[BaseException] = None
        self.streaming = False
        self.body: Optional[WatchedBody] = None
        self.ended = False
        self.slot: Optional[Token[Optional[RequestRecord]]] = None


def is_lazy_body(response: Response) -> bool:
    """True when the body is produced while the server sends it (generator, stream_with_context).

    Two streamed-looking bodies are not: a ``ClosingIterator`` is an HTTPException (``abort()``,
    404) that Flask ran as a WSGI app, already in memory; a ``direct_passthrough`` body (files
    from ``send_file``) goes to the server as is, without the response's close callbacks, so its
    span ends at teardown when the file is handed over.
    """
    return (
        response.is_streamed
        and not response.direct_passthrough
        and not isinstance(response.response, ClosingIterator)
    )


class AppState:
    """Per-app state, kept in ``app.extensions["routetimer"]``."""

    def __init__(self, timer: RouteTimer, settings: Settings) -> None:
        self.timer = timer
        self.settings = settings
        self.stats = RouteStatsTable(settings.max_routes)
        self.traces = TraceBuffer(settings.trace_buffer)
        self._routes: dict[tuple[int, str], RouteInfo] = {}
        self.trace_buffer_decided = False
        self._trace_buffer_lock = threading.Lock()  # two first requests must not attach it twice

    def connect(self, app: Flask) -> None:
        """Connect the receivers for this app only (``sender=app``)."""
        # Strong references: blinker drops them when the app goes, and a weak bound method
        # would be dereferenced on every send.
        flask_signals.request_started.connect(self.on_started, app, weak=False)
        flask_signals.got_request_exception.connect(self.on_exception, app, weak=False)
        flask_signals.request_finished.connect(self.on_finished, app, weak=False)
        flask_signals.request_tearing_down.connect(self.on_teardown, app, weak=False)

    # -- receivers -------------------------------------------------------------------------

    def on_started(self, app: Flask, **_: Any) -> None:
        try:
            record = self._start(app)
        except Exception as exc:
            report("starting a request span", exc)
            return
        if record is not None:
            record.slot = _current.set(record)

    def on_exception(self, app: Flask, exception: BaseException, **_: Any) -> None:
        record = current_record(app)
        if record is not None and record.exception is None:
            try:
                self._note_exception(record, exception)
            except Exception as exc:
                report("recording an exception", exc)

    def on_finished(self, app: Flask, response: Response, **_: Any) -> None:
        record = current_record(app)
        if record is None:
            return
        try:
            self._finished(app, record, response)
        except Exception as exc:
            report("reading the response", exc)

    def on_teardown(self, app: Flask, exc: Optional[BaseException] = None, **_: Any) -> None:
        record = current_record(app)
        if record is None or record.thread != threading.get_ident():
            # Nothing timed here, or a copied request context popping in another thread.
            return
        try:
            self._detach(record)  # a second teardown (stream_with_context) finds nothing
            # GeneratorExit: the server closed a stream_with_context body early (Flask < 3.1
            # tears down with it); that is the client going away, not an error of the app.
            if exc is not None and record.exception is None and not isinstance(exc, GeneratorExit):
                self._note_exception(record, exc)
        except Exception as error:
            report("tearing down a request span", error)
        if not record.streaming:
            self.finish(record)

    # -- steps -----------------------------------------------------------------------------

    def _start(self, app: Flask) -> Optional[RequestRecord]:
        start = perf_counter()
        current: Request = cast(Any, request)._get_current_object()  # one proxy lookup, not two
        environ = current.environ
        raw_method = environ.get("REQUEST_METHOD") or "GET"
        method, original = attrs.normalize_method(raw_method)
        info = self.route_info(app, current.url_rule, method)
        if info.exempt or self._excluded(environ):
            return None
        if not self.trace_buffer_decided:
            self.attach_trace_buffer(app)
        record = RequestRecord(app, info, start)
        tracing, metrics = self.timer.tracing_active(), self.timer.metrics_active()
        if tracing or metrics:
            record.protocol = attrs.protocol_version(environ)  # for the span and the metric point
        try:
            if tracing:
                self._open_span(record, environ, original)
            else:
                self._pass_through(record, environ)
        except Exception as exc:
            # Keep timing (metrics, statistics, signal) without a span rather than drop it.
            report("starting a request span", exc)
        if metrics:
            try:
                self._count_in(record, environ)
            except Exception as exc:
                report("counting an active request", exc)
        return record

    def _count_in(self, record: RequestRecord, environ: Mapping[str, Any]) -> None:
        key = (record.info.method, environ.get("wsgi.url_scheme", "http"))
        token = object()
        record.counted = (key, self.timer.metrics.started(key, token), token)

    def attach_trace_buffer(self, app: Flask) -> None:
        """Give the trace buffer to the SDK provider in use, if the dashboard can show it.

        Decided on the first request with a provider configured, when debug mode is known (also
        after ``app.run(debug=True)``). With the dashboard off nobody reads the buffer, so no
        span pays for it: a span processor runs for every span the provider ends.
        """
        with self._trace_buffer_lock:
            if self.trace_buffer_decided:
                return
            if self.settings.trace_buffer <= 0 or not self.settings.dashboard_on(app.debug):
                self.trace_buffer_decided = True
                self.traces.unavailable = TRACES_NOT_KEPT
                return
            provider = self.timer.tracer_provider or trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider):
                self.traces.unavailable = "No OpenTelemetry tracer provider is configured yet."
                return  # the global provider may still be set: look again next request
            self.trace_buffer_decided = True
            self.traces.attach_to(provider)

    def _excluded(self, environ: Mapping[str, Any]) -> bool:
        pattern = self.settings.excluded
        if pattern is None:
            return False
        path = attrs.wsgi_to_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        return pattern.search(path) is not None

    def _open_span(
        self, record: RequestRecord, environ: Mapping[str, Any], original: Optional[str]
    ) -> None:
        """Start the span under the right parent and make it current."""
        info = record.info
        # An empty OpenTelemetry context (the usual case) holds no span: skip the span lookup.
        outer = trace.get_current_span() if otel_context.get_current() else trace.INVALID_SPAN
        if outer.get_span_context().is_valid:
            # A WSGI middleware (or opentelemetry-instrument) already traces this request.
            parent = None
            nested = getattr(outer, "kind", None) is SpanKind.SERVER
            kind = SpanKind.INTERNAL if nested else SpanKind.SERVER
            if kind is SpanKind.INTERNAL and info.route is not None and outer.is_recording():
                outer.set_attribute(HTTP_ROUTE, info.route)
                outer.update_name(info.name)
        else:
            parent = extract_parent(environ)
            kind = SpanKind.SERVER
        # All attributes at start: one pass through the SDK's attribute checks, and samplers
        # see them all.
        attributes = attrs.span_attributes(
            environ,
            info.method,
            original,
            info.route,
            info.endpoint,
            info.blueprint,
            record.protocol,
        )
        if self.settings.headers is not None:
            attributes.update(self.settings.headers.request_attributes(environ))
        span = record.span = self.timer.tracer.start_span(
            info.name, context=parent, kind=kind, attributes=attributes
        )
        # From here on the span is the record's, so finish() ends it whatever fails below.
        record.context = trace.set_span_in_context(span, parent)
        record.token = otel_context.attach(record.context)

    def _pass_through(self, record: RequestRecord, environ: Mapping[str, Any]) -> None:
        """No SDK: build nothing nobody reads, but pass a caller's trace context on."""
        parent = extract_parent(environ)
        if parent is None or trace.get_current_span().get_span_context().is_valid:
            return  # no caller's context, or an outer span is current already
        remote = trace.get_current_span(parent).get_span_context()
        if remote.is_valid:
            record.span = trace.NonRecordingSpan(remote)
            parent = trace.set_span_in_context(record.span, parent)
        record.context = parent
        record.token = otel_context.attach(parent)  # the trace id and baggage flow on

    def _note_exception(self, record: RequestRecord, exception: BaseException) -> None:
        record.exception = exception
        if self.settings.record_exceptions and record.span.is_recording():
            record.span.record_exception(exception)

    def _finished(self, app: Flask, record: RequestRecord, response: Response) -> None:
        record.status_code = response.status_code
        if is_lazy_body(response):
            # Count the body to its last byte: the WSGI server closes the response after it.
            response.call_on_close(lambda: self.finish(record))
            record.streaming = True  # only once finish() is sure to be called
            if sends_body(record.info.method, response.status_code):
                record.body = WatchedBody(
                    response.response, lambda exc: self._body_failed(record, exc)
                )
                response.response = record.body
        server_timing = self.settings.server_timing
        if server_timing or (server_timing is None and app.debug):
            elapsed_ms = max(perf_counter() - record.start, 0.0) * 1000
            response.headers.add("Server-Timing", f"app;dur={elapsed_ms:.1f}")
            if self.settings.timing_allow_origin is not None:
                response.headers["Timing-Allow-Origin"] = self.settings.timing_allow_origin
        if self.settings.headers is not None and record.span.is_recording():
            record.span.set_attributes(self.settings.headers.response_attributes(response.headers))

    def _body_failed(self, record: RequestRecord, exception: BaseException) -> None:
        """A streamed body raised while the server was sending it."""
        if record.exception is None:
            try:
                self._note_exception(record, exception)
            except Exception as exc:
                report("recording an exception of a streamed body", exc)

    def _detach(self, record: RequestRecord) -> None:
        """Forget the request here and restore the OpenTelemetry context, once."""
        slot, record.slot = record.slot, None
        if slot is not None:
            try:
                _current.reset(slot)
            except ValueError:  # torn down in another context than it started in
                _current.set(None)
        token, record.token = record.token, None
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def finish(self, record: RequestRecord) -> None:
        """End the request's span exactly once and hand its timing on."""
        if record.ended:
            return
        record.ended = True
        duration = max(perf_counter() - record.start, 0.0)  # time can go backwards
        recorded = False
        try:
            recorded = self._end_span(record)
        except Exception as exc:
            report("ending a request span", exc)
        if record.counted is not None:
            try:
                self._record_metrics(record, record.counted, duration)
            except Exception as exc:
                report("recording request metrics", exc)
        failed = record.exception is not None or (record.status_code or 0) >= 500
        try:
            self.stats.record(record.info.method, record.info.route, duration, failed)
        except Exception as exc:
            report("recording route statistics", exc)
        if request_timed.receivers:
            self._publish(record, duration, recorded)

    def _record_metrics(
        self, record: RequestRecord, counted: tuple[ActiveKey, InFlight, object], duration: float
    ) -> None:
        key, in_flight, token = counted
        metrics = self.timer.metrics
        error_type = attrs.error_type(record.exception, record.status_code)
        point = (key, record.info.route, record.status_code, record.protocol, error_type)
        attributes = metrics.duration_attributes(point)
        metrics.finished(in_flight, token, attributes, duration, record.context)

    def _end_span(self, record: RequestRecord) -> bool:
        """End the span with the response's attributes; True if it was being recorded."""
        span = record.span
        recorded = False
        try:
            recorded = span.is_recording()
            if recorded:
                self._describe_end(record)
        finally:
            span.end()  # even when describing it failed: a span is never left open
        return recorded

    def _describe_end(self, record: RequestRecord) -> None:
        span = record.span
        span.set_attributes(attrs.response_attributes(record.status_code, record.exception))
        if record.body is not None and not record.body.exhausted:
            span.set_attribute(BODY_INCOMPLETE, True)
        if record.exception is not None:
            exc = record.exception
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
        elif record.status_code is not None and record.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def _publish(self, record: RequestRecord, duration: float, recorded: bool) -> None:
        """Send ``request_timed`` to this app's receivers, each fenced from the others."""
        receivers = list(request_timed.receivers_for(record.app))
        if not receivers:
            return
        try:
            timing = self._timing(record, duration, recorded)
        except Exception as exc:
            report("describing a timed request", exc)
            return
        for receiver in receivers:
            try:
                receiver(record.app, timing=timing)
            except Exception as exc:
                report(f"request_timed receiver {getattr(receiver, '__qualname__', receiver)}", exc)

    def _timing(self, record: RequestRecord, duration: float, recorded: bool) -> RouteTiming:
        info = record.info
        span_context = record.span.get_span_context()
        recorded = recorded and span_context.is_valid
        return RouteTiming(
            endpoint=info.endpoint,
            route=info.route,
            method=info.method,
            status_code=record.status_code,
            duration=duration,
            exception=record.exception,
            trace_id=format(span_context.trace_id, "032x") if recorded else None,
            span_id=format(span_context.span_id, "016x") if recorded else None,
        )

    # -- route cache -----------------------------------------------------------------------

    def route_info(self, app: Flask, rule: Optional[Rule], method: str) -> RouteInfo:
        """Cached per (rule, method): bounded by the app's rules, never by raw paths."""
        key = (id(rule), method)
        info = self._routes.get(key)
        if info is None or info.rule is not rule:
            info = RouteInfo(rule, method, self._is_exempt(app, rule))
            self._routes[key] = info
        return info

    def _is_exempt(self, app: Flask, rule: Optional[Rule]) -> bool:
        if rule is None:
            return False
        if attrs.blueprint_of(rule.endpoint) == DASHBOARD_BLUEPRINT:
            return True  # the dashboard's own requests would otherwise fill the stats it shows
        view = app.view_functions.get(rule.endpoint)
        return self.timer.is_exempt(view)
