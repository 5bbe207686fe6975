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
OpenTelemetry metrics and traces exported to a backend are the shared view.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ._fence import report
from .stats import (
    RouteSketch,
    RouteStatsTable,
    StatsSnapshot,
    bounded_merge,
    merge_sketches,
    snapshot_of,
)
from .tracebuffer import TraceBuffer
from .tracedata import TraceData, from_record, trace_from_data, trace_to_data

try:  # POSIX only: without it, exited workers' files are kept (still counted), not compacted
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Multiproc",
    "WorkerInfo",
    "mark_process_dead",
    "prepare_directory",
]

logger = logging.getLogger("flask_routetimer")

DIR_KEY = "ROUTETIMER_MULTIPROC_DIR"
FORMAT = "flask-routetimer/multiproc"
VERSION = 1
EXITED = "exited.json"
LOCK = ".compact.lock"
#: A writer looks for exited workers' files every this many writes (and at its first).
COMPACT_EVERY = 30
_WORKER_FILE = re.compile(r"(stats|traces)-(\d+)-([0-9a-f]{16})\.json")
_TEMP_FILE = re.compile(r"\.(?:stats|traces|exited)[-\w.]*\.tmp")

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


# --- Warnings, once per cause -----------------------------------------------------------------

_MAX_WARNED = 256
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(name: str, reason: str) -> None:
    """One warning per (file, reason): a bad file read on every refresh must not flood the log."""
    cause = (name, reason)
    with _warned_lock:
        first = cause not in _warned and len(_warned) < _MAX_WARNED
        if first:
            _warned.add(cause)
    level = logging.WARNING if first else logging.DEBUG
    logger.log(
        level, "flask-routetimer: skipped %s in the multiprocess directory: %s", name, reason
    )


def forget_warnings() -> None:
    """Forget which files were warned about (for tests)."""
    with _warned_lock:
        _warned.clear()


# --- Files ------------------------------------------------------------------------------------


def _header(kind: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "kind": kind, "written": time.time()}


def write_file(directory: str, name: str, data: Mapping[str, Any]) -> None:
    """Atomically replace ``name``: readers see the old file or the new one, never a part."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, os.path.join(directory, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class BadFile(ValueError):
    """A file that is not one of ours, of a future version, or not valid."""


def check_header(data: Any, kind: str) -> dict[str, Any]:
    """The parsed file if it is ours, of this version and kind; BadFile otherwise."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadFile("not a flask-routetimer file")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadFile("no format version")
    if version > VERSION:
        raise BadFile(f"format version {version}, newer than this flask-routetimer reads")
    if data.get("kind") != kind:
        raise BadFile(f"a {data.get('kind')!r} file where a {kind!r} file was expected")
    written = data.get("written")
    if isinstance(written, bool) or not isinstance(written, (int, float)):
        raise BadFile("no time of writing")
    return data


@dataclass(frozen=True)
class WorkerStats:
    """One worker's published statistics (or those of all exited workers: ``pid`` None)."""

    worker: str
    pid: Optional[int]
    written: float
    routes: tuple[RouteSketch, ...]
    processes: int = 1
    absorbed: frozenset[str] = frozenset()  # for exited.json: worker ids compacted into it

    @property
    def requests(self) -> int:
        return sum(route.count for route in self.routes)


@dataclass(frozen=True)
class WorkerTraces:
    worker: str
    capacity: int
    traces: tuple[TraceData, ...]


def _sketches(data: dict[str, Any]) -> tuple[RouteSketch, ...]:
    routes = data.get("routes")
    if not isinstance(routes, list):
        raise BadFile("no list of routes")
    return tuple(RouteSketch.from_data(route) for route in routes)


def _traces(data: dict[str, Any]) -> tuple[TraceData, ...]:
    traces = data.get("traces")
    if not isinstance(traces, list):
        raise BadFile("no list of traces")
    return tuple(trace_from_data(trace) for trace in traces)


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFile(f"{key} must be a non-negative integer")
    return value


def parse_stats(text: Union[str, bytes], worker: str, pid: Optional[int]) -> WorkerStats:
    """A stats file (or, with ``pid`` None, ``exited.json``) read and validated."""
    data = check_header(json.loads(text), "stats" if pid is not None else "exited")
    if pid is not None:
        return WorkerStats(worker, pid, data["written"], _sketches(data))
    absorbed = data.get("absorbed")
    if not isinstance(absorbed, list) or not all(isinstance(w, str) for w in absorbed):
        raise BadFile("absorbed must be a list of worker ids")
    return WorkerStats(
        worker,
        None,
        data["written"],
        _sketches(data),
        _count(data, "processes"),
        frozenset(absorbed),
    )


def parse_traces(text: Union[str, bytes], worker: str) -> WorkerTraces:
    data = check_header(json.loads(text), "traces")
    return WorkerTraces(worker, _count(data, "capacity"), _traces(data))


def parse_exited(text: Union[str, bytes]) -> tuple[WorkerStats, WorkerTraces]:
    """``exited.json``: the compacted statistics and traces of every exited worker."""
    stats = parse_stats(text, "exited", None)
    data = json.loads(text)
    return stats, WorkerTraces("exited", _count(data, "capacity"), _traces(data))


class FileCache:
    """Parsed files by (inode, size, mtime): an unchanged file is parsed once, not per read."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self._lock = threading.Lock()

    def load(self, path: str, parse: Any) -> Any:
        """``parse(data)`` of the file's bytes, cached; OSError (e.g. gone) and BadFile propagate.

        Bytes, not text: ``json.loads`` decodes them, so a file in another encoding is a
        ValueError (hence a BadFile) like any other bad content.
        """
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            key = (info.st_ino, info.st_size, info.st_mtime_ns)
            with self._lock:
                cached = self._parsed.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            text = handle.read()
        try:
            value = parse(text)
        except (ValueError, RecursionError) as exc:  # json's errors are ValueErrors
            raise BadFile(str(exc) or type(exc).__name__) from None
        with self._lock:
            self._parsed[path] = (key, value)
        return value

    def keep_only(self, paths: Iterable[str]) -> None:
        """Forget files no longer in the directory, so the cache stays as small as it."""
        keep = set(paths)
        with self._lock:
            for path in [p for p in self._parsed if p not in keep]:
                del self._parsed[path]


def worker_files(directory: str) -> dict[str, dict[str, str]]:
    """``{worker id: {"stats"|"traces": file name}}`` of the files now in the directory."""
    found: dict[str, dict[str, str]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _WORKER_FILE.fullmatch(entry.name)
            if match is not None:
                kind, pid, token = match.groups()
                found.setdefault(f"{pid}-{token}", {})[kind] = entry.name
    return found


def pid_of(worker: str) -> int:
    return int(worker.partition("-")[0])


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- Reading: the merged view -----------------------------------------------------------------


@dataclass
class DirectoryView:
    """Every published worker's statistics and traces, with exited workers compacted."""

    stats: list[WorkerStats] = field(default_factory=list)
    traces: list[WorkerTraces] = field(default_factory=list)
    exited: Optional[WorkerStats] = None

    @property
    def absorbed(self) -> frozenset[str]:
        return self.exited.absorbed if self.exited is not None else frozenset()


def _load(cache: FileCache, directory: str, name: str, parse: Any) -> Any:
    """A parsed file, or None when it is bad (warned once); FileNotFoundError propagates."""
    try:
        return cache.load(os.path.join(directory, name), parse)
    except FileNotFoundError:
        raise
    except BadFile as exc:
        _warn_once(name, str(exc))
    except OSError as exc:
        _warn_once(name, exc.strerror or type(exc).__name__)
    return None


def read_directory(
    directory: str, cache: FileCache, skip: str = "", stats: bool = True, traces: bool = True
) -> DirectoryView:
    """All workers' files but ``skip`` (the reader's own, whose live figures are fresher).

    ``exited.json`` is read first and names the workers compacted into it, whose own files
    are skipped even while they still exist; a worker file that vanishes meanwhile was just
    compacted, so the read starts over (counts must neither double nor drop).
    """
    for _ in range(5):
        try:
            return _read_once(directory, cache, skip, stats, traces)
        except FileNotFoundError:
            continue
    return _read_once(directory, cache, skip, stats, traces)


def _read_once(
    directory: str, cache: FileCache, skip: str, want_stats: bool, want_traces: bool
) -> DirectoryView:
    view = DirectoryView()
    exited = _load_exited(cache, directory)
    if exited is not None:
        view.exited = exited[0]
        if want_traces:
            view.traces.append(exited[1])
    files = worker_files(directory)
    for worker, names in sorted(files.items()):
        if worker == skip or worker in view.absorbed:
            continue
        if want_stats and "stats" in names:
            parse = _stats_parser(worker)
            stats = _load(cache, directory, names["stats"], parse)
            if stats is not None:
                view.stats.append(stats)
        if want_traces and "traces" in names:
            parse_t = _traces_parser(worker)
            traces = _load(cache, directory, names["traces"], parse_t)
            if traces is not None:
                view.traces.append(traces)
    cache.keep_only(
        [os.path.join(directory, n) for names in files.values() for n in names.values()]
        + [os.path.join(directory, EXITED)]
    )
    return view


def _load_exited(cache: FileCache, directory: str) -> Optional[tuple[WorkerStats, WorkerTraces]]:
    try:
        exited: Optional[tuple[WorkerStats, WorkerTraces]] = _load(
            cache, directory, EXITED, parse_exited
        )
    except FileNotFoundError:
        return None
    return exited


def _stats_parser(worker: str) -> Any:
    return lambda text: parse_stats(text, worker, pid_of(worker))


def _traces_parser(worker: str) -> Any:
    return lambda text: parse_traces(text, worker)


def newest_traces(groups: Iterable[Iterable[TraceData]], limit: int) -> list[TraceData]:
    """The newest ``limit`` distinct traces of all groups, newest (latest end) first."""
    seen: dict[str, TraceData] = {}
    for group in groups:
        for trace in group:
            seen.setdefault(trace.trace_id, trace)
    ordered = sorted(seen.values(), key=lambda t: t.request_span.end_time, reverse=True)
    return ordered[: max(limit, 0)]


# --- Compaction -------------------------------------------------------------------------------


@contextlib.contextmanager
def _compaction_lock(directory: str, wait: bool) -> Iterator[bool]:
    """An exclusive lock among compactors (True if held): two at once could lose a worker."""
    if fcntl is None:  # pragma: no cover - Windows
        yield False
        return
    fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def compact(directory: str, workers: Optional[set[str]] = None, max_routes: int = 1000) -> int:
    """Fold the files of exited workers into ``exited.json``; the number of workers folded.

    ``workers``: these worker ids (their process has exited); None: every worker whose process
    is gone. Nothing is lost: the new ``exited.json`` (naming the folded workers) is in place
    before their files go, and readers skip files it names.
    """
    with _compaction_lock(directory, wait=workers is not None) as held:
        if not held:
            return 0
        return _compact_locked(directory, workers, max_routes)


def _compact_locked(directory: str, workers: Optional[set[str]], max_routes: int) -> int:
    cache = FileCache()
    files = worker_files(directory)
    exited = _load_exited(cache, directory)
    old, old_traces = exited if exited is not None else (None, None)
    absorbed = old.absorbed if old is not None else frozenset()
    gone = {
        worker
        for worker in files
        if worker not in absorbed
        and pid_of(worker) != os.getpid()
        and (worker in workers if workers is not None else not pid_alive(pid_of(worker)))
    }
    if not gone:
        return 0
    sketches: list[RouteSketch] = list(old.routes) if old is not None else []
    trace_groups = [old_traces.traces] if old_traces is not None else []
    capacity = old_traces.capacity if old_traces is not None else 0
    for worker in sorted(gone):
        names = files[worker]
        with contextlib.suppress(FileNotFoundError):
            if "stats" in names:
                stats = _load(cache, directory, names["stats"], _stats_parser(worker))
                sketches.extend(stats.routes if stats is not None else ())
            if "traces" in names:
                traces = _load(cache, directory, names["traces"], _traces_parser(worker))
                if traces is not None:
                    trace_groups.append(traces.traces)
                    capacity = max(capacity, traces.capacity)
    merged = bounded_merge(sketches, max_routes)
    data = _header("exited")
    data["processes"] = (old.processes if old is not None else 0) + len(gone)
    # Only names whose files still exist need skipping; older ones are long gone.
    data["absorbed"] = sorted((set(absorbed) & set(files)) | gone)
    data["routes"] = [sketch.to_data() for sketch in merged]
    data["capacity"] = capacity
    data["traces"] = [trace_to_data(t) for t in newest_traces(trace_groups, capacity)]
    write_file(directory, EXITED, data)
    for worker in gone:
        for name in files[worker].values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
    return len(gone)


def mark_process_dead(pid: int, directory: Optional[PathLike] = None) -> int:
    """Fold an exited worker's files into ``exited.json`` now: for gunicorn's ``child_exit``.

    Its statistics and traces keep counting; only the number of files shrinks. ``directory``
    defaults to the ``ROUTETIMER_MULTIPROC_DIR`` environment variable. Returns the number of
    worker files sets folded (0 if the worker never published).
    """
    path = _directory(directory)
    workers = {worker for worker in worker_files(path) if pid_of(worker) == pid}
    return compact(path, workers) if workers else 0


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
                _WORKER_FILE.fullmatch(entry.name)
                or _TEMP_FILE.fullmatch(entry.name)
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
            tuple[tuple[int, ...], list[Optional[WorkerStats]], list[RouteSketch]]
        ] = None
        self._new_identity()
        _publishers.add(self)

    def _new_identity(self) -> None:
        self.pid = os.getpid()
        self.worker = f"{self.pid}-{secrets.token_hex(8)}"
        self._last_stats: Optional[tuple[int, float, int]] = None
        self._last_traces: Optional[tuple[str, ...]] = None
        self._trace_data: dict[str, dict[str, Any]] = {}
        self.last_written = 0.0
        self.writes = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start this process's writer thread (called by its first timed request)."""
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
        sketches = self._stats.sketches()
        mark = (
            sum(s.count for s in sketches),
            sum(s.total for s in sketches),
            len(sketches),
        )
        if mark == self._last_stats:
            return
        data = _header("stats")
        data["pid"] = os.getpid()
        data["routes"] = [sketch.to_data() for sketch in sketches]
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
        data = _header("traces")
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

    def _others(self, view: DirectoryView) -> list[RouteSketch]:
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
        merged = merge_sketches(s for stats in files if stats is not None for s in stats.routes)
        self._others_merged = (key, files, merged)
        return merged

    def _merge(self, view: DirectoryView) -> tuple[StatsSnapshot, list[WorkerInfo]]:
        now = time.time()
        own = self._stats.sketches()
        sketches = [*own, *self._others(view)]
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


def _after_fork_in_child() -> None:
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
