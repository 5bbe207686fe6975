"""A broken OTLP/HTTP collector never slows requests down or breaks them, and export resumes.

The real exporter (``opentelemetry-exporter-otlp-proto-http``) behind the SDK's
BatchSpanProcessor sends to a tiny OTLP/HTTP receiver on 127.0.0.1 that decodes
``ExportTraceServiceRequest``. Three faults: nothing listening on the port, a receiver that
accepts and never answers, and one that answers 500. Request latency (p99 over a few hundred
requests, measured in-process) must stay within 10% of a healthy run, plus an absolute slack
for a noisy machine; no exception reaches a request; the span queue stays within
``max_queue_size``; when the receiver is healthy again, spans arrive.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import perf_counter
from typing import Any, Optional

import pytest
from flask import Flask

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: E402
    OTLPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

from flask_routetimer import RouteTimer  # noqa: E402

pytestmark = pytest.mark.load

WARMUP = 50
REQUESTS = 400
#: Queue of the app under fault: small, so the run overflows it and shows it stays bounded.
MAX_QUEUE = 128
#: Queue of the healthy app: large enough that it loses nothing.
HEALTHY_QUEUE = 4096
#: p99 under a fault may exceed the healthy p99 by 10% plus this much (shared, noisy machine).
SLACK_SECONDS = 0.002
ROUNDS = 3  # a noisy round is measured again, at most this many times


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: ``mode`` is ``ok``, ``500`` or ``hang``."""

    def __init__(self, mode: str, port: int = 0) -> None:
        self.mode = mode
        self.names: list[str] = []
        self.posts = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts += 1
                if receiver.mode == "hang":
                    receiver.release.wait(30)  # accepted, never answered (until released)
                    return
                if receiver.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.names.extend(span.name for span in scope_spans.spans)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Exported:
    """An app whose spans go to ``endpoint`` through the real exporter and batch processor."""

    def __init__(self, endpoint: str, max_queue: int) -> None:
        self.processor = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, timeout=1),
            max_queue_size=max_queue,
            max_export_batch_size=min(max_queue, 512),
            schedule_delay_millis=20,
            export_timeout_millis=2000,
        )
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.app = Flask("exported")
        RouteTimer(self.app, tracer_provider=self.provider)
        self.app.add_url_rule("/ok", "ok", lambda: "ok")
        self.app.add_url_rule("/again", "again", lambda: "again")
        self.client = self.app.test_client()
        self.max_queued = 0

    def queued(self) -> Optional[int]:
        """Spans waiting in the batch processor (private SDK state; None if it moved)."""
        inner = getattr(self.processor, "_batch_processor", self.processor)
        queue = getattr(inner, "_queue", None) or getattr(inner, "queue", None)
        return None if queue is None else len(queue)

    def serve_one(self) -> float:
        """Serve one request, which must succeed; its latency in seconds."""
        start = perf_counter()
        response = self.client.get("/ok")
        elapsed = perf_counter() - start
        assert (response.status_code, response.data) == (200, b"ok")
        self.max_queued = max(self.max_queued, self.queued() or 0)
        return elapsed

    def close(self) -> None:
        self.provider.shutdown()


def p99s(healthy: Exported, faulted: Exported, count: int) -> tuple[float, float]:
    """The p99 latency of ``count`` requests to each app, the two taking turns request by
    request: a pause of the machine (another process, a collection) hits both alike, where all
    of one app's requests and then the other's would compare two different moments."""
    first: list[float] = []
    second: list[float] = []
    for _ in range(count):
        first.append(healthy.serve_one())
        second.append(faulted.serve_one())
    rank = int(count * 0.99) - 1
    return sorted(first)[rank], sorted(second)[rank]


@pytest.mark.parametrize("fault", ["closed-port", "never-answers", "answers-500"])
def test_collector_fault_costs_requests_nothing(fault, receivers, caplog):
    """Latency p99 within 10% (+2 ms) of healthy, no error in requests, queue bounded, recovery."""
    healthy_receiver = Receiver("ok")
    receivers.append(healthy_receiver)
    if fault == "closed-port":
        port = closed_port()
        endpoint = f"http://127.0.0.1:{port}/v1/traces"
    else:
        faulty = Receiver("hang" if fault == "never-answers" else "500")
        receivers.append(faulty)
        endpoint = faulty.endpoint

    rounds = []
    healthy = Exported(healthy_receiver.endpoint, HEALTHY_QUEUE)
    faulted = Exported(endpoint, MAX_QUEUE)
    try:
        for _ in range(ROUNDS):
            p99s(healthy, faulted, WARMUP)
            rounds.append(p99s(healthy, faulted, REQUESTS))
            if rounds[-1][1] <= rounds[-1][0] * 1.10 + SLACK_SECONDS:
                break
        healthy_p99, fault_p99 = rounds[-1]
        print(
            f"\n[otlp] {fault}: p99 healthy {healthy_p99 * 1000:.2f} ms, under fault "
            f"{fault_p99 * 1000:.2f} ms ({len(rounds)} round(s) of {REQUESTS}); "
            f"max queued {faulted.max_queued} (max_queue_size {MAX_QUEUE})"
        )
        assert fault_p99 <= healthy_p99 * 1.10 + SLACK_SECONDS, rounds
        assert faulted.max_queued <= MAX_QUEUE
        assert not [r for r in caplog.records if r.name == "flask_routetimer"]

        # The collector is back: later spans are delivered.
        if fault == "closed-port":
            back = Receiver("ok", port=port)
            receivers.append(back)
        else:
            back = faulty
            back.mode = "ok"
            back.release.set()
        deadline = time.monotonic() + 20
        while "GET /again" not in back.names and time.monotonic() < deadline:
            faulted.client.get("/again")
            faulted.provider.force_flush(2000)
            time.sleep(0.05)
        assert "GET /again" in back.names, f"export did not resume: {back.posts} posts"
        assert healthy.provider.force_flush(5000)
        assert healthy_receiver.names.count("GET /ok") == (WARMUP + REQUESTS) * len(rounds)
    finally:
        healthy.close()
        faulted.close()
    logging.getLogger("opentelemetry").debug("fault %s done", fault)
