"""The ``RouteTimer`` extension object: the one place that wires the parts together.

Arrows point one way: leaf modules (attributes, config, headers, stats, tracebuffer, metrics,
signals, body, fence) <- ``telemetry`` and ``state`` <- consumers (``lifecycle``, ``dashboard``,
``cli``, ``testing``) <- this module. Nothing imports it but the package's ``__init__`` and
``testing``.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any, Callable, Optional, TypeVar, Union, overload

from flask import Blueprint, Flask, current_app, has_app_context
from opentelemetry import metrics, trace
from opentelemetry.util.types import Attributes

from .child_spans import ChildSpan
from .cli import routetimer_cli
from .config import CONFIG_KEYS, ConfigError, Settings, environment, read_settings, set_defaults
from .dashboard import create_blueprint, dashboard_host, overlapping_rules
from .exemptions import Exemptions
from .first_request import FirstRequest, snapshot
from .lifecycle import RequestLifecycle
from .record import current_record
from .routes import DASHBOARD_BLUEPRINT
from .sdk import configure_sdk
from .state import EXTENSION_KEY, AppState, get_state
from .stats import StatsSnapshot
from .telemetry import Telemetry
from .templates import TemplateSpans

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _check_can_register(app: Flask) -> None:
    """Refuse, before changing anything, an app this extension cannot be added to."""
    if EXTENSION_KEY in app.extensions:
        raise RuntimeError(
            f"flask-routetimer is already registered on the app {app.name!r}. Call "
            "init_app() once per app; reach the existing state through "
            f"app.extensions[{EXTENSION_KEY!r}]."
        )
    if getattr(app, "_got_first_request", False):
        raise RuntimeError(
            f"The app {app.name!r} has already handled a request, so flask-routetimer can no "
            "longer be set up on it. Call RouteTimer(app) or init_app(app) where the app is "
            "created, before it serves requests."
        )


def _dashboard_for(app: Flask, settings: Settings) -> Optional[Blueprint]:
    """The dashboard's blueprint if it can ever be on for this app (None leaves the app as is)."""
    if not settings.dashboard_registered(app.debug):
        return None
    if DASHBOARD_BLUEPRINT in app.blueprints:
        raise ConfigError(
            f"The app {app.name!r} already has a blueprint named {DASHBOARD_BLUEPRINT!r}, the "
            "name of flask-routetimer's dashboard. Rename that blueprint, or set "
            "ROUTETIMER_DASHBOARD = False to leave the dashboard out."
        )
    overlaps = overlapping_rules(app, settings.dashboard_url)
    if overlaps:
        raise ConfigError(
            f"ROUTETIMER_DASHBOARD_URL {settings.dashboard_url!r} overlaps the app's own routes "
            f"{', '.join(overlaps[:5])}: the dashboard would shadow them or be unreachable. "
            "Choose a prefix no route of the app uses, such as '/_routetimer'."
        )
    host = dashboard_host(app, settings.dashboard_host)
    return create_blueprint(settings.dashboard_url, host)


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
        #: The apps this timer serves, held weakly: an app factory in tests makes many.
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        self._exemptions = Exemptions(self._apps)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and validate this app's ``ROUTETIMER_*`` config and start timing its requests.

        All or nothing: whatever is wrong is reported before the app is changed, and an app
        whose ``init_app`` raised is left as it was (a retry after fixing the cause works).
        """
        _check_can_register(app)
        added = [key for key in CONFIG_KEYS if key.name not in app.config]
        try:
            set_defaults(app.config, environment())
            settings = read_settings(app.config, app.debug)
            dashboard = _dashboard_for(app, settings)
            if settings.configure_sdk:
                configure_sdk()
        except BaseException:
            for key in added:  # the defaults set above go too
                app.config.pop(key.name, None)
            raise
        state = AppState(settings, self.telemetry, self._exemptions)
        if dashboard is not None:
            app.register_blueprint(dashboard)  # checked above, so it does not fail half-way
        app.extensions[EXTENSION_KEY] = state
        self._apps.add(app)
        FirstRequest(settings, snapshot(app.config)).connect(app)
        if settings.enabled:
            RequestLifecycle(state).connect(app)
            if settings.time_templates:
                TemplateSpans(state.telemetry, current_record).connect(app)
        app.cli.add_command(routetimer_cli)

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer request and child spans are started with."""
        return self.telemetry.tracer

    def exempt(self, view: T) -> T:
        """Leave a view (function or ``View`` class) untimed; returns it unchanged.

        Works above or below other decorators that use ``functools.wraps``; a mark that reaches
        no view is named in a warning at the first request and by ``flask routetimer routes``.
        """
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

    def stats(self, app: Optional[Flask] = None, *, merged: bool = True) -> StatsSnapshot:
        """An immutable snapshot of the app's route statistics, slowest total first.

        With ``ROUTETIMER_MULTIPROC_DIR`` set it covers every worker process of the server
        (``snapshot.workers`` says how many); ``merged=False`` gives this process's own. Without
        ``app``: the current app if this timer serves it, else the one app it serves (with
        several, a ``RuntimeError`` names them), so it works outside a request too.
        """
        state = self.state(self._app(app))
        if merged and state.multiproc is not None:
            return state.multiproc.merged_stats()
        return state.stats.snapshot()

    def reset_stats(self, app: Optional[Flask] = None) -> None:
        """Forget the app's route statistics (spans and metrics are unaffected); ``app`` as for
        :meth:`stats`."""
        self.state(self._app(app)).stats.reset()

    def _app(self, app: Optional[Flask]) -> Flask:
        """``app``, else the current app if this timer serves it, else the one app it serves."""
        if app is not None:
            return app
        if has_app_context():
            current: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            if current in self._apps:
                return current
        if len(self._apps) > 1:
            # An app in a reference cycle (an extension keeping it, say) that nobody holds any
            # more goes only when the collector runs, and must not count. Paid only when this
            # would otherwise be an error.
            gc.collect()
        apps = list(self._apps)
        if len(apps) == 1:
            return apps[0]
        if not apps:
            raise RuntimeError(
                "This RouteTimer serves no app yet: call timer.init_app(app) first, or pass the "
                "app, as in timer.stats(app)."
            )
        names = ", ".join(sorted(repr(each.name) for each in apps))
        raise RuntimeError(
            f"This RouteTimer serves {len(apps)} apps ({names}), so without an app context of "
            "one of them it cannot tell which you mean: pass the app, as in timer.stats(app) or "
            "timer.reset_stats(app)."
        )

    @staticmethod
    def state(app: Optional[Flask] = None) -> AppState:
        """The per-app state of ``app`` (default: the current app)."""
        return get_state(app if app is not None else current_app)
