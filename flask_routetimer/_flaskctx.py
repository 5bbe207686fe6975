"""Which Flask context a request runs in, across Flask 2.3-3.1 and 3.2's merged contexts.

The request lifecycle must tell the request's own context from a copy of it
(``copy_current_request_context``) and know when that context's final pop has begun, even when
a teardown function or another receiver raised before ours. Flask has no public API for either,
so this module reads what each Flask version keeps, in one place, and answers "don't know"
(never "over") for a version it does not recognise.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional

from flask import globals as flask_globals

#: Flask <= 3.1 keeps the request context apart; 3.2 keeps the request on the app context.
#: ``REQUEST_CONTEXT.get(None)`` is :func:`request_context` without the call (the hot path).
REQUEST_CONTEXT: ContextVar[Any] = (
    getattr(flask_globals, "_cv_request", None) or flask_globals._cv_app
)


def request_context() -> Optional[object]:
    """The context object of the request being served here, or None."""
    ctx: Optional[object] = REQUEST_CONTEXT.get(None)
    return ctx


def is_popped(ctx: object) -> bool:
    """True once the context's final pop has begun: its request is over, whatever failed."""
    tokens = getattr(ctx, "_cv_tokens", None)
    if isinstance(tokens, list):  # Flask <= 3.1: one token per push, dropped as it pops
        return not tokens
    pushes = getattr(ctx, "_push_count", None)
    if isinstance(pushes, int):  # Flask 3.2: a count of pushes, 0 once the last pop starts
        return pushes <= 0
    return False
