"""Where the dashboard reads statistics and traces: this process, or every worker's merged.

The pages and the JSON API see only this small interface, so whether they show one process
or a whole server (``ROUTETIMER_MULTIPROC_DIR``) is decided in one place, :func:`source_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol

from ..multiproc import WorkerInfo
from ..stats import StatsSnapshot
from ..tracedata import TraceData, from_record

if TYPE_CHECKING:
    from ..state import AppState


class Source(Protocol):
    """What the dashboard reads."""

    @property
    def unavailable(self) -> Optional[str]:
        """Why no trace can be shown, or None."""

    def stats(self) -> StatsSnapshot: ...

    def traces(self) -> list[TraceData]:
        """Recent request traces, newest first."""

    def trace(self, trace_id: str) -> Optional[TraceData]: ...

    def workers(self) -> Optional[list[WorkerInfo]]:
        """The worker processes covered, or None for this process alone."""


class LocalSource:
    """This process's own statistics and trace buffer."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    @property
    def unavailable(self) -> Optional[str]:
        return self._state.traces.unavailable

    def stats(self) -> StatsSnapshot:
        return self._state.stats.snapshot()

    def traces(self) -> list[TraceData]:
        if self.unavailable is not None:
            return []
        return [from_record(record) for record in self._state.traces.traces()]

    def trace(self, trace_id: str) -> Optional[TraceData]:
        record = self._state.traces.get(trace_id) if self.unavailable is None else None
        return from_record(record) if record is not None else None

    def workers(self) -> Optional[list[WorkerInfo]]:
        return None


def source_of(state: AppState) -> Source:
    """The merged view when the app publishes to a multiprocess directory, else this process."""
    return state.multiproc.source() if state.multiproc is not None else LocalSource(state)
