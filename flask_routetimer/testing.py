"""Helpers for testing your own app: record its request spans, metrics and timings in memory.

``capture(app)`` needs nothing configured: it gives the app's ``RouteTimer`` a fresh SDK tracer and
meter for the duration of a ``with`` block, whatever providers the app was built with, and puts
them back afterwards::

    from flask_routetimer.testing import capture

    def test_predict_is_timed(app):
        with capture(app) as captured:
            app.test_client().post("/v1/predict/", json={"text": "hi"})
        assert [span.name for span in captured.spans] == ["POST /v1/predict/"]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import DataPointT, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from .signals import request_timed
from .state import get_state
from .telemetry import Telemetry
from .timing import RouteTiming
from .tracebuffer import is_request_span

__all__ = ["Captured", "capture"]


class Captured:
    """What :func:`capture` recorded; readable inside the ``with`` block and after it."""

    def __init__(self, live: Telemetry) -> None:
        self._live = live  # the telemetry the app records to while the capture is active
        self._active = False
        #: One :class:`~flask_routetimer.RouteTiming` per timed request of the app, in the order
        #: the requests finished (as the ``request_timed`` signal delivered them).
        self.timings: list[RouteTiming] = []
        self._exporter = InMemorySpanExporter()
        self._tracer_provider = TracerProvider(
            sampler=ParentBased(ALWAYS_ON), shutdown_on_exit=False
        )
        self._tracer_provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        self._final_metrics: Optional[MetricsData] = None
        self._reader = InMemoryMetricReader()
        self._telemetry = Telemetry(self._tracer_provider, self._new_meter_provider())

    @property
    def all_spans(self) -> list[ReadableSpan]:
        """Every finished span (request spans and ``timer.timed`` child spans), oldest end first."""
        return list(self._exporter.get_finished_spans())

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished request spans only, one per timed request, oldest end first."""
        return [span for span in self.all_spans if is_request_span(span)]

    def metric_points(self, name: str) -> list[DataPointT]:
        """The data points of the metric ``name``, e.g. ``"http.server.request.duration"``.

        Values are cumulative since the capture started (or since :meth:`clear`).
        """
        data = self._final_metrics or self._reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def clear(self) -> None:
        """Forget the spans, timings and metric values recorded so far."""
        self._exporter.clear()
        self.timings.clear()
        self._final_metrics = None
        if self._active:  # a new meter starts from zero; the app records to it from now on
            self._meter_provider().shutdown()
            self._reader = InMemoryMetricReader()
            fresh = Telemetry(self._tracer_provider, self._new_meter_provider())
            self._live.swap(fresh)
            self._telemetry = fresh

    # -- used by capture() -----------------------------------------------------------------

    def _new_meter_provider(self) -> MeterProvider:
        return MeterProvider(metric_readers=[self._reader], shutdown_on_exit=False)

    def _meter_provider(self) -> MeterProvider:
        provider = self._telemetry.meter_provider
        assert isinstance(provider, MeterProvider)  # always one of _new_meter_provider()
        return provider

    def _on_timed(self, sender: Any, timing: RouteTiming, **_: Any) -> None:
        self.timings.append(timing)

    def _close(self) -> None:
        """Keep the last metric values readable, then release the providers."""
        self._active = False
        self._final_metrics = self._reader.get_metrics_data()
        self._meter_provider().shutdown()
        self._tracer_provider.shutdown()


@contextmanager
def capture(app: Flask) -> Iterator[Captured]:
    """Record the app's request spans, ``timer.timed`` spans, metrics and timings in memory.

    For the duration of the block, the app's ``RouteTimer`` sends its spans to an in-memory
    exporter and its metrics to an in-memory reader; its own tracer and meter are restored
    afterwards, also when the block raises. The app's trace buffer
    (the dashboard's recent traces) keeps receiving the captured traces.

    Not thread-safe to nest or overlap from several threads: it swaps the timer's telemetry,
    which all threads share. Requests served by other threads during the block *are* captured,
    and so are other apps served by the same ``RouteTimer`` (only their timings are not).
    """
    state = get_state(app)
    live = state.telemetry
    captured = Captured(live)
    if state.settings.trace_buffer > 0:
        captured._tracer_provider.add_span_processor(state.traces)
    # The buffer is fed by the capture's provider for now; attaching it lazily to a provider
    # must wait until the real one is back.
    saved_decided, state.traces.decided = state.traces.decided, True
    saved = live.swap(captured._telemetry)
    captured._active = True
    try:
        with request_timed.connected_to(captured._on_timed, sender=app):
            yield captured
    finally:
        live.swap(saved)
        state.traces.decided = saved_decided
        captured._close()
