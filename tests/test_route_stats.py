"""Live route statistics, as the app records them: one row per route and method, bounded."""

from __future__ import annotations


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
