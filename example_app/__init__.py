"""The motivating service: an ML-inference API timed by flask-routetimer.

Run it with ``bash scripts/run-example.sh`` (see the README). Every request is printed as a span
by the OpenTelemetry SDK's console exporter, with the ``timer.timed`` child spans nested inside.
The SDK is set up by ``configure_sdk()`` from the standard ``OTEL_*`` variables, so one variable
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``) also sends the same
spans to a trace backend; see docs/BACKENDS.md.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from flask import Flask, Response, abort, jsonify, request, stream_with_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from flask_routetimer import RouteTimer, RouteTiming, basic_auth, configure_sdk, request_timed
from flask_routetimer.dashboard_auth import PASSWORD_ENV

from . import model

log = logging.getLogger("example_app")


def one_line(span: ReadableSpan) -> str:
    """A compact console line per span: name, duration (and first byte of a stream), status,
    trace and parent."""
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    parent = f" parent={span.parent.span_id:016x}" if span.parent else ""
    attributes = span.attributes or {}
    status = attributes.get("http.response.status_code", "")
    ttfb = attributes.get("routetimer.time_to_first_byte")
    first = f" (first byte {ttfb * 1000:.1f} ms)" if isinstance(ttfb, float) else ""
    return (
        f"span {span.name!r} {duration_ms:.1f} ms{first} {status} {span.status.status_code.name} "
        f"trace={span.context.trace_id:032x} span={span.context.span_id:016x}{parent}\n"
    )


#: SDK providers that already print one line per span (create_app may run twice per process).
_printing: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def sdk_tracer_provider() -> trace.TracerProvider:
    """The global provider from ``OTEL_*`` variables, printing one console line per span.

    ``configure_sdk()`` keeps a provider that is already configured (``opentelemetry-instrument``,
    an earlier call) and otherwise builds one whose exporters the environment chooses, e.g. OTLP
    when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. The console line is added to any SDK provider,
    so the terminal shows each span whether or not it also goes to a backend.
    """
    os.environ.setdefault("OTEL_SERVICE_NAME", "example-ml-api")
    provider = configure_sdk().tracer_provider or trace.get_tracer_provider()
    if isinstance(provider, TracerProvider) and provider not in _printing:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
        _printing.add(provider)
    return provider


def text_from_request() -> str:
    payload = request.get_json(silent=True) or {}
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str) or not text.strip():
        abort(400, description='Send JSON like {"text": "some words"}.')
    return text


def register_routes(app: Flask, timer: RouteTimer) -> None:
    @app.get("/")
    def index() -> Any:
        return jsonify(
            pid=os.getpid(),  # which gunicorn worker answered
            routes=sorted(str(rule) for rule in app.url_map.iter_rules()),
            try_it='curl -X POST localhost:5000/v1/predict/ -H "Content-Type: application/json" '
            '-d \'{"text": "flask is fun"}\'',
        )

    @app.post("/v1/predict/")
    def predict_v1() -> Any:
        text = text_from_request()
        with timer.timed("v1.tokenize"):
            tokens = model.tokenize(text)
        with timer.timed("model.predict", attributes={"model.version": "v1"}):
            scores = model.predict(tokens)
        return jsonify(model="v1", tokens=len(tokens), scores=scores)

    @app.post("/v2/predict/")
    def predict_v2() -> Any:
        text = text_from_request()
        with timer.timed("v2.normalize"):
            clean = model.normalize(text)
        with timer.timed("v2.embed"):
            features = model.embed(model.tokenize(clean))
        with timer.timed("model.predict", attributes={"model.version": "v2"}):
            scores = model.predict(features, delay=0.02)
        return jsonify(model="v2", scores=scores)

    @app.get("/v1/stream")
    def stream() -> Response:
        words = request.args.get("text", "streaming tokens one at a time").split()

        @stream_with_context
        def generate() -> Iterator[str]:
            time.sleep(0.05)  # the model warms up before the first token
            for word in words:
                yield f"{word}\n"
                time.sleep(0.02)

        return Response(generate(), mimetype="text/plain")

    @app.get("/v1/fail")
    def fail() -> Any:
        raise RuntimeError("the model file is missing (a deliberate failure)")

    @app.get("/health")
    @timer.exempt
    def health() -> Any:
        return {"status": "ok"}


def log_timing(sender: Flask, timing: RouteTiming, **_: Any) -> None:
    first = timing.time_to_first_byte
    log.info(
        "%s %s -> %s in %.1f ms%s",
        timing.method,
        timing.route or "<no route>",
        timing.status_code,
        timing.duration * 1000,
        f" (first byte after {first * 1000:.1f} ms)" if first is not None else "",
    )


#: The dashboard's user name; its password is ``$ROUTETIMER_DASHBOARD_PASSWORD``.
DASHBOARD_USER = "admin"


def dashboard_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The dashboard behind HTTP Basic auth when a password is set, else in debug mode only."""
    if not environ.get(PASSWORD_ENV):
        log.info(
            "Dashboard in debug mode only, and with no login there (anyone who can reach the "
            "server can read it): set %s to show it behind a password.",
            PASSWORD_ENV,
        )
        return {}
    return {"ROUTETIMER_DASHBOARD": True, "ROUTETIMER_DASHBOARD_AUTH": basic_auth(DASHBOARD_USER)}


def create_app(
    tracer_provider: Optional[trace.TracerProvider] = None,
    config: Optional[Mapping[str, Any]] = None,
) -> Flask:
    """App factory; tests pass their own provider and config, otherwise the SDK is set up from
    ``OTEL_*`` variables (see docs/BACKENDS.md).

    With ``ROUTETIMER_DASHBOARD_PASSWORD`` set (``scripts/run-example.sh`` makes one up) the
    dashboard is on even without debug mode, behind HTTP Basic auth (user ``admin``).
    """
    if tracer_provider is None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        tracer_provider = sdk_tracer_provider()
    app = Flask(__name__)
    app.config.update(config or {})
    app.config.setdefault("ROUTETIMER_SERVER_TIMING", True)
    for key, value in dashboard_config(os.environ).items():
        app.config.setdefault(key, value)
    timer = RouteTimer(tracer_provider=tracer_provider)
    timer.init_app(app)
    register_routes(app, timer)
    request_timed.connect(log_timing, app)
    return app
