"""Live route statistics, as the app records them: one row per route and method, bounded."""

from __future__ import annotations

import gc
import weakref

import pytest
from flask import Flask

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


# -- timer.stats() without an app: the README's call, outside any request ---------------------


def make_served_app(timer: RouteTimer, name: str) -> Flask:
    app = Flask(name)
    timer.init_app(app)
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    return app


def test_one_app_is_used_outside_any_context(tracer_provider):
    """With one app registered, timer.stats() and reset_stats() need no app context."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    app = make_served_app(timer, "only")
    assert [row.count for row in timer.stats().routes] == [1]
    timer.reset_stats()
    assert timer.stats().routes == ()
    assert timer.stats(app).routes == ()


def test_several_apps_ask_for_the_app(tracer_provider):
    """Two apps: the error names both and says to pass the app; an app context picks it."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    first = make_served_app(timer, "first")
    second = make_served_app(timer, "second")
    second.test_client().get("/x")
    for call in (timer.stats, timer.reset_stats):
        with pytest.raises(RuntimeError, match=r"2 apps \('first', 'second'\).*timer.stats\(app\)"):
            call()
    with first.app_context():
        assert [row.count for row in timer.stats().routes] == [1]
    with second.app_context():
        assert [row.count for row in timer.stats().routes] == [2]


def test_an_app_of_another_timer_is_not_taken_for_this_ones(tracer_provider):
    """In the app context of an app this timer does not serve, its one app is still meant."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    mine = make_served_app(timer, "mine")
    mine.test_client().get("/x")
    other = make_served_app(RouteTimer(tracer_provider=tracer_provider), "other")
    with other.app_context():
        assert [row.count for row in timer.stats().routes] == [2]


def test_an_app_dropped_earlier_does_not_count(tracer_provider):
    """An app nobody holds any more is not one of the timer's apps, even while a reference cycle
    (an extension keeping the app, say) keeps it until the collector runs; the timer never
    keeps it alive."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    gc.disable()  # keep the dropped app uncollected until timer.stats() looks
    try:
        app = make_served_app(timer, "dropped")
        app.extensions["keeps_its_app"] = app  # a cycle: only the collector frees it
        dropped = weakref.ref(app)
        del app
        assert dropped() is not None
        kept = make_served_app(timer, "kept")
        kept.test_client().get("/x")
        assert [row.count for row in timer.stats().routes] == [2]
    finally:
        gc.enable()
    assert dropped() is None


def test_no_app_yet_says_init_app(tracer_provider):
    """A timer with no app registered says to call init_app or pass the app."""
    with pytest.raises(RuntimeError, match=r"serves no app yet: call timer.init_app\(app\)"):
        RouteTimer(tracer_provider=tracer_provider).stats()
