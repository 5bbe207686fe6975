"""Real-server benchmark: ``python -m benchmarks.server [--quick] [--json PATH]``.

Starts one gunicorn (gthread, ``-w 2 --threads 4``, 127.0.0.1 on a free port) per variant,
all at once, serving ``benchmarks.apps:wsgi_from_env()`` with ``BENCH_VARIANT`` set; every
worker builds its own SDK pipeline (BatchSpanProcessor to a no-op exporter, in-memory metric
reader). Load comes from ``wrk`` when it is on PATH, else from a bounded Python client
(threads + http.client keep-alive, much slower: it measures the client as much as the
server). Variants alternate in shuffled order for each round; the throughput ratio against
bare is the median of the per-round ratios. Servers are always stopped by PID.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

from benchmarks.apps import available_variants, write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("bare", "routetimer", "otel", "floor")


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float | None = None  # server CPU (master + workers) per request, from /proc


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(child) for child in fh.read().split()]
    except OSError:
        return []


def server_cpu(server: Server) -> float | None:
    """CPU seconds used so far by a gunicorn master and its workers; None without /proc.

    Unlike requests per second, this does not move when another process on the machine takes
    a core for a few seconds: CPU per request is what the instrumentation adds.
    """
    if not os.path.exists(f"/proc/{server.proc.pid}/stat"):
        return None
    pids = [server.proc.pid, *_children(server.proc.pid)]
    return sum(_proc_cpu(pid) for pid in pids)


@dataclass
class Server:
    variant: str
    port: int
    proc: subprocess.Popen[bytes]
    results: list[Result] = field(default_factory=list)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(variant: str, workers: int, threads: int) -> Server:
    port = free_port()
    env = dict(os.environ)
    env["BENCH_VARIANT"] = variant
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable, "-m", "gunicorn",
        "-k", "gthread", "-w", str(workers), "--threads", str(threads),
        "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        "benchmarks.apps:wsgi_from_env()",
    ]  # fmt: skip
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        cmd.insert(-1, "--no-control-socket")  # else gunicorn 25+ shares a socket in $HOME
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env)
    return Server(variant, port, proc)


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn for {server.variant} exited ({server.proc.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1)
            conn.request("GET", "/hello")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn for {server.variant} not ready after {timeout} s")


def stop_server(server: Server) -> None:
    """SIGTERM the master by PID (gunicorn stops its workers), SIGKILL if it hangs."""
    if server.proc.poll() is not None:
        return
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Result:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or p50 is None or p99 is None or total is None:
        raise ValueError(f"unparsable wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = int(non2xx.group(1)) if non2xx else 0
    sock_err = re.search(r"Socket errors:.*?(\d+) timeout", output)
    if sock_err:
        errors += int(sock_err.group(1))
    return Result(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)),
                  int(total.group(1)), errors)  # fmt: skip


def run_wrk(port: int, path: str, duration: float, connections: int, threads: int) -> Result:
    cmd = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
        "--latency", f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=duration + 60)
    return parse_wrk(out.stdout)


def run_python_client(port: int, path: str, duration: float, connections: int) -> Result:
    """Bounded keep-alive client: one thread and connection per slot, until the deadline."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + duration

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = latencies[slot]
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                break
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors[slot] += 1
            except (OSError, http.client.HTTPException):
                errors[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(time.perf_counter() - t0)
        conn.close()

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    merged = sorted(x for lat in latencies for x in lat)
    if not merged:
        raise RuntimeError("python client completed no request")

    def pick(q: float) -> float:
        return 1000.0 * merged[min(len(merged) - 1, int(q * len(merged)))]

    return Result(len(merged) / elapsed, pick(0.50), pick(0.99), len(merged), sum(errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per run, 1 round")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    duration = args.duration or (2.0 if args.quick else 4.0)
    rounds = args.rounds or (1 if args.quick else 8)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk not found on PATH")

    variants = available_variants(args.variants)

    def load(port: int, secs: float) -> Result:
        if client == "wrk":
            return run_wrk(port, args.path, secs, args.connections, args.wrk_threads)
        return run_python_client(port, args.path, secs, args.connections)

    print(
        f"client={client} connections={args.connections} gunicorn gthread -w {args.workers} "
        f"--threads {args.threads}; {rounds} round(s) x {duration:.0f} s; GET {args.path}"
    )
    servers: list[Server] = []
    try:
        for variant in variants:
            servers.append(start_server(variant, args.workers, args.threads))
        for server in servers:
            wait_ready(server)
            load(server.port, 1.0)  # warm-up: imports, lazy instruments, BSP thread
        rng = random.Random(args.seed)
        for r in range(rounds):
            order = list(servers)
            rng.shuffle(order)
            for server in order:
                cpu_before = server_cpu(server)
                res = load(server.port, duration)
                cpu_after = server_cpu(server)
                if cpu_before is not None and cpu_after is not None and res.requests:
                    res.cpu_us = (cpu_after - cpu_before) / res.requests * 1e6
                server.results.append(res)
                cpu = "" if res.cpu_us is None else f" server CPU {res.cpu_us:5.0f} us/req"
                print(
                    f"  round {r + 1}/{rounds} {server.variant:10} {res.rps:9.0f} req/s "
                    f"p50 {res.p50_ms:6.2f} ms p99 {res.p99_ms:6.2f} ms errors {res.errors}{cpu}",
                    flush=True,
                )
    finally:
        for server in servers:
            stop_server(server)

    bare = next((s for s in servers if s.variant == "bare"), None)
    summary: dict[str, Any] = {"client": client, "duration_s": duration, "rounds": rounds,
                               "path": args.path, "variants": {}}  # fmt: skip
    print(
        f"\n{'variant':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'rps/bare':>9} "
        f"{'best/best':>9} {'CPU us/req':>10} {'CPU bare/x':>10}"
    )
    for server in servers:
        summary["variants"][server.variant] = row = summarize(server, bare)
        print(
            f"{server.variant:10} {row['rps']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{_fmt(row['rps_ratio_vs_bare'])} {_fmt(row['best_rps_ratio_vs_bare'])} "
            f"{_fmt(row['cpu_us_per_request'], 10, 0)} {_fmt(row['cpu_ratio_bare_over_this'], 10)}"
        )
    print(
        "\nrps/bare: median of per-round ratios; best/best: best round against bare's best "
        "(rounds hit by\nanother process on the machine are slow, never fast); CPU bare/x: "
        "bare's server CPU per request\nover this variant's, the throughput a CPU-bound server "
        "keeps (medians over rounds)."
    )
    if args.json:
        write_json(args.json, summary)
    return 0


def summarize(server: Server, bare: Server | None) -> dict[str, Any]:
    results = server.results
    cpu = [r.cpu_us for r in results if r.cpu_us is not None]
    row: dict[str, Any] = {
        "rps": statistics.median(r.rps for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "cpu_us_per_request": statistics.median(cpu) if cpu else None,
        "rps_ratio_vs_bare": None,
        "best_rps_ratio_vs_bare": None,
        "cpu_ratio_bare_over_this": None,
        "errors": sum(r.errors for r in results),
        "runs": [vars(r) for r in results],
    }
    if bare is not None:
        row["rps_ratio_vs_bare"] = statistics.median(
            a.rps / b.rps for a, b in zip(results, bare.results) if b.rps
        )
        row["best_rps_ratio_vs_bare"] = max(r.rps for r in results) / max(
            r.rps for r in bare.results
        )
        bare_cpu = [r.cpu_us for r in bare.results if r.cpu_us is not None]
        if cpu and bare_cpu:
            row["cpu_ratio_bare_over_this"] = statistics.median(bare_cpu) / statistics.median(cpu)
    return row


def _fmt(value: float | None, width: int = 9, digits: int = 3) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
