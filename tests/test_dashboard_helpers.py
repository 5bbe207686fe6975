"""The dashboard's pure helpers: redaction, formatting, sorting, span trees, plot geometry and
the /api/stats JSON writer."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Optional

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from flask_routetimer.dashboard import geometry, present
from flask_routetimer.dashboard.stats_json import stats_json
from flask_routetimer.stats import RouteStats, RouteStatsTable, StatsSnapshot
from flask_routetimer.tracedata import SpanData, from_span


def make_span(name: str, span_id: int, parent: Optional[int], start: int, end: int) -> SpanData:
    """A finished span of trace 1, in the dashboard's data form; times in ns."""
    context = SpanContext(trace_id=1, span_id=span_id, is_remote=False)
    parent_context = SpanContext(1, parent, is_remote=False) if parent else None
    return from_span(
        ReadableSpan(
            name=name, context=context, parent=parent_context, start_time=start, end_time=end
        )
    )


def row(route: str, p95: float) -> RouteStats:
    return RouteStats("GET", route, 1, 0, p95, p95, p95, p95, p95, p95, p95)


# --- Redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:pw@example.com/p?sig=abc&a=1",
            "https://REDACTED@example.com/p?sig=REDACTED&a=1",
        ),
        ("/p?X-Goog-Signature=s#frag", "/p?X-Goog-Signature=REDACTED#frag"),
        ("https://example.com/a@b?x=1", "https://example.com/a@b?x=1"),
        ("/plain", "/plain"),
    ],
)
def test_redact_url_hides_credentials_only(url, shown):
    """Userinfo and credential query values are replaced; the rest of the URL is kept."""
    assert present.redact_url(url) == shown


@pytest.mark.parametrize(
    "key",
    [
        "http.request.header.authorization",
        "http.request.header.Cookie",
        "http.response.header.set-cookie",
        "http.request.header.proxy_authorization",
        "http.request.header.x-api-key",
    ],
)
def test_sensitive_headers_are_redacted(key):
    """Credential-carrying header attributes show as REDACTED, whatever their spelling."""
    assert present.redact_value(key, ("Bearer secret",)) == "REDACTED"


def test_other_attributes_keep_their_value_and_type():
    """Harmless headers, numbers and queries without credentials are shown as they are."""
    attributes = {
        "http.request.header.accept": ("text/html",),
        "http.response.status_code": 200,
        "url.query": "sig=abc&page=2",
        "http.target": "/x?AWSAccessKeyId=k",
    }
    assert present.redact_attributes(attributes) == {
        "http.request.header.accept": ["text/html"],
        "http.response.status_code": 200,
        "url.query": "sig=REDACTED&page=2",
        "http.target": "/x?AWSAccessKeyId=REDACTED",
    }


# --- Formatting and sorting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0.00 µs"), (42e-6, "42.0 µs"), (0.0123, "12.3 ms"), (0.5, "500 ms"), (2.5, "2.50 s")],
)
def test_format_seconds_picks_a_readable_unit(seconds, text):
    """Durations read with three significant digits in s, ms or µs."""
    assert present.format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("key", "order", "expected"),
    [
        (None, None, ("total", True)),
        ("nonsense", "asc", ("total", True)),
        ("p95", None, ("p95", True)),
        ("route", None, ("route", False)),
        ("count", "asc", ("count", False)),
    ],
)
def test_sort_order_defaults_to_worst_first(key, order, expected):
    """Unknown keys fall back to total time descending; numbers default to descending."""
    assert present.sort_order(key, order) == expected


def test_sort_rows_by_a_column():
    """Rows sort by the chosen column in the chosen direction."""
    rows = [row("/a", p95=0.2), row("/b", p95=0.9), row("/c", p95=0.5)]
    assert [r.route for r in present.sort_rows(rows, "p95", True)] == ["/b", "/c", "/a"]
    assert [r.route for r in present.sort_rows(rows, "route", False)] == ["/a", "/b", "/c"]


# --- Span tree and waterfall ------------------------------------------------------------------


def test_span_tree_nests_children_under_parents_by_start():
    """Children follow their parent depth-first, earliest first; orphans become roots."""
    spans = [
        make_span("b", 3, 1, 50, 60),
        make_span("root", 1, None, 0, 100),
        make_span("a", 2, 1, 10, 40),
        make_span("a.1", 4, 2, 20, 30),
        make_span("orphan", 5, 99, 70, 80),
    ]
    tree = [(span.name, depth) for span, depth in geometry.span_tree(spans)]
    assert tree == [("root", 0), ("a", 1), ("a.1", 2), ("b", 1), ("orphan", 0)]


def test_waterfall_bars_are_to_scale():
    """Offsets and widths are percentages of the trace's time window; tiny spans stay visible."""
    spans = [make_span("root", 1, None, 1000, 1200), make_span("child", 2, 1, 1050, 1100)]
    rows = geometry.waterfall(spans)
    assert [(r.depth, r.x, r.width) for r in rows] == [(0, 0.0, 100.0), (1, 25.0, 25.0)]
    assert rows[1].offset == pytest.approx(50e-9)
    tiny = geometry.waterfall([make_span("r", 1, None, 0, 10**6), make_span("t", 2, 1, 0, 1)])
    assert tiny[1].width == geometry.MIN_BAR


# --- Histogram --------------------------------------------------------------------------------


def test_histogram_of_nothing_is_none():
    """An empty route has no plot rather than an empty frame."""
    assert geometry.histogram((), {"p50": 0.0}) is None


def test_histogram_bars_fit_the_plot_and_scale_with_counts():
    """Bars sit inside the plot area, the tallest bucket reaches the top, ticks are decades."""
    buckets = [(0.001, 0.00104, 4), (0.01, 0.0104, 2)]
    plot = geometry.histogram(buckets, {"p50": 0.001, "p99": 0.01})
    assert plot is not None
    for bar in plot.bars:
        assert plot.left <= bar.x and bar.x + bar.width <= plot.right
    assert plot.bars[0].y == plot.top and plot.bars[1].height == pytest.approx(
        plot.bars[0].height / 2
    )
    assert plot.bars[0].x < plot.bars[1].x
    assert [tick.label for tick in plot.ticks][:3] == ["1.00 ms", "2.00 ms", "5.00 ms"]


def test_histogram_merges_equal_quantile_markers():
    """Quantiles with the same value share one label instead of overprinting."""
    plot = geometry.histogram([(0.01, 0.0104, 1)], {"p50": 0.01, "p95": 0.01, "p99": 0.01})
    assert plot is not None
    assert [marker.label for marker in plot.markers] == ["p50, p95, p99 10.0 ms"]


def test_waterfall_marks_the_first_byte_on_a_streamed_request():
    """A request span with a time to first byte gets a marker on its bar; others get none."""
    root = make_span("GET /stream", 1, None, 1000, 1400)
    root = replace(root, attributes={"routetimer.time_to_first_byte": 100e-9})
    rows = geometry.waterfall([root, make_span("render rows.html", 2, 1, 1000, 1300)])
    assert (rows[0].first_byte, rows[0].first_byte_x) == (pytest.approx(100e-9), 25.0)
    assert (rows[1].first_byte, rows[1].first_byte_x) == (None, None)


def test_routes_sort_by_ttfb_with_never_streamed_routes_last():
    """Sorting by TTFB p50 puts routes that never streamed below every real value."""
    rows = [row("/plain", 0.5), replace(row("/fast", 0.1), ttfb_count=1, ttfb_p50=0.01)]
    rows.append(replace(row("/slow", 0.1), ttfb_count=1, ttfb_p50=0.2))
    ordered = present.sort_rows(rows, "ttfb_p50", True)
    assert [r.route for r in ordered] == ["/slow", "/fast", "/plain"]
    assert present.sort_order("ttfb_p50", None) == ("ttfb_p50", True)


# --- /api/stats as JSON text ------------------------------------------------------------------


def wide_table() -> RouteStatsTable:
    """Rows over the whole bucket layout (clamped ends included), one of them streamed."""
    table = RouteStatsTable(max_routes=3)
    rng = random.Random(3)
    for index in range(5):  # two keys past max_routes: an overflow row too
        for _ in range(200):
            seconds = 10 ** rng.uniform(-8, 4)
            table.record("GET", f"/r{index}", seconds, rng.random() < 0.1, ttfb=seconds / 3)
    table.record("POST", None, 0.25, False)
    return table


@pytest.mark.parametrize("buckets", [True, False])
def test_stats_json_is_the_snapshot_dict(buckets):
    """stats_json() parses to exactly to_dict() (every float equal), with the extra keys."""
    snapshot = wide_table().snapshot()
    extra = {"workers": 2, "worker_processes": [{"pid": 7, "age": 0.5}]}
    parsed = json.loads(stats_json(snapshot, buckets, extra))
    assert parsed == {**snapshot.to_dict(buckets), **extra}
    assert any(row["ttfb_count"] for row in parsed["routes"])
    assert ("buckets" in parsed["routes"][0]) is buckets


def test_stats_json_of_rows_made_by_hand():
    """Rows built with RouteStats(...) rather than frozen from a table are written alike."""
    made = RouteStats(
        "GET", "/a", 3, 0, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, buckets=((0.1, 0.2, 3),)
    )
    snapshot = StatsSnapshot((made, row("/b", 0.2)), 10, False)
    assert json.loads(stats_json(snapshot)) == snapshot.to_dict()
