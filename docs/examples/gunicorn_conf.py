"""gunicorn.conf.py: set up the OpenTelemetry SDK in each worker, after the fork.

Run with: gunicorn -c gunicorn_conf.py --preload quickstart:app
"""

import os

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = 2


def post_fork(server: object, worker: object) -> None:
    # RouteTimer(app) without providers looks the global ones up lazily, at the first request,
    # so configuring them here works even with --preload (the app was built in the master).
    resource = Resource.create({"service.name": "my-api", "service.instance.id": str(os.getpid())})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
