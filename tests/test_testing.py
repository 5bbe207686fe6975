"""flask_routetimer.testing.capture: in-memory spans, metrics and timings for users' own tests."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_routetimer import RouteTimer
from flask_routetimer.testing import capture


def make_app(timer: RouteTimer, name: str = "captured") -> Flask:
    app = Flask(name)
    app.config["TESTING"] = True
    timer.init_app(app)

    @timer.timed  # applied before any capture: must still be captured
    def tokenize(text: str) -> list[str]:
        return text.split()

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        with timer.timed("load"):
            tokenize("a b")
        return str(item_id)

    return app


def test_records_request_spans_child_spans_timings_and_metrics(tracer_provider, spans):
    """Inside capture, request and child spans, timings and metrics land in memory only."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    app = make_app(timer)
    with capture(app) as captured:
        assert app.test_client().get("/items/1").status_code == 200
    assert [s.name for s in captured.spans] == ["GET /items/<int:item_id>"]
    assert [s.name for s in captured.all_spans] == [
        "make_app.<locals>.tokenize",
        "load",
        "GET /items/<int:item_id>",
    ]
    assert [(t.route, t.status_code) for t in captured.timings] == [("/items/<int:item_id>", 200)]
    assert captured.timings[0].span_id == format(captured.spans[0].context.span_id, "016x")
    (point,) = captured.metric_points("http.server.request.duration")
    assert point.count == 1 and point.attributes["http.route"] == "/items/<int:item_id>"
    (active,) = captured.metric_points("http.server.active_requests")
    assert active.value == 0
    assert spans() == [], "the app's own provider must not see captured spans"


def test_without_any_provider_configured():
    """An app built without providers (global proxy, nothing configured) is captured too."""
    app = make_app(RouteTimer())
    with capture(app) as captured:
        app.test_client().get("/items/2")
    assert len(captured.spans) == 1 and len(captured.timings) == 1


def test_restores_tracer_and_metrics_even_when_the_body_raises(tracer_provider, spans):
    """After the block, even one that raised, the timer records to its own providers again."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    app = make_app(timer)
    tracer, metrics = timer.tracer, timer.telemetry.metrics
    with pytest.raises(ZeroDivisionError), capture(app):
        1 / 0  # noqa: B018 -- the body raising is what is tested
    assert timer.tracer is tracer and timer.telemetry.metrics is metrics
    app.test_client().get("/items/3")
    assert [s.name for s in spans()][-1] == "GET /items/<int:item_id>"


def test_clear_forgets_spans_timings_and_metric_values():
    """clear() empties spans and timings and restarts metric values from zero."""
    app = make_app(RouteTimer())
    client = app.test_client()
    with capture(app) as captured:
        client.get("/items/1")
        captured.clear()
        assert captured.all_spans == [] and captured.timings == []
        assert captured.metric_points("http.server.request.duration") == []
        client.get("/items/2")
        (point,) = captured.metric_points("http.server.request.duration")
        assert point.count == 1
    assert len(captured.spans) == 1 and len(captured.timings) == 1
    assert captured.metric_points("http.server.request.duration")[0].count == 1


def test_timings_are_those_of_the_captured_app_only():
    """Two apps share a timer: timings are the captured app's; spans follow the timer."""
    timer = RouteTimer()
    first, second = make_app(timer, "first"), make_app(timer, "second")
    with capture(first) as captured:
        first.test_client().get("/items/1")
        second.test_client().get("/items/2")
    assert len(captured.timings) == 1
    assert len(captured.spans) == 2


def test_nested_captures_restore_the_outer_one():
    """An inner capture gets the requests made inside it; the outer one gets the rest."""
    app = make_app(RouteTimer())
    client = app.test_client()
    with capture(app) as outer:
        with capture(app) as inner:
            client.get("/items/1")
        client.get("/items/2")
    assert [t.route for t in inner.timings] == ["/items/<int:item_id>"]
    assert len(inner.spans) == 1 and len(outer.spans) == 1
    assert len(outer.timings) == 2, "the signal reaches every connected capture"


def test_the_trace_buffer_still_sees_captured_requests():
    """The dashboard's recent traces keep filling while a capture is active."""
    app = make_app(RouteTimer())
    with capture(app):
        app.test_client().get("/items/1")
    (record,) = RouteTimer.state(app).traces.traces()
    assert record.route == "/items/<int:item_id>" and len(record.spans) == 3


def test_refuses_an_app_without_routetimer():
    """capture() on an app without flask-routetimer says what to do."""
    with pytest.raises(RuntimeError, match="not registered"), capture(Flask("bare")):
        pass
