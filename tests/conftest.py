"""App-factory fixtures, SDK providers injected through the constructor, and leak detectors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
from flask import Flask, abort, redirect
from flask import globals as flask_globals
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_routetimer import RouteTimer
from flask_routetimer._fence import forget_reported


class OpenSpanTracker(SpanProcessor):
    """Remembers spans started and not yet ended, so a test that leaks one fails."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Optional[otel_context.Context] = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.open.pop(span.context.span_id, None)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """An SDK provider exporting to ``exporter``; ``_open_span_detector`` watches its spans."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def make_app(tracer_provider: TracerProvider) -> Callable[..., tuple[Flask, RouteTimer]]:
    """App factory: ``make_app(**config)`` -> (app, timer), timer already initialised."""

    def factory(**config: Any) -> tuple[Flask, RouteTimer]:
        app = Flask("testapp")
        app.config.update(TESTING=True, **config)
        timer = RouteTimer(tracer_provider=tracer_provider)
        timer.init_app(app)
        return app, timer

    return factory


@pytest.fixture
def app_timer(make_app: Callable[..., tuple[Flask, RouteTimer]]) -> tuple[Flask, RouteTimer]:
    return make_app()


@pytest.fixture
def app(app_timer: tuple[Flask, RouteTimer]) -> Flask:
    return app_timer[0]


@pytest.fixture
def timer(app_timer: tuple[Flask, RouteTimer]) -> RouteTimer:
    return app_timer[1]


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def routed(app: Flask, timer: RouteTimer) -> Flask:
    """The ``app`` fixture with ordinary views: a greeting, a POST, an item view with a timed
    block, a view returning a W3C baggage entry, a redirect, and views failing in each way (an
    exception, abort(418), abort(500))."""

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello {name}"

    @app.post("/v1/predict/")
    def predict() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        with timer.timed("load"):
            return str(item_id)

    @app.get("/baggage/<key>")
    def baggage_entry(key: str) -> dict[str, object]:
        return {key: baggage.get_baggage(key)}

    @app.get("/old")
    def old() -> Any:
        return redirect("/hello/new")

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("boom")

    @app.get("/fail")
    def fail() -> str:
        raise RuntimeError("nope")

    @app.get("/teapot")
    def teapot() -> str:
        abort(418)

    @app.get("/abort500")
    def abort500() -> str:
        abort(500)

    return app


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Callable[[], list[ReadableSpan]]:
    """Finished spans, oldest first."""
    return lambda: list(exporter.get_finished_spans())


@pytest.fixture
def server_spans(
    exporter: InMemorySpanExporter,
) -> Callable[[], list[ReadableSpan]]:
    """Finished SERVER spans only (the request spans), oldest first."""
    return lambda: [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]


class _Remember(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def _open_span_detector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves a span open in any SDK provider it creates, not only the fixtures."""
    trackers: list[OpenSpanTracker] = []
    original = TracerProvider.__init__

    def tracked_init(self: TracerProvider, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        tracker = OpenSpanTracker()
        self.add_span_processor(tracker)
        trackers.append(tracker)

    monkeypatch.setattr(TracerProvider, "__init__", tracked_init)
    yield
    leaked = {span_id: name for tracker in trackers for span_id, name in tracker.open.items()}
    assert not leaked, f"spans started and never ended: {leaked}"


@pytest.fixture(autouse=True)
def _leak_detector() -> Iterator[None]:
    """Fail a test that leaves a Flask context pushed or an OpenTelemetry context attached, or
    during which OpenTelemetry logged "Failed to detach context"."""
    forget_reported()
    before = otel_context.get_current()
    otel_errors = _Remember()
    logging.getLogger("opentelemetry.context").addHandler(otel_errors)
    try:
        yield
    finally:
        logging.getLogger("opentelemetry.context").removeHandler(otel_errors)
    assert not otel_errors.messages, f"OpenTelemetry context errors: {otel_errors.messages}"
    # Flask 3.2 keeps the request on the app context: no _cv_request there.
    request_var = getattr(flask_globals, "_cv_request", None)
    leaked_request = request_var.get(None) if request_var is not None else None
    leaked_app = flask_globals._cv_app.get(None)
    assert leaked_request is None, f"request context left pushed: {leaked_request!r}"
    assert leaked_app is None, f"app context left pushed: {leaked_app!r}"
    assert otel_context.get_current() == before, "OpenTelemetry context left attached"
