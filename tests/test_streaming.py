"""Streamed bodies are timed to their last byte, and every span ends exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask, Response, stream_with_context
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from flask_routetimer import RouteTiming, request_timed

CHUNK_DELAY = 0.05


@pytest.fixture
def stream_app(app: Flask) -> Flask:
    def chunks() -> Iterator[str]:
        for index in range(3):
            time.sleep(CHUNK_DELAY)
            yield f"chunk {index}\n"

    @app.get("/plain")
    def plain() -> Response:
        return Response(chunks(), mimetype="text/plain")

    @app.get("/with-context")
    def with_context() -> Response:
        return Response(stream_with_context(chunks()), mimetype="text/plain")

    return app


@pytest.mark.parametrize("path", ["/plain", "/with-context"])
def test_duration_covers_the_whole_body(stream_app, server_spans, path):
    """The span lasts at least as long as producing all chunks, which happens after the view."""
    timings: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: timings.append(timing), stream_app):
        with stream_app.test_client().get(path) as response:
            assert response.status_code == 200
            assert not server_spans(), "span ended before the body was sent"
            assert response.get_data(as_text=True).count("chunk") == 3
    (span,) = server_spans()
    assert span.end_time - span.start_time >= 3 * CHUNK_DELAY * 1e9
    assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert len(timings) == 1 and timings[0].duration >= 3 * CHUNK_DELAY


@pytest.mark.parametrize("path", ["/plain", "/with-context"])
def test_client_gone_mid_stream_ends_span_once(stream_app, server_spans, path):
    """Closing the response after one chunk (a client that disconnects) ends the span once."""
    timings: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: timings.append(timing), stream_app):
        response = stream_app.test_client().get(path)
        next(response.response)  # the server sent one chunk, then the client went away
        response.close()
        response.close()  # a second close must not end anything twice
    assert len(server_spans()) == 1
    assert len(timings) == 1


def test_head_of_a_streamed_route(stream_app, server_spans):
    """HEAD on a streamed route produces no body but still ends its span."""
    with stream_app.test_client().head("/plain") as response:
        assert response.data == b""
    (span,) = server_spans()
    assert span.name == "HEAD /plain"


def test_buffered_client_closes_stream(stream_app, server_spans):
    """A buffered test client reads and closes the stream: the span is there on return."""
    stream_app.test_client().get("/plain", buffered=True)
    assert len(server_spans()) == 1
