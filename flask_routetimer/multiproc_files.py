"""The files of ``ROUTETIMER_MULTIPROC_DIR``: their format, writing, reading and compaction.

Pure file and data work, apart from Flask and from the writer thread (``multiproc``): each
worker writes ``stats-<pid>-<token>.json`` and ``traces-<pid>-<token>.json``; exited workers are
folded into ``exited.json``. Everything read is validated, since anyone who can write the
directory can put anything there: a bad file is skipped with one warning, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from . import sketchcodec
from .sketchtable import SketchTable
from .stats import RouteSketch, bounded_merge
from .tracedata import TraceData, trace_from_data, trace_to_data

try:  # POSIX only: without it, exited workers' files are kept (still counted), not compacted
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("flask_routetimer")

DIR_KEY = "ROUTETIMER_MULTIPROC_DIR"
FORMAT = "flask-routetimer/multiproc"
VERSION = 3  # 2: bucket counts as one base64 array per file; 3: every field by column
EXITED = "exited.json"
LOCK = ".compact.lock"
WORKER_FILE = re.compile(r"(stats|traces)-(\d+)-([0-9a-f]{16})\.json")
TEMP_FILE = re.compile(r"\.(?:stats|traces|exited)[-\w.]*\.tmp")


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


def header(kind: str) -> dict[str, Any]:
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


def checkheader(data: Any, kind: str) -> dict[str, Any]:
    """The parsed file if it is ours, of this version and kind; BadFile otherwise."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadFile("not a flask-routetimer file")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadFile("no format version")
    if version != VERSION:
        newer = "newer" if version > VERSION else "older"
        raise BadFile(f"format version {version}, {newer} than this flask-routetimer reads")
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
    table: SketchTable
    processes: int = 1
    absorbed: frozenset[str] = frozenset()  # for exited.json: worker ids compacted into it

    @property
    def routes(self) -> list[RouteSketch]:
        return self.table.sketches()

    @property
    def requests(self) -> int:
        return sum(self.table.durations.count)


@dataclass(frozen=True)
class WorkerTraces:
    worker: str
    capacity: int
    traces: tuple[TraceData, ...]


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
    data = checkheader(json.loads(text), "stats" if pid is not None else "exited")
    if pid is not None:
        return WorkerStats(worker, pid, data["written"], sketchcodec.decode(data))
    absorbed = data.get("absorbed")
    if not isinstance(absorbed, list) or not all(isinstance(w, str) for w in absorbed):
        raise BadFile("absorbed must be a list of worker ids")
    return WorkerStats(
        worker,
        None,
        data["written"],
        sketchcodec.decode(data),
        _count(data, "processes"),
        frozenset(absorbed),
    )


def parse_traces(text: Union[str, bytes], worker: str) -> WorkerTraces:
    data = checkheader(json.loads(text), "traces")
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
            match = WORKER_FILE.fullmatch(entry.name)
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
    are skipped even while they still exist. Compaction replaces ``exited.json`` before it
    deletes the files it folded in, so a read during which ``exited.json`` changed, or a
    worker file vanished, may have missed a worker: it starts over (counts must neither
    double nor drop).
    """
    for _ in range(5):
        try:
            return _read_once(directory, cache, skip, stats, traces)
        except (FileNotFoundError, _Compacted):
            continue
    return _read_once(directory, cache, skip, stats, traces)


class _Compacted(Exception):
    """``exited.json`` changed during a read."""


def _identity(path: str) -> Optional[tuple[int, int, int]]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _read_once(
    directory: str, cache: FileCache, skip: str, want_stats: bool, want_traces: bool
) -> DirectoryView:
    view = DirectoryView()
    before = _identity(os.path.join(directory, EXITED))
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
    if _identity(os.path.join(directory, EXITED)) != before:
        raise _Compacted
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
    data = header("exited")
    data["processes"] = (old.processes if old is not None else 0) + len(gone)
    # Only names whose files still exist need skipping; older ones are long gone.
    data["absorbed"] = sorted((set(absorbed) & set(files)) | gone)
    data.update(sketchcodec.encode(merged))
    data["capacity"] = capacity
    data["traces"] = [trace_to_data(t) for t in newest_traces(trace_groups, capacity)]
    write_file(directory, EXITED, data)
    for worker in gone:
        for name in files[worker].values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
    return len(gone)
