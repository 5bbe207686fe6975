"""Which views ``@timer.exempt`` covers, in any decorator order, and which marks cover nothing.

Another decorator changes which object Flask registers. With ``@timer.exempt`` below it, the mark
is on the inner function and Flask registers the wrapper; with ``@timer.exempt`` above it, the mark
is on a wrapper Flask never sees. Both are followed through ``__wrapped__`` (what
``functools.wraps`` sets). A mark that neither way reaches a view (a wrapper without
``functools.wraps``) is reported, never silently ignored. Worked out when the route cache fills,
never per request.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from flask import Flask

logger = logging.getLogger("flask_routetimer")

#: Longest ``__wrapped__`` chain followed: a cycle or an object inventing attributes stops here.
MAX_CHAIN = 100


class Clearable(Protocol):
    def clear(self) -> None: ...


def unwrapped(obj: Any) -> list[Any]:
    """``obj`` and what it wraps through ``__wrapped__``, outermost first (bounded, cycles cut)."""
    chain: list[Any] = []
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen and len(chain) < MAX_CHAIN:
        chain.append(obj)
        seen.add(id(obj))
        try:
            obj = getattr(obj, "__wrapped__", None)
        except Exception:  # a property that raises: the chain ends here
            break
    return chain


def identities(view: Any) -> set[int]:
    """Ids of ``view``, of what it wraps, and of the ``View`` class of each (``as_view``)."""
    found: set[int] = set()
    for obj in unwrapped(view):
        found.add(id(obj))
        try:
            view_class = getattr(obj, "view_class", None)
        except Exception:
            view_class = None
        if view_class is not None:
            found.add(id(view_class))
    return found


def describe(obj: Any) -> str:
    """``module.qualname`` of a marked object, for messages (never raises)."""
    try:
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        module = getattr(obj, "__module__", None)
        if not isinstance(name, str):
            return object.__repr__(obj)
        return f"{module}.{name}" if isinstance(module, str) else name
    except Exception:
        return object.__repr__(obj)


class Exemptions:
    """Objects marked with ``@timer.exempt``; one per ``RouteTimer``, shared by its apps.

    Kept by id, so an unhashable callable can be marked too; the objects are kept alive, so an
    id is never reused while it is marked.
    """

    def __init__(self, apps: weakref.WeakSet[Flask]) -> None:
        self._marked: dict[int, Any] = {}
        #: The apps whose views may carry the marks: the ``RouteTimer``'s own set, shared.
        self._apps = apps
        self._caches: weakref.WeakSet[Clearable] = weakref.WeakSet()
        self._warned: set[int] = set()
        #: Counts the marks added: what a route cache worked out for an older version is stale.
        self.version = 0

    def add(self, obj: Any) -> None:
        """Mark ``obj``; route caches filled before forget what they knew."""
        self._marked[id(obj)] = obj
        self.version += 1
        for cache in list(self._caches):
            cache.clear()

    def watch(self, cache: Clearable) -> None:
        """Clear ``cache`` whenever a mark is added."""
        self._caches.add(cache)

    def resolve(self, views: Iterable[Any]) -> tuple[dict[int, Any], set[int]]:
        """The exempt ones among ``views`` (by id), and the marks that reach none of them."""
        marked = dict(self._marked)  # a snapshot: another thread may mark meanwhile
        by_id = {id(view): view for view in views}
        exempt: dict[int, Any] = {}
        covered: set[int] = set()
        for view in by_id.values():
            found = identities(view) & marked.keys()
            if found:  # the view, or something it wraps, is marked
                exempt[id(view)] = view
                covered |= found
        unreached: set[int] = set()
        for mark in marked.keys() - covered:
            # A mark on a wrapper of the registered view (@timer.exempt above the other decorator).
            inner = [obj for obj in unwrapped(marked[mark]) if by_id.get(id(obj)) is obj]
            exempt.update((id(obj), obj) for obj in inner)
            if not inner:
                unreached.add(mark)
        return exempt, unreached

    def unreached(self, app: Flask, unreached: set[int]) -> dict[int, str]:
        """The marks in ``unreached`` (no view of ``app`` reaches them) that no view of another
        app this timer serves reaches either, with their names: each app has its own views."""
        for other in list(self._apps):
            if other is not app and unreached:
                unreached = unreached & self.resolve(other.view_functions.values())[1]
        return {mark: describe(self._marked[mark]) for mark in unreached}

    def warn(self, unreached: dict[int, str]) -> None:
        """Log one warning naming each mark no view reaches, once per mark."""
        fresh = sorted(name for mark, name in unreached.items() if mark not in self._warned)
        self._warned.update(unreached)
        if fresh:
            logger.warning("flask-routetimer: %s", unreached_message(fresh))


def unreached_message(names: list[str]) -> str:
    """What is wrong with marks that reach no view, and how to fix it."""
    return (
        f"@timer.exempt has no effect on {', '.join(names)}: no registered view is, wraps or is "
        "wrapped by it, so its route is still timed. A decorator between @timer.exempt and "
        "@app.route that does not use functools.wraps hides the view: add "
        "@functools.wraps(view) to that decorator, or put @timer.exempt directly above "
        "@app.route."
    )
