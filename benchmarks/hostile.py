"""Hostile clients: ``python -m benchmarks.hostile forged|traces|propagation [-n N] [--quick]``.

Each scenario runs in this process against one app (WSGI environs fed to ``app.wsgi_app``, so
100k requests take seconds, not minutes) and prints one JSON line. Run each in a fresh process:
RSS is the process's own. Works on the code before issue 13 too (for the comparison), so it
only uses APIs both have.

- ``forged``: behind ``ProxyFix(x_proto=1)``, every request a new ``X-Forwarded-Proto`` and a new
  ``HTTP/1.<n>``; metric series of both instruments and RSS growth.
- ``traces``: the dashboard on, request headers captured (``x-.*``), 16 headers of 1 KB each;
  requests re-use 200 ``traceparent`` ids; spans kept by the trace buffer, RSS growth and the
  largest trace page.
- ``propagation``: malformed ``traceparent`` headers; log records from OpenTelemetry's loggers,
  with the default logging setup and with the level docs/RELIABILITY.md suggests.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import time
from importlib import metadata
from typing import Any, Callable

from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from werkzeug.middleware.proxy_fix import ProxyFix

import flask_routetimer
from flask_routetimer import RouteTimer

MIB = 1024.0 * 1024.0
#: The loggers docs/RELIABILITY.md suggests setting to ERROR.
QUIET_LOGGERS = (
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.baggage.propagation",
    "opentelemetry.trace.span",
)


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def environ(path: str, **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **extra,
    }


def call(wsgi: Callable[..., Any], env: dict[str, Any]) -> bytes:
    status: list[str] = []
    body = wsgi(env, lambda code, headers, exc_info=None: status.append(code))
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


def series(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    counts: dict[str, int] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                counts[metric.name] = len(metric.data.data_points)
    return counts


def forged(n: int) -> dict[str, Any]:
    reader = InMemoryMetricReader()
    app = Flask("forged")
    RouteTimer(app, tracer_provider=TracerProvider(), meter_provider=MeterProvider([reader]))
    app.add_url_rule("/items/<int:i>", "item", lambda i: str(i))
    wsgi = ProxyFix(app.wsgi_app, x_proto=1)
    for i in range(1000):  # warm-up: legitimate requests
        call(wsgi, environ(f"/items/{i}"))
    gc.collect()
    before, started = rss_mib(), time.perf_counter()
    for i in range(n):
        call(
            wsgi,
            environ(
                f"/items/{i}",
                HTTP_X_FORWARDED_PROTO=f"p{i}",
                SERVER_PROTOCOL=f"HTTP/1.{i + 2}",
            ),
        )
    elapsed = time.perf_counter() - started
    gc.collect()
    return {
        "scenario": "forged",
        "requests": n,
        "series": series(reader),
        "rss_growth_mib": round(rss_mib() - before, 1),
        "seconds": round(elapsed, 1),
    }


def traces(n: int) -> dict[str, Any]:
    app = Flask("traces")
    # Debug mode: the dashboard is on, so the buffer is kept.
    app.config.update(DEBUG=True, ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=["x-.*"])
    RouteTimer(app, tracer_provider=TracerProvider())
    app.add_url_rule("/items/<int:i>", "item", lambda i: str(i))
    wsgi = app.wsgi_app
    pad = {f"HTTP_X_PAD_{k}": "p" * 1000 for k in range(16)}
    for i in range(1000):  # warm-up: fills the buffer with legitimate traces
        call(wsgi, environ(f"/items/{i}", **pad))
    gc.collect()
    before, started = rss_mib(), time.perf_counter()
    for i in range(n):
        parent = f"00-{i % 200 + 1:032x}-{i + 1:016x}-01"
        call(wsgi, environ(f"/items/{i}", HTTP_TRACEPARENT=parent, **pad))
    elapsed = time.perf_counter() - started
    gc.collect()
    growth = rss_mib() - before
    buffer = app.extensions["routetimer"].traces
    records = buffer.traces()
    client = app.test_client()
    pages = [len(client.get(f"/_routetimer/trace/{r.trace_id}").data) for r in records]
    return {
        "scenario": "traces",
        "requests": n,
        "traces_kept": len(records),
        "spans_kept": sum(len(r.spans) for r in records),
        "largest_trace_spans": max((len(r.spans) for r in records), default=0),
        "largest_page_bytes": max(pages, default=0),
        "rss_growth_mib": round(growth, 1),
        "seconds": round(elapsed, 1),
    }


class Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0
        self.loggers: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.loggers[record.name] = self.loggers.get(record.name, 0) + 1


def propagation(n: int) -> dict[str, Any]:
    app = Flask("propagation")
    RouteTimer(app, tracer_provider=TracerProvider())
    app.add_url_rule("/items/<int:i>", "item", lambda i: str(i))
    counted = Count()
    logging.getLogger().addHandler(counted)
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    hostile = [
        {"HTTP_TRACEPARENT": "00-" + "a" * 600},  # overlong
        {"HTTP_TRACEPARENT": valid, "HTTP_TRACESTATE": "bad key=value"},
        {"HTTP_TRACEPARENT": valid, "HTTP_TRACESTATE": ",".join(f"k{j}=v" for j in range(40))},
        {"HTTP_TRACEPARENT": valid, "HTTP_BAGGAGE": "bad baggage"},
    ]
    results: dict[str, Any] = {}
    for setting in ("default", "quiet"):
        if setting == "quiet":  # what docs/RELIABILITY.md suggests
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        counted.records = 0
        for i in range(n):
            call(app.wsgi_app, environ(f"/items/{i}", **hostile[i % len(hostile)]))
        results[setting] = counted.records
        if setting == "default":
            results["by_logger"] = dict(counted.loggers)
    return {"scenario": "propagation", "requests": n, "log_records": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["forged", "traces", "propagation"])
    parser.add_argument("-n", type=int, default=20_000, help="hostile requests (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 requests")
    args = parser.parse_args()
    if args.quick:
        args.n = 2_000
    scenario = {"forged": forged, "traces": traces, "propagation": propagation}[args.scenario]
    result = scenario(args.n)
    result["code"] = flask_routetimer.__file__
    result["sdk"] = metadata.version("opentelemetry-sdk")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
