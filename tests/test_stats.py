"""Tests for the in-process per-route statistics engine."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from flask_routetimer import stats
from flask_routetimer.stats import RouteStats, RouteStatsTable, StatsSnapshot

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
MAX_RELATIVE_ERROR = 0.02
FLOAT_SLACK = 1e-9  # float rounding at bucket boundaries, far below the 2% guarantee


def only_row(snapshot: StatsSnapshot) -> RouteStats:
    """Return the single row of a snapshot, failing if there is not exactly one."""
    (row,) = snapshot.routes
    return row


def rows_by_key(snapshot: StatsSnapshot) -> dict[tuple[str, str | None], RouteStats]:
    """Index snapshot rows by (method, route)."""
    return {(row.method, row.route): row for row in snapshot.routes}


def exact_quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values: the ceil(q * n)-th smallest."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


# --- Quantile accuracy ------------------------------------------------------------------------


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.05), 1.0)


def _heavy_lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.01), 2.0)


def _uniform(rng: random.Random) -> float:
    return rng.uniform(0.001, 2.0)


def _bimodal(rng: random.Random) -> float:
    if rng.random() < 0.7:
        return rng.lognormvariate(math.log(0.004), 0.2)  # fast cache hits
    return rng.lognormvariate(math.log(0.9), 0.3)  # slow misses


def _tiny(rng: random.Random) -> float:
    return rng.uniform(2e-6, 1e-3)  # sub-millisecond, down to a few microseconds


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "lognormal": _lognormal,
    "heavy_lognormal": _heavy_lognormal,
    "uniform": _uniform,
    "bimodal": _bimodal,
    "tiny": _tiny,
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_quantiles_within_two_percent_of_exact(name: str) -> None:
    """Every reported quantile is within 2% of the exact nearest-rank quantile on 100k samples."""
    rng = random.Random(name)
    samples = [DISTRIBUTIONS[name](rng) for _ in range(100_000)]
    table = RouteStatsTable(1000)
    for value in samples:
        table.record("GET", "/q", value, False)
    row = only_row(table.snapshot())
    ordered = sorted(samples)

    for field, q in QUANTILES.items():
        exact = exact_quantile(ordered, q)
        for reported in (getattr(row, field), row.quantile(q)):
            assert abs(reported - exact) / exact <= MAX_RELATIVE_ERROR + FLOAT_SLACK, field


@pytest.mark.parametrize("value", [0.0, 1e-9, 0.0123, 7200.0])
def test_constant_data_reports_exact_quantiles(value: float) -> None:
    """Clamping into [min, max] makes constant data exact, even outside the bucketed range."""
    table = RouteStatsTable(1000)
    for _ in range(10):
        table.record("GET", "/c", value, False)
    row = only_row(table.snapshot())
    assert (row.p50, row.p90, row.p95, row.p99) == (value,) * 4


def test_quantiles_never_leave_observed_range() -> None:
    """Reported quantiles lie within [min, max] even when the bucket value would not."""
    table = RouteStatsTable(1000)
    for value in (0.0101, 0.0102, 0.0103):  # all in one bucket whose midpoint is outside
        table.record("GET", "/r", value, False)
    row = only_row(table.snapshot())
    for q in (0.0, 0.5, 1.0):
        assert row.min <= row.quantile(q) <= row.max


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_rejects_out_of_range_q(q: float) -> None:
    """A quantile outside [0, 1] is a caller bug and raises ValueError."""
    table = RouteStatsTable(1000)
    table.record("GET", "/q", 0.1, False)
    with pytest.raises(ValueError, match="quantile"):
        only_row(table.snapshot()).quantile(q)


def test_buckets_contain_their_values_and_have_ratio_gamma() -> None:
    """Each exported bucket spans a GAMMA ratio, holds the recorded value and counts add up."""
    values = [10.0**exponent for exponent in range(-5, 4)]
    table = RouteStatsTable(1000)
    for value in values:
        table.record("GET", "/b", value, False)
    row = only_row(table.snapshot())

    assert sum(count for _, _, count in row.buckets) == row.count == len(values)
    for (lower, upper, _), value in zip(row.buckets, values):
        assert lower < value <= upper
        assert upper / lower == pytest.approx(stats.GAMMA)


# --- Exact aggregates and row keys ------------------------------------------------------------


def test_count_errors_total_min_max_are_exact() -> None:
    """count, error_count, total, min, max, mean and error_rate are exact, not approximated."""
    durations = [0.25, 0.5, 0.125, 2.0]
    errors = [False, True, False, True]
    table = RouteStatsTable(1000)
    for duration, error in zip(durations, errors):
        table.record("POST", "/items", duration, error)
    row = only_row(table.snapshot())

    assert (row.method, row.route, row.overflow) == ("POST", "/items", False)
    assert (row.count, row.error_count) == (4, 2)
    assert (row.total, row.min, row.max) == (2.875, 0.125, 2.0)
    assert (row.mean, row.error_rate) == (2.875 / 4, 0.5)


def test_rows_sorted_by_total_time_descending() -> None:
    """Snapshot rows come heaviest total time first, regardless of insertion order."""
    table = RouteStatsTable(1000)
    for route, duration, times in [("/light", 0.1, 1), ("/heavy", 1.0, 3), ("/medium", 0.5, 2)]:
        for _ in range(times):
            table.record("GET", route, duration, False)
    assert [row.route for row in table.snapshot().routes] == ["/heavy", "/medium", "/light"]


def test_unmatched_requests_grouped_per_method() -> None:
    """route=None rows are one per method and separate from matched routes."""
    table = RouteStatsTable(1000)
    for method, route in [("GET", None), ("GET", None), ("POST", None), ("GET", "/a")]:
        table.record(method, route, 0.01, False)
    rows = rows_by_key(table.snapshot())

    assert set(rows) == {("GET", None), ("POST", None), ("GET", "/a")}
    assert rows["GET", None].count == 2
    assert rows["POST", None].count == 1
    assert len(table) == 3


def test_negative_duration_clamped_to_zero() -> None:
    """A backwards clock step records as 0 s instead of reducing the total."""
    table = RouteStatsTable(1000)
    table.record("GET", "/n", 0.5, False)
    table.record("GET", "/n", -3.0, False)
    row = only_row(table.snapshot())
    assert (row.count, row.total, row.min, row.max) == (2, 0.5, 0.0, 0.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_duration_is_ignored(bad: float) -> None:
    """NaN and infinities are dropped so they cannot poison totals, extremes or quantiles."""
    table = RouteStatsTable(1000)
    table.record("GET", "/f", 0.2, False)
    table.record("GET", "/f", bad, True)
    row = only_row(table.snapshot())
    assert (row.count, row.error_count, row.total, row.min, row.max) == (1, 0, 0.2, 0.2, 0.2)
    assert row.p99 == 0.2


# --- Route cap --------------------------------------------------------------------------------


def test_cap_sends_new_keys_to_one_overflow_row() -> None:
    """Past max_routes, every new key is counted in a single overflow row; kept rows go on."""
    table = RouteStatsTable(max_routes=3)
    for i in range(10):
        table.record("GET", f"/r{i}", 1.0, i % 2 == 0)
    table.record("PUT", None, 1.0, False)  # an unmatched method is a new key too
    table.record("GET", "/r0", 5.0, False)  # existing rows keep their own stats
    snapshot = table.snapshot()
    rows = rows_by_key(snapshot)

    assert snapshot.overflowed
    assert len(snapshot.routes) == len(table) == 4
    overflow = rows["*", None]
    assert (overflow.overflow, overflow.count, overflow.error_count) == (True, 8, 3)
    assert [row.overflow for row in snapshot.routes].count(True) == 1
    assert rows["GET", "/r0"].count == 2


def test_under_cap_is_not_overflowed() -> None:
    """Filling the table exactly to the cap creates no overflow row."""
    table = RouteStatsTable(max_routes=2)
    table.record("GET", "/a", 0.1, False)
    table.record("GET", "/b", 0.1, False)
    snapshot = table.snapshot()
    assert not snapshot.overflowed
    assert not any(row.overflow for row in snapshot.routes)
    assert (snapshot.max_routes, len(table)) == (2, 2)


# --- Reset, empty rows and snapshots ----------------------------------------------------------


def test_reset_drops_rows_and_frees_the_cap() -> None:
    """After reset the table is empty, serialisable, and new keys get rows again."""
    table = RouteStatsTable(max_routes=1)
    table.record("GET", "/a", 0.1, False)
    table.record("GET", "/b", 0.1, False)  # overflow
    table.reset()

    empty = table.snapshot()
    assert (len(table), empty.routes, empty.overflowed) == (0, (), False)
    assert json.loads(json.dumps(empty.to_dict()))["routes"] == []

    table.record("GET", "/b", 0.1, False)
    assert [(row.route, row.overflow) for row in table.snapshot().routes] == [("/b", False)]


def test_empty_row_freezes_without_dividing_by_zero() -> None:
    """A row seen before its first record (a race with snapshot) reports zeros, not errors."""
    row = stats._RouteRow("GET", "/empty").freeze()
    assert (row.count, row.total, row.min, row.max, row.mean, row.error_rate) == (0, 0, 0, 0, 0, 0)
    assert (row.p50, row.p99, row.quantile(0.5), row.buckets) == (0.0, 0.0, 0.0, ())
    json.dumps(row.to_dict(), allow_nan=False)


def test_snapshot_unaffected_by_later_records() -> None:
    """A snapshot is a copy: recording afterwards changes neither its rows nor its buckets."""
    table = RouteStatsTable(max_routes=1)
    table.record("GET", "/a", 0.1, False)
    before = table.snapshot()
    frozen_copy = before.to_dict()

    table.record("GET", "/a", 0.3, True)
    table.record("GET", "/b", 0.2, False)  # creates the overflow row
    assert before.to_dict() == frozen_copy
    assert table.snapshot().to_dict() != frozen_copy


@pytest.mark.parametrize(
    ("attribute", "target"),
    [("count", "row"), ("p99", "row"), ("buckets", "row"), ("routes", "snapshot")],
)
def test_snapshot_objects_are_frozen(attribute: str, target: str) -> None:
    """Assigning to a RouteStats or StatsSnapshot field raises FrozenInstanceError."""
    table = RouteStatsTable(1000)
    table.record("GET", "/a", 0.1, False)
    snapshot = table.snapshot()
    obj = snapshot if target == "snapshot" else only_row(snapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attribute, None)


def test_to_dict_is_strict_json_in_seconds() -> None:
    """to_dict round-trips through strict JSON with every documented field, times in seconds."""
    table = RouteStatsTable(max_routes=1)
    table.record("GET", "/a", 0.5, True)
    table.record("GET", None, 0.25, False)  # overflow
    data = json.loads(json.dumps(table.snapshot().to_dict(), allow_nan=False))

    assert (data["unit"], data["max_routes"], data["overflowed"]) == ("s", 1, True)
    first, second = data["routes"]
    assert (first["route"], first["total"], first["error_rate"], first["mean"]) == (
        "/a",
        0.5,
        1.0,
        0.5,
    )
    assert (second["method"], second["route"], second["overflow"]) == ("*", None, True)
    assert set(first) >= {"count", "error_count", "min", "max", "p50", "p90", "p95", "p99"}
    ((lower, upper, count),) = first["buckets"]
    assert lower < 0.5 <= upper and count == 1


# --- Thread safety ----------------------------------------------------------------------------


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads far more often than usual to provoke lost updates if any exist."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


THREADS = 8
RECORDS_PER_THREAD = 20_000


def _run_concurrently(worker: Callable[[int], None]) -> None:
    """Start THREADS workers at once behind a barrier and wait for all of them."""
    barrier = threading.Barrier(THREADS)

    def start(index: int) -> None:
        barrier.wait()
        worker(index)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("eager_thread_switching")
def test_concurrent_records_into_overlapping_routes_are_exact() -> None:
    """8 threads x 20k records into shared routes lose no count, error or time."""
    routes = ["/a", "/b", "/c", None]
    table = RouteStatsTable(1000)

    def worker(index: int) -> None:
        for i in range(RECORDS_PER_THREAD):
            table.record("GET", routes[(index + i) % 4], (i % 100 + 1) * 1e-4, i % 10 == 0)

    _run_concurrently(worker)
    rows = table.snapshot().routes

    per_thread_sum = sum((i % 100 + 1) * 1e-4 for i in range(RECORDS_PER_THREAD))
    assert len(rows) == 4
    assert sum(row.count for row in rows) == THREADS * RECORDS_PER_THREAD
    assert sum(row.error_count for row in rows) == THREADS * RECORDS_PER_THREAD // 10
    assert sum(row.total for row in rows) == pytest.approx(THREADS * per_thread_sum, rel=1e-9)
    assert all(row.count == THREADS * RECORDS_PER_THREAD // 4 for row in rows)
    assert all(sum(count for _, _, count in row.buckets) == row.count for row in rows)


@pytest.mark.usefixtures("eager_thread_switching")
def test_concurrent_row_creation_respects_the_cap_and_loses_nothing() -> None:
    """Threads racing to create the same new rows never exceed the cap or drop a record."""
    tables = [RouteStatsTable(max_routes=5) for _ in range(300)]  # many fresh creation races
    barrier = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        for table in tables:
            barrier.wait()
            for key in range(10):
                table.record("GET", f"/k{(key + index) % 10}", 0.001, False)

    _run_concurrently(worker)
    for table in tables:
        snapshot = table.snapshot()
        assert (snapshot.overflowed, len(snapshot.routes)) == (True, 6)
        assert sum(row.count for row in snapshot.routes) == THREADS * 10


# --- Constant memory --------------------------------------------------------------------------


def test_histogram_storage_does_not_grow_with_records() -> None:
    """A row's bucket array keeps its length and allocation after 100k widely varying records."""
    table = RouteStatsTable(1000)
    table.record("GET", "/m", 0.01, False)
    counts = table._rows["GET", "/m"].counts
    length, size = len(counts), sys.getsizeof(counts)

    rng = random.Random(7)
    for _ in range(100_000):
        table.record("GET", "/m", 10.0 ** rng.uniform(-9, 5), False)  # 1 ns .. 28 h

    assert table._rows["GET", "/m"].counts is counts
    assert (len(counts), sys.getsizeof(counts)) == (length, size) == (stats.BUCKET_COUNT, size)
    assert len(table) == 1
    assert len(only_row(table.snapshot()).buckets) <= stats.BUCKET_COUNT


# --- Time to first byte -----------------------------------------------------------------------


def test_ttfb_quantiles_use_the_duration_sketch_and_bound() -> None:
    """TTFB quantiles are nearest-rank within 2%, from their own sketch, beside the durations."""
    table = RouteStatsTable(max_routes=10)
    rng = random.Random(5)
    firsts = [rng.uniform(0.001, 0.5) for _ in range(1000)]
    for first in firsts:
        table.record("GET", "/s", first + 1.0, False, first)
    table.record("GET", "/s", 2.0, False)  # a request that sent no streamed byte
    row = only_row(table.snapshot())
    ordered = sorted(firsts)
    assert row.count == 1001 and row.ttfb_count == 1000
    for name, q in (("ttfb_p50", 0.5), ("ttfb_p95", 0.95), ("ttfb_p99", 0.99)):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert getattr(row, name) == pytest.approx(exact, rel=stats.RELATIVE_ACCURACY)
    assert row.p50 > 1.0  # durations are their own sketch
    data = json.loads(json.dumps(row.to_dict(), allow_nan=False))
    assert data["ttfb_count"] == 1000 and data["ttfb_p95"] == row.ttfb_p95


def test_ttfb_absent_unusable_or_negative() -> None:
    """No TTFB leaves None; NaN and infinities are ignored; a negative one counts as 0."""
    table = RouteStatsTable(max_routes=10)
    table.record("GET", "/plain", 0.1, False)
    table.record("GET", "/odd", 0.1, False, math.nan)
    table.record("GET", "/odd", 0.1, False, math.inf)
    table.record("GET", "/neg", 0.1, False, -1.0)
    rows = {row.route: row for row in table.snapshot().routes}
    assert (rows["/plain"].ttfb_count, rows["/plain"].ttfb_p50) == (0, None)
    assert (rows["/odd"].ttfb_count, rows["/odd"].ttfb_p99) == (0, None)
    assert (rows["/neg"].ttfb_count, rows["/neg"].ttfb_p50) == (1, 0.0)
    assert rows["/plain"].to_dict()["ttfb_p50"] is None


# --- Rows frozen from a sketch ----------------------------------------------------------------


def test_a_frozen_row_is_the_row_its_constructor_would_make() -> None:
    """A snapshot row (buckets built at first use) equals, hashes, prints, copies and pickles
    like the RouteStats built from the same field values."""
    import copy
    import pickle

    table = RouteStatsTable(10)
    for value in (0.001, 0.002, 0.002, 0.5, 0.5, 7.0):
        table.record("GET", "/a", value, False, ttfb=value / 2)
    row = only_row(table.snapshot())
    made = RouteStats(**{f.name: getattr(row, f.name) for f in dataclasses.fields(row)})
    assert made.buckets and sum(count for _, _, count in made.buckets) == 6
    fresh = only_row(table.snapshot())  # buckets not yet built
    assert fresh == made and hash(only_row(table.snapshot())) == hash(made)
    assert repr(only_row(table.snapshot())) == repr(made)
    assert dataclasses.replace(only_row(table.snapshot()), count=7).buckets == made.buckets
    assert pickle.loads(pickle.dumps(only_row(table.snapshot()))) == made
    assert copy.deepcopy(only_row(table.snapshot())).buckets == made.buckets
    assert only_row(table.snapshot()).to_dict() == made.to_dict()
    with pytest.raises(AttributeError, match="no attribute 'bucket'"):
        row.bucket  # noqa: B018
