"""The ``RouteTimer`` extension object: registration, exemptions and child spans."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar, Union, overload

from flask import Flask, current_app
from opentelemetry import metrics, trace
from opentelemetry.util.types import Attributes

from ._hooks import EXTENSION_KEY, AppState
from ._version import __version__
from .cli import routetimer_cli
from .config import environment, read_settings, set_defaults
from .dashboard import create_blueprint
from .metrics import RequestMetrics
from .sdk import configure_sdk, is_unset
from .stats import StatsSnapshot
from .timed import Timed

#: The semantic conventions version our attribute names follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _check_provider(argument: str, provider: Any, method: str) -> None:
    if provider is not None and not callable(getattr(provider, method, None)):
        raise TypeError(
            f"{argument} must be an OpenTelemetry {argument.replace('_', ' ').title()} "
            f"(an object with .{method}()), got {type(provider).__name__}."
        )


def _is_placeholder(provider: object) -> bool:
    """The API's stand-ins, used while no SDK provider is configured."""
    # Exact types: a subclass of a no-op provider may well record something.
    return type(provider) in (metrics.NoOpMeterProvider, trace.NoOpTracerProvider) or is_unset(
        provider
    )


class RouteTimer:
    """Times every endpoint of a Flask app from the outside, as OpenTelemetry spans.

    Nothing in ``app.view_functions`` is wrapped or renamed: the extension listens to Flask's
    request signals. One ``RouteTimer`` may serve several apps; per-app state lives in
    ``app.extensions["routetimer"]``.
    """

    def __init__(
        self,
        app: Optional[Flask] = None,
        *,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Optional[metrics.MeterProvider] = None,
    ) -> None:
        _check_provider("tracer_provider", tracer_provider, "get_tracer")
        _check_provider("meter_provider", meter_provider, "get_meter")
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        # Without a provider this is the API's proxy tracer: it follows the global provider even
        # when that is configured after init_app.
        self.tracer = trace.get_tracer(
            "flask_routetimer", __version__, tracer_provider, schema_url=SCHEMA_URL
        )
        # Instruments are created once per provider, never per request.
        self.metrics = RequestMetrics(meter_provider, SCHEMA_URL)
        self._exempt: set[Any] = set()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and validate this app's ``ROUTETIMER_*`` config and start timing its requests."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"flask-routetimer is already registered on the app {app.name!r}. Call "
                "init_app() once per app; reach the existing state through "
                f"app.extensions[{EXTENSION_KEY!r}]."
            )
        set_defaults(app.config, environment())
        state = AppState(self, read_settings(app.config, app.debug))
        if state.settings.configure_sdk:
            configure_sdk()
        app.extensions[EXTENSION_KEY] = state
        if state.settings.enabled:
            state.connect(app)
        # Always registered: whether it answers is decided per request (debug may change).
        app.register_blueprint(create_blueprint(state.settings.dashboard_url))
        app.cli.add_command(routetimer_cli)

    def tracing_active(self) -> bool:
        """False when spans would go nowhere (no SDK): the hot path then skips building them."""
        return not _is_placeholder(self.tracer_provider or trace.get_tracer_provider())

    def metrics_active(self) -> bool:
        """False when metric points would go nowhere (no SDK meter provider)."""
        return not _is_placeholder(self.meter_provider or metrics.get_meter_provider())

    def exempt(self, view: T) -> T:
        """Leave a view (function or ``View`` class) untimed; returns it unchanged."""
        self._exempt.add(view)
        return view

    def is_exempt(self, view: Any) -> bool:
        """True for a view marked with :meth:`exempt` (or made by ``as_view`` of one)."""
        if view is None:
            return False
        try:
            return view in self._exempt or getattr(view, "view_class", None) in self._exempt
        except TypeError:  # an unhashable callable object as view
            return False

    @overload
    def timed(self, name: F, /) -> F: ...

    @overload
    def timed(self, name: Optional[str] = None, /, *, attributes: Attributes = None) -> Timed: ...

    def timed(
        self, name: Union[str, F, None] = None, /, *, attributes: Attributes = None
    ) -> Union[Timed, F]:
        """A child span for inner work: ``with timer.timed("x"):``, ``@timer.timed`` or
        ``@timer.timed("x")``."""
        if callable(name):
            return Timed(self, None)(name)
        return Timed(self, name, attributes)

    def stats(self, app: Optional[Flask] = None) -> StatsSnapshot:
        """An immutable snapshot of the app's route statistics, slowest total first."""
        return self.state(app).stats.snapshot()

    def reset_stats(self, app: Optional[Flask] = None) -> None:
        """Forget the app's route statistics (spans and metrics are unaffected)."""
        self.state(app).stats.reset()

    @staticmethod
    def state(app: Optional[Flask] = None) -> AppState:
        """The per-app state of ``app`` (default: the current app)."""
        target = app if app is not None else current_app
        try:
            state: AppState = target.extensions[EXTENSION_KEY]
        except KeyError:
            raise RuntimeError(
                f"flask-routetimer is not registered on the app {target.name!r}: "
                "call RouteTimer(app) or timer.init_app(app) first."
            ) from None
        return state
