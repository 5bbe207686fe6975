"""Route sketches round-trip through the multiprocess file encoding, and nothing else gets in."""

from __future__ import annotations

import base64
import copy
import json
import math
import struct
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
    assert decode(through_json(sketches)).sketches() == sketches


def test_the_width_is_the_fewest_bytes_that_hold_the_largest_count() -> None:
    """Counts of a small worker take a byte each; the base64 array is all the counts there are."""
    data = a_file()
    width, text = data["counts"]
    ints = column(data, "ints", 4)
    ttfb = column(data, "ttfb_ints", 4)
    assert width == 1
    assert len(base64.b64decode(text)) == sum(ints[3]) + sum(ttfb[3])


def test_an_empty_row_has_no_infinities() -> None:
    """A row without requests is strict JSON and reads back empty."""
    empty = RouteSketch("GET", "/e", False, 0, 0, 0.0, math.inf, -math.inf, 0, ())
    data = through_json([empty])
    assert decode(data).sketches() == [empty]


def column(data: dict[str, Any], name: str, columns: int) -> list[list[Any]]:
    """A file's integer (``[width, base64]``) or float array as its columns."""
    field = data[name]
    if isinstance(field, list):
        width, text = field
        raw = base64.b64decode(text)
        values: list[Any] = [
            int.from_bytes(raw[i : i + width], "little") for i in range(0, len(raw), width)
        ]
    else:
        values = list(
            struct.unpack(f"<{len(base64.b64decode(field)) // 8}d", base64.b64decode(field))
        )
    rows = len(values) // columns
    return [values[i * rows : (i + 1) * rows] for i in range(columns)]


def put(data: dict[str, Any], name: str, columns: list[list[Any]]) -> None:
    """Write columns back: integers 8 bytes wide (any value), floats as doubles."""
    values = [v for c in columns for v in c]
    if isinstance(data[name], list):
        raw = b"".join(int(v).to_bytes(8, "little") for v in values)
        data[name] = [8, base64.b64encode(raw).decode()]
    else:
        data[name] = base64.b64encode(struct.pack(f"<{len(values)}d", *values)).decode()


# (array, columns, column, row 0's new value): ints = count, errors, offset, length;
# floats = total, min, max; ttfb_ints = row, count, offset, length; ttfb_floats = min, max.
COLUMN_TAMPERING = [
    ("ints", 4, 0, 19),  # the buckets no longer add up
    ("ints", 4, 0, MAX_COUNT + 1),
    ("ints", 4, 1, 21),  # more errors than requests
    ("ints", 4, 2, BUCKET_COUNT),  # outside the shared layout
    ("ints", 4, 3, 10**6),  # past the end of the counts
    ("ints", 4, 3, 0),  # counts left over
    ("floats", 3, 0, -1.0),
    ("floats", 3, 0, math.inf),
    ("floats", 3, 0, math.nan),
    ("floats", 3, 1, -0.5),
    ("floats", 3, 1, 99.0),  # min above max
    ("floats", 3, 2, math.inf),
    ("floats", 3, 2, math.nan),
    ("ttfb_ints", 4, 0, 1),  # more first bytes than the row has requests
    ("ttfb_ints", 4, 0, 7),  # not a row of the table
    ("ttfb_ints", 4, 1, 0),  # a first-byte entry without requests
    ("ttfb_floats", 2, 0, -1.0),
    ("ttfb_floats", 2, 1, math.nan),
]


@pytest.mark.parametrize(("name", "columns", "index", "value"), COLUMN_TAMPERING)
def test_a_tampered_column_is_refused(name: str, columns: int, index: int, value: object) -> None:
    """A changed value is a ValueError, never a row with impossible figures."""
    data = a_file()
    decode(data)  # as written, it reads
    table = column(data, name, columns)
    table[index][0] = value
    put(data, name, table)
    with pytest.raises(ValueError):
        decode(data)


@pytest.mark.parametrize(
    "change",
    [
        {"counts": [3, "AAA="]},
        {"counts": [True, "AAA="]},
        {"counts": [1, "not base64!"]},
        {"counts": [2, base64.b64encode(b"\x01\x02\x03").decode()]},  # a count short
        {"ints": "AAAA"},
        {"floats": [8, "AAAA"]},
        {"methods": ["GET"]},  # not one per row
        {"methods": [3, "GET"]},
        {"routes": ["/a", ["/r"]]},
        {"routes": ["/a", "/a"]},  # the same key twice
        {"overflow": [5]},
        {"overflow": [True]},
        {"overflow": [0, 0]},
        {"methods": {}},
    ],
)
def test_a_tampered_file_is_refused(change: dict[str, object]) -> None:
    """Keys, widths, counts and columns must agree with each other exactly."""
    data = a_file()
    data.update(change)
    with pytest.raises(ValueError):
        decode(data)


def test_counts_that_do_not_add_up_are_refused() -> None:
    """Moving one request from a row's bucket to the next row's keeps the file's total but not
    the rows': refused."""
    data = a_file()
    width, text = data["counts"]
    raw = bytearray(base64.b64decode(text))
    first = column(data, "ints", 4)[3][0]
    raw[0], raw[first] = raw[0] - 1 if raw[0] else 1, raw[first] + 1
    data["counts"] = [width, base64.b64encode(bytes(raw)).decode()]
    with pytest.raises(ValueError):
        decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


FIELDS = ["methods", "routes", "overflow", "ints", "floats", "ttfb_ints", "ttfb_floats", "counts"]


def flipped(field: Any, data: Any) -> Any:
    """An array field (``[width, base64]`` or base64) with one byte changed, if it still is one."""
    text = field[1] if isinstance(field, list) and len(field) == 2 else field
    try:
        raw = bytearray(base64.b64decode(text, validate=True))
    except (TypeError, ValueError):  # binascii.Error is a ValueError
        return field
    if raw:
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    text = base64.b64encode(bytes(raw)).decode()
    return [field[0], text] if isinstance(field, list) else text


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_whatever_a_file_holds_decoding_gives_valid_rows_or_a_value_error(data: Any) -> None:
    """Fuzzed fields, keys and bytes of any array: every row decoded lies in the shared layout
    and its buckets add up to its count; anything else is a ValueError, never another
    exception."""
    tampered = copy.deepcopy(a_file())
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(FIELDS))
        where = data.draw(st.sampled_from(["field", "item", "bytes"]))
        field = tampered[name]
        if where == "field":
            tampered[name] = data.draw(json_values)
        elif where == "item" and isinstance(field, list) and field:
            field[data.draw(st.integers(0, len(field) - 1))] = data.draw(json_values)
        elif where == "bytes" and name in FIELDS[3:]:
            tampered[name] = flipped(field, data)
    try:
        sketches = decode(tampered).sketches()
    except ValueError:
        return
    assert len({s.key for s in sketches}) == len(sketches)
    for sketch in sketches:
        assert 0 <= sketch.offset and sketch.offset + len(sketch.counts) <= BUCKET_COUNT
        assert sum(sketch.counts) == sketch.count <= MAX_COUNT
        assert 0 <= sketch.error_count <= sketch.count
        assert sketch.count == 0 or 0.0 <= sketch.min <= sketch.max < math.inf
        assert 0.0 <= sketch.total < math.inf
        ttfb = sketch.ttfb
        if ttfb is not None:
            assert 0 < ttfb.count <= sketch.count and ttfb.count == sum(ttfb.counts) <= MAX_COUNT
            assert 0.0 <= ttfb.min <= ttfb.max < math.inf
            assert 0 <= ttfb.offset and ttfb.offset + len(ttfb.counts) <= BUCKET_COUNT


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_value_is_a_value_error(value: Any) -> None:
    """Not even the top-level shape is trusted."""
    with pytest.raises(ValueError):
        decode(value if isinstance(value, dict) else {"methods": value})
