"""Child spans for inner work: ``with timer.timed("name"):`` or ``@timer.timed``."""

from __future__ import annotations

import functools
import inspect
import threading
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Callable, Optional, Protocol, TypeVar, cast

from opentelemetry import trace
from opentelemetry.util.types import Attributes

F = TypeVar("F", bound=Callable[..., Any])


class TracerSource(Protocol):
    """What ``ChildSpan`` needs: the current tracer (swapped by ``testing.capture``)."""

    tracer: trace.Tracer


class ChildSpan:
    """A child span of whatever span is current; a context manager and a decorator.

    As a decorator, each call gets its own span named after the function (or the given name) and
    the function keeps its ``__name__``, ``__qualname__``, ``__doc__`` and ``__wrapped__``. The
    tracer is read from ``source`` each time a span starts, not when the decorator is applied.
    """

    def __init__(
        self, source: TracerSource, name: Optional[str], attributes: Attributes = None
    ) -> None:
        self._source = source
        self._name = name
        self._attributes = attributes
        self._local = threading.local()  # one instance may be entered in several threads

    def __enter__(self) -> trace.Span:
        if self._name is None:
            raise TypeError(
                "timer.timed() needs a span name when used with 'with': timer.timed('load-model')."
            )
        manager = self._source.tracer.start_as_current_span(self._name, attributes=self._attributes)
        stack: list[AbstractContextManager[trace.Span]] = self._local.__dict__.setdefault(
            "stack", []
        )
        span = manager.__enter__()
        stack.append(manager)
        return span

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._local.stack.pop().__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        name = self._name or func.__qualname__
        timed = ChildSpan(self._source, name, self._attributes)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with timed:
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with timed:
                return func(*args, **kwargs)

        return cast(F, wrapper)
