"""Route sketches as file data: how a worker publishes its table to ``ROUTETIMER_MULTIPROC_DIR``.

Every worker's file is read by every other worker, so the encoding is made for reading. A
1000-route table holds ~100,000 bucket counts; parsed as JSON numbers, one Python object each,
they cost more than everything else in a merged read. Here they are one array of little-endian
unsigned integers of ``width`` bytes (1, 2, 4 or 8: the fewest that hold the largest count),
base64 in the JSON and decoded by a few C calls, and each row is a short list saying what its
runs of that array hold::

    {"width": 2, "counts": "<base64>",
     "rows": [[method, route, overflow, count, errors, total, min, max, offset, length, ttfb]]}

``ttfb`` is null or ``[count, min, max, offset, length]``; an empty row has null min and max.
The runs lie in the array in row order (a row's durations, then its times to first byte) and
fill it exactly. Decoding validates all of it, since anyone who can write the directory can
put anything there, with O(1) Python per row: the per-bucket checks (non-negative by the
unsigned type, each run adding up to its count) run in C.
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .stats import BUCKET_COUNT, FirstByteSketch, RouteSketch, counts_array

__all__ = ["MAX_COUNT", "decode", "encode"]

#: No row of a file may count more requests: 2**53 is where JSON numbers stop being exact in
#: JavaScript, ~285 years at a million requests a second.
MAX_COUNT = 2**53
ROW_FIELDS = 11
TTFB_FIELDS = 5
WIDTHS = (1, 2, 4, 8)  # bytes per count in a file
_INF = math.inf
_BIG_ENDIAN = sys.byteorder == "big"


# --- Encoding ---------------------------------------------------------------------------------


def encode(sketches: Iterable[RouteSketch]) -> dict[str, Any]:
    """JSON-ready ``{"width", "counts", "rows"}`` of the sketches, in order."""
    runs = counts_array(())
    rows: list[list[Any]] = []
    for sketch in sketches:
        rows.append(_row(sketch))
        runs.extend(sketch.counts)
        if sketch.ttfb is not None:
            runs.extend(sketch.ttfb.counts)
    largest = max(runs, default=0)
    width = next(w for w in WIDTHS if largest < 1 << (8 * w))
    if _BIG_ENDIAN:
        runs.byteswap()
    packed = _resized(runs.tobytes(), 8, width)
    return {"width": width, "counts": base64.b64encode(packed).decode("ascii"), "rows": rows}


def _resized(raw: bytes, width: int, new: int) -> bytes:
    """Little-endian unsigned integers of ``width`` bytes as ones of ``new`` bytes (each value
    fits): byte ``i`` of every integer moved at once by a slice copy in C, high bytes zero."""
    if width == new:
        return raw
    out = bytearray(len(raw) // width * new)
    for index in range(min(width, new)):
        out[index::new] = raw[index::width]
    return bytes(out)


def _row(sketch: RouteSketch) -> list[Any]:
    empty = sketch.count == 0
    ttfb = sketch.ttfb
    return [
        sketch.method,
        sketch.route,
        sketch.overflow,
        sketch.count,
        sketch.error_count,
        float(sketch.total),  # floats, whatever was recorded: the reader takes nothing else
        None if empty else float(sketch.min),  # no infinities in strict JSON
        None if empty else float(sketch.max),
        sketch.offset,
        len(sketch.counts),
        None if ttfb is None else _ttfb_row(ttfb),
    ]


def _ttfb_row(ttfb: FirstByteSketch) -> list[Any]:
    return [ttfb.count, float(ttfb.min), float(ttfb.max), ttfb.offset, len(ttfb.counts)]


# --- Decoding ---------------------------------------------------------------------------------


def decode(data: Mapping[str, Any]) -> tuple[RouteSketch, ...]:
    """The sketches of :func:`encode`'s form; ValueError for anything that is not exactly it,
    so a corrupt or forged file never yields a row with impossible figures."""
    counts = _counts(data.get("width"), data.get("counts"))
    rows = data.get("rows")
    if type(rows) is not list:
        raise ValueError("rows must be a list")
    sketches = []
    position = 0
    for row in rows:
        sketch, position = _sketch(row, counts, position)
        sketches.append(sketch)
    if position != len(counts):
        raise ValueError("the bucket counts do not match the rows")
    return tuple(sketches)


def _counts(width: object, text: object) -> Sequence[int]:
    """The decoded array of bucket counts."""
    if type(width) is not int or width not in WIDTHS or type(text) is not str:
        raise ValueError(f"width must be one of {WIDTHS} and counts a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("counts is not base64") from None
    if len(raw) % width:
        raise ValueError("counts is not a whole number of integers")
    values = array("Q")
    values.frombytes(_resized(raw, width, 8))
    if _BIG_ENDIAN:
        values.byteswap()
    return values


def _sketch(row: object, counts: Sequence[int], position: int) -> tuple[RouteSketch, int]:
    if type(row) is not list or len(row) != ROW_FIELDS:
        raise ValueError(f"a route row must be a list of {ROW_FIELDS} fields")
    method, route, overflow, count, errors, total, low, high, offset, length, ttfb = row
    if type(method) is not str or not (route is None or type(route) is str):
        raise ValueError("a route row needs a string method and a string or null route")
    run, end = _run(counts, position, count, offset, length)
    if type(overflow) is not bool or type(errors) is not int or not 0 <= errors <= count:
        raise ValueError("a route row needs an overflow flag and 0 <= errors <= count")
    if count == 0:
        if ttfb is not None:
            raise ValueError("an empty route row has no time to first byte")
        return RouteSketch(method, route, overflow, 0, 0, 0.0, _INF, -_INF, 0, ()), end
    if not (type(total) is float and 0.0 <= total < _INF and _ordered(low, high)):
        raise ValueError("a route row's total, min and max must be finite seconds, min <= max")
    first_bytes = None
    if ttfb is not None:
        first_bytes, end = _first_bytes(ttfb, counts, end)
    sketch = RouteSketch(
        method, route, overflow, count, errors, total, low, high, offset, run, first_bytes
    )
    return sketch, end


def _first_bytes(ttfb: object, counts: Sequence[int], position: int) -> tuple[FirstByteSketch, int]:
    if type(ttfb) is not list or len(ttfb) != TTFB_FIELDS:
        raise ValueError(f"a time-to-first-byte entry must be null or a list of {TTFB_FIELDS}")
    count, low, high, offset, length = ttfb
    run, end = _run(counts, position, count, offset, length)
    if count == 0 or not _ordered(low, high):
        raise ValueError("a time-to-first-byte entry needs a count > 0, min <= max seconds")
    return FirstByteSketch(count, low, high, offset, run), end


def _run(
    counts: Sequence[int], position: int, count: object, offset: object, length: object
) -> tuple[Sequence[int], int]:
    """The run of ``length`` counts at ``position``: within the shared bucket layout, within
    the array, adding up to ``count``; and the position after it."""
    if not (type(count) is type(offset) is type(length) is int and 0 <= count <= MAX_COUNT):
        raise ValueError(f"counts must be integers within [0, {MAX_COUNT}]")
    end = position + length
    if not (0 <= offset and 0 <= length <= BUCKET_COUNT - offset and end <= len(counts)):
        raise ValueError("a run of buckets must lie within the shared layout and the counts")
    run = counts[position:end]
    if sum(run) != count:
        raise ValueError("bucket counts must add up to their row's count")
    return run, end


def _ordered(low: object, high: object) -> bool:
    """Whether ``low`` and ``high`` are finite, non-negative seconds with ``low <= high``
    (floats only, as :func:`encode` writes them; NaN fails every comparison)."""
    return type(low) is type(high) is float and 0.0 <= low <= high < _INF
