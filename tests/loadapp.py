"""A timed Flask app for real-server tests: gunicorn imports it, or it runs itself.

Each process (gunicorn worker, forked child, Werkzeug server) writes what it saw into the
directory named by ``ROUTETIMER_LOAD_DIR``:

- ``spans-<pid>.jsonl``: every finished span, one JSON object a line, written by a
  BatchSpanProcessor (the real SDK path, fork handling included);
- ``worker-<pid>.json`` at exit (:func:`shutdown`): ``http.server.active_requests`` from an
  in-memory metric reader, and RSS.

Run as a script: ``python loadapp.py werkzeug`` serves it with Werkzeug's threaded server on
127.0.0.1 (port written to ``port`` in the directory) until SIGTERM; ``python loadapp.py fork N M``
serves M requests before forking N children that serve M requests each (plain ``os.fork``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence

from flask import Flask, Response, abort
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from flask_routetimer import RouteTimer

OUT_DIR = os.environ.get("ROUTETIMER_LOAD_DIR", ".")
STREAM_CHUNKS = 4
LONG_CHUNKS = 200
LONG_CHUNK = b"x" * 16384
#: /paced sends its first byte after FIRST_BYTE seconds and its last after LAST_BYTE.
FIRST_BYTE = 0.05
LAST_BYTE = 0.2

logging.basicConfig(
    level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
)


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class JsonLinesExporter(SpanExporter):
    """Appends finished spans to ``spans-<pid>.jsonl``: the pid at export time, so after a fork
    each process writes its own file."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            attributes = dict(span.attributes or {})
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "kind": span.kind.name,
                        "span_id": format(span.context.span_id, "016x") if span.context else "",
                        "route": attributes.get("http.route"),
                        "status": attributes.get("http.response.status_code"),
                        "incomplete": attributes.get("routetimer.body_incomplete", False),
                        "ttfb": attributes.get("routetimer.time_to_first_byte"),
                        "method": attributes.get("http.request.method"),
                        "duration": ((span.end_time or 0) - (span.start_time or 0)) / 1e9,
                        "error_type": attributes.get("error.type"),
                        "pid": os.getpid(),
                    }
                )
            )
        with open(os.path.join(OUT_DIR, f"spans-{os.getpid()}.jsonl"), "a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


tracer_provider = TracerProvider()
tracer_provider.add_span_processor(
    BatchSpanProcessor(JsonLinesExporter(), schedule_delay_millis=200)
)
metric_reader = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[metric_reader])

app = Flask("loadapp")
# The dashboard on (every visitor refused): its trace buffer fills under load, and the RSS check
# proves it stays bounded.
app.config.update(ROUTETIMER_DASHBOARD=True, ROUTETIMER_DASHBOARD_AUTH=lambda: False)
timer = RouteTimer(app, tracer_provider=tracer_provider, meter_provider=meter_provider)


@app.get("/ok")
def ok() -> str:
    return "ok"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    with timer.timed("lookup"):
        return {"id": item_id}


@app.get("/stream")
def stream() -> Response:
    def chunks() -> Iterator[bytes]:
        for index in range(STREAM_CHUNKS):
            yield b"chunk %d\n" % index

    return Response(chunks(), mimetype="text/plain")


@app.get("/long")
def long_stream() -> Response:
    """A long body a client can walk away from."""

    def chunks() -> Iterator[bytes]:
        for _ in range(LONG_CHUNKS):
            time.sleep(0.002)
            yield LONG_CHUNK

    return Response(chunks(), mimetype="application/octet-stream")


@app.get("/paced")
def paced() -> Response:
    """A stream whose first byte comes after 50 ms and last after 200 ms."""

    def chunks() -> Iterator[bytes]:
        time.sleep(FIRST_BYTE)
        yield b"first\n"
        time.sleep(LAST_BYTE - FIRST_BYTE)
        yield b"last\n"

    return Response(chunks(), mimetype="text/plain")


@app.get("/fail")
def fail() -> str:
    raise RuntimeError("the view failed")


@app.get("/abort")
def aborted() -> str:
    abort(403)


@app.get("/exempt")
@timer.exempt
def exempt() -> str:
    return "exempt"


_shut = threading.Lock()


def active_requests() -> list[float]:
    """Every data point of ``http.server.active_requests`` (all must be 0 when idle)."""
    data = metric_reader.get_metrics_data()
    values: list[float] = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "http.server.active_requests":
                    values.extend(point.value for point in metric.data.data_points)
    return values


def shutdown() -> None:
    """Flush spans and dump metrics and RSS: gunicorn's worker_exit, or a script's exit."""
    if not _shut.acquire(blocking=False):
        return
    active = active_requests()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    report = {"pid": os.getpid(), "active": active, "rss_kb": rss_kb(os.getpid())}
    with open(os.path.join(OUT_DIR, f"worker-{os.getpid()}.json"), "w") as out:
        json.dump(report, out)


def serve_werkzeug() -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with open(os.path.join(OUT_DIR, "port.tmp"), "w") as out:
        out.write(str(server.server_port))
    os.replace(os.path.join(OUT_DIR, "port.tmp"), os.path.join(OUT_DIR, "port"))
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        shutdown()


def serve_requests(count: int) -> None:
    client = app.test_client()
    for index in range(count):
        client.get(f"/items/{index}").close()


def fork_children(children: int, count: int) -> None:
    """Serve ``count`` requests, fork ``children`` that serve ``count`` each, flush everywhere."""
    serve_requests(count)  # queued in the parent's batch processor when the fork happens
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                serve_requests(count)
                shutdown()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    shutdown()
    sys.exit(1 if failed else 0)


def main(argv: list[str]) -> None:
    if argv[:1] == ["werkzeug"]:
        serve_werkzeug()
    elif argv[:1] == ["fork"]:
        fork_children(int(argv[1]), int(argv[2]))
    else:
        raise SystemExit("usage: loadapp.py werkzeug | fork CHILDREN REQUESTS")


if __name__ == "__main__":
    main(sys.argv[1:])
