"""One view of a whole server under real gunicorn on 127.0.0.1 (ROUTETIMER_MULTIPROC_DIR).

gunicorn runs ``multiprocapp`` with the gunicorn.conf.py recipe of the docs
(docs/examples/gunicorn_multiproc.py). Requests spread over the workers; then every answer of
``/api/stats``, whichever worker gives it, must count them all, every trace must be found from
any worker, and killing a worker must never lower a count.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from serving import free_port

from flask_routetimer import sketchcodec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECIPE = ROOT / "docs" / "examples" / "gunicorn_multiproc.py"
ROUTE = "/items/<int:n>"

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    log: Path

    def workers(self) -> set[int]:
        """Pids of the master's children (its workers), from /proc."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                    pids.add(int(entry.name))
        return pids


def wait_for(predicate: Callable[[], Any], what: str, server: Gunicorn, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if server.process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{server.log.read_text()[-3000:]}")


@contextmanager
def gunicorn(
    tmp_path: Path, *options: str, workers: int = 3, interval: float = 0.1
) -> Iterator[Gunicorn]:
    """gunicorn with the docs' recipe; after a clean run its log must hold no error of ours."""
    directory = tmp_path / "shared"
    log = tmp_path / "gunicorn.log"
    environ = dict(os.environ, ROUTETIMER_MULTIPROC_DIR=str(directory))
    environ["MULTIPROCAPP_INTERVAL"] = str(interval)
    environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "gunicorn", "-c", str(RECIPE), "-b", "127.0.0.1:0"]
    command += ["-w", str(workers), "--control-socket", str(tmp_path / "ctl.sock")]
    command += [*options, "multiprocapp:app"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=environ, cwd=str(HERE), stderr=out)
    server = Gunicorn(process, 0, directory, log)
    try:
        pattern = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
        server.port = int(wait_for(lambda: pattern.search(log.read_text()), "gunicorn", server)[1])
        wait_for(lambda: len(server.workers()) >= workers, "workers", server)
        yield server
    finally:
        stop(process)
    text = log.read_text()
    assert not [line for line in text.splitlines() if "routetimer" in line.lower()], text
    assert "Traceback" not in text, text


def stop(process: subprocess.Popen[bytes]) -> None:
    """Graceful stop (workers write a last time at exit); killed if stuck."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise AssertionError("gunicorn did not stop within 30 s") from None


def get(port: int, path: str, headers: Optional[dict[str, str]] = None) -> tuple[int, Any]:
    """One request on a new connection (so successive ones may reach different workers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body.startswith(b"{") else body
    finally:
        connection.close()


def send(port: int, count: int, start: int = 0) -> tuple[list[str], set[int]]:
    """``count`` traced requests from 6 threads; the trace ids sent and the pids that served."""
    ids = [os.urandom(16).hex() for _ in range(count)]
    served: set[int] = set()
    failures: list[Any] = []
    lock = threading.Lock()
    jobs = list(enumerate(ids, start))

    def worker() -> None:
        while True:
            with lock:
                if not jobs:
                    return
                n, trace_id = jobs.pop()
            parent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
            status, body = get(port, f"/items/{n}", {"traceparent": parent})
            with lock:
                if status == 200:
                    served.add(body["pid"])
                else:
                    failures.append((status, body))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures and not jobs
    return ids, served


def stats_answer(port: int) -> tuple[int, int, Optional[int]]:
    """(requests counted for the route, workers covered, pid of the answering worker)."""
    status, data = get(port, "/_routetimer/api/stats?buckets=0")
    assert status == 200, data
    count = sum(row["count"] for row in data["routes"] if row["route"] == ROUTE)
    answering = [w["pid"] for w in data["worker_processes"] if w["current"]]
    return count, data["workers"], answering[0] if answering else None


def settle(server: Gunicorn, expected: int) -> None:
    """Wait until the writers have published: an answer counts ``expected``."""
    wait_for(lambda: stats_answer(server.port)[0] == expected, f"{expected} counted", server)


@pytest.mark.parametrize(
    "options",
    [("-k", "sync"), ("-k", "gthread", "--threads", "4", "--preload")],
    ids=["sync-3-workers", "gthread-3x4-preload"],
)
def test_every_worker_answers_for_the_whole_server(tmp_path: Path, options: tuple[str]) -> None:
    """Whichever worker answers, /api/stats counts all N requests and finds all N traces."""
    with gunicorn(tmp_path, *options) as server:
        ids, served = send(server.port, 90)
        assert len(served) >= 2, "the load did not spread over the workers"
        settle(server, 90)
        time.sleep(0.3)  # every writer has had three intervals
        answers = [stats_answer(server.port) for _ in range(30)]
        assert {count for count, _, _ in answers} == {90}
        assert len({pid for _, _, pid in answers if pid is not None}) >= 2
        for trace_id in ids:
            status, data = get(server.port, f"/_routetimer/api/traces/{trace_id}")
            assert status == 200, (trace_id, data)
            assert [span["name"] for span in data["spans"]] == [f"GET {ROUTE}", "lookup"]
        status, page = get(server.port, "/_routetimer/")
        assert status == 200 and b"Merged over 3 worker processes" in page
        # The --preload master built the app but serves nothing: it never writes.
        assert not list(server.directory.glob(f"*-{server.process.pid}-*.json"))


def test_a_killed_worker_is_replaced_and_no_count_goes_down(tmp_path: Path) -> None:
    """SIGKILL a worker: gunicorn replaces it, child_exit folds its files, counts stay and grow."""
    with gunicorn(tmp_path, "-k", "sync") as server:
        send(server.port, 60)
        settle(server, 60)
        time.sleep(0.3)
        before = server.workers()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen.append(stats_answer(server.port)[0])
            current = server.workers()
            if victim not in current and len(current) == 3:
                break
            time.sleep(0.05)
        assert victim not in server.workers(), "gunicorn did not replace the killed worker"
        wait_for(lambda: (server.directory / "exited.json").exists(), "exited.json", server)
        assert not list(server.directory.glob(f"*-{victim}-*.json"))
        send(server.port, 30, start=1000)
        settle(server, 90)
        seen += [stats_answer(server.port)[0] for _ in range(20)]
        assert min(seen) >= 60, seen
        assert seen[-20:] == [90] * 20


def published_count(directory: Path) -> int:
    """Requests for the route in every file of the directory (workers' and exited.json)."""
    total = 0
    for path in [*directory.glob("stats-*.json"), *directory.glob("exited.json")]:
        sketches = sketchcodec.decode(json.loads(path.read_text())).sketches()
        total += sum(sketch.count for sketch in sketches if sketch.route == ROUTE)
    return total


def test_workers_write_a_last_time_at_exit(tmp_path: Path) -> None:
    """With a long interval nothing is written while serving; a graceful stop writes it all."""
    with gunicorn(tmp_path, "-k", "sync", interval=3600) as server:
        _, served = send(server.port, 40)
        assert published_count(server.directory) == 0
        stop(server.process)
    assert published_count(server.directory) == 40
    assert len(served) >= 2


def uwsgi_binary() -> Optional[str]:
    """uWSGI if installed (``pip install pyuwsgi`` has wheels): $UWSGI, else on PATH."""
    return os.environ.get("UWSGI") or shutil.which("uwsgi")


@pytest.mark.skipif(uwsgi_binary() is None, reason="uWSGI not installed (pip install pyuwsgi)")
def test_uwsgi_workers_answer_for_the_whole_server(tmp_path: Path) -> None:
    """uWSGI (master + 3 processes, app loaded before the fork, which happens in C): the same.

    ``--enable-threads``: without it uWSGI never releases the GIL between requests, so no
    background thread (the writer) runs while a worker waits for one.
    """
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    port = free_port()
    environ = dict(os.environ, ROUTETIMER_MULTIPROC_DIR=str(directory))
    paths = [str(HERE), str(ROOT), *sys.path[1:], environ.get("PYTHONPATH", "")]
    environ["PYTHONPATH"] = os.pathsep.join(paths)
    command = [str(uwsgi_binary()), "--http-socket", f"127.0.0.1:{port}", "--master"]
    command += ["--processes", "3", "--enable-threads", "--module", "multiprocapp:app"]
    command += ["--need-app", "--die-on-term"]
    log = tmp_path / "uwsgi.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=environ, cwd=str(HERE), stdout=out, stderr=out)
    server = Gunicorn(process, port, directory, log)
    try:
        wait_for(lambda: len(server.workers()) >= 3, "uWSGI workers", server)
        wait_for(lambda: _answers(port), "uWSGI to answer", server)
        ids, served = send(port, 60)
        assert len(served) >= 2
        settle(server, 60)
        time.sleep(0.3)
        assert {stats_answer(port)[0] for _ in range(20)} == {60}
        for trace_id in ids:
            assert get(port, f"/_routetimer/api/traces/{trace_id}")[0] == 200
    finally:
        stop(process)


def _answers(port: int) -> bool:
    try:
        return get(port, "/_routetimer/api/stats")[0] == 200
    except OSError:
        return False
