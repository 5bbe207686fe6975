"""Sketches of several processes' statistics tables merge exactly (``ROUTETIMER_MULTIPROC_DIR``)."""

from __future__ import annotations

import math
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_routetimer import sketchtable
from flask_routetimer.stats import (
    RouteSketch,
    RouteStatsTable,
    _added_runs,
    merge_sketches,
    snapshot_of,
)

MAX_RELATIVE_ERROR = 0.02
FLOAT_SLACK = 1e-9

durations = st.floats(min_value=1e-6, max_value=3600.0, allow_nan=False, allow_infinity=False)
# Several processes, each with its own list of request durations for one route.
processes = st.lists(st.lists(durations, max_size=60), min_size=1, max_size=6).filter(
    lambda groups: any(groups)
)


def table_of(values: list[float], errors_every: int = 0) -> RouteStatsTable:
    table = RouteStatsTable(1000)
    for index, value in enumerate(values):
        table.record("GET", "/r", value, bool(errors_every) and index % errors_every == 0)
    return table


def exact_quantile(ordered: list[float], q: float) -> float:
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@settings(max_examples=150, deadline=None)
@given(processes)
def test_merged_quantiles_keep_the_single_process_bound(groups: list[list[float]]) -> None:
    """p50/p90/p95/p99 of the merged sketch are within 2% of the exact quantiles of the union."""
    sketches = [s for values in groups for s in table_of(values).sketches()]
    (row,) = snapshot_of(sketches, 1000).routes
    union = sorted(v for values in groups for v in values)
    for name, q in {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}.items():
        exact = exact_quantile(union, q)
        assert abs(getattr(row, name) - exact) <= exact * MAX_RELATIVE_ERROR + FLOAT_SLACK, name


@settings(max_examples=100, deadline=None)
@given(processes)
def test_merged_sketch_is_the_sketch_of_the_union(groups: list[list[float]]) -> None:
    """Counts, buckets, min and max of the merge equal those of one table fed every value."""
    (merged,) = merge_sketches(s for values in groups for s in table_of(values).sketches())
    (whole,) = table_of([v for values in groups for v in values]).sketches()
    assert merged.count == whole.count
    assert merged.buckets == whole.buckets
    assert (merged.min, merged.max) == (whole.min, whole.max)
    assert merged.total == pytest.approx(whole.total)


def test_counts_errors_and_totals_add_up_per_route() -> None:
    """Each (method, route) row of the merge adds that row of every process; others stay apart."""
    first, second = table_of([0.1, 0.2, 0.3], errors_every=3), table_of([0.4], errors_every=1)
    second.record("POST", "/r", 1.0, False)
    snapshot = snapshot_of([*first.sketches(), *second.sketches()], 1000, workers=2)
    rows = {(row.method, row.route): row for row in snapshot.routes}
    assert (rows["GET", "/r"].count, rows["GET", "/r"].error_count) == (4, 2)
    assert rows["GET", "/r"].total == pytest.approx(1.0)
    assert (rows["GET", "/r"].min, rows["GET", "/r"].max) == (0.1, 0.4)
    assert rows["POST", "/r"].count == 1
    assert snapshot.workers == 2 and snapshot.to_dict()["workers"] == 2


def test_a_merge_past_the_route_cap_folds_the_lightest_rows_into_overflow() -> None:
    """Processes that saw different routes merge into at most max_routes rows plus overflow."""
    first, second = RouteStatsTable(1000), RouteStatsTable(1000)
    for _ in range(3):
        first.record("GET", "/busy", 0.1, False)
    first.record("GET", "/a", 0.1, False)
    second.record("GET", "/b", 0.2, True)
    snapshot = snapshot_of([*first.sketches(), *second.sketches()], 2)
    rows = {(row.method, row.route): row for row in snapshot.routes}
    assert snapshot.overflowed
    assert rows["GET", "/busy"].count == 3
    assert rows["*", None].overflow and rows["*", None].count == 1
    assert sum(row.count for row in snapshot.routes) == 5
    assert sum(row.error_count for row in snapshot.routes) == 1


def test_one_process_merged_alone_equals_its_own_snapshot() -> None:
    """The merged view of one table is that table's snapshot, quantiles included."""
    table = table_of([0.001 * i for i in range(1, 500)], errors_every=7)
    table.record("GET", None, 0.5, False)
    for n in range(1, 30):
        table.record("GET", "/stream", 0.2, False, ttfb=0.002 * n)
    assert snapshot_of(table.sketches(), 1000).routes == table.snapshot().routes


def test_times_to_first_byte_merge_like_durations() -> None:
    """Streamed rows' first-byte sketches add up too; rows that never streamed have none."""
    first, second, whole = (RouteStatsTable(1000) for _ in range(3))
    for index, table in enumerate((first, second)):
        for n in range(1, 40):
            ttfb = 0.001 * n * (index + 1)
            table.record("GET", "/stream", 0.5, False, ttfb=ttfb)
            whole.record("GET", "/stream", 0.5, False, ttfb=ttfb)
        table.record("GET", "/plain", 0.1, False)
        whole.record("GET", "/plain", 0.1, False)
    merged = {
        (r.method, r.route): r
        for r in snapshot_of([*first.sketches(), *second.sketches()], 1000).routes
    }
    expected = {(r.method, r.route): r for r in whole.snapshot().routes}
    stream, plain = merged["GET", "/stream"], merged["GET", "/plain"]
    assert (stream.ttfb_count, stream.ttfb_p50, stream.ttfb_p95, stream.ttfb_p99) == (
        78,
        expected["GET", "/stream"].ttfb_p50,
        expected["GET", "/stream"].ttfb_p95,
        expected["GET", "/stream"].ttfb_p99,
    )
    assert (plain.ttfb_count, plain.ttfb_p50) == (0, None)


def test_runs_add_up_exactly_however_they_are_held() -> None:
    """Bucket runs add bucket by bucket: 64-bit arrays at once, and huge or tuple counts (past
    2**64 in all, which no 64-bit field holds) column by column in Python integers."""
    runs = [(3, array("Q", [1, 2, 3])), (1, array("Q", [5])), (4, array("Q", [7, 0, 0, 9]))]
    assert _added_runs(runs, 27) == (1, array("Q", [5, 0, 1, 9, 3, 0, 9]))
    huge = 2**63
    big = [(3, array("Q", [huge, 1])), (4, array("Q", [huge, 1]))]
    assert _added_runs(big, 2 * huge + 2) == (3, (huge, huge + 1, 1))
    assert _added_runs([(2, (1, 1)), (2, array("Q", [1]))], 3) == (2, (2, 1))


def test_a_merge_of_many_huge_rows_stays_exact() -> None:
    """Past 2**64 requests in one merged row the counts stay exact, quantiles included."""
    sketch = RouteSketch("GET", "/r", False, 2**53, 0, 1.0, 0.5, 0.5, 400, array("Q", [2**53]))
    (merged,) = merge_sketches([sketch] * 4096)
    assert merged.count == 2**65 and tuple(merged.counts) == (2**65,)
    (row,) = snapshot_of([sketch] * 4096, 1000).routes
    assert row.count == 2**65 and row.p99 == 0.5


# --- By column (sketchtable): what a merged read of worker files uses -------------------------

requests = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST", "PUT"]),
        st.sampled_from(["/a", "/b/<int:n>", "/c", None]),
        durations,
        st.booleans(),
        st.none() | durations,
    ),
    max_size=40,
)


def table_with(
    recorded: list[tuple[str, str | None, float, bool, float | None]],
) -> RouteStatsTable:
    table = RouteStatsTable(3)  # small: some processes overflow
    for method, route, seconds, error, ttfb in recorded:
        table.record(method, route, seconds, error, ttfb)
    return table


def by_key(sketches: list[RouteSketch]) -> dict[object, RouteSketch]:
    return {s.key: s._replace(counts=tuple(s.counts)) for s in sketches}


@settings(max_examples=150, deadline=None)
@given(st.lists(requests, min_size=1, max_size=6))
def test_tables_merge_by_column_as_sketches_merge_by_row(processes: list[list[Any]]) -> None:
    """Every key's counts, errors, totals, min, max, buckets and times to first byte: the same
    from the columns as from adding up each key's sketches, and a table reads back its rows."""
    sketches = [table_with(recorded).sketches() for recorded in processes]
    assert all(sketchtable.table_of(rows).sketches() == rows for rows in sketches)
    merged = sketchtable.merge_tables(sketchtable.table_of(rows) for rows in sketches).sketches()
    assert len(merged) == len(by_key(merged))
    assert by_key(merged) == by_key(merge_sketches(s for rows in sketches for s in rows))


def test_tables_past_two_to_the_64_merge_exactly() -> None:
    """Counts no 64-bit field holds merge row by row, exactly, as sketches do."""
    sketch = RouteSketch("GET", "/r", False, 2**53, 0, 1.0, 0.5, 0.5, 400, array("Q", [2**53]))
    (merged,) = sketchtable.merge_tables([sketchtable.table_of([sketch])] * 4096).sketches()
    assert merged.count == 2**65 and tuple(merged.counts) == (2**65,)
