"""Route sketches as file data: how a worker publishes its table to ``ROUTETIMER_MULTIPROC_DIR``.

Every worker's file is read by every other worker, so the encoding is made for reading, by
column (:class:`~flask_routetimer.sketchtable.SketchTable`): the route keys are two JSON lists,
every other field an array of little-endian numbers, base64 in the JSON, decoded and checked by a
few C calls per column, not by Python per row::

    {"methods": [...], "routes": [...], "overflow": [row index, ...],
     "ints": [width, "<base64>"],    # counts, errors, offsets, lengths: a column of n each
     "floats": "<base64>",           # totals, min, max: doubles, a column of n each
     "ttfb_ints": [width, "<base64>"],   # rows that streamed, counts, offsets, lengths: m each
     "ttfb_floats": "<base64>",      # min, max of their times to first byte: m each
     "counts": [width, "<base64>"]}  # every row's bucket run in row order, then the ttfb runs

An integer array's ``width`` (1, 2, 4 or 8 bytes) is the fewest that hold its largest value. An
empty row has count, errors and run length 0, total 0, min +inf and max -inf. Decoding validates
all of it, since anyone who can write the directory can put anything there.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, compress, repeat
from math import isfinite
from operator import add, le, lt, not_
from typing import Any

from .sketchtable import EMPTY, Runs, SketchTable, table_of
from .stats import BUCKET_COUNT, RouteSketch, counts_array

__all__ = ["MAX_COUNT", "decode", "encode"]

#: No row of a file may count more requests: 2**53 is where JSON numbers stop being exact in
#: JavaScript, ~285 years at a million requests a second.
MAX_COUNT = 2**53
WIDTHS = (1, 2, 4, 8)  # bytes per integer in a file
_INF = float("inf")
_BIG_ENDIAN = sys.byteorder == "big"


# --- Encoding ---------------------------------------------------------------------------------


def encode(sketches: Iterable[RouteSketch]) -> dict[str, Any]:
    """The JSON-ready columns of the sketches (of unique keys), in order."""
    table = table_of(sketches)
    runs, ttfb = table.durations, table.ttfb
    return {
        "methods": [key[0] for key in table.keys],
        "routes": [key[1] for key in table.keys],
        "overflow": [row for row, key in enumerate(table.keys) if key[2]],
        "ints": _packed([*runs.count, *table.errors, *runs.offset, *runs.length]),
        "floats": _doubles([*table.total, *runs.low, *runs.high]),
        "ttfb_ints": _packed([*ttfb.rows, *ttfb.count, *ttfb.offset, *ttfb.length]),
        "ttfb_floats": _doubles([*ttfb.low, *ttfb.high]),
        "counts": _packed(_concatenated(runs.counts, ttfb.counts)),
    }


def _packed(values: Sequence[int]) -> list[Any]:
    """``[width, base64]`` of unsigned integers in the fewest bytes that hold the largest."""
    packed = values if type(values) is array else counts_array(values)
    largest = max(packed, default=0)
    width = next(w for w in WIDTHS if largest < 1 << (8 * w))
    if _BIG_ENDIAN:
        packed.byteswap()
    return [width, base64.b64encode(_resized(packed.tobytes(), 8, width)).decode("ascii")]


def _concatenated(first: Sequence[int], second: Sequence[int]) -> Sequence[int]:
    if type(first) is array and type(second) is array:
        return first + second  # in C, not a Python integer per bucket
    return [*first, *second]


def _doubles(values: Sequence[float]) -> str:
    """Base64 of little-endian doubles; an empty row's min and max are written +inf and -inf
    (binary, so no infinity ever reaches the JSON)."""
    packed = array("d", values)
    if _BIG_ENDIAN:
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _resized(raw: bytes, width: int, new: int) -> bytes:
    """Little-endian unsigned integers of ``width`` bytes as ones of ``new`` bytes (each value
    fits): byte ``i`` of every integer moved at once by a slice copy in C, high bytes zero."""
    if width == new:
        return raw
    out = bytearray(len(raw) // width * new)
    for index in range(min(width, new)):
        out[index::new] = raw[index::width]
    return bytes(out)


# --- Decoding ---------------------------------------------------------------------------------


def decode(data: Mapping[str, Any]) -> SketchTable:
    """The table of :func:`encode`'s form; ValueError for anything that is not exactly it, so a
    corrupt or forged file never yields a row with impossible figures."""
    if not isinstance(data, Mapping):
        raise ValueError("a statistics file must be a JSON object")
    keys = _keys(data.get("methods"), data.get("routes"), data.get("overflow"))
    n = len(keys)
    count, errors, offset, length = _columns(_unpacked(data.get("ints")), 4, n)
    total, low, high = _columns(_unpacked_doubles(data.get("floats")), 3, n)
    ttfb_ints = _unpacked(data.get("ttfb_ints"))
    m = len(ttfb_ints) // 4
    rows, tcount, toffset, tlength = _columns(ttfb_ints, 4, m)
    tlow, thigh = _columns(_unpacked_doubles(data.get("ttfb_floats")), 2, m)
    counts = _unpacked(data.get("counts"))
    durations = _runs(range(n), count, low, high, offset, length, counts)
    ttfb = _runs(rows, tcount, tlow, thigh, toffset, tlength, counts[sum(length) :])
    if sum(length) + sum(tlength) != len(counts):
        raise ValueError("the bucket counts do not match the rows")
    _check_rows(durations, errors, total, ttfb, n)
    if not n:
        return EMPTY
    if 0 in count:  # empty rows: canonical figures, whatever the file said
        total = [t if c else 0.0 for t, c in zip(total, count)]
        durations = durations._replace(
            low=[x if c else _INF for x, c in zip(low, count)],
            high=[x if c else -_INF for x, c in zip(high, count)],
        )
    return SketchTable(keys, errors, total, durations, ttfb)


def _keys(methods: object, routes: object, overflow: object) -> list[Any]:
    """``(method, route, overflow)`` of every row: strings, routes or null, unique."""
    if type(methods) is not list or type(routes) is not list or len(methods) != len(routes):
        raise ValueError("methods and routes must be lists of one length")
    if not set(map(type, methods)) <= {str} or not set(map(type, routes)) <= {str, type(None)}:
        raise ValueError("methods must be strings and routes strings or null")
    if type(overflow) is not list or not set(map(type, overflow)) <= {int}:
        raise ValueError("overflow must be a list of row indices")
    flags = [False] * len(methods)
    for row in overflow:
        if not 0 <= row < len(flags) or flags[row]:
            raise ValueError("overflow must name distinct rows")
        flags[row] = True
    keys = list(zip(methods, routes, flags))
    if len(set(keys)) != len(keys):
        raise ValueError("a route appears twice")
    return keys


def _unpacked(field: object) -> array[int]:
    """The array of ``[width, base64]``."""
    if type(field) is not list or len(field) != 2:
        raise ValueError("an integer column must be [width, base64]")
    width, text = field
    if type(width) is not int or width not in WIDTHS:
        raise ValueError(f"an integer width must be one of {WIDTHS}")
    raw = _raw(text)
    if len(raw) % width:
        raise ValueError("an integer column is not a whole number of integers")
    values = array("Q")
    values.frombytes(_resized(raw, width, 8))
    if _BIG_ENDIAN:
        values.byteswap()
    return values


def _unpacked_doubles(text: object) -> array[float]:
    raw = _raw(text)
    if len(raw) % 8:
        raise ValueError("a float column is not a whole number of doubles")
    values = array("d")
    values.frombytes(raw)
    if _BIG_ENDIAN:
        values.byteswap()
    return values


def _raw(text: object) -> bytes:
    if type(text) is not str:
        raise ValueError("a column must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("a column is not base64") from None


def _columns(values: Sequence[Any], columns: int, rows: int) -> list[list[Any]]:
    """``values`` as ``columns`` lists of ``rows`` each; ValueError if it holds another number."""
    if len(values) != columns * rows:
        raise ValueError(f"a column array must hold {columns} x {rows} values")
    return [list(values[i * rows : (i + 1) * rows]) for i in range(columns)]


def _runs(
    rows: Sequence[int],
    count: list[int],
    low: list[float],
    high: list[float],
    offset: list[int],
    length: list[int],
    counts: Sequence[int],
) -> Runs:
    """Runs checked column by column: counts within [0, MAX_COUNT], each run inside the shared
    layout and the array, adding up to its count."""
    if count and max(count) > MAX_COUNT:
        raise ValueError(f"counts must be within [0, {MAX_COUNT}]")
    if not all(map(le, map(add, offset, length), repeat(BUCKET_COUNT))):
        raise ValueError("a run of buckets must lie within the shared layout")
    ends = list(accumulate(length))
    if ends and ends[-1] > len(counts):
        raise ValueError("a run of buckets must lie within the counts")
    sums = map(sum, map(counts.__getitem__, map(slice, [0, *ends], ends)))
    if list(sums) != count:
        raise ValueError("bucket counts must add up to their row's count")
    offset = [o if n else 0 for o, n in zip(offset, length)] if 0 in length else offset
    return Runs(rows, count, low, high, offset, length, counts[: ends[-1] if ends else 0])


def _check_rows(durations: Runs, errors: list[int], total: list[float], ttfb: Runs, n: int) -> None:
    """Errors within counts, times finite seconds with min <= max; first bytes only for rows
    that have requests, each row at most once."""
    count = durations.count
    if not all(map(le, errors, count)):
        raise ValueError("a row needs 0 <= errors <= count")
    if any(compress(durations.length, map(not_, count))):
        raise ValueError("an empty row has no buckets")
    busy = list(compress(range(n), count))
    _check_times(
        [total[row] for row in busy],
        [durations.low[row] for row in busy],
        [durations.high[row] for row in busy],
    )
    rows = ttfb.rows
    if not all(map(lt, rows, rows[1:])) or (rows and not 0 <= rows[0] <= rows[-1] < n):
        raise ValueError("first-byte rows must be distinct rows of the table, in order")
    if 0 in ttfb.count or not all(map(le, ttfb.count, map(count.__getitem__, rows))):
        raise ValueError("a first-byte entry needs 0 < count <= its row's count")
    _check_times(ttfb.low, ttfb.low, ttfb.high)


def _check_times(total: Sequence[float], low: Sequence[float], high: Sequence[float]) -> None:
    """Finite, non-negative seconds, ``low <= high`` (NaN fails every comparison)."""
    if not (
        all(map(le, repeat(0.0), total))
        and all(map(isfinite, total))
        and all(map(le, repeat(0.0), low))
        and all(map(le, low, high))
        and all(map(isfinite, high))
    ):
        raise ValueError("times must be finite seconds, min <= max")
