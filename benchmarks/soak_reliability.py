"""Soak: the real-server load test of ``tests/test_load.py``, longer, with RSS sampled per round.

    python benchmarks/soak_reliability.py --server gthread --requests 50000 --rounds 10

Each round sends ``--requests`` requests of the mix (ordinary, streamed, 500, 403, 404, exempt)
plus ``--cuts`` clients walking away mid-stream, all on 127.0.0.1, then records worker RSS. At the
end the server is stopped gracefully and every span is accounted for, as in the tests. Exit
status 1 if anything was lost, duplicated or logged, or RSS grew by more than ``--rss-slack-mb``
after the first round.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import loadkit  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["sync", "gthread", "werkzeug"], default="gthread")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--preload", action="store_true")
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cuts", type=int, default=50, help="walked-away streams per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--budget", type=float, default=600, help="seconds allowed per round")
    parser.add_argument("--rss-slack-mb", type=float, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory)
        results = []
        rss: list[dict[int, int]] = []
        options = {"workers": args.workers, "threads": args.threads, "preload": args.preload}
        with loadkit.serve(args.server, out, **options) as server:
            pids = server.worker_pids()
            for index in range(args.rounds):
                result = loadkit.drive(
                    server.port,
                    args.requests,
                    concurrency=args.concurrency,
                    cuts=args.cuts,
                    budget=args.budget,
                )
                results.append(result)
                rss.append({pid: loadkit.rss_kb(pid) for pid in pids})
                print(
                    f"round {index + 1}: {result.requests} requests in {result.seconds:.1f} s "
                    f"({result.requests / result.seconds:.0f}/s), wrong {len(result.wrong)}, "
                    f"RSS KiB {rss[-1]}",
                    flush=True,
                )
        expected = sum((loadkit.expected_spans(r) for r in results), loadkit.Counter())
        spans = loadkit.read_spans(out)
        found = loadkit.server_spans(spans)
        workers = loadkit.read_workers(out)
        problems = []
        if found != expected:
            problems.append(f"spans: missing {expected - found}, extra {found - expected}")
        if len({s["span_id"] for s in spans}) != len(spans):
            problems.append("a span was exported twice")
        if any(value != 0 for w in workers for value in w["active"]):
            problems.append(f"active requests not back to 0: {workers}")
        if any(r.wrong for r in results):
            problems.append(f"unexpected statuses: {[r.wrong[:5] for r in results]}")
        logged = loadkit.forbidden_lines(server.stderr_path.read_text())
        if logged:
            problems.append(f"logged: {logged[:5]}")
        growth = {pid: rss[-1][pid] - rss[0][pid] for pid in rss[0] if pid in rss[-1]}
        if any(kb > args.rss_slack_mb * 1024 for kb in growth.values()):
            problems.append(f"RSS grew after round 1 (KiB): {growth}")
        total = sum(r.requests for r in results)
        print(
            f"{args.server}: {total} requests, {sum(expected.values())} spans expected, "
            f"{sum(found.values())} found; RSS growth after round 1 (KiB) {growth}"
        )
        for problem in problems:
            print("PROBLEM:", problem)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
