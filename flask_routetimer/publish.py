"""Handing each timed request to ``request_timed`` receivers, each fenced from the others."""

from __future__ import annotations

from ._fence import report
from .record import RequestRecord
from .signals import request_timed
from .timing import RouteTiming


def publish(record: RequestRecord, duration: float, sampled: bool) -> None:
    """Send ``request_timed`` to the app's receivers; one that raises is logged, never raised."""
    receivers = list(request_timed.receivers_for(record.app))
    if not receivers:
        return
    try:
        timing = timing_of(record, duration, sampled)
    except Exception as exc:
        report("describing a timed request", exc)
        return
    for receiver in receivers:
        try:
            receiver(record.app, timing=timing)
        except Exception as exc:
            report(f"request_timed receiver {getattr(receiver, '__qualname__', receiver)}", exc)


def timing_of(record: RequestRecord, duration: float, sampled: bool) -> RouteTiming:
    """The public record of one request; trace ids only for a span that was recorded."""
    info = record.info
    span_context = record.span.get_span_context()
    sampled = sampled and span_context.is_valid
    return RouteTiming(
        endpoint=info.endpoint,
        route=info.route,
        method=info.method,
        status_code=record.status_code,
        duration=duration,
        exception=record.exception,
        trace_id=format(span_context.trace_id, "032x") if sampled else None,
        span_id=format(span_context.span_id, "016x") if sampled else None,
        time_to_first_byte=(
            record.body.time_to_first_byte(record.start) if record.body is not None else None
        ),
    )
