"""The example app serves its routes and times them with nested child spans."""

from __future__ import annotations

import logging

from opentelemetry.trace import SpanKind, StatusCode

from example_app import create_app, one_line
from flask_routetimer._body import TIME_TO_FIRST_BYTE


def test_predict_routes_have_their_own_child_spans(tracer_provider, spans):
    """v1 and v2 predict routes each produce a SERVER span with their own timed children."""
    app = create_app(tracer_provider=tracer_provider)
    client = app.test_client()
    assert client.post("/v1/predict/", json={"text": "a b c"}).json["tokens"] == 3
    assert client.post("/v2/predict/", json={"text": "Hello, World"}).json["model"] == "v2"
    by_trace: dict[int, list[str]] = {}
    for span in spans():
        by_trace.setdefault(span.context.trace_id, []).append(span.name)
    assert sorted(by_trace.values()) == [
        ["v1.tokenize", "model.predict", "POST /v1/predict/"],
        ["v2.normalize", "v2.embed", "model.predict", "POST /v2/predict/"],
    ]


def test_stream_fail_health_and_bad_input(tracer_provider, server_spans):
    """Streaming, failing, exempt and 400 routes behave as the README describes."""
    app = create_app(tracer_provider=tracer_provider)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    with client.get("/v1/stream?text=a+b") as response:
        assert response.data == b"a\nb\n"
    assert client.get("/v1/fail").status_code == 500
    assert client.get("/health").json == {"status": "ok"}
    assert client.post("/v1/predict/", json={}).status_code == 400
    names = [(s.name, s.status.status_code) for s in server_spans()]
    assert names == [
        ("GET /v1/stream", StatusCode.UNSET),
        ("GET /v1/fail", StatusCode.ERROR),
        ("POST /v1/predict/", StatusCode.UNSET),
    ]
    assert all(s.kind is SpanKind.SERVER for s in server_spans())


def test_stream_reports_its_first_byte(tracer_provider, server_spans, caplog):
    """/v1/stream's first token comes after the model warms up (50 ms): the span, the console
    line and the log show the time to first byte."""
    app = create_app(tracer_provider=tracer_provider)
    with caplog.at_level(logging.INFO, logger="example_app"):
        with app.test_client().get("/v1/stream?text=a+b+c") as response:
            assert response.data == b"a\nb\nc\n"
    (span,) = server_spans()
    ttfb = span.attributes[TIME_TO_FIRST_BYTE]
    assert 0.05 <= ttfb < (span.end_time - span.start_time) / 1e9
    assert f"(first byte {ttfb * 1000:.1f} ms)" in one_line(span)
    assert f"(first byte after {ttfb * 1000:.1f} ms)" in caplog.text
