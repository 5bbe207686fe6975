"""request_timed: the signal users receive for each timed request, one per request."""

from __future__ import annotations

import logging

from flask import Flask

from flask_routetimer import RouteTiming, request_timed


def test_request_timed_sent_once_with_timing(routed, client, server_spans):
    """One RouteTiming per request, matching its span."""
    received: list[tuple[Flask, RouteTiming]] = []

    def receiver(sender: Flask, timing: RouteTiming, **extra: object) -> None:
        received.append((sender, timing))

    with request_timed.connected_to(receiver, routed):
        client.get("/hello/ada")
    ((sender, timing),) = received
    (span,) = server_spans()
    assert sender is routed
    assert (timing.endpoint, timing.route, timing.method, timing.status_code) == (
        "hello",
        "/hello/<name>",
        "GET",
        200,
    )
    assert timing.exception is None and not timing.failed
    assert timing.trace_id == format(span.context.trace_id, "032x")
    assert 0 < timing.duration < 5


def test_timing_carries_the_exception(routed, server_spans):
    """A failing request's timing has the exception and no trace lost."""
    routed.config["PROPAGATE_EXCEPTIONS"] = False
    received: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: received.append(timing), routed):
        routed.test_client().get("/fail")
    (timing,) = received
    assert isinstance(timing.exception, RuntimeError)
    assert timing.status_code == 500 and timing.failed


def test_404_timing_has_no_route(routed, client):
    """Unmatched requests carry route=None and endpoint=None."""
    received: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: received.append(timing), routed):
        client.get("/nope")
    assert (received[0].route, received[0].endpoint, received[0].status_code) == (None, None, 404)


def test_failing_receiver_never_breaks_the_response(routed, client, server_spans, caplog):
    """A receiver that raises is logged once per cause; responses and later timings go on."""
    later: list[RouteTiming] = []

    def broken(sender: Flask, timing: RouteTiming) -> None:
        raise ValueError("receiver bug")

    with caplog.at_level(logging.DEBUG, logger="flask_routetimer"):
        with request_timed.connected_to(broken, routed):
            with request_timed.connected_to(lambda s, timing: later.append(timing), routed):
                responses = [client.get("/hello/x") for _ in range(3)]
    assert [r.data for r in responses] == [b"hello x"] * 3
    assert len(later) == 3 and len(server_spans()) == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "receiver" in errors[0].getMessage()


def test_other_apps_timings_are_not_delivered(routed, client, tracer_provider):
    """connect_via(app) receives only that app's requests."""
    other = Flask("other")
    other.add_url_rule("/o", "o", lambda: "o")
    from flask_routetimer import RouteTimer

    RouteTimer(other, tracer_provider=tracer_provider)
    received: list[RouteTiming] = []
    with request_timed.connected_to(lambda s, timing: received.append(timing), routed):
        other.test_client().get("/o")
        client.get("/hello/y")
    assert [t.route for t in received] == ["/hello/<name>"]
