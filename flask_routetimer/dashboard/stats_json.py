"""``/api/stats`` as JSON text, written straight from the rows' bucket runs.

The JSON is what ``jsonify(snapshot.to_dict())`` would give (same keys and values), but a
1000-route view has ~120,000 buckets, each a ``[lower, upper, count]`` list with two floats:
building those lists and printing their floats cost more than reading and merging every
worker's files. Here each bucket's ``[lower,upper,`` text is made once per process, and a
row's histogram is joined from it and its counts in C, with no list or float per bucket.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import compress
from operator import add
from typing import Any

from ..stats import BUCKET_BOUNDS, RouteStats, StatsSnapshot, bucket_run

__all__ = ["stats_json"]

# Flask's default provider sorts keys; so does this, so both forms of a row read alike.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
# "[lower,upper," of every bucket, as json.dumps prints the floats.
_OPENINGS = tuple(
    f"[{_ENCODER.encode(lower)},{_ENCODER.encode(upper)}," for lower, upper in BUCKET_BOUNDS
)


def stats_json(
    snapshot: StatsSnapshot, buckets: bool = True, extra: Mapping[str, Any] | None = None
) -> str:
    """``snapshot.to_dict(buckets)``, updated with ``extra``, as compact JSON text."""
    data = snapshot.to_dict(buckets=False)
    data.update(extra or {})
    plain_rows: list[dict[str, object]] = data.pop("routes")  # type: ignore[assignment]
    encode = _ENCODER.encode
    if buckets:
        rows = map(_row_json, snapshot.routes, map(encode, plain_rows))
    else:
        rows = map(encode, plain_rows)
    return f'{encode(data)[:-1]},"routes":[{",".join(rows)}]}}'


def _row_json(row: RouteStats, plain: str) -> str:
    """A row's JSON with its ``"buckets"`` (first, as sorted keys put it)."""
    return f'{{"buckets":{_buckets_json(row)},{plain[1:]}'


def _buckets_json(row: RouteStats) -> str:
    run = bucket_run(row)
    if run is None:  # a row not frozen from a sketch
        return _ENCODER.encode(list(map(list, row.buckets)))
    offset, counts = run
    return _run_json(offset, counts)


def _run_json(offset: int, counts: Sequence[int]) -> str:
    """``[[lower,upper,count],...]`` of a run's non-empty buckets."""
    openings = compress(_OPENINGS[offset : offset + len(counts)], counts)
    texts = map(add, openings, map(str, compress(counts, counts)))
    return f"[{'],'.join(texts)}]]" if any(counts) else "[]"
