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

#: Name of the dashboard's blueprint; its endpoints are never timed (they would otherwise fill
#: the statistics they show).
DASHBOARD_BLUEPRINT = "routetimer"


class Exemptions:
    """Views marked with ``@timer.exempt``; one set per ``RouteTimer``, shared by its apps."""

    def __init__(self) -> None:
        self._views: set[Any] = set()

    def add(self, view: Any) -> None:
        self._views.add(view)

    def covers(self, view: Any) -> bool:
        """True for a marked view (function or ``View`` class, or made by ``as_view`` of one)."""
        if view is None:
            return False
        try:
            return view in self._views or getattr(view, "view_class", None) in self._views
        except TypeError:  # an unhashable callable object as view
            return False


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

    def info(self, app: Flask, rule: Optional[Rule], method: str) -> RouteInfo:
        """Cached per (rule, method): bounded by the app's rules, never by raw paths."""
        key = (id(rule), method)
        info = self._routes.get(key)
        if info is None or info.rule is not rule:
            info = RouteInfo(rule, method, self.is_exempt(app, rule))
            self._routes[key] = info
        return info

    def is_exempt(self, app: Flask, rule: Optional[Rule]) -> bool:
        """True for the dashboard's own rules and rules whose view is marked exempt."""
        if rule is None:
            return False
        if attrs.blueprint_of(rule.endpoint) == DASHBOARD_BLUEPRINT:
            return True
        return self._exemptions.covers(app.view_functions.get(rule.endpoint))
