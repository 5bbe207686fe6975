"""The request's span: started under the right parent, described, and ended exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import attributes as attrs
from ._body import TIME_TO_FIRST_BYTE
from .config import Settings
from .propagation import extract_parent
from .record import IN_FLIGHT, RequestRecord

#: Set (True) on a span whose streamed body the server stopped sending before its end.
BODY_INCOMPLETE = "routetimer.body_incomplete"


def open_span(
    tracer: trace.Tracer,
    record: RequestRecord,
    environ: Mapping[str, Any],
    original_method: Optional[str],
    scheme: str,
    settings: Settings,
) -> None:
    """Start the span under the right parent and make it current (``scheme``: ``url.scheme`` as
    :func:`~.attributes.url_scheme` reads it; ``settings``: header capture and query redaction)."""
    info = record.info
    # An empty OpenTelemetry context (the usual case) holds no span: skip the span lookup.
    current = otel_context.get_current()
    outer = trace.get_current_span(current) if current else trace.INVALID_SPAN
    outer_request = IN_FLIGHT.get()
    if outer is trace.INVALID_SPAN and outer_request is None:
        parent = extract_parent(environ)  # the usual case: no outer span, maybe a caller's
        kind = SpanKind.SERVER
    elif outer_request is not None and outer_request.span is outer:
        # A request to an app called in-process from a view of ours: its own request, a
        # child of the caller's, which keeps its name.
        parent = None
        kind = SpanKind.SERVER
    elif outer.get_span_context().is_valid:
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
    # All attributes at start: one pass through the SDK's attribute checks, and samplers see
    # them all.
    attributes = attrs.span_attributes(
        environ,
        info.attributes,
        original_method,
        scheme,
        record.protocol,
        settings.redacted_query_params,
    )
    if settings.headers is not None:
        attributes.update(settings.headers.request_attributes(environ))
    # The context given, never None: the SDK and its sampler would look the current one up
    # again, three times (parent None means the current context, which is ``current``).
    context = current if parent is None else parent
    span = record.span = tracer.start_span(
        info.name, context=context, kind=kind, attributes=attributes
    )
    # From here on the span is the record's, so the lifecycle ends it whatever fails below.
    record.context = trace.set_span_in_context(span, context)
    record.context_token = otel_context.attach(record.context)


def pass_through(record: RequestRecord, environ: Mapping[str, Any]) -> None:
    """No SDK: build nothing nobody reads, but pass a caller's trace context on."""
    parent = extract_parent(environ)
    if parent is None or trace.get_current_span().get_span_context().is_valid:
        return  # no caller's context, or an outer span is current already
    remote = trace.get_current_span(parent).get_span_context()
    if remote.is_valid:
        record.span = trace.NonRecordingSpan(remote)
        parent = trace.set_span_in_context(record.span, parent)
    record.context = parent
    record.context_token = otel_context.attach(parent)  # the trace id and baggage flow on


def note_exception(record: RequestRecord, exception: BaseException, record_event: bool) -> None:
    """Remember the request's exception; an ``exception`` event on the span if asked."""
    record.exception = exception
    if record_event and record.span.is_recording():
        record.span.record_exception(exception, attrs.exception_attributes(exception))


def end_span(record: RequestRecord, failed: bool) -> bool:
    """End the span with the response's attributes (``failed``: :func:`~.attributes.is_failure`
    of the request); True if it was sampled (recording)."""
    span = record.span
    recording: Optional[bool] = None
    try:
        recording = span.is_recording()
        if recording:
            _describe_end(record, failed)
    finally:
        # Even when describing it (or asking) failed: a span is never left open. A span that
        # is not recording (not sampled, no SDK) has nothing to end: the call is skipped.
        if recording is not False:
            span.end()
    return bool(recording)


def _describe_end(record: RequestRecord, failed: bool) -> None:
    # One set_attribute per attribute: the SDK checks a value, where set_attributes would check
    # the dict against Sequence and Mapping first (two ABC instance checks) and then each value.
    span = record.span
    status_code, exc = record.status_code, record.exception
    if status_code is not None:
        span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status_code)
    if failed:
        span.set_attribute(ERROR_TYPE, attrs.error_type(exc, status_code))
        description = None if exc is None else attrs.exception_description(exc)
        span.set_status(Status(StatusCode.ERROR, description))
    if record.body is not None and not record.body.exhausted:
        span.set_attribute(BODY_INCOMPLETE, True)
    ttfb = record.body.time_to_first_byte(record.start) if record.body is not None else None
    if ttfb is not None:
        span.set_attribute(TIME_TO_FIRST_BYTE, ttfb)
