"""Per-app state: what one app's requests are timed with, kept in ``app.extensions``.

A plain container. It knows the app's settings, statistics, trace buffer and route cache, and the
timer's shared telemetry and exemptions; it never refers back to the ``RouteTimer``.
"""

from __future__ import annotations

from typing import Optional

from flask import Flask

from .config import Settings
from .exemptions import Exemptions
from .multiproc import Multiproc
from .routes import RouteCache
from .stats import RouteStatsTable
from .telemetry import Telemetry
from .tracebuffer import TraceBuffer

#: Key of the per-app state in ``app.extensions``.
EXTENSION_KEY = "routetimer"


class AppState:
    """Per-app state, kept in ``app.extensions["routetimer"]``."""

    def __init__(self, settings: Settings, telemetry: Telemetry, exemptions: Exemptions) -> None:
        self.settings = settings
        #: The timer's telemetry, shared by every app it serves (swapped by ``testing.capture``).
        self.telemetry = telemetry
        self.stats = RouteStatsTable(settings.max_routes)
        self.traces = TraceBuffer(settings.trace_buffer)
        self.routes = RouteCache(exemptions)
        #: Whether the dashboard looked for app routes under its prefix added after init_app.
        self.overlaps_checked = False
        #: Publishes to ``ROUTETIMER_MULTIPROC_DIR`` and reads every worker back; None when unset.
        self.multiproc: Optional[Multiproc] = None
        if settings.multiproc_dir is not None:
            self.multiproc = Multiproc(
                settings.multiproc_dir, settings.multiproc_interval, self.stats, self.traces
            )

    def decide_trace_buffer(self, app: Flask) -> None:
        """Attach the trace buffer if the dashboard can show it now (decided once)."""
        shown = self.settings.dashboard_on(app.debug)
        self.traces.decide(shown, self.telemetry.current_tracer_provider)


def get_state(app: Flask) -> AppState:
    """The state of an app ``init_app`` has registered; a clear error otherwise."""
    try:
        state: AppState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            f"flask-routetimer is not registered on the app {app.name!r}: "
            "call RouteTimer(app) or timer.init_app(app) first."
        ) from None
    return state
