"""Live per-route timing statistics kept in process memory.

Pure Python and Flask-free so it can be tested and benchmarked on its own. The hot path
(``RouteStatsTable.record``) is O(1): one dict lookup without the table lock, one ``math.log``
and a few increments under a per-route lock, so requests on different routes never contend.
Memory is bounded twice: each route has a fixed-size histogram, and the number of routes is
capped (``max_routes``) so a flood of distinct methods cannot grow the table without limit.
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate, chain, compress, repeat
from operator import add, lshift
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

__all__ = [
    "RouteSketch",
    "RouteStats",
    "RouteStatsTable",
    "StatsSnapshot",
    "bounded_merge",
    "merge_sketches",
    "snapshot_of",
]

# --- Histogram --------------------------------------------------------------------------------
# DDSketch-style: latencies span nine orders of magnitude (1 us .. 1 h) and what matters is
# *relative* error. Bucket bounds are powers of GAMMA = (1 + a) / (1 - a); reporting the harmonic
# mean of a bucket's bounds is within relative error a of every value in it, hence so is every
# quantile. The bucket array has a fixed length (BUCKET_COUNT), so memory per route is constant
# and recording costs one math.log. Values outside [MIN_TRACKED, MAX_TRACKED] clamp into the end
# buckets; reported quantiles are clamped into the observed [min, max], so constant out-of-range
# data still reports exactly.

RELATIVE_ACCURACY = 0.02
GAMMA = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
MIN_TRACKED = 1e-6  # seconds; bucket 0 contains this value and absorbs everything smaller
MAX_TRACKED = 3600.0  # seconds; the last bucket contains this value and absorbs everything larger

_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
# Bucket ``i`` covers ``(GAMMA ** (k - 1), GAMMA ** k]`` with ``k = i + _KEY_OFFSET``.
_KEY_OFFSET = math.ceil(math.log(MIN_TRACKED) * _INV_LOG_GAMMA)
BUCKET_COUNT = math.ceil(math.log(MAX_TRACKED) * _INV_LOG_GAMMA) - _KEY_OFFSET + 1
_LAST = BUCKET_COUNT - 1

# (lower, upper) bounds in seconds of every bucket, computed once for snapshots and plotting.
BUCKET_BOUNDS: tuple[tuple[float, float], ...] = tuple(
    (GAMMA ** (i + _KEY_OFFSET - 1), GAMMA ** (i + _KEY_OFFSET)) for i in range(BUCKET_COUNT)
)
_LOWERS = tuple(lower for lower, _ in BUCKET_BOUNDS)
_UPPERS = tuple(upper for _, upper in BUCKET_BOUNDS)

Bucket = tuple[float, float, int]  # (lower_s, upper_s, count)


def _bucket_index(seconds: float) -> int:
    """Map a non-negative finite duration to its bucket in O(1); out-of-range values clamp."""
    if seconds <= 0.0:  # log() is undefined here, and zero is below the tracked range anyway
        return 0
    index = math.ceil(math.log(seconds) * _INV_LOG_GAMMA) - _KEY_OFFSET
    if index < 0:
        return 0
    if index > _LAST:
        return _LAST
    return index


def _nearest_rank(q: float, count: int) -> int:
    """1-based nearest rank of quantile ``q`` among ``count`` values (``ceil(q * n)``, >= 1)."""
    if not 0.0 <= q <= 1.0:  # also rejects NaN
        raise ValueError(f"quantile must be within [0, 1], got {q!r}")
    return max(1, math.ceil(q * count))


def _bucket_quantile(buckets: Iterable[Bucket], count: int, q: float) -> float:
    """Representative value of the bucket holding the nearest-rank ``q`` value; 0.0 if empty.

    The harmonic mean ``2*lo*hi/(lo+hi)`` is within ``RELATIVE_ACCURACY`` of every value in
    ``(lo, hi]`` because ``hi / lo == GAMMA``.
    """
    rank = _nearest_rank(q, count)
    seen = 0
    for lower, upper, bucket_count in buckets:
        seen += bucket_count
        if seen >= rank:
            return 2.0 * lower * upper / (lower + upper)
    return 0.0


# --- Statistics table -------------------------------------------------------------------------

OVERFLOW_METHOD = "*"
_INF = math.inf

_Key = tuple[str, "str | None"]


@dataclass(frozen=True)
class RouteStats:
    """Immutable statistics of one (method, route) row; all times are in seconds."""

    method: str
    # Optional, not `str | None`: typing.get_type_hints() evaluates field annotations and
    # PEP 604 unions raise TypeError there on Python 3.9.
    route: Optional[str]  # noqa: UP045
    count: int
    error_count: int
    total: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    overflow: bool = False
    # Non-empty histogram buckets (lower_s, upper_s, count). A row frozen from a sketch builds
    # them at first use (see _lazy_row): a merged view of 1000 routes has ~120,000 of them,
    # and most reads (quantiles, timer.stats(), ?buckets=0) never look.
    buckets: tuple[Bucket, ...] = field(default_factory=tuple)
    # Time to first byte of streamed bodies: how many sent one, and quantiles of the same
    # sketch and error bound as the durations; None for a row that never streamed a byte.
    ttfb_count: int = 0
    ttfb_p50: Optional[float] = None  # noqa: UP045
    ttfb_p95: Optional[float] = None  # noqa: UP045
    ttfb_p99: Optional[float] = None  # noqa: UP045

    @property
    def mean(self) -> float:
        """Mean duration, 0.0 for an empty row rather than a ZeroDivisionError."""
        return self.total / self.count if self.count else 0.0

    @property
    def error_rate(self) -> float:
        """Fraction of requests that errored, 0.0 for an empty row."""
        return self.error_count / self.count if self.count else 0.0

    if not TYPE_CHECKING:  # hidden from mypy, which would then accept any attribute name

        def __getattr__(self, name: str) -> Any:
            """``buckets`` of a row made by :func:`_lazy_row`, built once, at first use."""
            run = self.__dict__.get("_run") if name == "buckets" else None
            if run is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            buckets = tuple(_bucket_triples(*run))
            self.__dict__["buckets"] = buckets  # frozen for users; this is the lazy field
            return buckets

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile ``q`` in [0, 1]; within 2% of exact for values in 1 µs .. 1 h."""
        return _clamped_quantile(self.buckets, self.count, self.min, self.max, q)

    def to_dict(self, buckets: bool = True) -> dict[str, object]:
        """JSON-ready mapping (plain str/int/float/bool/None/lists only); ``buckets=False``
        leaves out the histogram, most of the cost of a thousand rows."""
        data: dict[str, object] = {
            "method": self.method,
            "route": self.route,
            "overflow": self.overflow,
            "count": self.count,
            "error_count": self.error_count,
            "error_rate": self.error_rate,
            "total": self.total,
            "mean": self.mean,
            "min": self.min,
            "max": self.max,
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
            "ttfb_count": self.ttfb_count,
            "ttfb_p50": self.ttfb_p50,
            "ttfb_p95": self.ttfb_p95,
            "ttfb_p99": self.ttfb_p99,
        }
        if buckets:
            run = self.__dict__.get("_run")
            triples = self.buckets if run is None else _bucket_triples(*run)
            data["buckets"] = list(map(list, triples))
        return data


@dataclass(frozen=True)
class StatsSnapshot:
    """Point-in-time copy of a table; rows sorted by total time, descending.

    ``workers`` is None for one process's own table; a view merged across worker processes
    (``ROUTETIMER_MULTIPROC_DIR``) says how many processes' statistics it adds up.
    """

    routes: tuple[RouteStats, ...]
    max_routes: int
    overflowed: bool
    workers: Optional[int] = None  # noqa: UP045

    def to_dict(self, buckets: bool = True) -> dict[str, object]:
        """JSON-ready mapping for an ``/api/stats`` endpoint; times are seconds.
        ``buckets=False`` leaves out every row's histogram buckets."""
        data: dict[str, object] = {
            "unit": "s",
            "max_routes": self.max_routes,
            "overflowed": self.overflowed,
            "routes": [row.to_dict(buckets) for row in self.routes],
        }
        if self.workers is not None:
            data["workers"] = self.workers
        return data


def _clamped_quantile(
    buckets: tuple[Bucket, ...], count: int, low: float, high: float, q: float
) -> float:
    """Histogram quantile clamped into [min, max]: keeps it within the data's real range, and
    makes constant or out-of-range data (all in one clamped end bucket) report exactly."""
    return min(max(_bucket_quantile(buckets, count, q), low), high)


class _FirstBytes:
    """Times to first byte of one row: a second sketch, made at its first streamed byte."""

    __slots__ = ("count", "min", "max", "counts")

    def __init__(self) -> None:
        self.count = 0
        self.min = _INF
        self.max = -_INF
        self.counts = [0] * BUCKET_COUNT

    def add(self, seconds: float, index: int) -> None:
        self.count += 1
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds
        self.counts[index] += 1

    def copy(self) -> tuple[int, float, float, list[int]]:
        """``(count, min, max, counts)``, taken under the row's lock."""
        return self.count, self.min, self.max, list(self.counts)


_NO_FIRST_BYTES: tuple[int, Optional[float], Optional[float], Optional[float]] = (
    0,
    None,
    None,
    None,
)


class FirstByteSketch(NamedTuple):
    """A row's times to first byte as raw runs of buckets (see :class:`RouteSketch`)."""

    count: int  # type: ignore[assignment]  # the field hides tuple.count, on purpose
    min: float
    max: float
    offset: int
    counts: Sequence[int]

    def quantiles(self) -> tuple[int, Optional[float], Optional[float], Optional[float]]:  # noqa: UP045
        """``(count, p50, p95, p99)`` as ``RouteStats`` reports them."""
        bounds = BUCKET_BOUNDS[self.offset : self.offset + len(self.counts)]
        cumulative = list(accumulate(self.counts))
        p50, p95, p99 = (
            _cumulative_quantile(cumulative, bounds, self.count, self.min, self.max, q)
            for q in (0.5, 0.95, 0.99)
        )
        return self.count, p50, p95, p99


def _merged_first_bytes(
    sketches: list[Optional[FirstByteSketch]],  # noqa: UP045
) -> Optional[FirstByteSketch]:  # noqa: UP045
    present = [sketch for sketch in sketches if sketch is not None]
    if len(present) <= 1:
        return present[0] if present else None
    count = sum(sketch.count for sketch in present)
    offset, counts = _added_runs([(sketch.offset, sketch.counts) for sketch in present], count)
    return FirstByteSketch(
        count,
        min(sketch.min for sketch in present),
        max(sketch.max for sketch in present),
        offset,
        counts,
    )


def counts_array(counts: Iterable[int]) -> array[int]:
    """Bucket counts as an array of unsigned 64-bit integers: compact, invisible to the garbage
    collector, and what :func:`_added_runs` adds fastest."""
    return array("Q", counts)


_FIELD = 64  # bits per bucket when a run is read as one integer
_LITTLE_ENDIAN = sys.byteorder == "little"


def _added_runs(runs: list[tuple[int, Sequence[int]]], total: int) -> tuple[int, Sequence[int]]:
    """Bucket runs ``(offset, counts)`` added bucket by bucket; ``total`` is their sum.

    Each run of 64-bit counts is read as one integer with a 64-bit field per bucket, shifted to
    its offset: adding the integers adds every bucket at once, in C (8 workers of 1000 routes
    add up in a few ms), and no field can carry into the next while ``total`` is below 2**64.
    Otherwise (counts no real server reaches), or for runs not held in such arrays, the runs
    are padded to a common window and added column by column, exactly, in Python integers.
    """
    runs = [run for run in runs if run[1]]
    if len(runs) <= 1:
        return runs[0] if runs else (0, ())
    offsets, counts = zip(*runs)
    lo = min(offsets)
    hi = max(map(add, offsets, map(len, counts)))
    if total >> _FIELD or not _LITTLE_ENDIAN or not all(map(_is_u64, counts)):
        padded = [chain(repeat(0, o - lo), c, repeat(0, hi - o - len(c))) for o, c in runs]
        return lo, tuple(map(sum, zip(*padded)))
    shifts = [_FIELD * (offset - lo) for offset in offsets]
    added = sum(map(lshift, map(_from_little, counts), shifts))
    merged = array("Q")
    merged.frombytes(added.to_bytes(8 * (hi - lo), "little"))
    return lo, merged


_from_little = partial(int.from_bytes, byteorder="little")


def _is_u64(counts: Sequence[int]) -> bool:
    return type(counts) is array and counts.typecode == "Q" and counts.itemsize == 8


class RouteSketch(NamedTuple):
    """A row's raw sketch: what several processes' rows add up from, exactly.

    Every process uses the same bucket layout (``BUCKET_BOUNDS``), so two sketches of one key
    merge by adding counts, totals and buckets and taking the extreme min/max: the merged
    sketch is the sketch the union of the data would have built, and its quantiles keep the
    single-process error bound. ``counts`` are the bucket counts from index ``offset`` on,
    from the bucket of ``min`` to that of ``max``: compact to store and quick to add. A named
    tuple, not a frozen dataclass: a merged read builds 8000 of them, four times as fast.
    """

    method: str
    route: Optional[str]  # noqa: UP045
    overflow: bool
    count: int  # type: ignore[assignment]  # the field hides tuple.count, on purpose
    error_count: int
    total: float
    min: float  # +inf while empty
    max: float  # -inf while empty
    offset: int
    counts: Sequence[int]  # an array("Q") (counts_array), or a tuple after a huge merge
    ttfb: Optional[FirstByteSketch] = None  # noqa: UP045  # None: never streamed a first byte

    @property
    def key(self) -> tuple[str, Optional[str], bool]:  # noqa: UP045
        """Rows of one key in different processes are one row of the merged view."""
        return (self.method, self.route, self.overflow)

    @property
    def buckets(self) -> tuple[tuple[int, int], ...]:
        """The non-empty buckets as ``(index, count)`` pairs."""
        return tuple((self.offset + i, n) for i, n in enumerate(self.counts) if n)

    def freeze(self) -> RouteStats:
        """The row's statistics, exactly as ``RouteStatsTable.snapshot`` reports them.

        Quantiles come from one cumulative sum and a bisection each, not a scan per quantile,
        and the buckets are left for :class:`RouteStats` to build if asked: a merged view
        freezes a thousand rows per ``/api/stats``.
        """
        count, offset, counts = self.count, self.offset, self.counts
        bounds = BUCKET_BOUNDS[offset : offset + len(counts)]
        low, high = (self.min, self.max) if count else (0.0, 0.0)
        cumulative = list(accumulate(counts))
        p50, p90, p95, p99 = (
            _cumulative_quantile(cumulative, bounds, count, low, high, q)
            for q in (0.5, 0.9, 0.95, 0.99)
        )
        ttfb_count, ttfb_p50, ttfb_p95, ttfb_p99 = (
            _NO_FIRST_BYTES if self.ttfb is None else self.ttfb.quantiles()
        )
        return _lazy_row(
            {
                "method": self.method,
                "route": self.route,
                "count": count,
                "error_count": self.error_count,
                "total": self.total,
                "min": low,
                "max": high,
                "p50": p50,
                "p90": p90,
                "p95": p95,
                "p99": p99,
                "overflow": self.overflow,
                "ttfb_count": ttfb_count,
                "ttfb_p50": ttfb_p50,
                "ttfb_p95": ttfb_p95,
                "ttfb_p99": ttfb_p99,
                "_run": (offset, counts),
            }
        )


def _lazy_row(fields: dict[str, Any]) -> RouteStats:
    """A :class:`RouteStats` of every field but ``buckets``, which it builds from ``_run`` at
    first use; made without the frozen dataclass's ``__init__`` (19 guarded assignments),
    a third of the time of freezing a row."""
    row: RouteStats = object.__new__(RouteStats)
    row.__dict__.update(fields)
    return row


def bucket_run(row: RouteStats) -> Optional[tuple[int, Sequence[int]]]:  # noqa: UP045
    """``(offset, counts)`` of a row frozen from a sketch (bucket ``offset + i`` of
    ``BUCKET_BOUNDS`` holds ``counts[i]``, zeros included), None for one made otherwise: what
    a serializer writes the histogram from without a tuple per bucket."""
    run: Optional[tuple[int, Sequence[int]]] = row.__dict__.get("_run")  # noqa: UP045
    return run


def _bucket_triples(offset: int, counts: Sequence[int]) -> Iterable[Bucket]:
    """The non-empty buckets of a run as ``(lower_s, upper_s, count)``."""
    end = offset + len(counts)
    return compress(zip(_LOWERS[offset:end], _UPPERS[offset:end], counts), counts)


def _cumulative_quantile(
    cumulative: list[int],
    bounds: tuple[tuple[float, float], ...],
    count: int,
    low: float,
    high: float,
    q: float,
) -> float:
    """:func:`_clamped_quantile` over cumulative counts: the first bucket whose running count
    reaches the nearest rank is the one the linear scan would stop at."""
    index = bisect_left(cumulative, _nearest_rank(q, count))
    if index >= len(cumulative):
        return min(max(0.0, low), high)
    lower, upper = bounds[index]
    return min(max(2.0 * lower * upper / (lower + upper), low), high)


def _merged_group(group: list[RouteSketch]) -> RouteSketch:
    """The sum of one key's sketches (a lone one is kept as it is), column by column: one
    ``zip`` and a C builtin per field, no generator per field."""
    if len(group) == 1:
        return group[0]
    _, _, _, counts, errors, totals, lows, highs, offsets, runs, ttfbs = zip(*group)
    count = sum(counts)
    offset, added = _added_runs(list(zip(offsets, runs)), count)
    first = group[0]
    return RouteSketch(
        first.method,
        first.route,
        first.overflow,
        count,
        sum(errors),
        math.fsum(totals),
        min(lows),
        max(highs),
        offset,
        added,
        None if ttfbs.count(None) == len(ttfbs) else _merged_first_bytes(list(ttfbs)),
    )


def merge_sketches(sketches: Iterable[RouteSketch]) -> list[RouteSketch]:
    """One sketch per key, adding up every process's sketch of it (order of first sight)."""
    groups: dict[tuple[Any, ...], list[RouteSketch]] = {}
    for sketch in sketches:
        key = sketch[:3]  # (method, route, overflow), as .key gives it, sliced in C
        group = groups.get(key)
        if group is None:
            groups[key] = [sketch]
        else:
            group.append(sketch)
    return [_merged_group(group) for group in groups.values()]


def bounded_merge(sketches: Iterable[RouteSketch], max_routes: int) -> list[RouteSketch]:
    """Merged sketches bounded like one table: past ``max_routes`` regular rows (processes may
    each have seen other routes) the lightest fold into the overflow row, so nothing is lost."""
    rows = merge_sketches(sketches)
    regular = sorted((r for r in rows if not r.overflow), key=lambda r: -r.count)
    folded = [r for r in rows if r.overflow] + regular[max_routes:]
    if not folded:
        return regular
    overflow = [row._replace(method=OVERFLOW_METHOD, route=None, overflow=True) for row in folded]
    return regular[:max_routes] + merge_sketches(overflow)


def snapshot_of(
    sketches: Iterable[RouteSketch],
    max_routes: int,
    workers: Optional[int] = None,  # noqa: UP045
) -> StatsSnapshot:
    """A snapshot of several processes' sketches, merged and bounded by :func:`bounded_merge`;
    ``workers`` says how many processes they come from."""
    kept = bounded_merge(sketches, max_routes)
    routes = tuple(sorted((row.freeze() for row in kept), key=_sort_key))
    return StatsSnapshot(routes, max_routes, any(row.overflow for row in kept), workers)


def _first_byte_sketch(
    copied: Optional[tuple[int, float, float, list[int]]],  # noqa: UP045
) -> Optional[FirstByteSketch]:  # noqa: UP045
    """The runs of a row's copied first-byte sketch, from the bucket of its min to its max."""
    if copied is None or not copied[0]:
        return None
    count, low, high, counts = copied
    start, stop = _bucket_index(low), _bucket_index(high) + 1
    return FirstByteSketch(count, low, high, start, counts_array(counts[start:stop]))


class _RouteRow:
    """Mutable accumulator of one row, guarded by its own lock so routes never contend."""

    __slots__ = (
        "method",
        "route",
        "overflow",
        "_lock",
        "count",
        "error_count",
        "total",
        "min",
        "max",
        "counts",
        "first_bytes",
    )

    def __init__(self, method: str, route: str | None, overflow: bool = False) -> None:
        self.method = method
        self.route = route
        self.overflow = overflow
        self._lock = threading.Lock()
        self.count = 0
        self.error_count = 0
        self.total = 0.0
        self.min = _INF
        self.max = -_INF
        self.counts = [0] * BUCKET_COUNT  # fixed length: memory does not grow with records
        self.first_bytes: _FirstBytes | None = None  # only rows that streamed pay for it

    def add(self, seconds: float, error: bool) -> None:
        """Fold one finite, non-negative duration in; the log is taken outside the lock.

        ``acquire``/``try``/``finally`` rather than ``with``: the same, at half the cost on every
        request (``with`` looks up and calls ``__enter__`` and ``__exit__``)."""
        index = _bucket_index(seconds)
        lock = self._lock
        lock.acquire()
        try:
            self.count += 1
            if error:
                self.error_count += 1
            self.total += seconds
            if seconds < self.min:
                self.min = seconds
            if seconds > self.max:
                self.max = seconds
            self.counts[index] += 1
        finally:
            lock.release()

    def add_first_byte(self, seconds: float) -> None:
        """Fold one finite, non-negative time to first byte in."""
        index = _bucket_index(seconds)
        with self._lock:
            if self.first_bytes is None:
                self.first_bytes = _FirstBytes()
            self.first_bytes.add(seconds, index)

    def sketch(self) -> RouteSketch:
        """The raw sketch, copied under the lock, for merging with other processes' rows.

        Its buckets run from the bucket of ``min`` to that of ``max``, which are the first and
        last non-empty ones: found in O(1), without scanning the array.
        """
        with self._lock:
            count, errors, total, low, high = (
                self.count,
                self.error_count,
                self.total,
                self.min,
                self.max,
            )
            if count:
                start, stop = _bucket_index(low), _bucket_index(high) + 1
                counts = counts_array(self.counts[start:stop])
            first_bytes = self.first_bytes.copy() if self.first_bytes is not None else None
        if not count:
            return RouteSketch(self.method, self.route, self.overflow, 0, 0, 0.0, low, high, 0, ())
        return RouteSketch(
            self.method,
            self.route,
            self.overflow,
            count,
            errors,
            total,
            low,
            high,
            start,
            counts,
            _first_byte_sketch(first_bytes),
        )

    def freeze(self) -> RouteStats:
        """Copy under the lock (``sketch``), then derive quantiles outside it: one definition of
        a row's statistics, for this process's view and the merged one alike."""
        return self.sketch().freeze()


def _sort_key(row: RouteStats) -> tuple[float, str, str]:
    """Heaviest routes first; ties broken by name so snapshots are deterministic."""
    return (-row.total, row.method, row.route or "")


class RouteStatsTable:
    """Thread-safe table of per-(method, route) statistics with a cap on distinct rows.

    ``route=None`` means no URL rule matched; such requests share one row per method, so raw
    paths (unbounded, attacker-controlled) never become keys. Once ``max_routes`` rows exist,
    requests for new keys all go to a single overflow row (method ``"*"``, route ``None``).
    """

    def __init__(self, max_routes: int) -> None:
        self._max_routes = max_routes  # validated with the config (ROUTETIMER_MAX_ROUTES)
        self._lock = threading.Lock()  # only for creating rows, reset and snapshot
        self._rows: dict[_Key, _RouteRow] = {}
        self._overflow: _RouteRow | None = None

    @property
    def max_routes(self) -> int:
        """The configured cap on regular (non-overflow) rows."""
        return self._max_routes

    def record(
        self,
        method: str,
        route: str | None,
        duration: float,
        error: bool,
        ttfb: float | None = None,
    ) -> None:
        """Record one request, and its time to first byte if it streamed one. NaN and +/-inf
        are ignored (no usable time); negatives become 0."""
        if not -_INF < duration < _INF:
            return
        if duration < 0.0:
            duration = 0.0
        row = self._rows.get((method, route))  # lock-free: existing rows are never replaced
        if row is None:
            row = self._row_for_new_key(method, route)
        row.add(duration, error)
        if ttfb is not None and -_INF < ttfb < _INF:
            row.add_first_byte(max(ttfb, 0.0))

    def _row_for_new_key(self, method: str, route: str | None) -> _RouteRow:
        """Create the row under the table lock, or hand out the overflow row once full."""
        overflow = self._overflow
        if overflow is not None:  # the table is full: no lock needed for an unknown key
            return overflow
        with self._lock:
            row = self._rows.get((method, route))
            if row is not None:  # another thread created it meanwhile
                return row
            if len(self._rows) < self._max_routes:
                row = self._rows[(method, route)] = _RouteRow(method, route)
                return row
            if self._overflow is None:
                self._overflow = _RouteRow(OVERFLOW_METHOD, None, overflow=True)
            return self._overflow

    def snapshot(self) -> StatsSnapshot:
        """Immutable copy of all rows, heaviest total time first."""
        with self._lock:
            rows = list(self._rows.values())
            overflow = self._overflow
        if overflow is not None:
            rows.append(overflow)
        routes = tuple(sorted((row.freeze() for row in rows), key=_sort_key))
        return StatsSnapshot(
            routes=routes, max_routes=self._max_routes, overflowed=overflow is not None
        )

    def fingerprint(self) -> tuple[int, int]:
        """``(rows, requests)``, read without copying a row: changes with every record (and a
        reset), so a publisher idle since its last write can tell in O(rows) integer adds."""
        with self._lock:
            rows = list(self._rows.values())
            overflow = self._overflow
        if overflow is not None:
            rows.append(overflow)
        return len(rows), sum(row.count for row in rows)

    def sketches(self) -> list[RouteSketch]:
        """Every row's raw sketch (the overflow row last), for publishing to other processes."""
        with self._lock:
            rows = list(self._rows.values())
            overflow = self._overflow
        if overflow is not None:
            rows.append(overflow)
        return [row.sketch() for row in rows]

    def reset(self) -> None:
        """Drop every row (which also frees the cap). Records racing with a reset may be lost."""
        with self._lock:
            self._rows = {}
            self._overflow = None

    def __len__(self) -> int:
        """Number of rows currently kept, including the overflow row if there is one."""
        return len(self._rows) + (self._overflow is not None)
