"""The hot path: the Flask signal receivers that time each request, and the one place it ends.

A request's span starts on ``request_started``, learns its status on ``request_finished``, and
ends in exactly one place, :meth:`RequestLifecycle.finish`, called from teardown for an ordinary
response or from ``Response.call_on_close`` for a streamed body. Every receiver is fenced: a
failure here is logged once per cause and the user's request goes on untouched.

Other code failing must not leak a request either (docs/RELIABILITY.md):

* a teardown function or another ``request_tearing_down`` receiver raising before ours: the
  request ends on ``appcontext_tearing_down``, which Flask sends from the context's final pop;
* and if that is missed too, the next request served in the same thread ends the stale one
  before it starts, so it never becomes its child;
* another ``request_started`` receiver raising before ours: the request is timed from the first
  of our receivers that runs (``got_request_exception`` or ``request_finished``).
"""

from __future__ import annotations

import sys
import threading
from time import perf_counter
from typing import Any, Callable, Optional, cast

from blinker import Signal
from flask import Flask, Request, Response, request
from flask import signals as flask_signals

from . import attributes as attrs
from ._body import WatchedBody, is_lazy_body, sends_body
from ._fence import report
from ._flaskctx import REQUEST_CONTEXT, is_popped, request_context
from .publish import publish
from .record import IN_FLIGHT, RequestRecord, detach
from .request_span import end_span, note_exception, open_span, pass_through
from .requestlog import log_request
from .signals import request_timed
from .state import AppState
from .templates import end_open_renders
from .wsgi import app_path

#: Set in the environ of a request that is deliberately not timed (exempt or excluded).
UNTIMED = "flask_routetimer.untimed"


class TeardownIncomplete(RuntimeError):
    """Recorded on a request whose teardown never reached flask-routetimer's receiver."""


class RequestLifecycle:
    """Times one app's requests: its receivers, one record per request, one ``finish``."""

    def __init__(self, state: AppState) -> None:
        # Read on every request: each one attribute lookup away.
        self.state = state
        self.settings = state.settings
        self.telemetry = state.telemetry
        self.routes = state.routes
        self.traces = state.traces
        self.stats = state.stats

    def receivers(self) -> list[tuple[Signal, Callable[..., None]]]:
        """Each Flask signal and the receiver that times it."""
        return [
            (flask_signals.request_started, self.on_started),
            (flask_signals.got_request_exception, self.on_exception),
            (flask_signals.request_finished, self.on_finished),
            (flask_signals.request_tearing_down, self.on_teardown),
            (flask_signals.appcontext_tearing_down, self.on_context_end),
        ]

    def connect(self, app: Flask) -> None:
        """Connect the receivers for this app only (``sender=app``)."""
        # Strong references: blinker drops them when the app goes, and a weak bound method
        # would be dereferenced on every send.
        for signal, receiver in self.receivers():
            signal.connect(receiver, app, weak=False)

    def disconnect(self, app: Flask) -> None:
        """Undo :meth:`connect` (a failed ``init_app`` leaves nothing behind)."""
        for signal, receiver in self.receivers():
            signal.disconnect(receiver, app)

    # -- receivers -------------------------------------------------------------------------

    def on_started(self, app: Flask, **_: Any) -> None:
        stale = IN_FLIGHT.get()
        if stale is not None and is_popped(stale.ctx):
            # Its teardown never reached us: end it before it becomes this request's parent.
            stale.owner.abandon(stale, None)
        self._begin(app)

    def on_exception(self, app: Flask, exception: BaseException, **_: Any) -> None:
        record = IN_FLIGHT.get()  # this app's request, read as current_record() would
        if record is None or record.app is not app:
            record = _begin_late(self, app)
        if record is None or record.exception is not None:
            return
        try:
            note_exception(record, exception, self.settings.record_exceptions)
            if record.status_code is None and not _propagates(app):
                record.status_code = 500  # Flask answers 500 unless a later response says else
        except Exception as exc:
            report("recording an exception", exc)

    def on_finished(self, app: Flask, response: Response, **_: Any) -> None:
        record = IN_FLIGHT.get()
        if record is None or record.app is not app:
            record = _begin_late(self, app)
            if record is None:
                return
        try:
            _read_response(self, app, record, response)
        except Exception as exc:
            report("reading the response", exc)

    def on_teardown(self, app: Flask, exc: Optional[BaseException] = None, **_: Any) -> None:
        record = IN_FLIGHT.get()
        if (
            record is None
            or record.app is not app
            or record.thread != threading.get_ident()
            or REQUEST_CONTEXT.get(None) is not record.ctx
        ):
            # Nothing timed here, or a copied request context popping (in this thread or not).
            return
        try:
            detach(record)  # a second teardown (stream_with_context) finds nothing
            # GeneratorExit: the server closed a stream_with_context body early (Flask < 3.1
            # tears down with it); that is the client going away, not an error of the app.
            if exc is not None and record.exception is None and not isinstance(exc, GeneratorExit):
                note_exception(record, exc, self.settings.record_exceptions)
        except Exception as error:
            report("tearing down a request span", error)
        if not record.streaming:
            self.finish(record)

    def on_context_end(self, app: Flask, **_: Any) -> None:
        """The context's final pop: a request still here had its teardown fail before ours."""
        record = IN_FLIGHT.get()  # None once our teardown ran: the usual case costs one get
        if record is not None and record.app is app and is_popped(record.ctx):
            self.abandon(record, sys.exc_info()[1])

    # -- steps -----------------------------------------------------------------------------

    def _begin(self, app: Flask) -> Optional[RequestRecord]:
        try:
            record = self._start(app, perf_counter())
        except Exception as exc:
            report("starting a request span", exc)
            return None
        if record is not None:
            record.record_token = IN_FLIGHT.set(record)  # set_current(), without the call
        return record

    def _start(self, app: Flask, start: float) -> Optional[RequestRecord]:
        # The request from the context object we hold anyway (no proxy lookup); the proxy only
        # where a Flask version's context object does not carry it.
        ctx: Any = REQUEST_CONTEXT.get(None)
        current: Request = getattr(ctx, "request", None) or _proxied_request()
        environ = current.environ
        method: str = environ.get("REQUEST_METHOD") or "GET"
        original = None
        if method not in attrs.KNOWN_METHODS:  # served as sent: the usual case needs no call
            method, original = attrs.normalize_method(method)
        info = self.routes.info(app, current.url_rule, method)
        excluded = self.settings.excluded
        if info.exempt or (excluded is not None and excluded.search(app_path(environ))):
            environ[UNTIMED] = True
            return None
        if not self.traces.decided:
            self.state.decide_trace_buffer(app)
        multiproc = self.state.multiproc
        if multiproc is not None and not multiproc.started:
            multiproc.start()  # in a worker after the fork, never in a master that serves nothing
        record = RequestRecord(self, ctx, app, info, start)
        telemetry = self.telemetry
        tracing, metrics = telemetry.active()
        scheme = attrs.OTHER_SCHEME
        if tracing or metrics:  # read once, for the span and the metric point alike
            record.protocol = attrs.protocol_version(environ)
            scheme = attrs.url_scheme(environ)
        try:
            if tracing:
                open_span(telemetry.tracer, record, environ, original, scheme, self.settings)
            else:
                pass_through(record, environ)
        except Exception as exc:
            # Keep timing (metrics, statistics, signal) without a span rather than drop it.
            report("starting a request span", exc)
        if metrics:
            try:  # a bare object as token: a body never closed leaves 16 bytes, not its span
                key = (info.method, scheme)
                token = object()
                record.counted = (key, telemetry.metrics.started(key, token), token)
            except Exception as exc:
                report("counting an active request", exc)
        return record

    # -- the end ---------------------------------------------------------------------------

    def abandon(self, record: RequestRecord, exception: Optional[BaseException]) -> None:
        """End a request whose teardown failed before it reached us; detach its context."""
        try:
            _note_failed_teardown(record, exception, self.settings.record_exceptions)
        except Exception as exc:
            report("ending a request whose teardown failed", exc)
        if not record.streaming:
            self.finish(record)

    def finish(self, record: RequestRecord) -> None:
        """End the request's span exactly once and hand its timing on."""
        if record.ended:
            return
        record.ended = True
        duration = perf_counter() - record.start
        if duration < 0.0:  # time can go backwards
            duration = 0.0
        if record.renders is not None:
            end_open_renders(record)  # a render that raised got no template_rendered
        failed = attrs.is_failure(record.exception, record.status_code)  # once, for all three
        sampled = False
        try:
            sampled = end_span(record, failed)
        except Exception as exc:
            report("ending a request span", exc)
        info = record.info
        if record.counted is not None:
            try:
                self.telemetry.metrics.finished(record, info.route, duration)
            except Exception as exc:
                report("recording request metrics", exc)
        ttfb = record.body.time_to_first_byte(record.start) if record.body is not None else None
        try:
            self.stats.record(info.method, info.route, duration, failed, ttfb)
        except Exception as exc:
            report("recording route statistics", exc)
        if (log := self.settings.log_requests) or (log is None and record.app.debug):
            log_request(record, duration, ttfb)
        if request_timed.receivers:
            publish(record, duration, sampled)


def _begin_late(lifecycle: RequestLifecycle, app: Flask) -> Optional[RequestRecord]:
    """Time a request whose ``request_started`` never reached us (a receiver raised first)."""
    if request_context() is None or UNTIMED in request.environ:
        return None
    return lifecycle._begin(app)


def _read_response(
    lifecycle: RequestLifecycle, app: Flask, record: RequestRecord, response: Response
) -> None:
    """The status code; a lazy body watched; ``Server-Timing``; captured response headers."""
    record.status_code = response.status_code
    # A list (what Flask makes of a returned str or bytes) has a length: never lazy, no call.
    if type(response.response) is not list and is_lazy_body(response):
        _watch_stream(lifecycle, record, response)
    settings = lifecycle.settings
    timing = settings.server_timing  # settings.server_timing_on(app.debug), without two calls
    if timing or (timing is None and app.debug):
        add_server_timing(response, record.start, settings.timing_allow_origin)
    if settings.headers is not None and record.span.is_recording():
        record.span.set_attributes(settings.headers.response_attributes(response.headers))


def _watch_stream(lifecycle: RequestLifecycle, record: RequestRecord, response: Response) -> None:
    """Count a lazy body to its last byte: the WSGI server closes the response after it."""
    response.call_on_close(lambda: lifecycle.finish(record))
    record.streaming = True  # only once finish() is sure to be called
    if sends_body(record.info.method, response.status_code):
        record_event = lifecycle.settings.record_exceptions
        on_error = lambda exc: _body_failed(record, exc, record_event)  # noqa: E731
        record.body = WatchedBody(response.response, on_error, record.context)
        response.response = record.body


def _body_failed(record: RequestRecord, exception: BaseException, record_event: bool) -> None:
    """A streamed body raised while the server was sending it."""
    if record.exception is None:
        try:
            note_exception(record, exception, record_event)
        except Exception as exc:
            report("recording an exception of a streamed body", exc)


def _note_failed_teardown(
    record: RequestRecord, exception: Optional[BaseException], record_event: bool
) -> None:
    detach(record)
    if record.exception is None:
        failure = exception or TeardownIncomplete(
            "The request's teardown failed before flask-routetimer's receiver ran "
            "(a teardown function or another request_tearing_down receiver raised)."
        )
        note_exception(record, failure, record_event)
    if not record.streaming:
        record.status_code = 500  # the app raised out of wsgi_app: the server answers 500


def add_server_timing(response: Response, start: float, allow_origin: Optional[str]) -> None:
    """``Server-Timing: app;dur=<ms>`` (and ``Timing-Allow-Origin`` when configured)."""
    elapsed_ms = max(perf_counter() - start, 0.0) * 1000
    response.headers.add("Server-Timing", f"app;dur={elapsed_ms:.1f}")
    if allow_origin is not None:
        response.headers["Timing-Allow-Origin"] = allow_origin


def _proxied_request() -> Request:
    """The request through Flask's proxy (one lookup, not two)."""
    current: Request = cast(Any, request)._get_current_object()
    return current


def _propagates(app: Flask) -> bool:
    """Whether Flask re-raises an unhandled exception instead of answering 500 (as it decides)."""
    propagate = app.config.get("PROPAGATE_EXCEPTIONS")
    return bool(app.testing or app.debug) if propagate is None else bool(propagate)
