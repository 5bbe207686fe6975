"""One log line per timed request (``ROUTETIMER_LOG_REQUESTS``): ``GET /hello/<name> 200 0.4 ms``.

The lines go to the ``flask_routetimer.requests`` logger at INFO. Someone running
``flask --debug run`` for the first time has configured no logging, where Python would drop an
INFO line, so the first line logged in a process makes the logger show its lines the way Flask
makes ``app.logger`` show its own in debug mode: the logger's level is set to INFO unless the
user set one, and a stderr handler is added that writes only records no other handler up the
hierarchy takes, so configured logging (now or later) never shows a line twice.

Nothing the client sent is written: the route is the URL rule's template (``(no route)`` for a
404), the method is the normalised one (``_OTHER`` for an unknown method), and anything that is
not printable is escaped, so a line cannot be forged or split.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, Optional

from ._fence import report

if TYPE_CHECKING:
    from .record import RequestRecord

logger = logging.getLogger("flask_routetimer.requests")

#: What the line shows for a request that matched no URL rule (404, 405): never the raw path.
NO_ROUTE = "(no route)"
_MAX_FIELD = 200  # characters of a route template or exception name written at most


class _ShownHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` a record that no other handler would take."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("[routetimer] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if _handled_elsewhere(record, self):
            return
        try:
            sys.stderr.write(self.format(record) + "\n")  # the current stderr, as lastResort
        except Exception:
            self.handleError(record)


def _handled_elsewhere(record: logging.LogRecord, this: logging.Handler) -> bool:
    """Whether another handler from ``logger`` up to the root takes the record."""
    current: Optional[logging.Logger] = logger
    while current is not None:
        if any(h is not this and record.levelno >= h.level for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


_HANDLER = _ShownHandler()
_shown = False
_lock = threading.Lock()


def show_lines() -> None:
    """Make the lines visible without any logging configured; once per process, so a level or
    handler the user changes afterwards stays as they left it."""
    global _shown
    with _lock:
        if _shown:
            return
        _shown = True
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)


def printable(text: str) -> str:
    """``text`` with anything that is not printable escaped (``\\n``, ``\\x1b``), shortened."""
    if len(text) > _MAX_FIELD:
        text = text[:_MAX_FIELD] + "…"
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def line_args(record: RequestRecord, duration: float, ttfb: Optional[float]) -> tuple[object, ...]:
    """The line's arguments: method, route, status, duration in ms and the tail."""
    info = record.info
    route = NO_ROUTE if info.route is None else printable(info.route)
    status = "-" if record.status_code is None else record.status_code
    tail = "" if ttfb is None else f" (first byte {ttfb * 1000:.1f} ms)"
    if record.exception is not None:
        tail += " " + printable(type(record.exception).__name__)
    return (printable(info.method), route, status, duration * 1000, tail)


def log_request(record: RequestRecord, duration: float, ttfb: Optional[float]) -> None:
    """Log the finished request's line; a failing handler or filter never reaches the request."""
    if not _shown:
        show_lines()
    try:
        logger.info("%s %s %s %.1f ms%s", *line_args(record, duration, ttfb))
    except Exception as exc:
        try:
            report("logging a request (ROUTETIMER_LOG_REQUESTS)", exc)
        except Exception:  # the logging itself is broken: there is nowhere left to say so
            pass
