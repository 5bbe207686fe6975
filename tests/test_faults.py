"""Faults in what the extension calls (providers, meters, receivers) never change a response."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, Response
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import RouteTimer, RouteTiming, request_timed

LOGGER = "flask_routetimer"


def build_app(timer: RouteTimer) -> Flask:
    app = Flask("faults")
    timer.init_app(app)

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/stream")
    def stream() -> Response:
        return Response((f"{n}\n" for n in range(3)), mimetype="text/plain")

    return app


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]


class BrokenTracer(trace.Tracer):
    """A tracer whose start_span raises (get_tracer itself works)."""

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        raise RuntimeError("tracer is broken")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer is broken")


class BrokenTracerProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return BrokenTracer()


class BrokenSpan(trace.NonRecordingSpan):
    """A recording span whose every setter raises, and that remembers being ended."""

    ended = 0

    def is_recording(self) -> bool:
        return True

    def set_attributes(self, attributes: Any) -> None:
        raise RuntimeError("span is broken")

    def set_attribute(self, key: str, value: Any) -> None:
        raise RuntimeError("span is broken")

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("span is broken")

    def end(self, end_time: Any = None) -> None:
        type(self).ended += 1


class BrokenSpanTracer(trace.Tracer):
    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return BrokenSpan(trace.INVALID_SPAN_CONTEXT)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class BrokenSpanProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return BrokenSpanTracer()


class BrokenInstrument:
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("meter is broken")

    record = add


class BrokenMeter(metrics.NoOpMeter):
    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        return BrokenInstrument()

    def create_up_down_counter(self, *args: Any, **kwargs: Any) -> Any:
        return BrokenInstrument()


class BrokenMeterProvider(metrics.NoOpMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        return BrokenMeter("broken")


def serve_twice(app: Flask) -> list[tuple[int, bytes]]:
    """GET /ok twice and /stream once, each response read and closed."""
    client = app.test_client()
    paths = ("/ok", "/ok", "/stream")
    return [(r.status_code, r.data) for r in (client.get(p, buffered=True) for p in paths)]


def test_broken_tracer_keeps_statistics_and_signal(caplog):
    """start_span raising: responses unchanged, one log line, requests still timed in stats."""
    timer = RouteTimer(tracer_provider=BrokenTracerProvider())
    app = build_app(timer)
    timings: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: timings.append(timing), app):
        assert serve_twice(app) == [(200, b"ok"), (200, b"ok"), (200, b"0\n1\n2\n")]
    assert len(errors(caplog)) == 1
    assert "starting a request span" in errors(caplog)[0].getMessage()
    assert [t.route for t in timings] == ["/ok", "/ok", "/stream"]
    assert {r.route: r.count for r in timer.stats(app).routes} == {"/ok": 2, "/stream": 1}


def test_broken_span_is_still_ended(caplog):
    """A span whose setters raise is ended anyway, once per request, and timing goes on."""
    BrokenSpan.ended = 0
    timer = RouteTimer(tracer_provider=BrokenSpanProvider())
    app = build_app(timer)
    assert serve_twice(app) == [(200, b"ok"), (200, b"ok"), (200, b"0\n1\n2\n")]
    assert BrokenSpan.ended == 3
    assert sum(r.count for r in timer.stats(app).routes) == 3
    assert errors(caplog), "the failure is logged"
    assert len(errors(caplog)) == len({r.getMessage() for r in errors(caplog)}), "once per cause"


def test_broken_meter_keeps_spans(tracer_provider, server_spans, caplog):
    """A meter whose instruments raise: spans and statistics still recorded."""
    timer = RouteTimer(tracer_provider=tracer_provider, meter_provider=BrokenMeterProvider())
    app = build_app(timer)
    assert serve_twice(app) == [(200, b"ok"), (200, b"ok"), (200, b"0\n1\n2\n")]
    assert [s.name for s in server_spans()] == ["GET /ok", "GET /ok", "GET /stream"]
    assert sum(r.count for r in timer.stats(app).routes) == 3
    assert len(errors(caplog)) == 1  # recording the duration fails, logged once


def test_raising_receiver_logged_once(app, client, server_spans, caplog):
    """A request_timed receiver that raises: the response is unchanged, one log line per cause."""
    app.add_url_rule("/ok", "ok", lambda: "ok")

    def bad_receiver(sender: Flask, timing: RouteTiming) -> None:
        raise ValueError("receiver bug")

    with request_timed.connected_to(bad_receiver, app):
        responses = [client.get("/ok") for _ in range(5)]
    assert [(r.status_code, r.data) for r in responses] == [(200, b"ok")] * 5
    assert len(server_spans()) == 5
    (record,) = errors(caplog)
    assert "bad_receiver" in record.getMessage()


def test_provider_raising_at_construction_is_a_construction_error():
    """get_tracer raising is a construction-time error: RouteTimer() fails loudly, not later."""

    class Unusable(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            raise RuntimeError("cannot make a tracer")

    with pytest.raises(RuntimeError, match="cannot make a tracer"):
        RouteTimer(tracer_provider=Unusable())


def test_sdk_provider_shut_down_mid_flight(server_spans):
    """A provider shut down while serving: requests still answered, nothing raised."""
    provider = TracerProvider()
    timer = RouteTimer(tracer_provider=provider)
    app = build_app(timer)
    provider.shutdown()
    assert serve_twice(app) == [(200, b"ok"), (200, b"ok"), (200, b"0\n1\n2\n")]


def test_log_stays_bounded_past_the_cause_cap(monkeypatch, caplog):
    """Once the set of known causes is full, failures are logged at debug, never once a request."""
    from flask_routetimer import _fence

    monkeypatch.setattr(_fence, "_MAX_CAUSES", 2)
    for index in range(10):
        for _ in range(3):
            _fence.report(f"place {index}", ValueError("x"))
    assert len(errors(caplog)) == 2
