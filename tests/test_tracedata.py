"""Traces in the dashboard's data form survive a trip through JSON, and bad JSON is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import RouteTimer
from flask_routetimer.tracedata import from_record, trace_from_data, trace_to_data


def a_trace(tracer_provider: TracerProvider) -> Any:
    """A real request trace with a child span, an exception event and a failed status."""
    app = Flask("traced")
    app.config.update(ROUTETIMER_DASHBOARD=True, DEBUG=True, PROPAGATE_EXCEPTIONS=False)
    timer = RouteTimer(app, tracer_provider=tracer_provider)

    @app.get("/items/<int:n>")
    def item(n: int) -> str:
        with timer.timed("lookup", attributes={"tags": ("a", "b"), "n": n}):
            pass
        raise RuntimeError("boom")

    app.test_client().get("/items/3?token=x")
    (record,) = timer.state(app).traces.traces()
    return record


def test_a_real_trace_round_trips_with_everything_the_dashboard_shows(
    tracer_provider: TracerProvider,
) -> None:
    """Ids, parents, names, kinds, times, attributes, events, status and scope all come back."""
    data = from_record(a_trace(tracer_provider), pid=42)
    back = trace_from_data(json.loads(json.dumps(trace_to_data(data), allow_nan=False)))
    assert back == data
    request, child = back.spans
    assert (request.kind, child.kind, child.parent_id) == ("SERVER", "INTERNAL", request.span_id)
    assert request.failed and request.status_description == "RuntimeError: boom"
    assert request.events[0].name == "exception"
    assert child.attributes["tags"] == ("a", "b") and request.scope == "flask_routetimer"
    assert back.route == "/items/<int:n>" and back.pid == 42 and back.duration > 0


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d.update(trace_id="xyz"),
        lambda d: d.update(request_span="0" * 16),  # not one of its spans
        lambda d: d.update(spans=[]),
        lambda d: d["spans"][0].update(kind="EVIL"),
        lambda d: d["spans"][0].update(start=-1),
        lambda d: d["spans"][0].update(attributes={"k": {"nested": 1}}),
        lambda d: d["spans"][0].update(events=[["e", 1]]),
        lambda d: d["spans"][0].update(status=["ERROR"]),
        lambda d: d.update(pid="1"),
        lambda d: d.clear(),
    ],
)
def test_tampered_traces_are_refused(tracer_provider: TracerProvider, tamper: Any) -> None:
    """A trace file edited into another shape is a ValueError, never a half-read trace."""
    data = json.loads(json.dumps(trace_to_data(from_record(a_trace(tracer_provider)))))
    tamper(data)
    with pytest.raises(ValueError):
        trace_from_data(data)
