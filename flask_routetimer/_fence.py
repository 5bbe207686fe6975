"""Fencing of the extension's own work: an error here must never reach the user's request."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("flask_routetimer")

_MAX_CAUSES = 256
_seen: set[tuple[str, str]] = set()
_lock = threading.Lock()


def report(where: str, exc: BaseException) -> None:
    """Log an internal failure with its traceback once per cause, later ones at debug level.

    A cause is the place plus the exception's type, so a receiver failing on every request does
    not flood the log, while a new kind of failure is still seen.
    """
    cause = (where, f"{type(exc).__module__}.{type(exc).__qualname__}")
    with _lock:
        # Past the cap, new causes go to debug too: a full set must not mean an error per request.
        first = cause not in _seen and len(_seen) < _MAX_CAUSES
        if first:
            _seen.add(cause)
    if first:
        logger.error(
            "flask-routetimer: %s failed; the request goes on (logged once per cause).",
            where,
            exc_info=exc,
        )
    else:
        logger.debug("flask-routetimer: %s failed again: %r", where, exc)


def forget_reported() -> None:
    """Forget which causes were logged (for tests)."""
    with _lock:
        _seen.clear()
