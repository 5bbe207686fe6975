"""Route sketches by column, so that many processes' tables add up without Python per row.

A merged read adds 8 workers' tables of 1000 routes each. Held as 8,000 :class:`RouteSketch`
tuples, each grouped, validated and added on its own, that cost ~4 µs a row twice over. Here a
table is a few columns (counts, errors, totals, min, max, where each row's bucket run lies) and
one array of all its bucket counts; tables merge by giving every key an index, scattering each
column to it and reducing with a C builtin (``sum``, ``fsum``, ``min``, ``max``), and the buckets
of all rows add at once: each table's runs are placed into one zeroed array, windowed per key,
read as one integer with a 64-bit field per bucket, and the integers added.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import accumulate, compress, repeat
from math import fsum
from operator import add, sub
from typing import Any, Callable, NamedTuple, Optional

from .stats import BUCKET_COUNT, FirstByteSketch, RouteSketch, counts_array, merge_sketches

__all__ = ["Runs", "SketchTable", "merge_tables", "table_of"]

_INF = float("inf")
_LITTLE_ENDIAN = sys.byteorder == "little"
_Key = tuple[str, Optional[str], bool]  # (method, route, overflow)


class Runs(NamedTuple):
    """Counts, min/max and bucket runs of some rows of a table: the durations (every row) or
    the times to first byte (rows that streamed one). ``counts`` holds the runs one after
    another; run ``i`` is ``length[i]`` buckets from bucket ``offset[i]`` on."""

    rows: Sequence[int]  # the table rows these belong to, ascending
    count: Sequence[int]  # type: ignore[assignment]  # the field hides tuple.count, on purpose
    low: Sequence[float]  # +inf for an empty row
    high: Sequence[float]  # -inf for an empty row
    offset: Sequence[int]  # 0 for an empty run
    length: Sequence[int]
    counts: Sequence[int]  # an array("Q"), or a list after a merge past 2**64


class SketchTable(NamedTuple):
    """One process's (or several processes' merged) sketches, by column; keys are unique."""

    keys: Sequence[_Key]
    errors: Sequence[int]
    total: Sequence[float]
    durations: Runs
    ttfb: Runs

    def sketches(self) -> list[RouteSketch]:
        """The rows as :class:`RouteSketch` tuples, in table order."""
        runs = self.durations
        first_bytes: list[Optional[FirstByteSketch]] = [None] * len(self.keys)
        ttfb = self.ttfb
        for row, count, low, high, offset, counts in zip(
            ttfb.rows, ttfb.count, ttfb.low, ttfb.high, ttfb.offset, _split(ttfb)
        ):
            first_bytes[row] = FirstByteSketch(count, low, high, offset, counts)
        return [
            RouteSketch(
                method, route, overflow, count, errors, total, low, high, offset, counts, first
            )
            for (
                method,
                route,
                overflow,
            ), count, errors, total, low, high, offset, counts, first in zip(
                self.keys,
                runs.count,
                self.errors,
                self.total,
                runs.low,
                runs.high,
                runs.offset,
                _split(runs),
                first_bytes,
            )
        ]


def _split(runs: Runs) -> list[Sequence[int]]:
    """Each row's run as its own slice of ``counts`` (an empty tuple for an empty run)."""
    ends = list(accumulate(runs.length))
    slices = map(slice, [0, *ends], ends)
    return [part if part else () for part in map(runs.counts.__getitem__, slices)]


_NO_RUNS = Runs((), (), (), (), (), (), counts_array(()))
EMPTY = SketchTable((), (), (), _NO_RUNS, _NO_RUNS)


def table_of(sketches: Iterable[RouteSketch]) -> SketchTable:
    """The sketches (of unique keys) as one table, column by column."""
    rows = list(sketches)
    if not rows:
        return EMPTY
    methods, routes, overflows, count, errors, total, low, high, offset, runs, ttfbs = zip(*rows)
    durations = Runs(range(len(rows)), count, low, high, offset, list(map(len, runs)), ())
    durations = durations._replace(counts=_joined(runs, sum(durations.length)))
    present = [row for row, ttfb in enumerate(ttfbs) if ttfb is not None]
    ttfb = _NO_RUNS
    if present:
        tcount, tlow, thigh, toffset, truns = zip(*(ttfbs[row] for row in present))
        lengths = list(map(len, truns))
        joined = _joined(truns, sum(lengths))
        ttfb = Runs(present, tcount, tlow, thigh, toffset, lengths, joined)
    return SketchTable(list(zip(methods, routes, overflows)), errors, total, durations, ttfb)


def _joined(runs: Sequence[Sequence[int]], length: int) -> Sequence[int]:
    """The runs one after another: their bytes joined in C when they are arrays of 64-bit
    counts (as every table's are), else an exact list of Python integers."""
    kept = [run for run in runs if run]
    try:
        joined = counts_array(())
        joined.frombytes(b"".join(kept))  # type: ignore[arg-type]  # arrays are bytes-like
        if len(joined) == length and all(type(run) is array for run in kept):
            return joined
    except (TypeError, ValueError):
        pass
    return [count for run in kept for count in run]


# --- Merging ----------------------------------------------------------------------------------


def merge_tables(tables: Iterable[SketchTable]) -> SketchTable:
    """One table of every key of the tables, each row the sum of that key's rows: the same
    figures as :func:`~flask_routetimer.stats.merge_sketches` of their sketches."""
    kept = [table for table in tables if table.keys]
    if len(kept) <= 1:
        return kept[0] if kept else EMPTY
    index: dict[_Key, int] = {}
    ids = [[index.setdefault(key, len(index)) for key in table.keys] for table in kept]
    if not _fast(kept):  # counts past 2**64 or a big-endian machine: exact, row by row
        return table_of(merge_sketches(s for table in kept for s in table.sketches()))
    size = len(index)
    errors = _reduced(size, sum, 0, zip(ids, (table.errors for table in kept)))
    total = _reduced(size, fsum, 0.0, zip(ids, (table.total for table in kept)))
    durations = _merged_runs(size, [(i, table.durations) for i, table in zip(ids, kept)])
    ttfb_parts = [
        (list(map(i.__getitem__, table.ttfb.rows)), table.ttfb) for i, table in zip(ids, kept)
    ]
    ttfb = _merged_runs(size, ttfb_parts, every_row=False)
    return SketchTable(list(index), errors, total, durations, ttfb)


def _fast(tables: list[SketchTable]) -> bool:
    """Whether the buckets can add as 64-bit fields: arrays of them, on a little-endian
    machine, and no bucket's sum can reach 2**64 (no sum of counts does)."""
    runs = [table.durations for table in tables] + [table.ttfb for table in tables]
    return (
        _LITTLE_ENDIAN
        and all(type(r.counts) is array and r.counts.typecode == "Q" for r in runs)
        and sum(sum(r.count) for r in runs) < 2**64
    )


def _reduced(
    size: int, reduce: Callable[[Any], Any], fill: Any, parts: Iterable[tuple[Iterable[int], Any]]
) -> list[Any]:
    """Per key, ``reduce`` of the values every part has for it (``fill`` where it has none):
    each part's column scattered to key order in C, then one ``reduce`` per key."""
    columns = []
    for ids, values in parts:
        column = [fill] * size
        deque(map(column.__setitem__, ids, values), maxlen=0)
        columns.append(column)
    return list(map(reduce, zip(*columns)))


def _merged_runs(size: int, parts: list[tuple[list[int], Runs]], every_row: bool = True) -> Runs:
    """The runs of every key added; ``every_row``: one per key, else only keys with a run."""
    count = _reduced(size, sum, 0, ((ids, runs.count) for ids, runs in parts))
    low = _reduced(size, min, _INF, ((ids, runs.low) for ids, runs in parts))
    high = _reduced(size, max, -_INF, ((ids, runs.high) for ids, runs in parts))
    present = [(list(compress(ids, runs.length)), runs) for ids, runs in parts]
    first = _reduced(
        size, min, BUCKET_COUNT, ((i, compress(r.offset, r.length)) for i, r in present)
    )
    ends = (map(add, compress(r.offset, r.length), filter(None, r.length)) for _, r in present)
    last = _reduced(size, max, 0, zip((i for i, _ in present), ends))
    length = list(map(max, map(sub, last, first), repeat(0)))
    offset = [start if width else 0 for start, width in zip(first, length)]
    counts = _added_buckets(present, first, length)
    if every_row:
        return Runs(range(size), count, low, high, offset, length, counts)
    rows = list(compress(range(size), count))
    kept = [list(compress(column, count)) for column in (count, low, high, offset, length)]
    return Runs(rows, kept[0], kept[1], kept[2], kept[3], kept[4], counts)


def _added_buckets(
    parts: list[tuple[list[int], Runs]], first: list[int], length: list[int]
) -> Sequence[int]:
    """Every key's buckets from ``first`` on, ``length`` of them, added over all parts.

    Each part's runs go into one zeroed array at their key's window (a slice copy per run), the
    array is read as one integer, and the integers add: every bucket of every key at once.
    """
    starts = [0, *accumulate(length)]
    size = 8 * starts[-1]
    added = 0
    for ids, runs in parts:
        window = bytearray(size)
        raw = memoryview(runs.counts).cast("B")  # type: ignore[arg-type]  # an array("Q")
        at = 0
        runs_of = zip(ids, compress(runs.offset, runs.length), filter(None, runs.length))
        for key, offset, run in runs_of:
            start = 8 * (starts[key] + offset - first[key])
            window[start : start + 8 * run] = raw[at : at + 8 * run]
            at += 8 * run
        added += int.from_bytes(window, "little")
    merged = counts_array(())
    merged.frombytes(added.to_bytes(size, "little"))
    return merged
