"""One view of a whole server: statistics and recent traces shared by its worker processes.

Pre-forking servers (gunicorn, uWSGI) run an app in several processes, each with its own
statistics table and trace buffer. With ``ROUTETIMER_MULTIPROC_DIR`` set, every worker
publishes both to that directory, and whoever reads (``timer.stats()``, the dashboard) merges
every worker's files with its own live figures.

- Never on the request path: a daemon thread, started by the first timed request of each
  process (so a gunicorn ``--preload`` master that serves nothing writes nothing, and a forked
  child starts its own), writes at most every ``ROUTETIMER_MULTIPROC_INTERVAL`` seconds and
  once more at exit, and only what changed.
- Files are data only (JSON, never pickle: a directory others can write must not become code
  execution), written to a temporary file and renamed, created 0600. A file that is corrupt,
  truncated, foreign or of a future version is skipped with one logged warning.
- A worker's files outlive it, so counts never go down when a worker exits or is killed and
  replaced. Files of exited workers are compacted into one ``exited.json`` (by
  :func:`mark_process_dead`, gunicorn's ``child_exit``, or by any writer that finds their
  process gone), so reading stays fast after thousands of restarts.

The view is per host: processes on other machines publish elsewhere. Across hosts the
OpenTelemetry metrics and traces exported to a backend are the shared view. The files
themselves (format, validation, compaction) are ``multiproc_files``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Optional, Union

from . import sketchcodec
from ._fence import report
from .multiproc_files import (
    DIR_KEY,
    EXITED,
    LOCK,
    TEMP_FILE,
    WORKER_FILE,
    DirectoryView,
    FileCache,
    WorkerStats,
    compact,
    header,
    newest_traces,
    pid_alive,
    pid_of,
    read_directory,
    worker_files,
    write_file,
)
from .sketchtable import SketchTable, merge_tables, table_of
from .stats import (
    RouteStatsTable,
    StatsSnapshot,
    snapshot_of,
)
from .tracebuffer import TraceBuffer
from .tracedata import TraceData, from_record, trace_to_data

__all__ = [
    "Multiproc",
    "WorkerInfo",
    "mark_process_dead",
    "prepare_directory",
]

#: A writer looks for exited workers' files every this many intervals (and at its first write).
COMPACT_EVERY = 30

PathLike = Union[str, "os.PathLike[str]"]


# --- Worker processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerInfo:
    """One worker process a merged view covers (or all exited ones together: ``pid`` None)."""

    pid: Optional[int]
    age: float  # seconds since its statistics were last written
    requests: int
    alive: bool
    current: bool = False  # the process answering this request
    processes: int = 1  # exited workers compacted into one entry


def mark_process_dead(
    pid: int, directory: Optional[PathLike] = None, *, max_routes: int = 1000
) -> int:
    """Fold an exited worker's files into ``exited.json`` now: for gunicorn's ``child_exit``.

    Its statistics and traces keep counting; only the number of files shrinks. ``directory``
    defaults to the ``ROUTETIMER_MULTIPROC_DIR`` environment variable; ``max_routes`` bounds
    the compacted rows like ``ROUTETIMER_MAX_ROUTES`` (pass the app's if it is larger). Returns
    the number of workers folded (0 if the worker never published).
    """
    path = _directory(directory)
    workers = {worker for worker in worker_files(path) if pid_of(worker) == pid}
    return compact(path, workers, max_routes) if workers else 0


def prepare_directory(directory: Optional[PathLike] = None) -> str:
    """Create the directory (0700) if missing and remove files of an earlier run of the server.

    Call it when the server starts, before any worker (gunicorn's ``on_starting``), so a
    restarted server does not add up the statistics of the last one. Only this module's files
    are removed. Returns the directory's path.
    """
    path = _directory(directory)
    os.makedirs(path, mode=0o700, exist_ok=True)
    with os.scandir(path) as entries:
        for entry in entries:
            if (
                WORKER_FILE.fullmatch(entry.name)
                or TEMP_FILE.fullmatch(entry.name)
                or entry.name in (EXITED, LOCK)
            ):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    return path


def _directory(directory: Optional[PathLike]) -> str:
    if directory is None:
        directory = os.environ.get(DIR_KEY)
        if not directory:
            raise ValueError(f"No directory given and the {DIR_KEY} environment variable is unset.")
    return os.path.abspath(os.fspath(directory))


# --- Writing: one publisher per app and process -----------------------------------------------


class Multiproc:
    """An app's link to the shared directory: publishes this process, reads all of them."""

    def __init__(
        self, directory: str, interval: float, stats: RouteStatsTable, traces: TraceBuffer
    ) -> None:
        self.directory = directory
        self.interval = interval
        self._stats = stats
        self._traces = traces
        #: Whether this process's writer runs; reset in a forked child. Read on every request.
        self.started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.cache = FileCache()
        self._others_merged: Optional[
            tuple[tuple[int, ...], list[Optional[WorkerStats]], SketchTable]
        ] = None
        self._new_identity()
        _publishers.add(self)

    def _new_identity(self) -> None:
        self.pid = os.getpid()
        self.worker = f"{self.pid}-{secrets.token_hex(8)}"
        self._last_stats: Optional[tuple[int, int]] = None
        self._last_traces: Optional[tuple[str, ...]] = None
        self._trace_data: dict[str, dict[str, Any]] = {}
        self.last_written = 0.0
        self.writes = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start this process's writer thread (called by its first timed request)."""
        with _identity_lock:  # a new process's first requests may arrive on several threads
            if self.pid != os.getpid():  # forked without os.fork's hooks (uWSGI forks in C)
                self._after_fork_in_child()
        with self._lock:
            if self.started:
                return
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._run, name="flask-routetimer multiproc writer", daemon=True
            )
            thread.start()
            self._thread = thread
            self.started = True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer and write a last time (at exit; also for tests)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self.started:
            self.publish()
            self.started = False  # nothing more at exit

    def _after_fork_in_child(self) -> None:
        """A forked child is a new worker: its own identity and writer, and it publishes only
        its own requests (the parent publishes those it served before the fork)."""
        self._lock = threading.Lock()
        self.started = False
        self._thread = None
        self._new_identity()
        # Traces the parent kept stay in the copied buffer; readers drop duplicates by id.
        self._stats.reset()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()

    # -- one write -----------------------------------------------------------------------

    def publish(self) -> None:
        """Write what changed since the last write; every so often compact exited workers."""
        try:
            with self._lock:
                self._publish_stats()
                self._publish_traces()
                if self.writes % COMPACT_EVERY == 0:
                    compact(self.directory, None, self._stats.max_routes)
                self.writes += 1
        except Exception as exc:
            report("publishing statistics to ROUTETIMER_MULTIPROC_DIR", exc)

    def _publish_stats(self) -> None:
        mark = self._stats.fingerprint()
        if mark == self._last_stats:
            return
        data = header("stats")
        data["pid"] = os.getpid()
        data.update(sketchcodec.encode(self._stats.sketches()))
        write_file(self.directory, f"stats-{self.worker}.json", data)
        self._last_stats = mark
        self.last_written = data["written"]

    def _publish_traces(self) -> None:
        if self._traces.unavailable is not None:
            return
        records = self._traces.traces()
        ids = tuple(record.trace_id for record in records)
        if ids == self._last_traces:
            return
        pid = os.getpid()
        cached = self._trace_data
        # Only new traces are converted; a trace's late child spans are not republished.
        self._trace_data = {
            record.trace_id: cached.get(record.trace_id) or trace_to_data(from_record(record, pid))
            for record in records
        }
        data = header("traces")
        data["capacity"] = self._traces.capacity
        data["traces"] = list(self._trace_data.values())
        write_file(self.directory, f"traces-{self.worker}.json", data)
        self._last_traces = ids

    # -- reading -------------------------------------------------------------------------

    def source(self) -> MergedSource:
        """What the dashboard reads: every worker's figures, merged."""
        return MergedSource(self)

    def view(self, stats: bool = True, traces: bool = True) -> DirectoryView:
        """Every other worker's published files (statistics, traces or both)."""
        return read_directory(self.directory, self.cache, self.worker, stats, traces)

    def merged_stats(self) -> StatsSnapshot:
        """This process's live table merged with every other worker's published one."""
        return self._merge(self.view(traces=False))[0]

    def _others(self, view: DirectoryView) -> SketchTable:
        """Every other worker's sketches, merged; reused while their files are unchanged (the
        file cache then returns the very same parsed objects)."""
        files: list[Optional[WorkerStats]] = [*view.stats, view.exited]
        key = tuple(id(stats) for stats in files)
        cached = self._others_merged
        if (
            cached is not None
            and cached[0] == key
            and all(a is b for a, b in zip(cached[1], files))
        ):
            return cached[2]
        merged = merge_tables(stats.table for stats in files if stats is not None)
        self._others_merged = (key, files, merged)
        return merged

    def _merge(self, view: DirectoryView) -> tuple[StatsSnapshot, list[WorkerInfo]]:
        now = time.time()
        own = self._stats.sketches()
        sketches = merge_tables([table_of(own), self._others(view)]).sketches()
        workers: list[WorkerInfo] = []
        if self.started or own:
            age = now - self.last_written if self.last_written else 0.0
            requests = sum(s.count for s in own)
            workers.append(WorkerInfo(os.getpid(), age, requests, True, current=True))
        for stats in view.stats:
            assert stats.pid is not None
            alive = pid_alive(stats.pid)
            workers.append(WorkerInfo(stats.pid, now - stats.written, stats.requests, alive))
        if view.exited is not None:
            exited = view.exited
            age = now - exited.written
            workers.append(
                WorkerInfo(None, age, exited.requests, False, processes=exited.processes)
            )
        processes = sum(worker.processes for worker in workers)
        return snapshot_of(sketches, self._stats.max_routes, processes), workers

    def recent_traces(self, view: DirectoryView) -> list[TraceData]:
        """This process's and every other worker's traces, newest first, within the buffer's
        bound (``ROUTETIMER_TRACE_BUFFER`` traces in all)."""
        own = [from_record(record, os.getpid()) for record in self._traces.traces()]
        groups = [own, *(group.traces for group in view.traces)]
        return newest_traces(groups, self._traces.capacity)


_publishers: weakref.WeakSet[Multiproc] = weakref.WeakSet()
_identity_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _identity_lock
    _identity_lock = threading.Lock()  # a thread of the parent may have held it at the fork
    for publisher in list(_publishers):
        publisher._after_fork_in_child()


def _at_exit() -> None:
    """The final write of every publisher that ran in this process."""
    for publisher in list(_publishers):
        if publisher.started:
            publisher.stop(timeout=1.0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


class MergedSource:
    """The dashboard's view of a whole server (see ``dashboard.source.Source``)."""

    def __init__(self, multiproc: Multiproc) -> None:
        self._multiproc = multiproc
        self._views: dict[str, DirectoryView] = {}
        self._merged: Optional[tuple[StatsSnapshot, list[WorkerInfo]]] = None

    def _read(self, what: str) -> DirectoryView:
        """Each kind of file read once per dashboard request, and only if the page needs it:
        ``/api/stats`` parses no trace, ``/api/traces/<id>`` no statistics."""
        if what not in self._views:
            self._views[what] = self._multiproc.view(what == "stats", what == "traces")
        return self._views[what]

    def _merge(self) -> tuple[StatsSnapshot, list[WorkerInfo]]:
        if self._merged is None:
            self._merged = self._multiproc._merge(self._read("stats"))
        return self._merged

    @property
    def unavailable(self) -> Optional[str]:
        return self._multiproc._traces.unavailable

    def stats(self) -> StatsSnapshot:
        return self._merge()[0]

    def workers(self) -> list[WorkerInfo]:
        return self._merge()[1]

    def traces(self) -> list[TraceData]:
        if self.unavailable is not None:
            return []
        return self._multiproc.recent_traces(self._read("traces"))

    def trace(self, trace_id: str) -> Optional[TraceData]:
        if self.unavailable is not None:
            return None
        record = self._multiproc._traces.get(trace_id)
        if record is not None:
            return from_record(record, os.getpid())
        wanted = trace_id.lower()
        for group in self._read("traces").traces:
            for trace in group.traces:
                if trace.trace_id == wanted:
                    return trace
        return None
