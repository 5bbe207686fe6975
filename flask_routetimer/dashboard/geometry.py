"""Pure geometry for the dashboard's server-side plots: the span waterfall and the histogram.

Both return plain numbers (percentages or SVG user units) that templates put into SVG
presentation attributes, so pages need neither inline styles nor JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Callable, Optional

from .._body import TIME_TO_FIRST_BYTE
from ..stats import Bucket
from ..tracedata import SpanData, by_start
from .present import format_seconds

#: Deepest indentation drawn; deeper spans still show, at this depth.
MAX_DEPTH = 12
#: Narrowest bar, in percent of the trace, so a 1 µs span stays visible and clickable.
MIN_BAR = 0.3


# --- Waterfall --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterfallRow:
    """One span on the waterfall: its depth and its bar, in percent of the trace's length."""

    span: SpanData
    depth: int
    offset: float  # seconds since the trace started
    duration: float  # seconds
    x: float  # percent
    width: float  # percent
    first_byte: Optional[float] = None  # seconds since the trace started, for a streamed body
    first_byte_x: Optional[float] = None  # percent


def span_tree(spans: Sequence[SpanData]) -> list[tuple[SpanData, int]]:
    """Spans in depth-first order, children under their parent by start time, with depths.

    A span whose parent is not in the trace (a remote caller, a dropped span) is a root.
    """
    by_id = {span.span_id: span for span in spans}
    children: dict[Optional[int], list[SpanData]] = {}
    for span in spans:
        parent = span.parent_id
        children.setdefault(parent if parent in by_id else None, []).append(span)
    ordered: list[tuple[SpanData, int]] = []
    seen: set[int] = set()
    stack = [(span, 0) for span in reversed(by_start(children.get(None, [])))]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((span, depth))
        kids = children.get(span.span_id, [])
        stack.extend((kid, depth + 1) for kid in reversed(by_start(kids)))
    return ordered


def time_window(spans: Sequence[SpanData]) -> tuple[int, int]:
    """``(origin, length)`` in ns: from the earliest start to the latest end (length >= 1)."""
    if not spans:
        return 0, 1
    origin = min(span.start_time or 0 for span in spans)
    end = max(span.end_time or span.start_time or 0 for span in spans)
    return origin, max(end - origin, 1)


def waterfall(spans: Sequence[SpanData]) -> list[WaterfallRow]:
    """Bars to scale: ``x`` and ``width`` are percentages of the whole trace's time window."""
    origin, total = time_window(spans)
    rows = []
    for span, depth in span_tree(spans):
        start = (span.start_time or origin) - origin
        length = max((span.end_time or span.start_time or origin) - origin - start, 0)
        x = min(start / total * 100, 100 - MIN_BAR)
        width = min(max(length / total * 100, MIN_BAR), 100 - x)
        row = WaterfallRow(span, min(depth, MAX_DEPTH), start / 1e9, length / 1e9, x, width)
        ttfb = (span.attributes or {}).get(TIME_TO_FIRST_BYTE)
        if isinstance(ttfb, (int, float)) and not isinstance(ttfb, bool) and ttfb >= 0:
            # Measured from the request's start: capped to the bar, so the marker stays on it.
            at = min(start + ttfb * 1e9, start + length)
            marker_x = min(max(at / total * 100, x), x + width)
            row = replace(row, first_byte=at / 1e9, first_byte_x=marker_x)
        rows.append(row)
    return rows


# --- Histogram --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Marker:
    x: float
    label_y: float
    label: str
    anchor: str  # SVG text-anchor: "start", or "end" near the right edge so the label fits


@dataclass(frozen=True)
class Histogram:
    """A latency histogram in SVG user units, log-scaled on the time axis."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    markers: tuple[Marker, ...]
    max_count: int


def _decade_ticks(low: int, high: int) -> list[float]:
    """Powers of ten, with 2x and 5x between them when the range is narrow."""
    steps = (1.0, 2.0, 5.0) if high - low <= 2 else (1.0,)
    values = [step * 10.0**power for power in range(low, high) for step in steps]
    return values + [10.0**high]


def _marker_labels(
    quantiles: Mapping[str, float], x_of: Callable[[float], float]
) -> list[tuple[float, str]]:
    """One label per distinct value (``p95, p99 10.7 ms``), so equal quantiles never overlap."""
    names: dict[float, list[str]] = {}
    for name, value in quantiles.items():
        names.setdefault(value, []).append(name)
    return [(x_of(value), f"{', '.join(n)} {format_seconds(value)}") for value, n in names.items()]


def histogram(
    buckets: Sequence[Bucket],
    quantiles: Mapping[str, float],
    width: int = 720,
    height: int = 240,
) -> Optional[Histogram]:
    """Bars for the non-empty buckets, decade ticks and quantile markers; None when empty."""
    if not buckets:
        return None
    left, top, right, bottom = 56.0, 44.0, width - 32.0, height - 28.0
    low = math.floor(math.log10(min(b[0] for b in buckets)))
    high = max(math.ceil(math.log10(max(b[1] for b in buckets))), low + 1)

    def x_of(seconds: float) -> float:
        fraction = (math.log10(max(seconds, 1e-12)) - low) / (high - low)
        return left + min(max(fraction, 0.0), 1.0) * (right - left)

    max_count = max(b[2] for b in buckets)
    bars = []
    for lower, upper, count in buckets:
        x0, x1 = x_of(lower), x_of(upper)
        bar_height = count / max_count * (bottom - top)
        label = f"{format_seconds(lower)} – {format_seconds(upper)}: {count}"
        bars.append(Bar(x0, bottom - bar_height, max(x1 - x0, 1.0), bar_height, label))
    ticks = tuple(Tick(x_of(v), format_seconds(v)) for v in _decade_ticks(low, high))
    markers = tuple(
        Marker(x, 12.0 + 11 * index, label, "end" if x > right - 90 else "start")
        for index, (x, label) in enumerate(_marker_labels(quantiles, x_of))
    )
    return Histogram(
        width, height, left, top, right, bottom, tuple(bars), ticks, markers, max_count
    )
