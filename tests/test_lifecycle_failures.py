"""A request ends exactly once and leaks nothing, whatever other code in the request fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import pytest
from flask import Flask, Response, copy_current_request_context, stream_with_context
from flask import globals as flask_globals
from flask import signals as flask_signals
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.serving import make_server

from flask_routetimer import RouteTimer
from flask_routetimer.lifecycle import RequestLifecycle
from flask_routetimer.record import in_flight
from flask_routetimer.testing import Captured, capture


class Boom(Exception):
    """Raised by a neighbour: a teardown function, a signal receiver, an after_request hook."""


def lifecycle_of(app: Flask) -> RequestLifecycle:
    for receiver in flask_signals.request_started.receivers_for(app):
        owner = getattr(receiver, "__self__", None)
        if isinstance(owner, RequestLifecycle):
            return owner
    raise LookupError("not instrumented")


def raise_boom(*_: Any, **__: Any) -> None:
    raise Boom("a neighbour failed")


def active_requests(captured: Captured) -> int:
    return sum(int(point.value) for point in captured.metric_points("http.server.active_requests"))


def durations(captured: Captured) -> list[dict[str, Any]]:
    points = captured.metric_points("http.server.request.duration")
    return [dict(point.attributes or {}) for point in points]


@pytest.fixture
def fails_later_app(make_app: Callable[..., tuple[Flask, RouteTimer]]) -> Flask:
    """An app with a plain route and a route whose teardown fails (see ``break_teardown``)."""
    app, _ = make_app(PROPAGATE_EXCEPTIONS=False)
    app.add_url_rule("/ok", "ok", lambda: "ok")
    app.add_url_rule("/fails-later", "fails_later", lambda: "fine until teardown")
    return app


def before_ours(app: Flask, signal: Any, receiver: Callable[..., None]) -> None:
    """Simulate another receiver of ``signal`` called before ours and raising on /fails-later
    (blinker's order is not fixed): that send never reaches ours."""
    signal.disconnect(receiver, app)

    def neighbour_then_ours(sender: Flask, **kwargs: Any) -> None:
        record = in_flight()
        if record is not None and record.info.route == "/fails-later":
            raise Boom("another extension's receiver failed")
        receiver(sender, **kwargs)

    signal.connect(neighbour_then_ours, app, weak=False)


def break_teardown(app: Flask, how: str) -> None:
    """Make the teardown of /fails-later fail before flask-routetimer's receiver runs."""
    if how == "teardown function":

        @app.teardown_request
        def close_db(exc: Any) -> None:
            from flask import request

            if request.path == "/fails-later":
                raise Boom("closing the session failed")

    else:
        before_ours(app, flask_signals.request_tearing_down, lifecycle_of(app).on_teardown)


@contextmanager
def raises_boom() -> Iterator[None]:
    """The neighbour's error reaches the caller (Flask 3.2 wraps it in an exception group)."""
    with pytest.raises(Exception) as info:
        yield
    errors: list[BaseException] = [info.value]
    while errors and not isinstance(errors[0], Boom):
        errors.extend(getattr(errors.pop(0), "exceptions", ()))
    assert errors, info.value


#: Flask 3.2 merges the request and app contexts and runs every teardown function and signal
#: whatever raised: a failing teardown *function* no longer keeps request_tearing_down from us,
#: and the error it collects is not visible to receivers.
MERGED_CONTEXTS = not hasattr(flask_globals, "_cv_request")
HOW = ["teardown function", "receiver raising first"]


@pytest.mark.parametrize("how", HOW)
def test_failed_teardown_ends_the_request_and_leaks_nothing(fails_later_app, how):
    """The span ends with ERROR and the teardown's exception, everything counts it, and the next
    request is a root span, not a child of the dead one."""
    break_teardown(fails_later_app, how)
    client = fails_later_app.test_client()
    with capture(fails_later_app) as captured:
        with raises_boom():
            client.get("/fails-later")
        assert otel_context.get_current() == otel_context.Context()
        client.get("/ok")
    dead, ok = captured.spans
    assert ok.parent is None and ok.kind is SpanKind.SERVER and ok.name == "GET /ok"
    assert sorted(p["http.route"] for p in durations(captured)) == ["/fails-later", "/ok"]
    assert active_requests(captured) == 0
    assert [t.route for t in captured.timings] == ["/fails-later", "/ok"]
    stats = {row.route: row for row in RouteTimer.state(fails_later_app).stats.snapshot().routes}
    assert stats["/fails-later"].count == 1
    if MERGED_CONTEXTS and how == "teardown function":
        assert dead.attributes["http.response.status_code"] == 200  # all Flask lets us see
        return
    assert dead.name == "GET /fails-later" and dead.status.status_code is StatusCode.ERROR
    assert dead.attributes["http.response.status_code"] == 500
    assert captured.timings[0].status_code == 500 and stats["/fails-later"].error_count == 1
    expected = "flask_routetimer.lifecycle.TeardownIncomplete"
    if not MERGED_CONTEXTS:  # the teardown's own error is in flight as we end the request
        expected = "test_lifecycle_failures.Boom"
    assert [event.attributes["exception.type"] for event in dead.events] == [expected]


def test_stale_request_is_ended_by_the_next_one(fails_later_app):
    """When even the app context's teardown misses us, the next request in the same thread ends
    the stale request before it starts, so it cannot become its parent."""
    lifecycle = lifecycle_of(fails_later_app)
    before_ours(fails_later_app, flask_signals.request_tearing_down, lifecycle.on_teardown)
    before_ours(fails_later_app, flask_signals.appcontext_tearing_down, lifecycle.on_context_end)
    client = fails_later_app.test_client()
    with capture(fails_later_app) as captured:
        with raises_boom():
            client.get("/fails-later")
        assert captured.spans == []  # nothing could end it yet
        client.get("/ok")
        client.get("/ok")
    first, second, third = captured.spans
    assert first.name == "GET /fails-later" and first.status.status_code is StatusCode.ERROR
    assert [event.attributes["exception.type"] for event in first.events] == [
        "flask_routetimer.lifecycle.TeardownIncomplete"
    ]
    assert second.parent is None and third.parent is None
    assert active_requests(captured) == 0


def test_failed_teardown_under_a_single_threaded_server(fails_later_app):
    """Over a real socket, one server thread: requests after the failure are roots and ended."""
    break_teardown(fails_later_app, "receiver raising first")
    server = make_server("127.0.0.1", 0, fails_later_app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    import http.client

    with capture(fails_later_app) as captured:
        thread.start()
        try:
            statuses = []
            for path in ("/fails-later", "/ok", "/ok"):
                connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
                connection.request("GET", path)
                statuses.append(connection.getresponse().status)
                connection.close()
        finally:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()
    assert statuses == [500, 200, 200]
    assert [(s.name, s.parent) for s in captured.spans] == [
        ("GET /fails-later", None),
        ("GET /ok", None),
        ("GET /ok", None),
    ]


def test_request_started_receiver_raising_first_is_still_timed(fails_later_app):
    """Another extension's request_started receiver raising before ours: the 500 is timed."""
    lifecycle = lifecycle_of(fails_later_app)
    flask_signals.request_started.disconnect(lifecycle.on_started, fails_later_app)
    with flask_signals.request_started.connected_to(raise_boom, fails_later_app):
        with capture(fails_later_app) as captured:
            response = fails_later_app.test_client().get("/ok")
    assert response.status_code == 500
    (span,) = captured.spans
    assert span.name == "GET /ok" and span.attributes["http.response.status_code"] == 500
    assert span.status.status_code is StatusCode.ERROR
    assert [(t.status_code, type(t.exception)) for t in captured.timings] == [(500, Boom)]
    assert active_requests(captured) == 0


def test_after_request_raising_is_recorded_as_the_500_sent(fails_later_app):
    """An after_request function raising: the client gets 500, and so do span and metric."""
    fails_later_app.after_request(raise_boom)
    with capture(fails_later_app) as captured:
        response = fails_later_app.test_client().get("/ok")
    assert response.status_code == 500
    (span,) = captured.spans
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "Boom"
    (point,) = durations(captured)
    assert point["http.response.status_code"] == 500


def test_copied_context_popped_in_the_request_thread(make_app):
    """copy_current_request_context run eagerly in the request's own thread does not end the
    request: the span ends after the view with its status, and later child spans nest."""
    app, timer = make_app()

    @app.get("/eager")
    def eager() -> str:
        @copy_current_request_context
        def task() -> None:
            with timer.timed("task"):
                pass

        task()  # an eager task runner: the copy is pushed and popped right here
        with timer.timed("after task"):
            return "done"

    with capture(app) as captured:
        assert app.test_client().get("/eager").text == "done"
    request_span = captured.spans[0]
    assert request_span.attributes["http.response.status_code"] == 200
    children = [s for s in captured.all_spans if s.name in ("task", "after task")]
    assert [s.parent.span_id for s in children] == [request_span.context.span_id] * 2


def test_spans_inside_a_streamed_body_nest_under_the_request(make_app):
    """Work done while a stream_with_context body is produced is a child of the request span."""
    app, timer = make_app()

    @app.get("/export")
    def export() -> Response:
        def rows() -> Iterator[str]:
            for index in range(3):
                with timer.timed("query chunk"):
                    yield f"{index}\n"

        return Response(stream_with_context(rows()))

    with capture(app) as captured:
        response = app.test_client().get("/export", buffered=True)
        assert response.text == "0\n1\n2\n"
    (request_span,) = captured.spans
    chunks = [s for s in captured.all_spans if s.name == "query chunk"]
    assert len(chunks) == 3
    assert {s.context.trace_id for s in chunks} == {request_span.context.trace_id}
    assert {s.parent.span_id for s in chunks} == {request_span.context.span_id}


def test_a_view_calling_another_app_keeps_its_own_name(make_app):
    """A request to another instrumented app made in-process from a view is a child span; the
    caller's span keeps its own route."""
    outer, _ = make_app()
    inner, _ = make_app()
    inner.add_url_rule("/inner/<int:n>", "inner", lambda n: f"inner {n}")

    @outer.get("/outer")
    def call_inner() -> str:
        return inner.test_client().get("/inner/1").text

    with capture(outer) as outer_captured, capture(inner) as inner_captured:
        assert outer.test_client().get("/outer").text == "inner 1"
    (outer_span,) = outer_captured.spans
    (inner_span,) = inner_captured.spans
    assert (outer_span.name, outer_span.attributes["http.route"]) == ("GET /outer", "/outer")
    assert (inner_span.name, inner_span.kind) == ("GET /inner/<int:n>", SpanKind.SERVER)
    assert inner_span.parent.span_id == outer_span.context.span_id
