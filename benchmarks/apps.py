"""App factories shared by the benchmarks.

Every variant serves the same four routes so the per-route comparison is fair:

* ``/hello``               short string
* ``/items/<int:item_id>`` path parameter
* ``/health``              excluded from tracing in the instrumented variants
* ``/exempt``              ``@timer.exempt`` in the routetimer variant (plain elsewhere)

Variants: ``bare``, ``routetimer`` (imported lazily, may be missing), ``otel``
(opentelemetry-instrumentation-flask, stable HTTP semconv) and ``floor`` (the raw SDK work
a request needs, as a WSGI wrapper).

For gunicorn, ``wsgi_from_env()`` builds the variant named by ``BENCH_VARIANT`` with a
per-worker SDK pipeline (BatchSpanProcessor to a no-op exporter, in-memory metric reader).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from timeit import default_timer
from typing import Any, Callable, TypeVar

from flask import Flask
from opentelemetry import context, trace
from opentelemetry import metrics as metrics_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

# Must be set before any opentelemetry.instrumentation module is imported (they are only
# imported lazily, in _flask_instrumentor()).
SEMCONV_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
os.environ[SEMCONV_ENV] = "http"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
F = TypeVar("F", bound=Callable[..., Any])

ROUTETIMER_EXCLUDED = ["^/health"]
OTEL_EXCLUDED = "/health$"  # OTel matches against the full URL, so no "^"

VARIANTS = ("bare", "routetimer", "otel", "floor")


class RouteTimerUnavailable(RuntimeError):
    """flask_routetimer (or its RouteTimer) cannot be imported yet."""


class NoOpSpanExporter(SpanExporter):
    """Exporter whose export does nothing and succeeds."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass
class Pipeline:
    """One tracer/meter provider pair of a configuration; each variant gets its own."""

    name: str
    tracer_provider: trace.TracerProvider
    meter_provider: metrics_api.MeterProvider
    span_exporter: InMemorySpanExporter | None = None
    metric_reader: InMemoryMetricReader | None = None
    sdk: bool = True
    notes: str = ""
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    def reset(self) -> None:
        """Drop finished spans so memory does not grow between rounds."""
        if self.span_exporter is not None:
            self.span_exporter.clear()

    def shutdown(self) -> None:
        for close in self._closers:
            close()


def _meter_provider() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def make_pipeline(name: str) -> Pipeline:
    """``batch``, ``simple``, ``nosdk`` or ``unsampled``."""
    if name == "nosdk":
        return Pipeline(
            name,
            trace.NoOpTracerProvider(),
            metrics_api.NoOpMeterProvider(),
            sdk=False,
            notes="API no-op providers",
        )
    if name in ("batch", "unsampled"):
        sampler = ParentBased(ALWAYS_OFF) if name == "unsampled" else None
        tp = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(NoOpSpanExporter()))
        mp, reader = _meter_provider()
        notes = "BatchSpanProcessor -> no-op exporter; InMemoryMetricReader"
        if sampler is not None:
            notes = "ParentBased(ALWAYS_OFF); " + notes
        return Pipeline(
            name,
            tp,
            mp,
            metric_reader=reader,
            notes=notes,
            _closers=[tp.shutdown, mp.shutdown],
        )
    if name == "simple":
        tp = TracerProvider()
        exporter = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        mp, reader = _meter_provider()
        return Pipeline(
            name,
            tp,
            mp,
            span_exporter=exporter,
            metric_reader=reader,
            notes="SimpleSpanProcessor -> InMemorySpanExporter; InMemoryMetricReader",
            _closers=[tp.shutdown, mp.shutdown],
        )
    raise ValueError(f"unknown pipeline {name!r}")


def _identity(func: F) -> F:
    return func


def _add_routes(app: Flask, exempt: Callable[[Any], Any] = _identity) -> None:
    @app.get("/hello")
    def hello() -> str:
        return "Hello, World!"

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return f"item {item_id}"

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/exempt")
    @exempt
    def exempted() -> str:
        return "exempt"


def make_bare() -> Flask:
    app = Flask("bench_bare")
    _add_routes(app)
    return app


def make_hooks_floor() -> Flask:
    """Bare Flask plus three no-op receivers on the signals a hook-based timer needs
    (request_started, request_finished, request_tearing_down): the least any extension that
    times from Flask's hooks can cost, before it does any work."""
    from flask import signals

    app = make_bare()

    def nothing(sender: Any, **extra: Any) -> None:
        return None

    for signal in (signals.request_started, signals.request_finished, signals.request_tearing_down):
        signal.connect(nothing, app, weak=False)
    return app


def make_hooked_floor(pipeline: Pipeline, same: bool = False, fallback: bool = False) -> Flask:
    """The SDK floor's work done from the three signal receivers a hook-based timer needs, instead
    of a WSGI wrapper: the least any extension timing from Flask's hooks can cost with the SDK
    (the hooks floor plus the SDK floor, with the state handed from receiver to receiver).

    ``same``: with what flask-routetimer must add to that and nothing else (``hookedsame``): the
    fourth receiver of its teardown fallback (``appcontext_tearing_down``, a no-op here), the
    span named after the route with ``http.route`` and ``flask.endpoint`` among its attributes,
    and ``http.route`` on the duration point, as the semantic conventions require.
    ``fallback``: only that fourth receiver (``hookedfallback``).
    """
    from contextvars import ContextVar

    from flask import request, signals

    app = make_bare()
    tracer = pipeline.tracer_provider.get_tracer("benchmarks.hookedfloor")
    histogram = pipeline.meter_provider.get_meter("benchmarks.hookedfloor").create_histogram(
        "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
    )
    server_kind = trace.SpanKind.SERVER
    current: ContextVar[Any] = ContextVar("hookedfloor")

    def started(sender: Any, **extra: Any) -> None:
        environ = request.environ
        method = environ["REQUEST_METHOD"]
        protocol = environ["SERVER_PROTOCOL"][5:]
        rule = request.url_rule if same else None
        route = rule.rule if rule is not None else None
        named = {"http.route": route, "flask.endpoint": rule.endpoint} if rule is not None else {}
        span = tracer.start_span(
            f"{method} {route}" if route else method,
            kind=server_kind,
            attributes={
                **named,
                "http.request.method": method,
                "url.scheme": environ["wsgi.url_scheme"],
                "url.path": environ["PATH_INFO"],
                "server.address": environ["SERVER_NAME"],
                "server.port": int(environ["SERVER_PORT"]),
                "network.protocol.version": protocol,
                "client.address": environ.get("REMOTE_ADDR", ""),
                "client.port": int(environ.get("REMOTE_PORT", 0)),
                "user_agent.original": environ.get("HTTP_USER_AGENT", ""),
            },
        )
        span_context = trace.set_span_in_context(span)
        state = [default_timer(), span, span_context, context.attach(span_context), 500, method]
        state.append(environ["wsgi.url_scheme"])
        state.append(protocol)
        state.append(route)
        current.set(state)

    def finished(sender: Any, response: Any, **extra: Any) -> None:
        current.get()[4] = response.status_code

    def tearing_down(sender: Any, **extra: Any) -> None:
        start, span, span_context, token, code, method, scheme, protocol, route = current.get()
        span.set_attribute("http.response.status_code", code)
        context.detach(token)
        span.end()
        attributes = {
            "http.request.method": method,
            "url.scheme": scheme,
            "http.response.status_code": code,
            "network.protocol.version": protocol,
        }
        if route is not None:
            attributes["http.route"] = route
        histogram.record(default_timer() - start, attributes, context=span_context)

    def context_end(sender: Any, **extra: Any) -> None:
        return None

    signals.request_started.connect(started, app, weak=False)
    signals.request_finished.connect(finished, app, weak=False)
    signals.request_tearing_down.connect(tearing_down, app, weak=False)
    if same or fallback:
        signals.appcontext_tearing_down.connect(context_end, app, weak=False)
    return app


def load_routetimer() -> Any:
    """Return the RouteTimer class, importing flask_routetimer lazily."""
    try:
        module = importlib.import_module("flask_routetimer")
        return module.RouteTimer
    except (ImportError, AttributeError) as exc:
        raise RouteTimerUnavailable(str(exc)) from exc


def make_routetimer(pipeline: Pipeline, **config: Any) -> Flask:
    """flask-routetimer with its defaults (dashboard off, so no trace buffer), plus ``config``."""
    route_timer = load_routetimer()
    app = Flask("bench_routetimer")
    app.config["ROUTETIMER_EXCLUDED_URLS"] = list(ROUTETIMER_EXCLUDED)
    app.config.update(config)
    timer = route_timer(
        app, tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
    )
    _add_routes(app, exempt=timer.exempt)
    return app


def _flask_instrumentor() -> Any:
    if os.environ.get(SEMCONV_ENV) != "http":
        raise RuntimeError(f"{SEMCONV_ENV} must be 'http' before importing the instrumentation")
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    return FlaskInstrumentor


def make_otel(pipeline: Pipeline) -> Flask:
    app = make_bare()
    _flask_instrumentor()().instrument_app(
        app,
        tracer_provider=pipeline.tracer_provider,
        meter_provider=pipeline.meter_provider,
        excluded_urls=OTEL_EXCLUDED,
    )
    return app


def sdk_floor_middleware(wsgi_app: WSGIApp, pipeline: Pipeline) -> WSGIApp:
    """The raw SDK work one request needs, and nothing else.

    One SERVER span with 10 attributes, made current (attach/detach), ended; one
    ``http.server.request.duration`` point with 4 attributes, recorded in the span's context
    (so its exemplar links to the trace, as flask-routetimer's does). The body is not wrapped: the
    span ends when the WSGI callable returns (fine for these small buffered responses).
    """
    tracer = pipeline.tracer_provider.get_tracer("benchmarks.floor")
    histogram = pipeline.meter_provider.get_meter("benchmarks.floor").create_histogram(
        "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
    )
    server_kind = trace.SpanKind.SERVER

    def floor_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start = default_timer()
        method = environ["REQUEST_METHOD"]
        scheme = environ["wsgi.url_scheme"]
        protocol = environ["SERVER_PROTOCOL"][5:]
        span = tracer.start_span(
            method,
            kind=server_kind,
            attributes={
                "http.request.method": method,
                "url.scheme": scheme,
                "url.path": environ["PATH_INFO"],
                "server.address": environ["SERVER_NAME"],
                "server.port": int(environ["SERVER_PORT"]),
                "network.protocol.version": protocol,
                "client.address": environ.get("REMOTE_ADDR", ""),
                "client.port": int(environ.get("REMOTE_PORT", 0)),
                "user_agent.original": environ.get("HTTP_USER_AGENT", ""),
            },
        )
        span_context = trace.set_span_in_context(span)
        token = context.attach(span_context)
        status_holder: list[int] = [500]

        def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            status_holder[0] = int(status[:3])
            return start_response(status, headers, exc_info)

        try:
            return wsgi_app(environ, _start_response)
        finally:
            code = status_holder[0]
            span.set_attribute("http.response.status_code", code)
            context.detach(token)
            span.end()
            # Recorded in the span's context, so the point's exemplar links to the trace: the
            # issue asks this of flask-routetimer, so the floor pays for it too.
            histogram.record(
                default_timer() - start,
                {
                    "http.request.method": method,
                    "url.scheme": scheme,
                    "http.response.status_code": code,
                    "network.protocol.version": protocol,
                },
                context=span_context,
            )

    return floor_app


def make_floor(pipeline: Pipeline) -> Flask:
    app = make_bare()
    app.wsgi_app = sdk_floor_middleware(app.wsgi_app, pipeline)  # type: ignore[method-assign,assignment]
    return app


def make_app(variant: str, pipeline: Pipeline | None) -> Flask:
    """Build one variant. Raises RouteTimerUnavailable for routetimer until it lands."""
    if variant == "bare":
        return make_bare()
    if pipeline is None:
        raise ValueError(f"variant {variant!r} needs a pipeline")
    if variant == "routetimer":
        return make_routetimer(pipeline)
    if variant == "otel":
        return make_otel(pipeline)
    if variant == "floor":
        return make_floor(pipeline)
    if variant == "hookedfloor":
        return make_hooked_floor(pipeline)
    if variant == "hookedsame":
        return make_hooked_floor(pipeline, same=True)
    if variant == "hookedfallback":
        return make_hooked_floor(pipeline, fallback=True)
    raise ValueError(f"unknown variant {variant!r}")


def wsgi_from_env() -> Flask:
    """gunicorn entry point: ``benchmarks.apps:wsgi_from_env()``, one pipeline per worker."""
    variant = os.environ.get("BENCH_VARIANT", "bare")
    pipeline = None if variant == "bare" else make_pipeline("batch")
    try:
        return make_app(variant, pipeline)
    except RouteTimerUnavailable:
        print("flask-routetimer not importable: skipped", file=sys.stderr)
        raise


def write_json(path: str, figures: Any) -> None:
    """Write a benchmark's figures for later comparison (``--json PATH``)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(figures, fh, indent=2)
    print(f"wrote {path}")


def available_variants(spec: str) -> list[str]:
    """The comma-separated variants asked for, less routetimer when it cannot be imported."""
    variants = [v for v in spec.split(",") if v]
    if "routetimer" in variants:
        try:
            load_routetimer()
        except RouteTimerUnavailable:
            print("flask-routetimer not importable: skipped", flush=True)
            variants.remove("routetimer")
    return variants
