"""The dashboard's trace buffer: what it keeps and when it is attached to the provider; several
requests of one trace stay grouped, and memory and page size stay bounded in total whatever
``traceparent`` clients re-use (issue 13, item 5)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, cast

import pytest
from flask import Flask
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind

from flask_routetimer import RouteTimer
from flask_routetimer import tracebuffer as tb
from flask_routetimer.tracebuffer import MAX_SPANS_PER_TRACE, MAX_TRACE_BYTES, TraceBuffer


def traceparent(n: int) -> str:
    return f"00-{n + 1:032x}-{n + 1:016x}-01"


@pytest.fixture
def make_buffered_app(make_app: Callable[..., tuple[Flask, RouteTimer]]) -> Callable[..., Flask]:
    """``make_buffered_app(**config)``: an app in debug mode (so traces are kept) with one route."""

    def factory(**config: Any) -> Flask:
        app, _ = make_app(**{"DEBUG": True, **config})
        app.add_url_rule("/items/<int:n>", "item", lambda n: str(n))
        return app

    return factory


def kept(app: Flask) -> list[tuple[str, int, int]]:
    """(trace id, spans kept, request spans kept) of each buffered trace."""
    return [
        (
            record.trace_id,
            len(record.spans),
            sum(span.kind is SpanKind.SERVER for span in record.spans),
        )
        for record in RouteTimer.state(app).traces.traces()
    ]


def test_requests_of_one_trace_stay_grouped(make_buffered_app):
    """Two requests sent with one traceparent are shown as one trace with both request spans."""
    app = make_buffered_app()
    client = app.test_client()
    client.get("/items/1", headers={"traceparent": traceparent(7)})
    client.get("/items/2", headers={"traceparent": traceparent(7)})
    assert kept(app) == [(f"{8:032x}", 2, 2)]
    data = client.get(f"/_routetimer/api/traces/{8:032x}").json
    assert [span["attributes"]["url.path"] for span in data["spans"]] == ["/items/1", "/items/2"]


def test_reused_trace_ids_keep_memory_and_pages_bounded(make_buffered_app):
    """1,000 requests over 10 re-used traceparent ids, each with 16 captured 1 KB headers, keep
    at most one trace's worth of spans and text (the old buffer kept all 1,000 spans, 256 per
    trace), and no trace page grows past a few MB."""
    app = make_buffered_app(
        ROUTETIMER_TRACE_BUFFER=10, ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=["x-.*"]
    )
    client = app.test_client()
    headers = {f"X-Pad-{n}": "p" * 1000 for n in range(16)}
    for n in range(1000):
        client.get(f"/items/{n}", headers={**headers, "traceparent": traceparent(n % 10)})
    buffer = RouteTimer.state(app).traces
    traces, spans, text = buffer.size()
    assert spans == sum(count for _, count, _ in kept(app))
    assert spans <= buffer.max_spans == MAX_SPANS_PER_TRACE  # 16 x 10 is less than one trace
    assert text <= buffer.max_bytes == MAX_TRACE_BYTES
    assert 1 <= traces <= 10
    # The newest requests are what is kept, still grouped by trace.
    assert all(requests == count for _, count, requests in kept(app))
    largest = max(
        len(app.test_client().get(f"/_routetimer/trace/{trace_id}").data)
        for trace_id, _, _ in kept(app)
    )
    assert largest < 3 * 1024 * 1024
    print(f"\n[trace buffer] {traces} traces, {spans} spans, {text} chars; largest page {largest}")


def test_one_trace_cannot_grow_past_its_share(make_buffered_app):
    """Past MAX_SPANS_PER_TRACE requests on one trace id the rest count as dropped spans."""
    app = make_buffered_app()
    client = app.test_client()
    for n in range(MAX_SPANS_PER_TRACE + 20):
        client.get(f"/items/{n}", headers={"traceparent": traceparent(1)})
    (record,) = RouteTimer.state(app).traces.traces()
    assert len(record.spans) == MAX_SPANS_PER_TRACE and record.dropped_spans == 20


# --- What the buffer keeps, and when it is attached to the provider ---------------------------


def test_trace_buffer_keeps_request_traces_with_children(routed, timer, client):
    """The buffer holds each request's trace with the user's child spans."""
    routed.debug = True  # the dashboard is on, so its traces are kept
    client.get("/items/7")
    buffer = RouteTimer.state(routed).traces
    assert buffer.unavailable is None
    (trace,) = buffer.traces()
    assert [s.name for s in trace.spans] == ["GET /items/<int:item_id>", "load"]
    assert trace.route == "/items/<int:item_id>"
    assert buffer.get(trace.trace_id) == trace
    assert buffer.get("not-hex") is None


def test_trace_buffer_is_bounded(make_app):
    """Only the last ROUTETIMER_TRACE_BUFFER traces are kept, newest first."""
    app, _ = make_app(ROUTETIMER_TRACE_BUFFER=3, DEBUG=True)
    app.add_url_rule("/n/<int:n>", "n", lambda n: str(n))
    for n in range(10):
        app.test_client().get(f"/n/{n}")
    traces = RouteTimer.state(app).traces.traces()
    assert [t.request_span.attributes["url.path"] for t in traces] == ["/n/9", "/n/8", "/n/7"]


def test_background_traces_do_not_evict_requests(make_app, tracer_provider):
    """Spans outside any request never push request traces out of the buffer."""
    app, _ = make_app(ROUTETIMER_TRACE_BUFFER=2, DEBUG=True)
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    tracer = tracer_provider.get_tracer("jobs")
    for _ in range(50):
        with tracer.start_as_current_span("cron"):
            pass
    traces = RouteTimer.state(app).traces.traces()
    assert [t.route for t in traces] == ["/x"]


def test_non_sdk_provider_is_explained():
    """With a provider that is not the SDK's, the buffer says why it is empty."""
    from opentelemetry.trace import NoOpTracerProvider

    app = Flask("nosdk")
    app.debug = True
    RouteTimer(app, tracer_provider=NoOpTracerProvider())
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    buffer = RouteTimer.state(app).traces
    assert buffer.traces() == []
    assert buffer.unavailable is not None and "not the OpenTelemetry SDK" in buffer.unavailable


def test_buffer_is_attached_once_debug_is_known():
    """``app.run(debug=True)`` turns debug on after init_app: the first request still sees it."""
    provider = TracerProvider()
    app = Flask("attached")
    RouteTimer(app, tracer_provider=provider)
    app.add_url_rule("/x", "x", lambda: "x")
    app.debug = True
    app.test_client().get("/x")
    buffer = RouteTimer.state(app).traces
    assert buffer.unavailable is None
    assert [t.route for t in buffer.traces()] == ["/x"]
    provider.shutdown()


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"ROUTETIMER_DASHBOARD": False, "DEBUG": True},
        {"ROUTETIMER_TRACE_BUFFER": 0, "DEBUG": True},
    ],
    ids=["dashboard-off-outside-debug", "dashboard-disabled", "buffer-size-0"],
)
def test_no_buffer_when_nobody_can_read_it(make_app, tracer_provider, config):
    """With the dashboard off, no span passes through the buffer, and it says how to get one."""
    app, _ = make_app(**config)
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    buffer = RouteTimer.state(app).traces
    assert buffer.traces() == []
    assert buffer.unavailable is not None and "ROUTETIMER_DASHBOARD" in buffer.unavailable
    assert buffer not in tracer_provider._active_span_processor._span_processors


def test_opening_the_dashboard_first_attaches_the_buffer(make_app, tracer_provider):
    """The dashboard opened before any timed request keeps the traces that follow."""
    app, _ = make_app(DEBUG=True)
    app.add_url_rule("/x", "x", lambda: "x")
    client = app.test_client()
    assert client.get("/_routetimer/").status_code == 200
    assert RouteTimer.state(app).traces.unavailable is None
    client.get("/x")
    assert [t.route for t in RouteTimer.state(app).traces.traces()] == ["/x"]


def test_timed_block_outside_a_request_is_not_a_request_trace(make_app):
    """Our own INTERNAL spans without a request method (``timed()``) never fill the buffer."""
    app, timer = make_app(ROUTETIMER_TRACE_BUFFER=2, DEBUG=True)
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    for _ in range(5):
        with timer.timed("job"):
            pass
    assert [t.route for t in RouteTimer.state(app).traces.traces()] == ["/x"]


def test_child_ending_after_its_request_joins_the_trace(make_app, tracer_provider):
    """A span that outlives its request (a thread it started) still lands in its trace."""
    app, _ = make_app(DEBUG=True)
    tracer = tracer_provider.get_tracer("worker")
    late = []

    @app.get("/spawn")
    def spawn() -> str:
        late.append(tracer.start_span("background write"))
        return "ok"

    app.test_client().get("/spawn")
    late[0].end()
    (trace,) = RouteTimer.state(app).traces.traces()
    assert [s.name for s in trace.spans] == ["GET /spawn", "background write"]


def test_concurrent_first_requests_attach_the_buffer_once(make_app, tracer_provider):
    """Many threads serving the first requests at once: one span processor, no duplicate spans."""
    app, _ = make_app(DEBUG=True)
    app.add_url_rule("/x", "x", lambda: "x")
    state = RouteTimer.state(app)
    barrier = threading.Barrier(8)

    class SlowToAnswer:
        """The app as the decision sees it, slow to say whether debug is on: a wide window
        between checking "decided?" and deciding."""

        @property
        def debug(self) -> bool:
            time.sleep(0.01)
            return True

    def first() -> None:
        barrier.wait(timeout=10)
        state.decide_trace_buffer(cast(Flask, SlowToAnswer()))

    threads = [threading.Thread(target=first) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    processors = tracer_provider._active_span_processor._span_processors
    assert sum(processor is state.traces for processor in processors) == 1
    app.test_client().get("/x")
    (trace,) = state.traces.traces()
    assert len(trace.spans) == 1


# --- The buffer on its own --------------------------------------------------------------------


def span(trace_id: int, span_id: int, attributes: dict[str, Any], request: bool) -> ReadableSpan:
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    scope = InstrumentationScope(tb.SCOPE_NAME if request else "other")
    return ReadableSpan(
        name="s",
        context=SpanContext(trace_id, span_id, is_remote=False),
        kind=SpanKind.SERVER if request else SpanKind.INTERNAL,
        attributes=attributes,
        instrumentation_scope=scope,
        start_time=span_id,
        end_time=span_id + 1,
    )


def test_oldest_traces_go_first_when_the_text_bound_is_reached():
    """Past max_bytes the oldest traces are dropped, pending ones before shown ones."""
    buffer = TraceBuffer(100, max_spans=10_000, max_bytes=0)  # at least one full trace
    big = {"v": "x" * (MAX_TRACE_BYTES // 4)}
    buffer.on_end(span(99, 1, big, request=False))  # a background trace, pending
    for trace_id in range(1, 6):
        buffer.on_end(span(trace_id, trace_id, big, request=True))
    ids = [record.trace_id for record in buffer.traces()]
    assert ids == [f"{5:032x}", f"{4:032x}", f"{3:032x}"]  # newest first
    traces, spans, text = buffer.size()
    assert (traces, spans) == (3, 3) and text <= buffer.max_bytes


def test_a_trace_full_of_children_still_shows_its_request():
    """Children filling a trace's share never crowd out its request span."""
    buffer = TraceBuffer(10)
    for span_id in range(1, MAX_SPANS_PER_TRACE + 5):
        buffer.on_end(span(1, span_id, {}, request=False))
    buffer.on_end(span(1, 10_000, {}, request=True))
    (record,) = buffer.traces()
    assert record.request_span.context.span_id == 10_000
