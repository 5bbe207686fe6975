"""The hot path: the Flask signal receivers that time each request, and the one place it ends.

A request's span starts on ``request_started``, learns its status on ``request_finished``, and
ends in exactly one place, :meth:`RequestLifecycle.finish`, called from teardown for an ordinary
response or from ``Response.call_on_close`` for a streamed body. Every receiver is fenced: a
failure here is logged once per cause and the user's request goes on untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from time import perf_counter
from typing import Any, Optional, cast

from flask import Flask, Request, Response, request
from flask import signals as flask_signals

from . import attributes as attrs
from ._body import WatchedBody, is_lazy_body, sends_body
from ._fence import report
from .publish import publish
from .record import RequestRecord, current_record, detach, set_current
from .request_span import end_span, note_exception, open_span, pass_through
from .signals import request_timed
from .state import AppState
from .wsgi import raw_path, wsgi_to_text


class RequestLifecycle:
    """Times one app's requests: four receivers, one record per request, one ``finish``."""

    def __init__(self, state: AppState) -> None:
        # Read on every request: each one attribute lookup away.
        self.state = state
        self.settings = state.settings
        self.telemetry = state.telemetry
        self.routes = state.routes
        self.traces = state.traces
        self.stats = state.stats

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
            set_current(record)

    def on_exception(self, app: Flask, exception: BaseException, **_: Any) -> None:
        record = current_record(app)
        if record is not None and record.exception is None:
            try:
                note_exception(record, exception, self.settings.record_exceptions)
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
            detach(record)  # a second teardown (stream_with_context) finds nothing
            # GeneratorExit: the server closed a stream_with_context body early (Flask < 3.1
            # tears down with it); that is the client going away, not an error of the app.
            if exc is not None and record.exception is None and not isinstance(exc, GeneratorExit):
                note_exception(record, exc, self.settings.record_exceptions)
        except Exception as error:
            report("tearing down a request span", error)
        if not record.streaming:
            self.finish(record)

    # -- steps -----------------------------------------------------------------------------

    def _start(self, app: Flask) -> Optional[RequestRecord]:
        start = perf_counter()
        current: Request = cast(Any, request)._get_current_object()  # one proxy lookup, not two
        environ = current.environ
        method, original = attrs.normalize_method(environ.get("REQUEST_METHOD") or "GET")
        info = self.routes.info(app, current.url_rule, method)
        if info.exempt or self._excluded(environ):
            return None
        if not self.traces.decided:
            self.state.decide_trace_buffer(app)
        record = RequestRecord(app, info, start)
        telemetry = self.telemetry
        tracing, metrics = telemetry.tracing_active(), telemetry.metrics_active()
        if tracing or metrics:
            record.protocol = attrs.protocol_version(environ)  # for the span and the metric point
        try:
            if tracing:
                open_span(telemetry.tracer, record, environ, original, self.settings.headers)
            else:
                pass_through(record, environ)
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
        record.counted = (key, self.telemetry.metrics.started(key, token), token)

    def _excluded(self, environ: Mapping[str, Any]) -> bool:
        pattern = self.settings.excluded
        return pattern is not None and pattern.search(wsgi_to_text(raw_path(environ))) is not None

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
        settings = self.settings
        if settings.server_timing_on(app.debug):
            elapsed_ms = max(perf_counter() - record.start, 0.0) * 1000
            response.headers.add("Server-Timing", f"app;dur={elapsed_ms:.1f}")
            if settings.timing_allow_origin is not None:
                response.headers["Timing-Allow-Origin"] = settings.timing_allow_origin
        if settings.headers is not None and record.span.is_recording():
            record.span.set_attributes(settings.headers.response_attributes(response.headers))

    def _body_failed(self, record: RequestRecord, exception: BaseException) -> None:
        """A streamed body raised while the server was sending it."""
        if record.exception is None:
            try:
                note_exception(record, exception, self.settings.record_exceptions)
            except Exception as exc:
                report("recording an exception of a streamed body", exc)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, record: RequestRecord) -> None:
        """End the request's span exactly once and hand its timing on."""
        if record.ended:
            return
        record.ended = True
        duration = max(perf_counter() - record.start, 0.0)  # time can go backwards
        sampled = False
        try:
            sampled = end_span(record)
        except Exception as exc:
            report("ending a request span", exc)
        if record.counted is not None:
            try:
                self._record_metrics(record, duration)
            except Exception as exc:
                report("recording request metrics", exc)
        failed = attrs.is_failure(record.exception, record.status_code)
        try:
            self.stats.record(record.info.method, record.info.route, duration, failed)
        except Exception as exc:
            report("recording route statistics", exc)
        if request_timed.receivers:
            publish(record, duration, sampled)

    def _record_metrics(self, record: RequestRecord, duration: float) -> None:
        assert record.counted is not None
        key, in_flight, token = record.counted
        metrics = self.telemetry.metrics
        error_type = attrs.error_type(record.exception, record.status_code)
        point = (key, record.info.route, record.status_code, record.protocol, error_type)
        attributes = metrics.duration_attributes(point)
        metrics.finished(in_flight, token, attributes, duration, record.context)
