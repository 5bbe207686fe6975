"""The HTTP server metrics of the stable semantic conventions, created once per meter provider."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Optional, Protocol

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.metrics.http_metrics import HTTP_SERVER_ACTIVE_REQUESTS
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.url_attributes import URL_SCHEME
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION

from .attributes import error_type

#: Bucket advice of the semantic conventions for ``http.server.request.duration`` (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

MetricAttributes = dict[str, Any]


#: (http.request.method, url.scheme): the attributes of ``http.server.active_requests``.
ActiveKey = tuple[str, str]
#: (active key, http.route, http.response.status_code, network.protocol.version, error.type).
DurationKey = tuple[ActiveKey, Optional[str], Optional[int], Optional[str], Optional[str]]
#: What tells one duration attribute set from another, as the hot path has it at hand: (method,
#: scheme, http.route, status code, protocol version, the exception's class or None). The 5xx
#: ``error.type`` follows from the status code, an exception's from its class.
PointKey = tuple[str, str, Optional[str], Optional[int], Optional[str], Optional[type]]
#: A request counted in: its (method, scheme), the set it was counted in, and its token there.
Counted = tuple[ActiveKey, "InFlight", object]
#: Distinct duration attribute sets cached; far more than an app's routes x statuses.
MAX_CACHED_ATTRIBUTE_SETS = 4096
#: Distinct (method, scheme) pairs counted apart. ``wsgi.url_scheme`` may come from a forwarded
#: header (``ProxyFix``), so it is the client's to vary: further pairs share one overflow series.
MAX_ACTIVE_KEYS = 256
#: Attributes of that overflow series, as the OpenTelemetry SDK marks its own cardinality overflow.
OVERFLOW_ATTRIBUTES: MetricAttributes = {"otel.metric.overflow": True}
_OVERFLOW: Optional[ActiveKey] = None
#: The requests in flight under one (method, scheme): a set, so counting in and out is one
#: atomic ``add`` / ``discard`` with no lock, and the count can neither drift nor go negative.
InFlight = set[object]


class TimedRequest(Protocol):
    """What a duration point is made of, as the request's record holds it (read only)."""

    @property
    def counted(self) -> Optional[Counted]: ...
    @property
    def status_code(self) -> Optional[int]: ...
    @property
    def protocol(self) -> Optional[str]: ...
    @property
    def exception(self) -> Optional[BaseException]: ...
    @property
    def context(self) -> Optional[Context]: ...


class RequestMetrics:
    """``http.server.request.duration`` and ``http.server.active_requests``.

    Given the API's proxy meter (no explicit provider), it binds to the global provider
    whenever that is configured. Active requests are counted in a plain dict and
    observed by the SDK only when it collects: an up-down counter whose value is read at export
    instead of two synchronous measurements on every request. Attribute dicts are built once per
    distinct set and reused (they are low-cardinality by design, and never mutated).
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self.duration = meter.create_histogram(
            HTTP_SERVER_REQUEST_DURATION,
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._active: dict[Optional[ActiveKey], InFlight] = {}
        self._active_lock = threading.Lock()  # only to add a key
        self._attribute_sets: dict[PointKey, MetricAttributes] = {}
        # The SDK keeps the instrument (and calls back) as long as the meter lives.
        meter.create_observable_up_down_counter(
            HTTP_SERVER_ACTIVE_REQUESTS,
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._active_lock:
            in_flight = list(self._active.items())
        return [
            Observation(
                len(requests), OVERFLOW_ATTRIBUTES if key is None else active_attributes(*key)
            )
            for key, requests in in_flight
        ]

    def started(self, key: ActiveKey, request: object) -> InFlight:
        """Count a request in; count it out by discarding it from the set returned."""
        requests = self._active.get(key)
        if requests is None:
            requests = self._add_key(key)
        requests.add(request)
        return requests

    def _add_key(self, key: ActiveKey) -> InFlight:
        with self._active_lock:
            requests = self._active.get(key)
            if requests is None:
                if len(self._active) >= MAX_ACTIVE_KEYS:
                    return self._active.setdefault(_OVERFLOW, set())
                requests = self._active[key] = set()
            return requests

    def finished(self, request: TimedRequest, route: Optional[str], duration: float) -> None:
        """Count a request that was counted in (``started``) out and record its duration, linked
        to its trace for exemplars.

        The point's attribute set is built once per distinct set and reused (the SDK only reads
        it), looked up by a flat key of what the request has at hand.
        """
        counted = request.counted
        if counted is None:
            return
        (method, scheme), in_flight, token = counted
        in_flight.discard(token)
        exception = request.exception
        key = (
            method,
            scheme,
            route,
            request.status_code,
            request.protocol,
            None if exception is None else type(exception),
        )
        attributes = self._attribute_sets.get(key)
        if attributes is None:
            attributes = self._new_attribute_set(key, exception)
        self.duration.record(duration, attributes, context=request.context)

    def _new_attribute_set(
        self, key: PointKey, exception: Optional[BaseException]
    ) -> MetricAttributes:
        method, scheme, route, status_code, protocol, _ = key
        kind = error_type(exception, status_code)
        attributes = duration_attributes(((method, scheme), route, status_code, protocol, kind))
        if len(self._attribute_sets) < MAX_CACHED_ATTRIBUTE_SETS:
            self._attribute_sets[key] = attributes
        return attributes


def active_attributes(method: str, scheme: str) -> MetricAttributes:
    """The attributes of ``http.server.active_requests``: method and scheme only."""
    return {HTTP_REQUEST_METHOD: method, URL_SCHEME: scheme}


def duration_attributes(point: DurationKey) -> MetricAttributes:
    """The attributes of ``http.server.request.duration``: low-cardinality ones only."""
    key, route, status_code, protocol_version, error_type = point
    attributes = active_attributes(*key)
    if route is not None:
        attributes[HTTP_ROUTE] = route
    if status_code is not None:
        attributes[HTTP_RESPONSE_STATUS_CODE] = status_code
    if protocol_version is not None:
        attributes[NETWORK_PROTOCOL_VERSION] = protocol_version
    if error_type is not None:
        attributes[ERROR_TYPE] = error_type
    return attributes
