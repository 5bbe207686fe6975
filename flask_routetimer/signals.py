"""Signals sent by flask-routetimer, in its own blinker namespace."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent once per timed request, when its span ends (after the last byte of a streamed body),
#: with the app as sender and ``timing`` (a :class:`~flask_routetimer.RouteTiming`) as keyword
#: argument. A receiver that raises is logged once and never changes the response.
request_timed = _signals.signal("request-timed")
