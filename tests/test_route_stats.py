"""Live route statistics and recent traces, as the app records them."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import RouteTimer


def test_stats_group_by_route_and_method(routed, timer, client):
    """Distinct paths of one rule share a row; unmatched requests get one row per method."""
    routed.config["PROPAGATE_EXCEPTIONS"] = False
    for n in range(5):
        client.get(f"/items/{n}")
    client.get("/nope/1")
    client.get("/nope/2")
    client.post("/nope/3")
    client.get("/fail")
    rows = {(r.method, r.route): r for r in timer.stats(routed).routes}
    assert set(rows) == {
        ("GET", "/items/<int:item_id>"),
        ("GET", None),
        ("POST", None),
        ("GET", "/fail"),
    }
    assert rows[("GET", "/items/<int:item_id>")].count == 5
    assert rows[("GET", None)].count == 2
    assert rows[("GET", "/fail")].error_count == 1
    assert rows[("GET", "/items/<int:item_id>")].error_count == 0


def test_stats_sorted_by_total_and_resettable(routed, timer, client):
    """Snapshots are sorted by total time; reset_stats empties them."""
    routed.config["PROPAGATE_EXCEPTIONS"] = False
    for n in range(3):
        client.get(f"/items/{n}")
    client.get("/fail")
    totals = [r.total for r in timer.stats(routed).routes]
    assert totals == sorted(totals, reverse=True)
    timer.reset_stats(routed)
    assert timer.stats(routed).routes == ()


def test_route_cap_overflows_into_one_row(make_app, server_spans):
    """Past ROUTETIMER_MAX_ROUTES, requests are still traced and land in the overflow row."""
    app, timer = make_app(ROUTETIMER_MAX_ROUTES=2)
    for index in range(5):
        app.add_url_rule(f"/r{index}", f"r{index}", lambda: "ok")
    for index in range(5):
        app.test_client().get(f"/r{index}")
    snapshot = timer.stats(app)
    assert snapshot.overflowed
    assert len(server_spans()) == 5
    overflow = [r for r in snapshot.routes if r.overflow]
    assert len(overflow) == 1 and overflow[0].count == 3
    assert sum(r.count for r in snapshot.routes) == 5


@pytest.mark.parametrize(
    "key, value", [("ROUTETIMER_MAX_ROUTES", 0), ("ROUTETIMER_TRACE_BUFFER", -1)]
)
def test_sizes_are_validated(key, value):
    """Negative or zero sizes are refused at init_app, naming the key."""
    from flask_routetimer import ConfigError

    app = Flask("sizes")
    app.config[key] = value
    with pytest.raises(ConfigError, match=key):
        RouteTimer(app)


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
        state.decide_trace_buffer(SlowToAnswer())  # type: ignore[arg-type]

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
