"""Start ``loadapp`` under a real server on 127.0.0.1, drive a bounded load, read what it saw.

Used by ``test_load.py`` (short runs) and ``benchmarks/soak_reliability.py`` (long ones). Every
server is started as a subprocess, bound to 127.0.0.1, and stopped by PID in a ``finally``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
FORBIDDEN = ("Failed to detach context", "flask_routetimer", "flask-routetimer", "opentelemetry")

#: kind -> (path template, expected status, span name or None for "no span", route)
KINDS: dict[str, tuple[str, int, Optional[str], Optional[str]]] = {
    "ok": ("/ok", 200, "GET /ok", "/ok"),
    "item": ("/items/{n}", 200, "GET /items/<int:item_id>", "/items/<int:item_id>"),
    "stream": ("/stream", 200, "GET /stream", "/stream"),
    "fail": ("/fail", 500, "GET /fail", "/fail"),
    "abort": ("/abort", 403, "GET /abort", "/abort"),
    "missing": ("/missing/{n}", 404, "GET", None),
    "exempt": ("/exempt", 200, None, None),
}
MIX = {"ok": 4, "item": 4, "stream": 2, "fail": 1, "abort": 1, "missing": 1, "exempt": 1}


@dataclass
class Server:
    kind: str
    process: subprocess.Popen[bytes]
    out_dir: Path
    port: int
    stderr_path: Path

    def worker_pids(self) -> list[int]:
        """The processes serving requests: gunicorn's workers, or the Werkzeug process."""
        if self.kind == "werkzeug":
            return [self.process.pid]
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == self.process.pid:
                pids.append(int(entry.name))
        return sorted(pids)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _wait_for(predicate: Any, timeout: float, what: str, server: Optional[Server] = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if server is not None and server.process.poll() is not None:
            break
        time.sleep(0.05)
    log = server.stderr_path.read_text() if server else ""
    raise AssertionError(f"timed out waiting for {what}\n{log[-3000:]}")


@contextmanager
def serve(
    kind: str,
    out_dir: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    preload: bool = False,
    env: Optional[dict[str, str]] = None,
) -> Iterator[Server]:
    """``kind``: ``sync`` or ``gthread`` (gunicorn) or ``werkzeug`` (threaded dev server)."""
    environ = dict(os.environ, ROUTETIMER_LOAD_DIR=str(out_dir), **(env or {}))
    environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), environ.get("PYTHONPATH", "")])
    if kind == "werkzeug":
        command = [sys.executable, str(HERE / "loadapp.py"), "werkzeug"]
    else:
        command = [str(BIN / "gunicorn"), "-c", str(HERE / "gunicorn_conf.py"), "-b"]
        command += ["127.0.0.1:0", "-w", str(workers), "-k", kind, "--threads", str(threads)]
        command += ["--preload"] if preload else []
        command += ["loadapp:app"]
    stderr_path = out_dir / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(command, env=environ, cwd=str(HERE), stderr=stderr)
    server = Server(kind, process, out_dir, 0, stderr_path)
    try:
        if kind == "werkzeug":
            port_file = out_dir / "port"
            server.port = int(
                _wait_for(lambda: port_file.exists() and port_file.read_text(), 30, "port", server)
            )
        else:
            pattern = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
            match = _wait_for(
                lambda: pattern.search(stderr_path.read_text()), 30, "gunicorn", server
            )
            server.port = int(match.group(1))
            _wait_for(lambda: len(server.worker_pids()) >= workers, 30, "workers", server)
        _wait_for(lambda: _get(server.port, "/exempt")[0] == 200, 30, "first response", server)
        yield server
    finally:
        stop(server)


def stop(server: Server, timeout: float = 30) -> None:
    """Graceful stop (SIGTERM: gunicorn waits for workers, which flush at exit); kill if stuck."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
            raise AssertionError(f"{server.kind} did not stop within {timeout} s") from None


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def cut_short(port: int) -> bool:
    """Ask for the long stream, read its first bytes, and hang up: a client going away."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /long HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < 1:
            chunk = sock.recv(4096)
            if not chunk:
                return False
            received += chunk
        return received.startswith(b"HTTP/1.1 200")


@dataclass
class LoadResult:
    sent: Counter[str] = field(default_factory=Counter)
    wrong: list[tuple[str, int]] = field(default_factory=list)
    cut: int = 0
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.sent.values()) + self.cut


def plan(count: int, seed: int = 7) -> list[str]:
    kinds = [kind for kind, weight in MIX.items() for _ in range(weight)]
    rng = random.Random(seed)
    return [rng.choice(kinds) for _ in range(count)]


def drive(
    port: int, count: int, *, concurrency: int = 8, cuts: int = 0, budget: float = 60
) -> LoadResult:
    """Send ``count`` requests of the mix (plus ``cuts`` walked-away streams) from threads."""
    result = LoadResult()
    jobs = [(kind, n) for n, kind in enumerate(plan(count))] + [("cut", n) for n in range(cuts)]
    random.Random(11).shuffle(jobs)
    lock = threading.Lock()
    deadline = time.monotonic() + budget
    start = time.perf_counter()

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if not jobs:
                    return
                kind, n = jobs.pop()
            if kind == "cut":
                done = cut_short(port)
                with lock:
                    result.cut += done
                    if not done:
                        result.wrong.append(("cut", 0))
                continue
            path, status, _, _ = KINDS[kind]
            got, _body = _get(port, path.format(n=n))
            with lock:
                result.sent[kind] += 1
                if got != status:
                    result.wrong.append((kind, got))

    pool = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(budget + 30)
    result.seconds = time.perf_counter() - start
    assert not jobs, f"load not finished within {budget} s: {len(jobs)} requests left"
    return result


def expected_spans(result: LoadResult) -> Counter[tuple[Any, ...]]:
    expected: Counter[tuple[Any, ...]] = Counter()
    for kind, sent in result.sent.items():
        _, status, name, route = KINDS[kind]
        if name is not None:
            expected[(name, route, status, False)] += sent
    if result.cut:
        expected[("GET /long", "/long", 200, True)] += result.cut
    return expected


def read_spans(out_dir: Path) -> list[dict[str, Any]]:
    spans = []
    for path in sorted(out_dir.glob("spans-*.jsonl")):
        spans.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return spans


def server_spans(spans: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (s["name"], s["route"], s["status"], s["incomplete"])
        for s in spans
        if s["kind"] == "SERVER"
    )


def read_workers(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(out_dir.glob("worker-*.json"))]


def forbidden_lines(stderr: str) -> list[str]:
    """Log lines from the extension or OpenTelemetry (errors, failed detaches)."""
    return [line for line in stderr.splitlines() if any(word in line for word in FORBIDDEN)]
