"""The ``RouteTimer`` extension object: the one place that wires the parts together.

Arrows point one way: leaf modules (attributes, config, headers, stats, tracebuffer, metrics,
signals, body, fence) <- ``telemetry`` and ``state`` <- consumers (``lifecycle``, ``dashboard``,
``cli``, ``testing``) <- this module. Nothing imports it but the package's ``__init__`` and
``testing``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar, Union, overload

from flask import Flask, current_app
from opentelemetry import metrics, trace
from opentelemetry.util.types import Attributes

from .child_spans import ChildSpan
from .cli import routetimer_cli
from .config import environment, read_settings, set_defaults
from .dashboard import create_blueprint
from .lifecycle import RequestLifecycle
from .routes import Exemptions
from .sdk import configure_sdk
from .state import EXTENSION_KEY, AppState, get_state
from .stats import StatsSnapshot
from .telemetry import Telemetry

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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
        #: Where spans and metric points go; shared by every app this timer serves.
        self.telemetry = Telemetry(tracer_provider, meter_provider)
        self._exemptions = Exemptions()
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
        state = AppState(read_settings(app.config, app.debug), self.telemetry, self._exemptions)
        if state.settings.configure_sdk:
            configure_sdk()
        app.extensions[EXTENSION_KEY] = state
        if state.settings.enabled:
            RequestLifecycle(state).connect(app)
        # Always registered: whether it answers is decided per request (debug may change).
        app.register_blueprint(create_blueprint(state.settings.dashboard_url))
        app.cli.add_command(routetimer_cli)

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer request and child spans are started with."""
        return self.telemetry.tracer

    def exempt(self, view: T) -> T:
        """Leave a view (function or ``View`` class) untimed; returns it unchanged."""
        self._exemptions.add(view)
        return view

    @overload
    def timed(self, name: F, /) -> F: ...

    @overload
    def timed(
        self, name: Optional[str] = None, /, *, attributes: Attributes = None
    ) -> ChildSpan: ...

    def timed(
        self, name: Union[str, F, None] = None, /, *, attributes: Attributes = None
    ) -> Union[ChildSpan, F]:
        """A child span for inner work: ``with timer.timed("x"):``, ``@timer.timed`` or
        ``@timer.timed("x")``."""
        if callable(name):
            return ChildSpan(self.telemetry, None)(name)
        return ChildSpan(self.telemetry, name, attributes)

    def stats(self, app: Optional[Flask] = None) -> StatsSnapshot:
        """An immutable snapshot of the app's route statistics, slowest total first."""
        return self.state(app).stats.snapshot()

    def reset_stats(self, app: Optional[Flask] = None) -> None:
        """Forget the app's route statistics (spans and metrics are unaffected)."""
        self.state(app).stats.reset()

    @staticmethod
    def state(app: Optional[Flask] = None) -> AppState:
        """The per-app state of ``app`` (default: the current app)."""
        return get_state(app if app is not None else current_app)
