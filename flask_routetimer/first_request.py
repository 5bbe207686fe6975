"""What an app's first request tells the developer, once: config keys set too late, and a
dashboard anyone can open.

``init_app`` reads the ``ROUTETIMER_*`` keys (the Flask convention), so a key set afterwards is
ignored while ``app.config`` shows the new value. The first request compares the keys with what
``init_app`` read and names those that changed. A one-shot ``request_started`` receiver does it
and disconnects itself: later requests pay nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.signals import request_started

from ._fence import report
from .config import CONFIG_KEYS, Settings
from .routes import DASHBOARD_BLUEPRINT

logger = logging.getLogger("flask_routetimer")

_MISSING = object()  # a key removed from app.config after init_app


def snapshot(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ROUTETIMER_*`` values as ``init_app`` read them (lists copied: one changed in place
    is a change too)."""
    return {key.name: _copy(config.get(key.name, _MISSING)) for key in CONFIG_KEYS}


def _copy(value: Any) -> Any:
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_copy(item) for item in value)
    if type(value) is dict:
        return {name: _copy(item) for name, item in value.items()}
    return value  # immutable, or an object such as an auth function: compared as itself


def changed_keys(before: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The keys whose value in ``config`` differs from ``before``."""
    return [name for name, old in before.items() if not _same(old, config.get(name, _MISSING))]


def _same(old: Any, new: Any) -> bool:
    if old is new:
        return True
    try:
        return bool(old == new)
    except Exception:  # a value that cannot be compared: say nothing rather than guess
        return True


class FirstRequest:
    """Logs, at one app's first request, what its developer should know."""

    def __init__(self, settings: Settings, read: dict[str, Any]) -> None:
        self._settings = settings
        self._read = read  # snapshot() of the config at init_app
        self._done = False
        self._lock = threading.Lock()

    def connect(self, app: Flask) -> None:
        request_started.connect(self.on_started, app, weak=False)

    def on_started(self, app: Flask, **_: Any) -> None:
        with self._lock:  # two first requests in two threads: one says it
            if self._done:
                return
            self._done = True
        try:
            request_started.disconnect(self.on_started, app)
            self._warn_changed(app)
            self._announce_dashboard(app)
        except Exception as exc:
            report("checking the app at its first request", exc)

    def _warn_changed(self, app: Flask) -> None:
        changed = changed_keys(self._read, app.config)
        if changed:
            logger.warning(
                "flask-routetimer: %s changed in app.config of the app %r after init_app, which "
                "reads the ROUTETIMER_* keys: the app still uses the values read then. Set them "
                "before RouteTimer(app) or timer.init_app(app).",
                ", ".join(changed),
                app.name,
            )

    def _announce_dashboard(self, app: Flask) -> None:
        settings = self._settings
        if DASHBOARD_BLUEPRINT not in app.blueprints or not settings.dashboard_on(app.debug):
            return
        if settings.dashboard_auth is not None:
            logger.info(
                "flask-routetimer: dashboard at %s/, behind ROUTETIMER_DASHBOARD_AUTH.",
                settings.dashboard_url,
            )
            return
        logger.warning(
            "flask-routetimer: dashboard at %s/, with no login in debug mode: anyone who can "
            "reach this server can read it (routes, paths, headers, exception traces). Serve on "
            "127.0.0.1 only (not --host 0.0.0.0, nor a published container port) or set "
            "ROUTETIMER_DASHBOARD_AUTH.",
            settings.dashboard_url,
        )
