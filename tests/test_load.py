"""Real servers on 127.0.0.1 under a bounded mixed load: every request is one span, nothing leaks.

Each run serves a fixed number of requests (ordinary, streamed, 500, 403, 404, exempt, and clients
walking away mid-stream) from 8 client threads, stops the server gracefully, and checks what each
process exported (JSON lines per PID), its ``http.server.active_requests``, its log and its RSS.
Longer runs of the same harness: ``benchmarks/soak_reliability.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import loadkit
import pytest

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

WARMUP = 1000  # > trace buffer (200) per worker: later growth would be a leak
REQUESTS = 3000
CUTS = 10
#: RSS growth allowed per worker between warm-up and the end of the load (allocator noise).
RSS_SLACK_KB = 8 * 1024


@pytest.mark.parametrize(
    "kind, options",
    [
        ("sync", {"workers": 2}),
        ("gthread", {"workers": 2, "threads": 4}),
        ("werkzeug", {}),
        ("sync", {"workers": 2, "preload": True}),
    ],
    ids=["gunicorn-sync", "gunicorn-gthread", "werkzeug-threaded", "gunicorn-sync-preload"],
)
def test_every_request_is_one_span(tmp_path, kind, options):
    """Exactly one finished span per timed request, right route and status, none lost or extra."""
    with loadkit.serve(kind, tmp_path, **options) as server:
        warmup = loadkit.drive(server.port, WARMUP, concurrency=8)
        pids = server.worker_pids()
        rss_before = {pid: loadkit.rss_kb(pid) for pid in pids}
        load = loadkit.drive(server.port, REQUESTS, concurrency=8, cuts=CUTS)
        rss_after = {pid: loadkit.rss_kb(pid) for pid in pids if pid in server.worker_pids()}
    assert server.process.returncode == 0, server.stderr_path.read_text()[-3000:]
    assert not warmup.wrong and not load.wrong, (warmup.wrong, load.wrong)
    assert load.cut == CUTS

    spans = loadkit.read_spans(tmp_path)
    expected = loadkit.expected_spans(warmup) + loadkit.expected_spans(load)
    assert loadkit.server_spans(spans) == expected
    assert len({s["span_id"] for s in spans}) == len(spans), "a span was exported twice"
    workers = loadkit.read_workers(tmp_path)
    assert {w["pid"] for w in workers} >= set(pids), "a worker did not flush at exit"
    assert all(value == 0 for w in workers for value in w["active"]), workers
    assert not loadkit.forbidden_lines(server.stderr_path.read_text())
    growth = {pid: rss_after[pid] - rss_before[pid] for pid in rss_after}
    assert rss_after and all(kb <= RSS_SLACK_KB for kb in growth.values()), growth
    if options.get("preload"):
        assert len({s["pid"] for s in spans}) == options["workers"], "spans from every worker"
    print(
        f"\n[load] {kind}{' --preload' if options.get('preload') else ''}: "
        f"{warmup.requests}+{load.requests} requests ({load.cut} cut short), 8 client threads, "
        f"{load.seconds:.2f} s for the measured part ({load.requests / load.seconds:.0f} req/s), "
        f"{sum(expected.values())} spans expected and found, RSS growth KiB {growth}"
    )


def test_plain_fork(tmp_path):
    """os.fork after requests: the children's spans all arrive, none duplicated, none lost."""
    children, count = 3, 40
    completed = subprocess.run(
        [sys.executable, str(loadkit.HERE / "loadapp.py"), "fork", str(children), str(count)],
        env=dict(
            __import__("os").environ,
            ROUTETIMER_LOAD_DIR=str(tmp_path),
            PYTHONPATH=str(loadkit.ROOT),
        ),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    spans = [s for s in loadkit.read_spans(tmp_path) if s["kind"] == "SERVER"]
    assert len(spans) == (children + 1) * count
    assert len({s["span_id"] for s in spans}) == len(spans), "a span was exported twice"
    assert Counter(s["pid"] for s in spans).most_common()[-1][1] == count
    assert len({s["pid"] for s in spans}) == children + 1
    assert all(value == 0 for w in loadkit.read_workers(tmp_path) for value in w["active"])
    assert not loadkit.forbidden_lines(completed.stderr.decode())
