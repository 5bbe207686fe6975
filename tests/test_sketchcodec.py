"""Route sketches round-trip through the multiprocess file encoding, and nothing else gets in."""

from __future__ import annotations

import base64
import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_routetimer.sketchcodec import MAX_COUNT, decode, encode
from flask_routetimer.stats import BUCKET_COUNT, RouteSketch, RouteStatsTable, counts_array

durations = st.floats(min_value=0.0, max_value=7200.0, allow_nan=False, allow_infinity=False)
records = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["/a", "/b/<int:n>", None]),
        durations,
        st.booleans(),
        st.none() | durations,
    ),
    max_size=80,
)


def table_of(recorded: list[tuple[Any, ...]], max_routes: int = 4) -> RouteStatsTable:
    table = RouteStatsTable(max_routes)
    for method, route, seconds, error, ttfb in recorded:
        table.record(method, route, seconds, error, ttfb)
    return table


def through_json(sketches: list[RouteSketch]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(encode(sketches), allow_nan=False))
    return data


def a_file() -> dict[str, Any]:
    table = table_of([("GET", "/a", 0.01 * n, n % 3 == 0, 0.001 * n or None) for n in range(20)])
    table.record("GET", "/b/<int:n>", 2.5, False)
    return through_json(table.sketches())


@settings(max_examples=150, deadline=None)
@given(records, st.sampled_from([1, 300, 70_000, 2**33]))
def test_sketches_round_trip_exactly(recorded: list[tuple[Any, ...]], scale: int) -> None:
    """Every field of every row, overflow row and times to first byte included, comes back
    equal, whatever width the largest count needs."""
    table = table_of(recorded)
    sketches = [
        s._replace(count=s.count * scale, counts=counts_array(n * scale for n in s.counts))
        for s in table.sketches()
    ]
    assert decode(through_json(sketches)) == tuple(sketches)


def test_the_width_is_the_fewest_bytes_that_hold_the_largest_count() -> None:
    """Counts of a small worker take a byte each; the base64 array is all the counts there are."""
    data = a_file()
    assert data["width"] == 1
    assert len(base64.b64decode(data["counts"])) == sum(row[9] for row in data["rows"]) + sum(
        row[10][4] for row in data["rows"] if row[10] is not None
    )


def test_an_empty_row_has_no_infinities() -> None:
    """A row without requests is strict JSON (null min and max) and reads back empty."""
    empty = RouteSketch("GET", "/e", False, 0, 0, 0.0, math.inf, -math.inf, 0, ())
    data = through_json([empty])
    assert data["rows"][0][6:8] == [None, None]
    assert decode(data) == (empty,)


ROW_TAMPERING = [
    (0, 3),  # method
    (1, ["/r"]),  # route
    (2, 1),  # overflow must be a bool
    (3, -1),
    (3, True),
    (3, 19),  # the buckets no longer add up
    (3, MAX_COUNT + 1),
    (4, 21),  # more errors than requests
    (5, "1.0"),
    (5, 1),  # an int where encode writes a float
    (6, -0.5),
    (6, 99.0),  # min above max
    (7, 1e400),  # inf after parsing
    (8, BUCKET_COUNT),  # outside the shared layout
    (8, -1),
    (9, 10**6),  # past the end of the counts
    (9, -1),
    (10, {"count": 1}),
    (10, [1, 0.1, 0.2, 0]),
    (10, [0, 0.1, 0.2, 0, 0]),  # a first-byte entry without requests
]


@pytest.mark.parametrize(("field", "value"), ROW_TAMPERING)
def test_a_tampered_row_is_refused(field: int, value: object) -> None:
    """A changed field is a ValueError, never a row with impossible figures."""
    data = a_file()
    data["rows"][0][field] = value
    with pytest.raises(ValueError):
        decode(data)


@pytest.mark.parametrize(
    "change",
    [
        {"width": 3},
        {"width": True},
        {"counts": "not base64!"},
        {"counts": base64.b64encode(b"\x01\x02").decode()},  # a count short
        {"rows": {}},
        {"rows": [[1, 2]]},
        {"rows": []},  # counts left over
    ],
)
def test_a_tampered_file_is_refused(change: dict[str, object]) -> None:
    """Width, counts and rows must agree with each other exactly."""
    data = a_file()
    data.update(change)
    with pytest.raises(ValueError):
        decode(data)


def test_counts_that_do_not_add_up_are_refused() -> None:
    """Moving one request from a row's bucket to the next row's keeps the file's total but not
    the rows': refused."""
    data = a_file()
    raw = bytearray(base64.b64decode(data["counts"]))
    first = data["rows"][0][9]
    raw[0], raw[first] = raw[0] - 1 if raw[0] else 1, raw[first] + 1
    data["counts"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(ValueError):
        decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_whatever_a_file_holds_decoding_gives_valid_rows_or_a_value_error(data: Any) -> None:
    """Fuzzed rows, fields and count bytes: every row decoded lies in the shared layout and its
    buckets add up to its count; anything else is a ValueError, never another exception."""
    tampered = copy.deepcopy(a_file())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.sampled_from(["row", "field", "bytes"]))
        if where == "row":
            index = data.draw(st.integers(0, len(tampered["rows"]) - 1))
            tampered["rows"][index] = data.draw(json_values)
        elif where == "field":
            row = tampered["rows"][data.draw(st.integers(0, len(tampered["rows"]) - 1))]
            if isinstance(row, list) and row:
                row[data.draw(st.integers(0, len(row) - 1))] = data.draw(json_values)
        else:
            raw = bytearray(base64.b64decode(tampered["counts"]))
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
            tampered["counts"] = base64.b64encode(bytes(raw)).decode()
    try:
        sketches = decode(tampered)
    except ValueError:
        return
    for sketch in sketches:
        assert 0 <= sketch.offset and sketch.offset + len(sketch.counts) <= BUCKET_COUNT
        assert sum(sketch.counts) == sketch.count and 0 <= sketch.error_count <= sketch.count
        assert sketch.count == 0 or 0.0 <= sketch.min <= sketch.max < math.inf


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_value_is_a_value_error(value: Any) -> None:
    """Not even the top-level shape is trusted."""
    with pytest.raises(ValueError):
        decode(value if isinstance(value, dict) else {"rows": value})
