"""The dashboard through Flask's test client: pages, JSON, gating, headers, escaping, redaction."""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

import pytest
from flask import Flask, request

from flask_routetimer import RouteTimer

XSS = "<script>alert(1)</script>"
DASHBOARD_URLS = [
    "/_routetimer/",
    "/_routetimer",
    "/_routetimer/route?method=GET&route=/items/<int:id>",
    "/_routetimer/trace/0123456789abcdef0123456789abcdef",
    "/_routetimer/api/stats",
    "/_routetimer/api/traces/0123456789abcdef0123456789abcdef",
    "/_routetimer/static/routetimer.css",
]


def add_views(app: Flask, timer: RouteTimer) -> None:
    @app.get("/items/<int:id>")
    def item(id: int) -> str:
        with timer.timed("load.item", attributes={"item.note": XSS}):
            return "item"

    @app.get("/x/<script>")  # a rule whose template itself reads "<script>"
    def variable(script: str) -> str:
        return "x"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError(XSS)

    @app.get("/secrets")
    def secrets() -> str:
        secret = {
            "http.request.header.authorization": ("Bearer hunter2",),
            "http.response.header.set-cookie": ("session=hunter2",),
            "url.full": "https://user:hunter2@example.com/p?sig=hunter2&page=1",
            "http.target": "/p?X-Goog-Signature=hunter2",
        }
        with timer.timed("call.upstream", attributes=secret):
            return "ok"


@pytest.fixture
def make_dashboard_app(
    make_app: Callable[..., tuple[Flask, RouteTimer]],
) -> Callable[..., tuple[Flask, Any]]:
    """``make_dashboard_app(**config)`` -> (app, client): an app in debug mode with a few timed
    views."""

    def factory(**config: Any) -> tuple[Flask, Any]:
        app, timer = make_app(PROPAGATE_EXCEPTIONS=False, **{"DEBUG": True, **config})
        add_views(app, timer)
        return app, app.test_client()

    return factory


def trace_ids(html: str) -> list[str]:
    return re.findall(r"/_routetimer/trace/([0-9a-f]{32})", html)


def routes_in_table(html: str) -> list[str]:
    body = html.split('<table class="data routes">')[1].split("</table>")[0]
    return re.findall(r"route=([^&\"]+)\"", body)


def get(client: Any, url: str) -> Any:
    """GET with the body read and closed (static files are streamed from disk)."""
    return client.get(url, buffered=True)


# --- Pages ------------------------------------------------------------------------------------


def test_routes_page_lists_each_route_with_its_numbers(make_dashboard_app):
    """The routes table shows method, route, request count, error rate and timings."""
    app, client = make_dashboard_app()
    for _ in range(3):
        client.get("/items/1")
    client.get("/boom")
    html = client.get("/_routetimer/").text
    assert "/items/&lt;int:id&gt;" in html
    item_row = html.split("/items/&lt;int:id&gt;</code></a></td>")[1].split("</tr>")[0]
    assert '<td class="num">3</td>' in item_row
    boom_row = html.split("<code>/boom</code></a></td>")[1].split("</tr>")[0]
    assert "100%" in boom_row and "(1)" in boom_row
    assert " ms</td>" in item_row or " µs</td>" in item_row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["/slow", "/fast"]),  # worst (total time) first
        ("?sort=count&order=desc", ["/fast", "/slow"]),
        ("?sort=route&order=asc", ["/fast", "/slow"]),
        ("?sort=max&order=asc", ["/fast", "/slow"]),
    ],
)
def test_routes_table_sorts_by_query_string(make_dashboard_app, query, expected):
    """?sort= and ?order= choose the column and direction; total time descending by default."""
    app, client = make_dashboard_app()
    state = RouteTimer.state(app)
    state.stats.record("GET", "/slow", 0.5, False)
    for _ in range(3):
        state.stats.record("GET", "/fast", 0.001, False)
    assert routes_in_table(client.get(f"/_routetimer/{query}").text) == expected


def test_route_page_has_a_histogram_and_slowest_traces(make_dashboard_app):
    """One route's page plots its histogram as SVG and lists its traces slowest first."""
    app, client = make_dashboard_app()
    client.get("/items/1")
    client.get("/items/2")
    response = client.get(
        "/_routetimer/route", query_string={"method": "GET", "route": "/items/<int:id>"}
    )
    assert response.status_code == 200
    assert '<svg class="histogram"' in response.text and 'class="hbar"' in response.text
    assert len(trace_ids(response.text)) == 2
    assert "/items/1" in response.text and "/items/2" in response.text


def test_route_page_for_requests_without_a_route(make_dashboard_app):
    """Without a route parameter the page shows requests that matched no URL rule."""
    app, client = make_dashboard_app()
    client.get("/no/such/page")
    response = client.get("/_routetimer/route?method=GET")
    assert response.status_code == 200
    assert "(no matching route)" in response.text and "/no/such/page" in response.text


def test_unknown_route_or_trace_is_404_with_an_explanation(make_dashboard_app):
    """A route never seen, or a trace not in the buffer, is a 404 page that says why."""
    app, client = make_dashboard_app()
    response = client.get("/_routetimer/route?method=GET&route=/nope")
    assert response.status_code == 404 and "No requests recorded" in response.text
    response = client.get("/_routetimer/trace/" + "ab" * 16)
    assert response.status_code == 404 and "not in the buffer" in response.text


def test_trace_page_draws_a_waterfall_of_nested_spans(make_dashboard_app):
    """The trace page lists the request span, then its child one level deeper, with bars."""
    app, client = make_dashboard_app()
    client.get("/items/7")
    (trace_id,) = trace_ids(client.get("/_routetimer/").text)
    html = client.get(f"/_routetimer/trace/{trace_id}").text
    assert re.search(r'class="name depth-0">GET /items/&lt;int:id&gt;', html)
    assert re.search(r'class="name depth-1">load.item', html)
    bars = re.findall(
        r'<rect class="(?:root|child|err)" x="([\d.]+)" y="1.5" width="([\d.]+)"', html
    )
    assert len(bars) == 2 and bars[0] == ("0.000", "100.000")


def test_pages_say_when_traces_are_unavailable(make_dashboard_app):
    """Without an SDK tracer provider, pages explain it instead of showing an empty list."""
    app, client = make_dashboard_app()
    client.get("/items/1")
    RouteTimer.state(app).traces.unavailable = "No OpenTelemetry tracer provider is configured yet."
    for url in ("/_routetimer/", "/_routetimer/route?method=GET&route=/items/<int:id>"):
        assert "Recent traces are not available: No OpenTelemetry" in client.get(url).text
    response = client.get("/_routetimer/api/traces/" + "ab" * 16)
    assert response.status_code == 404 and "No OpenTelemetry" in response.json["error"]


# --- JSON -------------------------------------------------------------------------------------


def test_api_stats_is_the_snapshot_and_can_omit_buckets(make_dashboard_app):
    """/api/stats returns StatsSnapshot.to_dict(); ?buckets=0 drops the histogram buckets."""
    app, client = make_dashboard_app()
    client.get("/items/1")
    data = client.get("/_routetimer/api/stats").json
    assert data == RouteTimer.state(app).stats.snapshot().to_dict()
    assert data["routes"][0]["buckets"]
    lean = client.get("/_routetimer/api/stats?buckets=0").json
    assert "buckets" not in lean["routes"][0] and lean["routes"][0]["count"] == 1


def test_api_trace_has_ids_parents_offsets_and_events(make_dashboard_app):
    """/api/traces/<id> gives each span hex ids, its parent, kind, status, timing and events."""
    app, client = make_dashboard_app()
    client.get("/boom")
    (trace_id,) = trace_ids(client.get("/_routetimer/").text)
    data = client.get(f"/_routetimer/api/traces/{trace_id}").json
    assert data["trace_id"] == trace_id and data["status_code"] == 500 and data["unit"] == "s"
    (span,) = data["spans"]
    assert re.fullmatch(r"[0-9a-f]{16}", span["span_id"]) and span["parent_id"] is None
    assert span["kind"] == "SERVER" and span["status"]["code"] == "ERROR"
    assert span["start_offset"] == 0.0 and span["duration"] > 0
    assert span["attributes"]["http.route"] == "/boom"
    (event,) = span["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.message"] == XSS


def test_api_trace_child_points_to_its_parent(make_dashboard_app):
    """A child span's parent_id is the request span's id and its depth is 1."""
    app, client = make_dashboard_app()
    client.get("/items/1")
    (trace_id,) = trace_ids(client.get("/_routetimer/").text)
    root, child = client.get(f"/_routetimer/api/traces/{trace_id}").json["spans"]
    assert child["parent_id"] == root["span_id"] and (root["depth"], child["depth"]) == (0, 1)


# --- Gating, auth and headers -----------------------------------------------------------------


@pytest.mark.parametrize("url", DASHBOARD_URLS)
@pytest.mark.parametrize(
    ("setting", "debug"), [(None, False), (False, True)], ids=["debug-off", "setting-false"]
)
def test_dashboard_off_is_404_everywhere(make_app, url, setting, debug):
    """Off (debug off and no setting, or ROUTETIMER_DASHBOARD=False) means 404 on every URL."""
    app, _ = make_app(ROUTETIMER_DASHBOARD=setting)
    app.debug = debug
    assert get(app.test_client(), url).status_code == 404


def test_debug_is_read_per_request(make_app):
    """A dashboard registered in debug mode answers only while debug mode is on."""
    app, _ = make_app(DEBUG=True)
    client = app.test_client()
    assert client.get("/_routetimer/").status_code == 200
    app.debug = False
    assert client.get("/_routetimer/").status_code == 404
    app.debug = True
    assert client.get("/_routetimer/").status_code == 200


def test_forced_on_without_auth_closes_when_debug_goes_off(make_app):
    """ROUTETIMER_DASHBOARD=True accepted in debug without auth is never served outside debug."""
    app, _ = make_app(ROUTETIMER_DASHBOARD=True, DEBUG=True)
    client = app.test_client()
    assert client.get("/_routetimer/").status_code == 200
    app.debug = False
    assert client.get("/_routetimer/").status_code == 404


def announcements(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and "dashboard at" in r.getMessage()
    ]


def test_debug_dashboard_without_login_is_announced_once(make_app, caplog):
    """The first request in debug mode says where the dashboard is and that it has no login,
    which matters with --host 0.0.0.0; later requests say nothing."""
    app, _ = make_app(DEBUG=True, ROUTETIMER_DASHBOARD_URL="/admin/timings")
    app.add_url_rule("/x", "x", lambda: "x")
    client = app.test_client()
    for url in ("/x", "/x", "/admin/timings/"):
        assert client.get(url).status_code == 200
    (line,) = announcements(caplog, logging.WARNING)
    assert line.startswith("flask-routetimer: dashboard at /admin/timings/, with no login")
    assert "--host 0.0.0.0" in line and "ROUTETIMER_DASHBOARD_AUTH" in line


@pytest.mark.parametrize(
    "config, debug_at_request",
    [({}, False), ({"DEBUG": True}, False), ({"DEBUG": True, "ROUTETIMER_DASHBOARD": False}, True)],
    ids=["never-debug", "debug-gone", "dashboard-off"],
)
def test_no_open_dashboard_no_warning(make_app, caplog, config, debug_at_request):
    """No dashboard served at the first request: nothing to warn about."""
    app, _ = make_app(**config)
    app.debug = debug_at_request
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    assert announcements(caplog, logging.WARNING) == []


def test_dashboard_behind_auth_is_announced_quietly(make_app, caplog):
    """With an auth function the announcement is INFO and says it is behind it."""
    app, _ = make_app(ROUTETIMER_DASHBOARD=True, ROUTETIMER_DASHBOARD_AUTH=lambda: True)
    caplog.set_level(logging.INFO, logger="flask_routetimer")
    app.test_client().get("/_routetimer/")
    assert announcements(caplog, logging.WARNING) == []
    assert announcements(caplog, logging.INFO) == [
        "flask-routetimer: dashboard at /_routetimer/, behind ROUTETIMER_DASHBOARD_AUTH."
    ]


@pytest.mark.parametrize("url", DASHBOARD_URLS)
def test_auth_refusal_is_403_everywhere(make_dashboard_app, url):
    """ROUTETIMER_DASHBOARD_AUTH returning False gives 403 on pages, API and static files."""
    calls: list[str] = []

    def refuse() -> bool:
        calls.append(url)
        return False

    app, client = make_dashboard_app(ROUTETIMER_DASHBOARD=True, ROUTETIMER_DASHBOARD_AUTH=refuse)
    assert get(client, url).status_code == 403
    assert calls == [url]


def test_auth_is_asked_on_every_request(make_dashboard_app):
    """The auth function sees each request, so it can allow some and refuse others."""
    app, client = make_dashboard_app(ROUTETIMER_DASHBOARD_AUTH=lambda: "allow" in request.args)
    assert client.get("/_routetimer/api/stats?allow=1").status_code == 200
    assert client.get("/_routetimer/api/stats").status_code == 403
    assert get(client, "/_routetimer/static/routetimer.css?allow=1").status_code == 200


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/_routetimer/", 200),
        ("/_routetimer/static/routetimer.css", 200),
        ("/_routetimer/api/stats", 200),
        ("/_routetimer/trace/" + "ab" * 16, 404),
        ("/_routetimer/api/traces/nothex", 404),
    ],
)
def test_every_response_carries_security_headers(make_dashboard_app, url, status):
    """Pages, static files, JSON and error responses all get the strict CSP and friends."""
    app, client = make_dashboard_app()
    response = get(client, url)
    assert response.status_code == status
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_refused_and_hidden_responses_carry_security_headers(make_dashboard_app, make_app):
    """403 and 404 answers from the gate carry the same headers."""
    app, client = make_dashboard_app(ROUTETIMER_DASHBOARD_AUTH=lambda: False)
    assert "default-src 'none'" in client.get("/_routetimer/").headers["Content-Security-Policy"]
    hidden, _ = make_app(DEBUG=True)
    hidden.debug = False
    response = hidden.test_client().get("/_routetimer/")
    assert response.status_code == 404 and "Content-Security-Policy" in response.headers


def test_pages_have_no_inline_script_or_style(make_dashboard_app):
    """No <script>, no style attribute and no <style> block, so the CSP costs nothing."""
    app, client = make_dashboard_app()
    client.get("/items/1")
    client.get("/boom")
    (*_, trace_id) = trace_ids(client.get("/_routetimer/").text)
    for url in (
        "/_routetimer/",
        "/_routetimer/route?method=GET&route=/items/<int:id>",
        f"/_routetimer/trace/{trace_id}",
    ):
        html = client.get(url).text
        assert "<script" not in html and "style=" not in html and "<style" not in html


# --- Escaping and redaction -------------------------------------------------------------------


def test_hostile_values_are_escaped(make_dashboard_app):
    """Script tags in paths, route templates, attributes and exception messages are text."""
    app, client = make_dashboard_app()
    client.get("/x/<script>alert(1)</script>", headers={"User-Agent": XSS})
    client.get("/boom")
    client.get("/items/1")
    pages = [client.get("/_routetimer/").text]
    pages.append(client.get("/_routetimer/route?method=GET&route=/x/<script>").text)
    pages += [client.get(f"/_routetimer/trace/{tid}").text for tid in trace_ids(pages[0])]
    html = "\n".join(pages)
    assert "<script" not in html
    assert "/x/&lt;script&gt;" in html  # the route template
    assert "/x/&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the decoded request path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # user agent, attribute, exception
    assert "RuntimeError: &lt;script&gt;" in html  # status description


def test_sensitive_attributes_are_redacted_in_pages_and_json(make_dashboard_app):
    """Credential headers, URLs and query strings never reach the page or the JSON."""
    app, client = make_dashboard_app()
    client.get("/secrets?sig=hunter2&page=1")
    (trace_id,) = trace_ids(client.get("/_routetimer/").text)
    html = client.get(f"/_routetimer/trace/{trace_id}").text
    text = client.get(f"/_routetimer/api/traces/{trace_id}").text
    for shown in (html, text):
        assert "hunter2" not in shown
        assert "REDACTED" in shown
    child = client.get(f"/_routetimer/api/traces/{trace_id}").json["spans"][1]["attributes"]
    assert child["http.request.header.authorization"] == "REDACTED"
    assert child["url.full"] == "https://REDACTED@example.com/p?sig=REDACTED&page=1"


# --- The dashboard does not time itself -------------------------------------------------------


def test_dashboard_requests_make_no_spans_or_stats(make_dashboard_app, spans):
    """Browsing the dashboard adds no spans and no statistics rows."""
    app, client = make_dashboard_app()
    for url in DASHBOARD_URLS:
        get(client, url)
    assert spans() == []
    assert RouteTimer.state(app).stats.snapshot().routes == ()


def test_dashboard_url_moves_every_page(make_dashboard_app):
    """ROUTETIMER_DASHBOARD_URL mounts pages, API and static files under another prefix."""
    app, client = make_dashboard_app(ROUTETIMER_DASHBOARD_URL="/ops/timing/")
    assert get(client, "/ops/timing/").status_code == 200
    assert get(client, "/ops/timing/api/stats").status_code == 200
    assert get(client, "/ops/timing/static/routetimer.css").status_code == 200
    assert get(client, "/_routetimer/").status_code == 404


def test_each_app_shows_its_own_statistics(make_app):
    """Two apps in one process each get a dashboard over their own routes."""
    apps = [make_app(DEBUG=True)[0], make_app(DEBUG=True)[0]]
    for index, app in enumerate(apps):
        app.add_url_rule(f"/only-{index}", f"only{index}", lambda: "x")
        app.test_client().get(f"/only-{index}")
    for index, app in enumerate(apps):
        routes = app.test_client().get("/_routetimer/api/stats").json["routes"]
        assert [row["route"] for row in routes] == [f"/only-{index}"]


# --- Time to first byte -----------------------------------------------------------------------


def test_ttfb_column_only_once_a_route_streamed(make_dashboard_app):
    """The routes table has a TTFB column once some route streamed, '–' for the others; the
    route page, /api/stats and the streamed trace's waterfall show it too."""
    app, client = make_dashboard_app()

    @app.get("/stream")
    def stream() -> Any:
        return app.response_class(iter(["a", "b"]))

    client.get("/items/1")
    assert "TTFB p50" not in client.get("/_routetimer/").text
    with client.get("/stream") as response:
        assert response.data == b"ab"
    html = client.get("/_routetimer/").text
    assert "TTFB p50" in html
    stream_row = html.split("<code>/stream</code></a></td>")[1].split("</tr>")[0]
    item_row = html.split("/items/&lt;int:id&gt;</code></a></td>")[1].split("</tr>")[0]
    assert 'class="num ttfb"><span title="time to first byte of 1 streamed' in stream_row
    assert '<td class="num ttfb"><span class="muted">–</span>' in item_row
    route_page = client.get("/_routetimer/route?method=GET&route=/stream").text
    assert "TTFB p95" in route_page
    stats = client.get("/_routetimer/api/stats?buckets=0").json
    by_route = {row["route"]: row for row in stats["routes"]}
    assert by_route["/stream"]["ttfb_count"] == 1 and by_route["/stream"]["ttfb_p99"] > 0
    assert by_route["/items/<int:id>"]["ttfb_p50"] is None
    (trace_id,) = trace_ids(route_page)
    trace_page = client.get(f"/_routetimer/trace/{trace_id}").text
    assert '<line class="first-byte"' in trace_page and "<dt>First byte</dt>" in trace_page
    (item_trace,) = trace_ids(
        client.get("/_routetimer/route?method=GET&route=/items/<int:id>").text
    )
    assert "first-byte" not in client.get(f"/_routetimer/trace/{item_trace}").text
