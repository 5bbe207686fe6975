"""Memory benchmark: ``python -m benchmarks.memory [--quick] [-n N] [--json PATH]``.

Two parts, per variant (bare, routetimer when importable, otel, floor; instrumented ones
on the ``batch`` pipeline: BatchSpanProcessor to a no-op exporter, in-memory metric reader):

1. tracemalloc, in this process: peak bytes allocated above the baseline while serving one
   request (the transient working set of a request), and bytes still held per request after
   K requests, a flush of the span processor and a full GC (should be ~0: anything steady
   is a leak or an unbounded cache).
2. RSS, each variant in a fresh child process: N requests (default 1,000,000; --quick 20,000)
   to N distinct URLs, half ``/items/<i>`` (one route with a path parameter), half unmatched
   ``/nope/<i>`` (404); VmRSS after a 10% warm-up and at the end. Growth here means per-URL
   state somewhere (e.g. a cache keyed by path, or metric attributes with unbounded values;
   the number of metric points held by the reader is printed too).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from benchmarks.apps import (
    Pipeline,
    WSGIApp,
    available_variants,
    make_app,
    make_pipeline,
    write_json,
)
from benchmarks.overhead import make_environ, start_response

VARIANTS = ("bare", "routetimer", "otel", "floor")
MIB = 1024.0 * 1024.0


def vm_rss_kib() -> int | None:
    """VmRSS of this process from /proc/self/status (None where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def serve(wsgi: WSGIApp, template: dict[str, Any], start: int, stop: int) -> None:
    """Requests start..stop-1 to distinct URLs: even i -> /items/i, odd i -> /nope/i."""
    copy = template.copy
    for i in range(start, stop):
        env = copy()
        path = f"/items/{i}" if i % 2 == 0 else f"/nope/{i}"
        env["PATH_INFO"] = path
        env["RAW_URI"] = path
        body = wsgi(env, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def build(variant: str) -> tuple[WSGIApp, Pipeline | None]:
    pipeline = None if variant == "bare" else make_pipeline("batch")
    return make_app(variant, pipeline).wsgi_app, pipeline


def flush(pipeline: Pipeline | None) -> None:
    if pipeline is not None:
        tp: Any = pipeline.tracer_provider
        tp.force_flush()


def metric_points(pipeline: Pipeline | None) -> int | None:
    """Data points currently held by the in-memory metric reader (cardinality)."""
    if pipeline is None or pipeline.metric_reader is None:
        return None
    data = pipeline.metric_reader.get_metrics_data()
    if data is None:
        return 0
    return sum(
        len(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


def tracemalloc_part(variants: list[str], k: int) -> dict[str, dict[str, float]]:
    template = make_environ("/")
    built = {v: build(v) for v in variants}
    for wsgi, _ in built.values():  # warm-up outside tracing
        serve(wsgi, template, 0, 2000)
    results: dict[str, dict[str, float]] = {}
    tracemalloc.start()
    try:
        for variant, (wsgi, pipeline) in built.items():
            serve(wsgi, template, 10_000, 10_200)  # warm the traced path
            flush(pipeline)
            gc.collect()
            peaks: list[int] = []
            for i in range(20_000, 20_000 + 200):
                base, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                serve(wsgi, template, i, i + 1)
                _, peak = tracemalloc.get_traced_memory()
                peaks.append(peak - base)
            flush(pipeline)
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            serve(wsgi, template, 100_000, 100_000 + k)
            flush(pipeline)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
            peaks.sort()
            results[variant] = {
                "peak_bytes_per_request_median": float(peaks[len(peaks) // 2]),
                "retained_bytes_per_request": (after - before) / k,
            }
    finally:
        tracemalloc.stop()
        for _, pipeline in built.values():
            if pipeline is not None:
                pipeline.shutdown()
    return results


def rss_child(variant: str, n: int) -> dict[str, Any]:
    wsgi, pipeline = build(variant)
    template = make_environ("/")
    warm = max(1, n // 10)
    rss_start = vm_rss_kib()
    t0 = time.perf_counter()
    serve(wsgi, template, 0, warm)
    flush(pipeline)
    gc.collect()
    rss_warm = vm_rss_kib()
    serve(wsgi, template, warm, n)
    flush(pipeline)
    gc.collect()
    rss_end = vm_rss_kib()
    elapsed = time.perf_counter() - t0
    points = metric_points(pipeline)
    app = getattr(wsgi, "__self__", None)  # the Flask app of its bound wsgi_app
    state = app.extensions.get("routetimer") if app is not None else None
    if pipeline is not None:
        pipeline.shutdown()
    return {
        "variant": variant, "requests": n, "warmup_requests": warm, "seconds": elapsed,
        "rss_start_kib": rss_start, "rss_warm_kib": rss_warm, "rss_end_kib": rss_end,
        "growth_mib": None if rss_warm is None or rss_end is None
        else (rss_end - rss_warm) / 1024.0,
        "metric_points": points,
        "stats_rows": None if state is None else len(state.stats),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 requests, smaller K")
    parser.add_argument("-n", "--requests", type=int, default=None, help="RSS run length")
    parser.add_argument("-k", type=int, default=None, help="requests for retained bytes")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--skip-tracemalloc", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--child-rss", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    n = args.requests or (20_000 if args.quick else 1_000_000)
    k = args.k or (500 if args.quick else 5000)

    if args.child_rss:
        print(json.dumps(rss_child(args.child_rss, n)))
        return 0

    variants = available_variants(args.variants)
    out: dict[str, Any] = {"requests": n, "k": k}

    if not args.skip_tracemalloc:
        print(f"tracemalloc: peak above baseline during one request; retained after {k} req")
        print(f"{'variant':10} {'peak KiB/req':>13} {'retained B/req':>15}")
        tm = tracemalloc_part(variants, k)
        for variant, row in tm.items():
            print(
                f"{variant:10} {row['peak_bytes_per_request_median'] / 1024:13.1f} "
                f"{row['retained_bytes_per_request']:15.1f}"
            )
        out["tracemalloc"] = tm

    if not args.skip_rss:
        print(f"\nRSS: {n} distinct URLs (half /items/<i>, half 404 /nope/<i>), fresh process each")
        header = (
            f"{'variant':10} {'RSS warm MiB':>13} {'RSS end MiB':>12} {'growth MiB':>11} "
            f"{'metric pts':>10} {'stats rows':>10} {'us/req':>8}"
        )
        print(header)
        rss: dict[str, Any] = {}
        for variant in variants:
            cmd = [sys.executable, "-m", "benchmarks.memory", "--child-rss", variant, "-n", str(n)]
            proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rss[variant] = row

            def mib(kib: int | None) -> str:
                return "n/a" if kib is None else f"{kib / 1024:.1f}"

            growth = row["growth_mib"]
            points = row["metric_points"]
            rows = row["stats_rows"]
            print(
                f"{variant:10} {mib(row['rss_warm_kib']):>13} {mib(row['rss_end_kib']):>12} "
                f"{'n/a' if growth is None else f'{growth:.2f}':>11} "
                f"{'-' if points is None else points:>10} {'-' if rows is None else rows:>10} "
                f"{1e6 * row['seconds'] / n:8.1f}",
                flush=True,
            )
        out["rss"] = rss

    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
