"""Concurrent requests against a real threaded server each get their own correct span."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_routetimer import RouteTimer

REQUESTS = 200


@pytest.fixture
def served(tracer_provider) -> Iterator[tuple[Flask, int]]:
    app = Flask("threaded")
    timer = RouteTimer(app, tracer_provider=tracer_provider)

    @app.get("/work/<int:n>")
    def work(n: int) -> str:
        with timer.timed("step"):
            time.sleep(0.001 * (n % 5))
        return str(n)

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield app, server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def fetch(port: int, n: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"/work/{n}")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_each_request_gets_its_own_span(served, spans):
    """200 requests from 16 threads: 200 server spans, each with its own path and child."""
    app, port = served
    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(lambda n: fetch(port, n), range(REQUESTS)))
    assert bodies == [str(n) for n in range(REQUESTS)]
    deadline = time.monotonic() + 10
    while len(spans()) < 2 * REQUESTS and time.monotonic() < deadline:
        time.sleep(0.01)  # the last span ends just after its response is sent
    server_spans = [s for s in spans() if s.name == "GET /work/<int:n>"]
    children = [s for s in spans() if s.name == "step"]
    assert sorted(s.attributes["url.path"] for s in server_spans) == sorted(
        f"/work/{n}" for n in range(REQUESTS)
    )
    assert len({s.context.trace_id for s in server_spans}) == REQUESTS
    parents = {s.context.span_id: s for s in server_spans}
    for child in children:
        assert child.parent is not None
        assert parents[child.parent.span_id].context.trace_id == child.context.trace_id
    assert len(children) == REQUESTS
