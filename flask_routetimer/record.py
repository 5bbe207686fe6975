"""The record of one request being timed, and where the request in flight is kept.

The record lives in a ``ContextVar``: like ``flask.g`` it is per request and invisible to other
threads (``copy_current_request_context``), but reading it costs ~30 ns against ~0.5 us for a
``g`` lookup through Flask's proxy, several times on every request.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from typing import Optional, Protocol

from flask import Flask
from opentelemetry import context as otel_context
from opentelemetry import trace

from ._body import WatchedBody
from .metrics import Counted
from .routes import RouteInfo
from .templates import RenderStack


class Owner(Protocol):
    """What times the record's request (its app's lifecycle); it can end it from elsewhere."""

    def abandon(self, record: RequestRecord, exception: Optional[BaseException]) -> None: ...


class RequestRecord:
    """One timed request in flight."""

    __slots__ = (
        "owner",
        "ctx",
        "app",
        "info",
        "span",
        "context",
        "context_token",
        "record_token",
        "thread",
        "start",
        "counted",
        "protocol",
        "status_code",
        "exception",
        "streaming",
        "body",
        "ended",
        "renders",
    )

    def __init__(
        self, owner: Owner, ctx: Optional[object], app: Flask, info: RouteInfo, start: float
    ) -> None:
        self.owner = owner
        #: Flask's context object of the request (tells the request from a copy of its context).
        self.ctx = ctx
        self.app = app
        self.info = info
        self.span: trace.Span = trace.INVALID_SPAN
        #: The OpenTelemetry context the request runs in, and the token of attaching it.
        self.context: Optional[otel_context.Context] = None
        self.context_token: Optional[object] = None
        #: The token of setting this record as the request in flight (:data:`IN_FLIGHT`).
        self.record_token: Optional[Token[Optional[RequestRecord]]] = None
        self.thread = threading.get_ident()
        self.start = start
        # Once counted in active requests: its (method, scheme), the set it was counted in, and
        # its token there (a bare object, so a request whose body a server never closes leaves
        # 16 bytes behind, not its span).
        self.counted: Optional[Counted] = None
        self.protocol: Optional[str] = None
        self.status_code: Optional[int] = None
        self.exception: Optional[BaseException] = None
        self.streaming = False
        self.body: Optional[WatchedBody] = None
        self.ended = False
        self.renders: Optional[RenderStack] = None  # template renders, once one started


#: The request being timed in this thread/context (the receivers read it directly: one
#: ``get``, no function call, several times per request).
IN_FLIGHT: ContextVar[Optional[RequestRecord]] = ContextVar(
    "flask_routetimer.request", default=None
)


def in_flight() -> Optional[RequestRecord]:
    """The request being timed here, of any app."""
    return IN_FLIGHT.get()


def current_record(app: Flask) -> Optional[RequestRecord]:
    """This app's request being timed here, if any (a nested request to another app is not)."""
    record = IN_FLIGHT.get()
    return record if record is not None and record.app is app else None


def set_current(record: RequestRecord) -> None:
    """Make ``record`` the request in flight here."""
    record.record_token = IN_FLIGHT.set(record)


def detach(record: RequestRecord) -> None:
    """Forget the request here and restore the OpenTelemetry context, once."""
    record_token, record.record_token = record.record_token, None
    if record_token is not None:
        try:
            IN_FLIGHT.reset(record_token)
        except ValueError:  # torn down in another context than it started in
            IN_FLIGHT.set(None)
    context_token, record.context_token = record.context_token, None
    if context_token is not None:
        otel_context.detach(context_token)  # type: ignore[arg-type]
