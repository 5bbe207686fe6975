"""HTTP server metrics, read back with the SDK's InMemoryMetricReader."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server

from flask_routetimer import RouteTimer
from flask_routetimer import metrics as metrics_module
from flask_routetimer.metrics import DURATION_BUCKETS


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def metered(tracer_provider, reader) -> Iterator[tuple[Flask, RouteTimer]]:
    meter_provider = MeterProvider(metric_readers=[reader])
    app = Flask("metered")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    timer = RouteTimer(app, tracer_provider=tracer_provider, meter_provider=meter_provider)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return str(item_id)

    @app.get("/fail")
    def fail() -> str:
        raise ValueError("x")

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Iterator[str]:
            time.sleep(0.01)
            yield "a"

        return Response(body())

    @app.get("/health")
    @timer.exempt
    def health() -> str:
        return "ok"

    yield app, timer
    meter_provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def test_duration_histogram_attributes_and_buckets(metered, reader):
    """One point per route/status with the semconv attributes and bucket advice, in seconds."""
    app, _ = metered
    client = app.test_client()
    for n in range(3):
        client.get(f"/items/{n}")
    client.get("/nope")
    by_route = {
        p.attributes.get("http.route"): p for p in points(reader, "http.server.request.duration")
    }
    item = by_route["/items/<int:item_id>"]
    assert item.count == 3
    assert dict(item.attributes) == {
        "http.request.method": "GET",
        "http.route": "/items/<int:item_id>",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "network.protocol.version": "1.1",
    }
    assert tuple(item.explicit_bounds) == DURATION_BUCKETS
    assert 0 < item.sum < 1
    assert "http.route" not in by_route[None].attributes
    assert by_route[None].attributes["http.response.status_code"] == 404
    assert all("url.path" not in p.attributes for p in by_route.values())


def test_error_type_on_failures(metered, reader):
    """A failing request's point carries error.type."""
    app, _ = metered
    app.test_client().get("/fail")
    (point,) = points(reader, "http.server.request.duration")
    assert point.attributes["error.type"] == "ValueError"
    assert point.attributes["http.response.status_code"] == 500


def test_exemplar_links_to_the_trace(metered, reader, server_spans):
    """The duration point is recorded in the request's context: its exemplar names the trace."""
    app, _ = metered
    app.test_client().get("/items/1")
    (point,) = points(reader, "http.server.request.duration")
    (span,) = server_spans()
    assert [e.trace_id for e in point.exemplars] == [span.context.trace_id]
    assert [e.span_id for e in point.exemplars] == [span.context.span_id]


def test_active_requests_returns_to_zero(metered, reader):
    """Ordinary, failing, 404 and streamed requests all count out again."""
    app, _ = metered
    client = app.test_client()
    client.get("/items/1")
    client.get("/fail")
    client.get("/nope")
    with client.get("/stream") as response:
        assert response.data == b"a"
        assert sum(p.value for p in points(reader, "http.server.active_requests")) == 1
    active = points(reader, "http.server.active_requests")
    assert active and sum(p.value for p in active) == 0
    assert {tuple(sorted(p.attributes)) for p in active} == {("http.request.method", "url.scheme")}


def test_forged_schemes_are_one_other_series(metered, reader):
    """``wsgi.url_scheme`` can come from a client's X-Forwarded-Proto (ProxyFix): any scheme but
    http and https is ``_OTHER`` in both instruments, so forging schemes adds no series."""
    app, _ = metered
    client = app.test_client()
    for n in range(20):
        client.get("/items/1", environ_overrides={"wsgi.url_scheme": f"forged{n}"})
    client.get("/items/1", environ_overrides={"wsgi.url_scheme": "https"})
    client.get("/items/1")
    for name in ["http.server.active_requests", "http.server.request.duration"]:
        schemes = sorted(p.attributes["url.scheme"] for p in points(reader, name))
        assert schemes == ["_OTHER", "http", "https"], name


#: Forged requests sent over a real socket in the test below (each a new scheme and version).
FORGED = 300


def send_raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_forged_schemes_and_versions_over_a_real_socket_add_no_series(metered, reader, spans):
    """Behind ProxyFix on Werkzeug's server, 300 requests each with a new X-Forwarded-Proto and
    a new ``HTTP/1.<digits>`` version (both accepted by the server) add one series in all:
    ``url.scheme`` is http, https or ``_OTHER``, and an unknown protocol version is left out."""
    app, _ = metered
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        port = server.server_port
        for version in ["1.1", "1.0"]:
            reply = send_raw(
                port,
                f"GET /items/1 HTTP/{version}\r\nHost: a\r\nConnection: close\r\n\r\n".encode(),
            )
            assert reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n")[0]
        legitimate = len(points(reader, "http.server.request.duration"))
        for n in range(FORGED):
            request = (
                f"GET /items/1 HTTP/1.{n + 2}\r\nHost: a\r\nX-Forwarded-Proto: p{n}{'x' * n}"
                "\r\nConnection: close\r\n\r\n"
            )
            assert b" 200 " in send_raw(port, request.encode()).split(b"\r\n")[0]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    durations = points(reader, "http.server.request.duration")
    assert legitimate == 2 and len(durations) == legitimate + 1
    assert sum(p.count for p in durations) == FORGED + 2
    forged = [p.attributes for p in durations if p.attributes["url.scheme"] == "_OTHER"]
    assert len(forged) == 1 and "network.protocol.version" not in forged[0]
    assert len(points(reader, "http.server.active_requests")) == 2  # (GET, http), (GET, _OTHER)
    schemes = {span.attributes["url.scheme"] for span in spans() if span.name.startswith("GET")}
    assert schemes == {"http", "_OTHER"}


def test_active_series_past_the_cap_share_one_overflow_series(metered, reader, monkeypatch):
    """Past MAX_ACTIVE_KEYS (method, scheme) pairs, new pairs share one series marked as the SDK
    marks its overflow (a safety net: methods and schemes are bounded sets already)."""
    monkeypatch.setattr(metrics_module, "MAX_ACTIVE_KEYS", 3)
    app, _ = metered
    client = app.test_client()
    with client.get("/stream") as held:  # one request in flight on an ordinary series
        for method in ["POST", "PUT", "DELETE", "PATCH"]:
            client.open("/items/1", method=method)
        with client.get("/stream", environ_overrides={"wsgi.url_scheme": "https"}) as late:
            active = points(reader, "http.server.active_requests")
            assert len(active) == 4  # three series kept, one overflow
            overflow = [p for p in active if p.attributes == {"otel.metric.overflow": True}]
            assert [p.value for p in overflow] == [1]
            assert sum(p.value for p in active) == 2
            assert late.data == b"a"
        assert held.data == b"a"
    assert sum(p.value for p in points(reader, "http.server.active_requests")) == 0
    # Durations keep their real attributes: the histogram has the SDK's own cardinality limit.
    methods = {
        p.attributes["http.request.method"] for p in points(reader, "http.server.request.duration")
    }
    assert "PATCH" in methods


def test_exempt_and_excluded_record_nothing(tracer_provider, reader):
    """No metric point at all for exempt or excluded routes."""
    app = Flask("quiet")
    app.config["ROUTETIMER_EXCLUDED_URLS"] = ["^/skip"]
    timer = RouteTimer(
        app, tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    app.add_url_rule("/skip", "skip", lambda: "s")
    app.add_url_rule("/health", "health", timer.exempt(lambda: "ok"))
    app.test_client().get("/skip")
    app.test_client().get("/health")
    assert points(reader, "http.server.request.duration") == []
    assert points(reader, "http.server.active_requests") == []


def test_instruments_are_created_once_per_provider(tracer_provider, reader):
    """Requests never create instruments: the meter is asked once per RouteTimer."""
    calls: list[str] = []

    class CountingProvider(MeterProvider):
        def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return super().get_meter(name, *args, **kwargs)

    app = Flask("once")
    RouteTimer(
        app,
        tracer_provider=tracer_provider,
        meter_provider=CountingProvider(metric_readers=[reader]),
    )
    app.add_url_rule("/x", "x", lambda: "x")
    for _ in range(5):
        app.test_client().get("/x")
    assert calls == ["flask_routetimer"]
    assert points(reader, "http.server.request.duration")[0].count == 5
