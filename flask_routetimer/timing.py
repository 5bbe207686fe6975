"""The record of one timed request, as handed to ``request_timed`` receivers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .attributes import is_failure


@dataclass(frozen=True)
class RouteTiming:
    """How long one request took, and how it ended."""

    #: Flask endpoint name, e.g. ``"predict_v1"``; None when no rule matched.
    endpoint: Optional[str]
    #: URL rule template, e.g. ``"/hello/<name>"``; None when no rule matched (404, 405).
    route: Optional[str]
    #: HTTP method as served (``"GET"``), or ``"_OTHER"`` for a non-standard one.
    method: str
    #: Response status code; None when no response was produced (exception propagated).
    status_code: Optional[int]
    #: Seconds from request start to the end of the response (last byte for streamed bodies),
    #: measured on a monotonic clock.
    duration: float
    #: The unhandled exception, if the request raised one.
    exception: Optional[BaseException]
    #: Trace id as 32 hex digits, or None when no span was recorded (not sampled, no SDK).
    trace_id: Optional[str]
    #: Span id as 16 hex digits, or None when no span was recorded.
    span_id: Optional[str] = None
    #: Seconds from request start to the first non-empty chunk of a streamed body; None when the
    #: body was not streamed or sent nothing (HEAD, 204, 304, an empty stream).
    time_to_first_byte: Optional[float] = None

    @property
    def failed(self) -> bool:
        """True for an unhandled exception or a 5xx response."""
        return is_failure(self.exception, self.status_code)
