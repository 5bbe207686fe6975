"""Where spans and metric points go: the tracer and the request metrics, swappable as one unit.

One :class:`Telemetry` per ``RouteTimer``, shared by every app it serves. The instrumentation
scope name and schema URL are defined here once; the trace buffer recognises request spans by the
same scope name.
"""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry import metrics, trace

from ._version import __version__
from .metrics import RequestMetrics

#: Instrumentation scope of every span and instrument flask-routetimer makes.
SCOPE_NAME = "flask_routetimer"
#: The semantic conventions version our attribute names follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


def check_provider(argument: str, provider: Any, method: str) -> None:
    """Refuse, naming the argument, an object that is not a tracer or meter provider."""
    if provider is not None and not callable(getattr(provider, method, None)):
        raise TypeError(
            f"{argument} must be an OpenTelemetry {argument.replace('_', ' ').title()} "
            f"(an object with .{method}()), got {type(provider).__name__}."
        )


def is_unset(provider: object) -> bool:
    """True while the API still hands out its placeholder (nothing configured yet)."""
    return isinstance(provider, trace.ProxyTracerProvider) or type(provider).__name__ in (
        "_ProxyMeterProvider",
        "ProxyMeterProvider",
    )


#: Whether a provider type is one of the API's stand-ins, decided once per type: the answer
#: depends on the type alone, and is asked twice on every request.
_placeholder_types: dict[type, bool] = {}


def is_placeholder(provider: object) -> bool:
    """True for the API's stand-ins (unset or no-op): nothing would be recorded."""
    kind = type(provider)
    placeholder = _placeholder_types.get(kind)
    if placeholder is None:
        # Exact types: a subclass of a no-op provider may well record something.
        no_op = (metrics.NoOpMeterProvider, trace.NoOpTracerProvider)
        placeholder = _placeholder_types[kind] = kind in no_op or is_unset(provider)
    return placeholder


class Telemetry:
    """The providers (None: the global ones), the tracer and the request metrics in use."""

    __slots__ = ("tracer_provider", "meter_provider", "tracer", "metrics")

    def __init__(
        self,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Optional[metrics.MeterProvider] = None,
    ) -> None:
        check_provider("tracer_provider", tracer_provider, "get_tracer")
        check_provider("meter_provider", meter_provider, "get_meter")
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        # Without a provider this is the API's proxy tracer: it follows the global provider even
        # when that is configured after init_app.
        self.tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider, SCHEMA_URL)
        # Instruments are created once per provider, never per request.
        meter = metrics.get_meter(SCOPE_NAME, __version__, meter_provider, SCHEMA_URL)
        self.metrics = RequestMetrics(meter)

    def current_tracer_provider(self) -> trace.TracerProvider:
        """The provider spans go to now (the global one unless one was given)."""
        return self.tracer_provider or trace.get_tracer_provider()

    def active(self) -> tuple[bool, bool]:
        """Whether spans, and whether metric points, would go anywhere (an SDK provider): the hot
        path skips building what would go nowhere. Asked once per request, in one call."""
        tracer_provider = self.tracer_provider or trace.get_tracer_provider()
        meter_provider = self.meter_provider or metrics.get_meter_provider()
        tracer_placeholder = _placeholder_types.get(type(tracer_provider))
        meter_placeholder = _placeholder_types.get(type(meter_provider))
        if tracer_placeholder is None or meter_placeholder is None:  # a type not seen yet
            tracer_placeholder = is_placeholder(tracer_provider)
            meter_placeholder = is_placeholder(meter_provider)
        return not tracer_placeholder, not meter_placeholder

    def swap(self, other: Telemetry) -> Telemetry:
        """Take ``other``'s providers, tracer and metrics; return the previous ones as a unit."""
        saved = Telemetry.__new__(Telemetry)
        for name in Telemetry.__slots__:
            setattr(saved, name, getattr(self, name))
            setattr(self, name, getattr(other, name))
        return saved
