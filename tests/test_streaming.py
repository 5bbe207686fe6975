"""Streamed bodies are timed to their last byte and to their first; a body cut short or raising
is marked; every span ends exactly once."""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Iterator

import pytest
from flask import Flask, Response, stream_with_context
from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from flask_routetimer import RouteTiming, request_timed
from flask_routetimer._body import TIME_TO_FIRST_BYTE, WatchedBody
from flask_routetimer.request_span import BODY_INCOMPLETE

CHUNK_DELAY = 0.05
FIRST_CHUNK = 0.05
LAST_CHUNK = 0.2


def chunks() -> Iterator[str]:
    """Three chunks, CHUNK_DELAY apart."""
    for index in range(3):
        time.sleep(CHUNK_DELAY)
        yield f"chunk {index}\n"


def paced() -> Iterator[str]:
    """An empty chunk at once (no byte), the first byte after 50 ms, the last after 200 ms."""
    yield ""
    time.sleep(FIRST_CHUNK)
    yield "first\n"
    time.sleep(LAST_CHUNK - FIRST_CHUNK)
    yield "last\n"


def first_then(fail: bool) -> Iterator[str]:
    """A first chunk, then a second one or, if ``fail``, an OSError."""
    yield "first\n"
    if fail:
        raise OSError("backend went away")
    yield "second\n"


@pytest.fixture
def stream_app(app: Flask) -> Flask:
    """The ``app`` fixture with streamed views: slow chunks, paced chunks (for time to first
    byte), a body that may raise, each plain and under ``stream_with_context``; and views sending
    no streamed byte (204, 304, buffered, empty chunks)."""

    @app.get("/plain")
    def plain() -> Response:
        return Response(chunks(), mimetype="text/plain")

    @app.get("/with-context")
    def with_context() -> Response:
        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/paced")
    def paced_view() -> Response:
        return Response(paced(), mimetype="text/plain")

    @app.get("/paced-context")
    def paced_context() -> Response:
        return Response(stream_with_context(paced()), mimetype="text/plain")

    @app.get("/stream/<int:fail>")
    def stream(fail: int) -> Response:
        return Response(first_then(bool(fail)), mimetype="text/plain")

    @app.get("/context")
    def context() -> Response:
        return Response(stream_with_context(first_then(False)), mimetype="text/plain")

    @app.get("/buffered")
    def buffered() -> str:
        time.sleep(FIRST_CHUNK)
        return "all at once"

    @app.get("/silent")
    def silent() -> Response:
        return Response(iter(["", b""]), mimetype="text/plain")

    @app.get("/empty")
    def empty() -> Response:
        return Response(iter(()), status=204)

    @app.get("/status/<int:code>")
    def status(code: int) -> Response:
        return Response(paced(), status=code)

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


# --- Bodies cut short or raising --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/stream/0", "/context"])
def test_complete_body_has_no_incomplete_mark(stream_app, server_spans, path):
    """A streamed body read to its end is not marked incomplete."""
    with stream_app.test_client().get(path) as response:
        assert response.get_data() == b"first\nsecond\n"
    (span,) = server_spans()
    assert BODY_INCOMPLETE not in span.attributes


@pytest.mark.parametrize("path", ["/stream/0", "/context"])
def test_body_cut_short_is_marked(stream_app, server_spans, path):
    """The server closing a streamed body before its end marks the span, which ends once."""
    response = stream_app.test_client().get(path)
    assert next(response.response) == b"first\n"
    response.close()
    response.close()
    (span,) = server_spans()
    assert span.attributes[BODY_INCOMPLETE] is True
    assert span.status.status_code is trace.StatusCode.UNSET  # not an error of the app


def test_body_that_raises_is_an_error(stream_app, server_spans):
    """A generator raising mid-body makes the span an error with error.type."""
    response = stream_app.test_client().get("/stream/1")
    assert next(response.response) == b"first\n"
    with pytest.raises(OSError, match="backend went away"):
        next(response.response)
    response.close()
    (span,) = server_spans()
    assert span.attributes[ERROR_TYPE] == "OSError"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_head_and_204_are_not_incomplete(stream_app, server_spans):
    """HEAD and no-content responses send no body, so nothing is cut short."""
    stream_app.test_client().head("/stream/0").close()
    stream_app.test_client().get("/empty").close()
    assert [BODY_INCOMPLETE in s.attributes for s in server_spans()] == [False, False]


# --- Time to first byte -----------------------------------------------------------------------


@pytest.fixture
def timings(stream_app: Flask) -> Iterator[list[RouteTiming]]:
    received: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: received.append(timing), stream_app):
        yield received


@pytest.mark.parametrize("path", ["/paced", "/paced-context"])
def test_time_to_first_byte_of_a_stream(stream_app, timer, server_spans, timings, path):
    """First byte after 50 ms, last after 200 ms: TTFB near 50 ms on the span, in the signal and
    in the route statistics; the duration still covers the whole body."""
    with stream_app.test_client().get(path) as response:
        assert response.get_data(as_text=True) == "first\nlast\n"
    (span,) = server_spans()
    ttfb = span.attributes[TIME_TO_FIRST_BYTE]
    assert FIRST_CHUNK <= ttfb < LAST_CHUNK - FIRST_CHUNK
    assert span.end_time - span.start_time >= LAST_CHUNK * 1e9
    (timing,) = timings
    assert timing.time_to_first_byte == ttfb
    assert timing.duration >= LAST_CHUNK
    (row,) = timer.stats(stream_app).routes
    assert row.ttfb_count == 1
    for quantile in (row.ttfb_p50, row.ttfb_p95, row.ttfb_p99):
        assert quantile == pytest.approx(ttfb, rel=0.02)
    assert row.p50 >= LAST_CHUNK


def test_client_gone_after_the_first_byte_keeps_its_ttfb(stream_app, server_spans, timings):
    """A client that disconnects after the first chunk: the body is incomplete, TTFB is known."""
    response = stream_app.test_client().get("/paced")
    assert [next(response.response), next(response.response)] == [b"", b"first\n"]
    response.close()
    (span,) = server_spans()
    assert span.attributes[BODY_INCOMPLETE] is True
    assert FIRST_CHUNK <= span.attributes[TIME_TO_FIRST_BYTE] < LAST_CHUNK
    assert timings[0].time_to_first_byte == span.attributes[TIME_TO_FIRST_BYTE]


def test_client_gone_before_the_first_byte_reports_none(stream_app, server_spans, timings):
    """Only an empty chunk went out before the client left: no byte, so no TTFB."""
    response = stream_app.test_client().get("/paced")
    assert next(response.response) == b""
    response.close()
    (span,) = server_spans()
    assert TIME_TO_FIRST_BYTE not in span.attributes
    assert timings[0].time_to_first_byte is None


@pytest.mark.parametrize(
    "method, path",
    [
        ("HEAD", "/paced"),  # no body is sent for HEAD
        ("GET", "/status/204"),
        ("GET", "/status/304"),
        ("GET", "/buffered"),  # not streamed: the whole body at once
        ("GET", "/silent"),  # streamed, but every chunk is empty
    ],
)
def test_no_ttfb_without_a_streamed_byte(stream_app, timer, server_spans, timings, method, path):
    """HEAD, 204, 304, ordinary and empty bodies report no time to first byte anywhere."""
    with stream_app.test_client().open(path, method=method) as response:
        response.get_data()
    (span,) = server_spans()
    assert TIME_TO_FIRST_BYTE not in span.attributes
    assert timings[0].time_to_first_byte is None
    (row,) = timer.stats(stream_app).routes
    assert (row.ttfb_count, row.ttfb_p50, row.ttfb_p95, row.ttfb_p99) == (0, None, None, None)
    assert row.to_dict()["ttfb_p50"] is None


def test_later_chunks_skip_the_first_byte_check():
    """Past the first byte, the watched body no longer looks at chunks (no cost per chunk)."""
    body = WatchedBody(iter(["", "a", "b"]), lambda exc: None)
    assert type(body).__next__ is WatchedBody.__next__
    assert next(body) == "" and body.first_byte is None
    assert next(body) == "a"
    first = body.first_byte
    assert first is not None and type(body).__next__ is not WatchedBody.__next__
    assert next(body) == "b" and body.first_byte == first
    with pytest.raises(StopIteration):
        next(body)
    assert body.exhausted and isinstance(body, WatchedBody)


@pytest.mark.load
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loadkit reads /proc")
@pytest.mark.parametrize(
    "kind, options",
    [("werkzeug", {}), ("sync", {"workers": 1}), ("gthread", {"workers": 1, "threads": 2})],
    ids=["werkzeug-threaded", "gunicorn-sync", "gunicorn-gthread"],
)
def test_time_to_first_byte_over_a_real_server(tmp_path, kind, options):
    """Over real servers: the client's first byte arrives near the span's TTFB (50 ms), the span
    lasts to the last byte (200 ms); HEAD reports none; a client that hangs up keeps its TTFB."""
    import loadkit  # tests/ is on sys.path for test modules

    client_first = []
    with loadkit.serve(kind, tmp_path, **options) as server:
        for method in ("GET", "GET", "HEAD"):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                start = time.perf_counter()
                connection.request(method, "/paced")
                response = connection.getresponse()
                if method == "GET":
                    response.read(1)
                    client_first.append(time.perf_counter() - start)
                body = response.read()
            finally:
                connection.close()
            assert body == (b"irst\nlast\n" if method == "GET" else b"")
        assert loadkit.cut_short(server.port)
    assert server.process.returncode == 0, server.stderr_path.read_text()[-3000:]
    spans = [s for s in loadkit.read_spans(tmp_path) if s["kind"] == "SERVER"]
    paced = [s for s in spans if s["route"] == "/paced" and s["method"] == "GET"]
    assert len(paced) == 2
    for span, first in zip(paced, client_first):
        assert FIRST_CHUNK <= span["ttfb"] < LAST_CHUNK - FIRST_CHUNK
        assert span["ttfb"] <= first  # the server handed the chunk over before it arrived
        assert span["duration"] >= LAST_CHUNK
    (head,) = [s for s in spans if s["route"] == "/paced" and s["method"] == "HEAD"]
    assert head["ttfb"] is None
    (cut,) = [s for s in spans if s["route"] == "/long"]
    assert cut["incomplete"] is True and 0 < cut["ttfb"] < cut["duration"]
