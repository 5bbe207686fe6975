"""Statistics and traces shared through ROUTETIMER_MULTIPROC_DIR, in one test process.

Several apps with one directory stand in for the worker processes of a server: each has its
own table, trace buffer and worker id, as a gunicorn worker would. Real servers: test_multiproc_
server.py.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import ConfigError, RouteTimer, multiproc, multiproc_files
from flask_routetimer.multiproc import Multiproc

Worker = tuple[Flask, RouteTimer, Any]


def mp(app: Flask) -> Multiproc:
    state = RouteTimer.state(app)
    assert state.multiproc is not None
    return state.multiproc


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def make_worker(shared: Path) -> Iterator[Callable[..., Worker]]:
    """``make_worker(**config)``: an app publishing to the shared directory, own providers."""
    made: list[Flask] = []
    providers: list[TracerProvider] = []

    def factory(**config: Any) -> Worker:
        provider = TracerProvider()
        providers.append(provider)
        app = Flask("worker")
        settings = {
            "ROUTETIMER_MULTIPROC_DIR": str(shared),
            "ROUTETIMER_MULTIPROC_INTERVAL": 3600,  # the tests publish explicitly
            "ROUTETIMER_DASHBOARD": True,
            "PROPAGATE_EXCEPTIONS": False,
        }
        app.config.update({**settings, **config})
        app.debug = True
        timer = RouteTimer(app, tracer_provider=provider)

        @app.get("/items/<int:n>")
        def item(n: int) -> str:
            with timer.timed("lookup"):
                return "item"

        @app.get("/other")
        def other() -> str:
            return "other"

        made.append(app)
        return app, timer, app.test_client()

    multiproc_files.forget_warnings()
    yield factory
    for app in made:
        mp(app).stop()
    for provider in providers:
        provider.shutdown()


def serve(worker: Worker, count: int, path: str = "/items/1") -> list[str]:
    """Send requests with known trace ids; returns the ids."""
    app, _, client = worker
    ids = []
    for _ in range(count):
        trace_id = os.urandom(16).hex()
        ids.append(trace_id)
        headers = {"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
        assert client.get(path, headers=headers).status_code == 200
    return ids


def count_of(snapshot: Any, route: str = "/items/<int:n>") -> int:
    return sum(row.count for row in snapshot.routes if row.route == route)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- Configuration ----------------------------------------------------------------------------


def test_unset_directory_keeps_one_process_view(tracer_provider: TracerProvider) -> None:
    """Without the key (and without the variable) nothing is published or merged."""
    app = Flask("solo")
    timer = RouteTimer(app, tracer_provider=tracer_provider)
    assert timer.state(app).multiproc is None
    assert timer.stats(app).workers is None


def test_a_missing_directory_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    """A directory that does not exist is refused at init_app, not by a silent writer later."""
    app = Flask("x")
    app.config["ROUTETIMER_MULTIPROC_DIR"] = str(tmp_path / "nope")
    with pytest.raises(
        ConfigError, match="ROUTETIMER_MULTIPROC_DIR is .*not an existing directory"
    ):
        RouteTimer(app)


def test_an_unwritable_directory_is_a_config_error_naming_the_key() -> None:
    """A directory this process cannot create files in is refused (/proc: even for root)."""
    app = Flask("x")
    app.config["ROUTETIMER_MULTIPROC_DIR"] = "/proc"
    with pytest.raises(ConfigError, match="ROUTETIMER_MULTIPROC_DIR.*cannot create files"):
        RouteTimer(app)


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), "1", True])
def test_a_bad_interval_is_a_config_error(shared: Path, interval: object) -> None:
    """The interval must be a positive finite number of seconds."""
    app = Flask("x")
    app.config.update(ROUTETIMER_MULTIPROC_DIR=str(shared), ROUTETIMER_MULTIPROC_INTERVAL=interval)
    with pytest.raises(ConfigError, match="ROUTETIMER_MULTIPROC_INTERVAL"):
        RouteTimer(app)


def test_the_environment_variable_is_honoured_when_the_key_is_unset(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROUTETIMER_MULTIPROC_DIR in the environment sets the directory; the key wins over it."""
    monkeypatch.setenv("ROUTETIMER_MULTIPROC_DIR", str(shared))
    app = Flask("env")
    assert mp_of(RouteTimer(app), app).directory == str(shared)
    other = Flask("key")
    other.config["ROUTETIMER_MULTIPROC_DIR"] = None
    assert RouteTimer(other).state(other).multiproc is None


def mp_of(timer: RouteTimer, app: Flask) -> Multiproc:
    multiproc_ = timer.state(app).multiproc
    assert multiproc_ is not None
    return multiproc_


# --- Merging ----------------------------------------------------------------------------------


def test_every_worker_sees_every_workers_requests(make_worker: Callable[..., Worker]) -> None:
    """timer.stats() in any worker counts all workers' requests; merged=False only its own."""
    workers = [make_worker() for _ in range(3)]
    for n, worker in enumerate(workers):
        serve(worker, n + 2)
        mp(worker[0]).publish()
    for app, timer, _ in workers:
        merged = timer.stats(app)
        assert count_of(merged) == 2 + 3 + 4
        assert merged.workers == 3
        assert count_of(timer.stats(app, merged=False)) in (2, 3, 4)


def test_a_worker_counts_its_own_requests_before_it_publishes(
    make_worker: Callable[..., Worker],
) -> None:
    """The answering worker adds its live table, so its newest requests show at once."""
    first, second = make_worker(), make_worker()
    serve(first, 2)
    mp(first[0]).publish()
    serve(second, 5)  # not published yet
    assert count_of(second[1].stats(second[0])) == 7
    assert count_of(first[1].stats(first[0])) == 2


def test_files_are_json_0600_and_written_atomically(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """Each worker writes stats and traces files: JSON data, owner-only, no temporary left."""
    worker = make_worker()
    serve(worker, 3)
    mp(worker[0]).publish()
    names = sorted(p.name for p in shared.iterdir() if not p.name.startswith("."))
    assert [n.split("-")[0] for n in names] == ["stats", "traces"]
    for name in names:
        path = shared / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = json.loads(path.read_text())
        assert (data["format"], data["version"]) == ("flask-routetimer/multiproc", 3)
    assert not [p for p in shared.iterdir() if p.name.endswith(".tmp")]


def test_unchanged_figures_are_not_rewritten(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """A write happens only when something changed: an idle worker costs no disk writes."""
    worker = make_worker()
    serve(worker, 1)
    mp(worker[0]).publish()
    before = {p.name: p.stat().st_mtime_ns for p in shared.glob("*.json")}
    time.sleep(0.01)
    mp(worker[0]).publish()
    assert {p.name: p.stat().st_mtime_ns for p in shared.glob("*.json")} == before
    serve(worker, 1)
    mp(worker[0]).publish()
    assert {p.name: p.stat().st_mtime_ns for p in shared.glob("*.json")} != before


def test_the_writer_thread_starts_with_the_first_request_and_writes_on_its_own(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """No thread and no file before a request (a preload master); then one within the interval."""
    app, _, _ = worker = make_worker(ROUTETIMER_MULTIPROC_INTERVAL=0.05)
    assert not mp(app).started and not list(shared.glob("*.json"))
    serve(worker, 1)
    assert mp(app).started
    deadline = time.monotonic() + 10
    while not list(shared.glob("stats-*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(shared.glob("stats-*.json"))


# --- Traces -----------------------------------------------------------------------------------


def test_any_worker_serves_any_workers_trace(make_worker: Callable[..., Worker]) -> None:
    """/api/traces/<id> and /trace/<id> find a trace kept by another worker, with its spans."""
    first, second = make_worker(), make_worker()
    (trace_id,) = serve(first, 1)
    mp(first[0]).publish()
    client = second[2]
    answer = client.get(f"/_routetimer/api/traces/{trace_id}")
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["pid"] == os.getpid()
    assert [span["name"] for span in data["spans"]] == ["GET /items/<int:n>", "lookup"]
    assert data["spans"][1]["parent_id"] == data["spans"][0]["span_id"]
    page = client.get(f"/_routetimer/trace/{trace_id}")
    assert page.status_code == 200 and b"lookup" in page.data


def test_recent_traces_merge_newest_first_within_the_buffer_bound(
    make_worker: Callable[..., Worker],
) -> None:
    """The recent list interleaves workers by time and keeps ROUTETIMER_TRACE_BUFFER in all."""
    first, second = make_worker(ROUTETIMER_TRACE_BUFFER=4), make_worker(ROUTETIMER_TRACE_BUFFER=4)
    sent = []
    for _ in range(3):
        sent += serve(first, 1)
        sent += serve(second, 1)
    mp(first[0]).publish()
    merged = mp(second[0]).source().traces()
    assert [trace.trace_id for trace in merged] == sent[::-1][:4]


# --- Bad files --------------------------------------------------------------------------------

HEADER = {"format": "flask-routetimer/multiproc", "version": 3, "kind": "stats", "written": 1}
# One row, GET /x: 5 requests, all in bucket 200 (count, errors, offset, length; total, min, max).
ROW = {
    "methods": ["GET"],
    "routes": ["/x"],
    "overflow": [],
    "ints": [1, base64.b64encode(bytes([5, 0, 200, 1])).decode()],
    "floats": base64.b64encode(struct.pack("<3d", 0.5, 0.1, 0.1)).decode(),
    "ttfb_ints": [1, ""],
    "ttfb_floats": "",
    "counts": [1, "BQ=="],
}
BAD_FILES = {
    "corrupt": b"{not json",
    "truncated": b'{"format": "flask-routetimer/multiproc", "version": 3, "kind": "st',
    "foreign": json.dumps({"format": "something-else", "version": 3}).encode(),
    "future": json.dumps({**HEADER, **ROW, "version": 99}).encode(),
    "older": json.dumps(
        {**HEADER, "version": 2, "width": 1, "counts": "BQ==", "rows": [["GET", "/x"]]}
    ).encode(),
    "tampered": json.dumps(
        {**HEADER, **ROW, "ints": [1, base64.b64encode(bytes([5, 6, 200, 1])).decode()]}
    ).encode(),
    "forged counts": json.dumps({**HEADER, **ROW, "counts": [1, "BA=="]}).encode(),
    "binary": b"\x80\x04\x95pickle",
}


def test_the_bad_files_are_bad_only_where_they_differ_from_a_good_one() -> None:
    """The template row reads as 5 requests: each bad file above is bad for its own reason."""
    good = multiproc_files.parse_stats(json.dumps({**HEADER, **ROW}), "1-" + "a" * 16, 1)
    assert [(s.route, s.count, s.offset, tuple(s.counts)) for s in good.routes] == [
        ("/x", 5, 200, (5,))
    ]


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_file_is_skipped_with_one_warning(
    make_worker: Callable[..., Worker],
    shared: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """Every page and timer.stats() still answer with the good workers' figures; one warning."""
    worker = make_worker()
    serve(worker, 2)
    for name in (f"stats-{dead_pid()}-{'a' * 16}.json", f"traces-{dead_pid()}-{'b' * 16}.json"):
        (shared / name).write_bytes(BAD_FILES[kind])
    (shared / "exited.json").write_bytes(BAD_FILES[kind])
    app, timer, client = worker
    with caplog.at_level(logging.WARNING, logger="flask_routetimer"):
        for _ in range(3):
            assert count_of(timer.stats(app)) == 2
            for url in ("/_routetimer/", "/_routetimer/api/stats", "/_routetimer/api/traces/0"):
                assert client.get(url).status_code in (200, 404)
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "dashboard at" not in r.getMessage()  # debug mode's
    ]
    assert len(warnings) == 3, [r.getMessage() for r in warnings]  # one per bad file
    assert all("skipped" in r.getMessage() for r in warnings)


# --- Exited workers ---------------------------------------------------------------------------


def published_stats(make_worker: Callable[..., Worker], shared: Path, requests: int) -> Path:
    """A worker that served ``requests`` requests and published: its stats file."""
    donor = make_worker()
    serve(donor, requests)
    mp(donor[0]).publish()
    (stats_file,) = shared.glob("stats-*.json")
    return stats_file


def fake_exited_worker(shared: Path, template: Path, pid: int, token: str) -> None:
    """Copy a real stats file under the name of a worker whose process is gone."""
    (shared / f"stats-{pid}-{token}.json").write_bytes(template.read_bytes())


def test_files_of_exited_workers_are_compacted_and_still_count(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """Thousands of exited workers fold into exited.json: same counts, one file, fast reads."""
    template = published_stats(make_worker, shared, 3)
    pid = dead_pid()
    for index in range(2000):
        fake_exited_worker(shared, template, pid, f"{index:016x}")
    reader = make_worker()
    assert count_of(reader[1].stats(reader[0])) == 3 * 2001
    folded = multiproc_files.compact(str(shared))
    assert folded == 2000
    assert len(list(shared.glob("stats-*.json"))) == 1  # the donor's, still alive
    snapshot = reader[1].stats(reader[0])  # its speed: benchmarks.multiproc, not a timed test
    assert count_of(snapshot) == 3 * 2001 and snapshot.workers == 2001
    workers = mp(reader[0]).source().workers()
    assert [(w.pid, w.processes, w.requests) for w in workers if w.pid is None] == [
        (None, 2000, 6000)
    ]


def test_mark_process_dead_folds_that_worker_now(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """gunicorn's child_exit hook: the worker's files go, its counts and traces stay."""
    donor = make_worker()
    (trace_id,) = serve(donor, 1)
    mp(donor[0]).publish()
    pid = dead_pid()
    for path in shared.glob("*-*-*.json"):
        kind, _, token = path.stem.split("-")
        path.rename(shared / f"{kind}-{pid}-{token}.json")  # as if another process wrote them
    mp(donor[0])._new_identity()  # the donor's own table is now unpublished
    reader = make_worker()
    assert count_of(reader[1].stats(reader[0])) == 1
    assert multiproc.mark_process_dead(pid, shared) == 1
    assert not list(shared.glob(f"*-{pid}-*.json"))
    assert count_of(reader[1].stats(reader[0])) == 1
    assert reader[2].get(f"/_routetimer/api/traces/{trace_id}").status_code == 200


def test_reads_racing_compaction_never_double_count_or_drop(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """While exited workers are folded one by one, every read sees exactly the same total."""
    template = published_stats(make_worker, shared, 2).rename(shared / "template.bin")
    pids = [dead_pid() for _ in range(3)]
    for index in range(60):
        fake_exited_worker(shared, template, pids[index % 3], f"{index:016x}")
    reader = make_worker()
    expected = count_of(reader[1].stats(reader[0]))
    assert expected == 120
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not done.is_set():
            seen.append(count_of(reader[1].stats(reader[0])))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for pid in pids:
            multiproc.mark_process_dead(pid, shared)
    finally:
        done.set()
        thread.join()
    assert seen and set(seen) == {expected}


def test_prepare_directory_creates_0700_and_clears_only_its_own_files(tmp_path: Path) -> None:
    """At server start: a fresh private directory, or an old one emptied of our files only."""
    fresh = Path(multiproc.prepare_directory(tmp_path / "new"))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    for name in ("stats-1-0123456789abcdef.json", "exited.json", "keep.txt"):
        (fresh / name).write_text("{}")
    multiproc.prepare_directory(fresh)
    assert [p.name for p in fresh.iterdir()] == ["keep.txt"]


# --- Dashboard --------------------------------------------------------------------------------


def test_the_dashboard_shows_each_worker(make_worker: Callable[..., Worker]) -> None:
    """Routes page and /api/stats: number of workers, pids, age of last update, requests."""
    first, second = make_worker(), make_worker()
    serve(first, 2)
    mp(first[0]).publish()
    serve(second, 3)
    data = second[2].get("/_routetimer/api/stats?buckets=0").get_json()
    assert data["workers"] == 2
    shown = sorted((w["current"], w["requests"]) for w in data["worker_processes"])
    assert shown == [(False, 2), (True, 3)]
    assert all(w["pid"] == os.getpid() and w["age"] >= 0 for w in data["worker_processes"])
    page = second[2].get("/_routetimer/").get_data(as_text=True)
    assert "Merged over 2 worker processes" in page
    assert f"pid {os.getpid()}" in page and "answering this page" in page


def test_a_writer_folds_the_files_of_processes_that_are_gone(
    make_worker: Callable[..., Worker], shared: Path
) -> None:
    """Without a child_exit hook (uWSGI), a running worker compacts exited workers' files."""
    template = published_stats(make_worker, shared, 2)
    fake_exited_worker(shared, template, dead_pid(), "f" * 16)
    writer = make_worker()
    serve(writer, 1)
    mp(writer[0]).publish()  # its first write looks for exited workers
    assert (shared / "exited.json").exists()
    assert len(list(shared.glob("stats-*.json"))) == 2  # the donor's and the writer's
    assert count_of(writer[1].stats(writer[0])) == 2 + 2 + 1


def test_a_forked_child_is_a_new_worker_with_only_its_own_requests(
    make_worker: Callable[..., Worker],
) -> None:
    """After a fork the child gets its own name and an empty table (the parent publishes what
    it served before); a fork outside os.fork (uWSGI) is noticed at the first request."""
    app, timer, _ = worker = make_worker()
    serve(worker, 3)
    before = mp(app).worker
    mp(app).stop()  # a child has no writer thread: threads do not survive a fork
    mp(app).pid = -1  # and, forked in C, no fork hook ran: its pid differs from the recorded one
    serve(worker, 1)  # the first request notices, takes a new name, starts empty
    assert mp(app).worker != before and mp(app).pid == os.getpid()
    assert count_of(timer.stats(app, merged=False)) == 1
