"""Knowing whether a streamed body reached its end, without touching the view.

By the time ``Response.call_on_close`` callbacks run, Werkzeug has already closed the body, and a
generator that was exhausted looks exactly like one that was closed half-way (both are
``GEN_CLOSED``). So the only honest way to tell "the client got every chunk" from "the server
stopped sending" is to watch the iteration itself: :class:`WatchedBody` replaces
``response.response`` after the view and every ``after_request`` hook have run (on
``request_finished``), passes each chunk through unchanged, and notes when the body ran out or
raised. It is a plain iterator (no generator frame), keeps ``close()`` forwarding to the original
body, and is only used for lazy bodies that will actually be sent.

It also notes when the first non-empty chunk is handed to the server (time to first byte): until
then ``__next__`` checks each chunk; after it the object becomes a :class:`_SendingBody`, whose
``__next__`` has no check, so later chunks cost nothing more than before.

Limits: "exhausted" means the WSGI server pulled the last chunk from the app; whether the bytes of
that chunk reached the client is known only to the server. A client that disconnects after the
last chunk was handed over is not reported as cut short.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from time import perf_counter
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from werkzeug.wrappers import Response
from werkzeug.wsgi import ClosingIterator

#: Seconds from the request's start to its first non-empty streamed chunk (span attribute).
TIME_TO_FIRST_BYTE = "routetimer.time_to_first_byte"


class WatchedBody:
    """Iterate ``body`` unchanged; report an error it raises, whether it reached its end, and
    when its first non-empty chunk went out.

    Each chunk is produced with the request's OpenTelemetry context attached (``context``), so
    spans started while the body is generated (a CSV export querying chunk by chunk) are
    children of the request span, although the request's teardown has detached it by then.
    """

    __slots__ = ("_body", "_iterator", "_on_error", "_context", "exhausted", "first_byte")

    def __init__(
        self,
        body: Iterable[Any],
        on_error: Callable[[BaseException], None],
        context: Optional[otel_context.Context] = None,
    ) -> None:
        self._body = body
        self._iterator: Optional[Iterator[Any]] = None
        self._on_error = on_error
        self._context = context
        self.exhausted = False
        #: ``perf_counter()`` when the first non-empty chunk was handed over; None before.
        self.first_byte: Optional[float] = None

    def __iter__(self) -> WatchedBody:
        return self

    def __next__(self) -> Any:
        chunk = self._next()
        if chunk:  # an empty chunk sends no byte
            self.first_byte = perf_counter()
            self.__class__ = _SendingBody  # later chunks skip this check
        return chunk

    def _next(self) -> Any:
        context = self._context
        if context is not None and self._iterator is None and otel_context.get_current() is context:
            # The request's context is still attached (stream_with_context keeps the request
            # open until the body ends): attaching it again around each chunk would only fight
            # the generator's own attach/detach across its yields.
            context = self._context = None
        token = None if context is None else otel_context.attach(context)
        try:
            if self._iterator is None:
                self._iterator = iter(self._body)
            return next(self._iterator)
        except StopIteration:
            self.exhausted = True
            raise
        except Exception as exc:
            self._on_error(exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)

    def time_to_first_byte(self, start: float) -> Optional[float]:
        """Seconds from ``start`` (a ``perf_counter()`` value) to the first byte; None if no
        byte was sent."""
        if self.first_byte is None:
            return None
        return max(self.first_byte - start, 0.0)  # time can go backwards

    def close(self) -> None:
        """Close the original body (Werkzeug's ``Response.close`` calls this first)."""
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


class _SendingBody(WatchedBody):
    """A :class:`WatchedBody` past its first byte: chunks go through without the check."""

    __slots__ = ()
    __next__ = WatchedBody._next  # the same work per chunk as before time to first byte existed


def sends_body(method: str, status_code: int) -> bool:
    """False where Werkzeug sends no body at all (HEAD, 1xx, 204, 304), as ``get_app_iter`` does."""
    return method != "HEAD" and not (100 <= status_code < 200 or status_code in (204, 304))


def is_lazy_body(response: Response) -> bool:
    """True when the body is produced while the server sends it (generator, stream_with_context).

    Two streamed-looking bodies are not: a ``ClosingIterator`` is an HTTPException (``abort()``,
    404) that Flask ran as a WSGI app, already in memory; a ``direct_passthrough`` body (files
    from ``send_file``) goes to the server as is, without the response's close callbacks, so its
    span ends at teardown when the file is handed over.
    """
    return (
        response.is_streamed
        and not response.direct_passthrough
        and not isinstance(response.response, ClosingIterator)
    )
