"""What is known about each (URL rule, method): names, attributes and whether it is timed.

Computed once per pair and cached, so the hot path never rebuilds a span name, and the cache is
bounded by the app's rules, never by raw paths. The exemption rules live here, in one place, for
the request lifecycle and the ``flask routetimer routes`` command alike.
"""

from __future__ import annotations

from typing import Any, Optional

from flask import Flask
from werkzeug.routing import Rule

from . import attributes as attrs
from .exemptions import Exemptions

#: Name of the dashboard's blueprint; its endpoints are never timed (they would otherwise fill
#: the statistics they show).
DASHBOARD_BLUEPRINT = "routetimer"


class RouteInfo:
    """What is known about a (URL rule, method) pair; computed once, then reused."""

    __slots__ = ("rule", "route", "endpoint", "blueprint", "method", "name", "exempt", "attributes")

    def __init__(self, rule: Optional[Rule], method: str, exempt: bool) -> None:
        self.rule = rule
        self.route = rule.rule if rule is not None else None
        self.endpoint = rule.endpoint if rule is not None else None
        self.blueprint = attrs.blueprint_of(self.endpoint)
        self.method = method
        self.name = attrs.span_name(method, self.route)
        self.exempt = exempt
        #: The span attributes of every request to the pair (copied per request, never changed).
        self.attributes = attrs.route_attributes(method, self.route, self.endpoint, self.blueprint)


class RouteCache:
    """``RouteInfo`` per (rule, method) of one app."""

    def __init__(self, exemptions: Exemptions) -> None:
        self._exemptions = exemptions
        self._routes: dict[tuple[int, str], RouteInfo] = {}
        #: The app's exempt views by id, worked out for ``_resolved`` (the marks' version and
        #: the number of views); None: not yet.
        self._exempt_views: Optional[dict[int, Any]] = None
        self._resolved = (-1, 0)
        #: Names of the marks no view reaches (``flask routetimer routes`` shows them).
        self.unreached: list[str] = []
        exemptions.watch(self)

    def info(self, app: Flask, rule: Optional[Rule], method: str) -> RouteInfo:
        """Cached per (rule, method): bounded by the app's rules, never by raw paths."""
        key = (id(rule), method)
        info = self._routes.get(key)
        if info is None or info.rule is not rule:
            routes = self._routes  # a mark added meanwhile replaces it: this one is dropped
            info = RouteInfo(rule, method, self.is_exempt(app, rule))
            routes[key] = info
        return info

    def clear(self) -> None:
        """Forget every pair (a view was marked exempt after the cache filled)."""
        self._routes = {}

    def is_exempt(self, app: Flask, rule: Optional[Rule]) -> bool:
        """True for the dashboard's own rules and rules whose view is marked exempt (or wraps,
        or is wrapped by, a marked object)."""
        exempt = self._exempt_views
        if exempt is None or self._resolved != (self._exemptions.version, len(app.view_functions)):
            exempt = self.resolve(app)  # once: at the app's first request, or after a change
        if rule is None:
            return False
        if attrs.blueprint_of(rule.endpoint) == DASHBOARD_BLUEPRINT:
            return True
        view = app.view_functions.get(rule.endpoint)
        return view is not None and exempt.get(id(view)) is view

    def resolve(self, app: Flask, warn: bool = True) -> dict[int, Any]:
        """Work out the app's exempt views; log a warning for marks that reach no view."""
        version = self._exemptions.version  # read first: a mark added meanwhile redoes this
        views = list(app.view_functions.values())
        exempt, unreached = self._exemptions.resolve(views)
        self._exempt_views, self._resolved = exempt, (version, len(views))
        named = self._exemptions.unreached(app, unreached)
        self.unreached = sorted(named.values())
        if warn:
            self._exemptions.warn(named)
        return exempt
