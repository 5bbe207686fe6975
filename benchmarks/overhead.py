"""In-process overhead benchmark: ``python -m benchmarks.overhead [--quick] [--json PATH]``.

Every request goes straight to ``app.wsgi_app(environ, start_response)`` with a copy of a
prebuilt environ; the body is iterated and closed. All cells (variant x pipeline x route)
run in one process, in interleaved rounds with a fresh shuffled order per round; the figure
for a cell is the median over rounds of its per-request microseconds, and overheads are
medians of the per-round differences against bare Flask on the same route.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarks.apps import (
    Pipeline,
    RouteTimerUnavailable,
    WSGIApp,
    make_app,
    make_hooks_floor,
    make_pipeline,
    make_routetimer,
    write_json,
)

PATHS = {
    "hello": "/hello",
    "item": "/items/42",
    "health": "/health",
    "exempt": "/exempt",
}
PIPELINES = ("batch", "simple", "nosdk", "unsampled")
INSTRUMENTED = ("routetimer", "otel", "floor")


def make_environ(path: str) -> dict[str, Any]:
    """A GET environ template like the one gunicorn builds (copied per request)."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "54321",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


_STATUS: list[str] = [""]


def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
    _STATUS[0] = status
    return _write


def _write(data: bytes) -> None:
    return None


def null_wsgi(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
    """Harness-only cell: the cost of the environ copy + call + loop, nothing else."""
    start("200 OK", [])
    return [b"x"]


#: The clock for the request loops. CPU time of the whole process (background export threads
#: and GC included) is the default: on a shared machine wall time also counts the time other
#: processes held the core, which is noise for a per-request cost. ``--clock wall`` switches.
CLOCKS = {"cpu": time.process_time_ns, "wall": time.perf_counter_ns}
clock = CLOCKS["cpu"]


def run_requests(wsgi: WSGIApp, template: dict[str, Any], n: int) -> float:
    """Per-request microseconds for n requests (the same loop for every cell)."""
    copy = template.copy
    sr = start_response
    t0 = clock()
    for _ in range(n):
        body = wsgi(copy(), sr)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (clock() - t0) / n / 1000.0


@dataclass
class Cell:
    label: str
    variant: str
    pipeline: str
    route: str
    wsgi: WSGIApp
    template: dict[str, Any]
    sdk: Pipeline | None = None
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def build_cells(pipeline_names: list[str]) -> tuple[list[Cell], list[Pipeline], list[str]]:
    """Every cell, each instrumented variant on providers of its own.

    Variants never share a provider: flask-routetimer adds its trace buffer to the provider it
    is given, and on a shared one the floor's and the OTel instrumentation's spans would pay
    for that span processor too (about 4 us each), flattering flask-routetimer's ratios.
    """
    cells: list[Cell] = []
    pipelines: list[Pipeline] = []
    skipped: list[str] = []
    cells.append(Cell("harness", "harness", "-", "hello", null_wsgi, make_environ("/hello")))
    bare = make_app("bare", None)
    for route in ("hello", "item", "health", "exempt"):
        cells.append(
            Cell(f"bare/{route}", "bare", "-", route, bare.wsgi_app, make_environ(PATHS[route]))
        )
    hooks = make_hooks_floor()
    for route in ("hello", "exempt"):
        cells.append(
            Cell(f"hooks/{route}", "hooks", "-", route, hooks.wsgi_app, make_environ(PATHS[route]))
        )
    for pname in pipeline_names:
        for variant in INSTRUMENTED:
            pipeline = make_pipeline(pname)
            pipelines.append(pipeline)
            try:
                app = make_app(variant, pipeline)
            except RouteTimerUnavailable:
                if variant not in skipped:
                    print("flask-routetimer not importable: skipped", flush=True)
                    skipped.append(variant)
                continue
            routes = ["hello", "item"]
            if pname == "batch" and variant == "routetimer":
                routes += ["health", "exempt"]  # excluded and exempt cases
            if pname == "batch" and variant == "otel":
                routes += ["health"]  # excluded case, for comparison
            for route in routes:
                cells.append(
                    Cell(
                        f"{variant}/{pname}/{route}",
                        variant,
                        pname,
                        route,
                        app.wsgi_app,
                        make_environ(PATHS[route]),
                        pipeline,
                    )
                )
        if pname == "batch" and "routetimer" not in skipped:
            cells += multiproc_cells(pipelines)
    return cells, pipelines, skipped


#: Directories of the multiproc cells, removed once their writers stopped (see ``cleanup``).
_SHARED: list[tuple[str, Any]] = []


def multiproc_cells(pipelines: list[Pipeline]) -> list[Cell]:
    """flask-routetimer publishing to ROUTETIMER_MULTIPROC_DIR (its writer thread runs during the
    rounds, and the process CPU clock counts it), to compare with ``routetimer/batch``."""
    pipeline = make_pipeline("batch")
    pipelines.append(pipeline)
    directory = tempfile.mkdtemp(prefix="routetimer-bench-")
    app = make_routetimer(pipeline, ROUTETIMER_MULTIPROC_DIR=directory)
    _SHARED.append((directory, app.extensions["routetimer"].multiproc))
    return [
        Cell(
            f"multiproc/batch/{route}",
            "multiproc",
            "batch",
            route,
            app.wsgi_app,
            make_environ(PATHS[route]),
            pipeline,
        )
        for route in ("hello", "item")
    ]


def cleanup() -> None:
    """Stop the multiproc cells' writers, then remove their directories."""
    for directory, multiproc in _SHARED:
        multiproc.stop()
        shutil.rmtree(directory, ignore_errors=True)


def verify(cells: list[Cell]) -> list[str]:
    """One request per cell before timing: status 200; span counts on 'simple'.

    One span per instrumented request, none for excluded (/health) or exempt (/exempt).
    """
    notes: list[str] = []
    for cell in cells:
        exporter = cell.sdk.span_exporter if cell.sdk is not None else None
        if exporter is not None:
            exporter.clear()
        run_requests(cell.wsgi, cell.template, 1)
        if not _STATUS[0].startswith("200"):
            raise SystemExit(f"{cell.label}: unexpected status {_STATUS[0]!r}")
        if exporter is None:
            continue
        spans = exporter.get_finished_spans()
        if len(spans) != 1:
            raise SystemExit(f"{cell.label}: expected 1 span, got {len(spans)}")
        if cell.variant == "otel" and cell.route == "item":
            attrs = spans[0].attributes or {}
            stable = "http.request.method" in attrs and "http.method" not in attrs
            notes.append(
                f"otel span {spans[0].name!r}: {len(attrs)} attributes, stable semconv={stable}"
            )
            if not stable:
                raise SystemExit("otel instrumentation is not in stable (http) semconv mode")
        if cell.route == "hello" and cell.variant in ("routetimer", "otel"):
            silent = ["health", "exempt"] if cell.variant == "routetimer" else ["health"]
            for route in silent:  # excluded / exempt: no span expected
                exporter.clear()
                run_requests(cell.wsgi, make_environ(PATHS[route]), 1)
                got = len(exporter.get_finished_spans())
                if got or not _STATUS[0].startswith("200"):
                    raise SystemExit(f"{cell.variant} {route}: {got} spans, {_STATUS[0]!r}")
        if cell.variant == "floor" and cell.route == "hello":
            notes.append(f"floor span: {len(spans[0].attributes or {})} attributes")
        exporter.clear()
    return notes


def run_rounds(
    cells: list[Cell], pipelines: list[Pipeline], rounds: int, n: int, warmup: int, seed: int
) -> None:
    rng = random.Random(seed)
    for cell in cells:  # warm-up: caches, lazily created instruments, BSP thread
        run_requests(cell.wsgi, cell.template, warmup)
    for r in range(rounds):
        for pipeline in pipelines:
            pipeline.reset()
        gc.collect()
        order = list(cells)
        rng.shuffle(order)
        for cell in order:
            cell.samples.append(run_requests(cell.wsgi, cell.template, n))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)


def paired_overhead(cell: Cell, base: Cell) -> float:
    """Median over rounds of (cell - base) per-request microseconds."""
    return statistics.median(a - b for a, b in zip(cell.samples, base.samples))


def spread_pct(cell: Cell) -> float | None:
    """Interquartile range of the per-round samples, as % of the median."""
    if len(cell.samples) < 4:
        return None
    q = statistics.quantiles(cell.samples, n=4)
    return 100.0 * (q[2] - q[0]) / cell.median


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def report(cells: list[Cell], pipelines: list[Pipeline]) -> dict[str, Any]:
    by_label = {c.label: c for c in cells}
    bare = {c.route: c for c in cells if c.variant == "bare"}
    rows: dict[str, dict[str, Any]] = {}
    print()
    print(f"{'cell':32} {'us/req':>9} {'IQR%':>6} {'overhead us':>12} {'% of bare':>10}")
    print("-" * 73)
    for cell in cells:
        row: dict[str, Any] = {
            "us_per_request": cell.median,
            "iqr_pct": spread_pct(cell),
            "samples": cell.samples,
        }
        iqr = row["iqr_pct"]
        line = f"{cell.label:32} {cell.median:9.2f} {'-' if iqr is None else f'{iqr:.1f}':>6}"
        if cell.variant not in ("bare", "harness"):
            base = bare[cell.route]
            extra = paired_overhead(cell, base)
            row["overhead_us"] = extra
            row["overhead_pct"] = 100.0 * extra / base.median
            line += f" {extra:12.2f} {row['overhead_pct']:9.1f}%"
        rows[cell.label] = row
        print(line)

    def over(label: str) -> float | None:
        row = rows.get(label)
        return None if row is None else row.get("overhead_us")

    def pct(label: str) -> float | None:
        row = rows.get(label)
        return None if row is None else row.get("overhead_pct")

    ratios: dict[str, float | None] = {}
    for pname in ("batch", "simple"):
        for route in ("hello", "item"):
            rt, ot, fl = (over(f"{v}/{pname}/{route}") for v in INSTRUMENTED)
            ratios[f"routetimer/otel {pname}/{route}"] = _ratio(rt, ot)
            ratios[f"routetimer/floor {pname}/{route}"] = _ratio(rt, fl)
            ratios[f"otel/floor {pname}/{route}"] = _ratio(ot, fl)
    cases: dict[str, float | None] = {}
    for variant in INSTRUMENTED:
        for pname in ("nosdk", "unsampled"):
            for route in ("hello", "item"):
                cases[f"{variant} {pname} {route}"] = pct(f"{variant}/{pname}/{route}")
    cases["routetimer excluded (/health)"] = pct("routetimer/batch/health")
    cases["routetimer exempt (/exempt)"] = pct("routetimer/batch/exempt")
    cases["otel excluded (/health)"] = pct("otel/batch/health")
    cases["hooks floor: 3 no-op signal receivers"] = pct("hooks/hello")
    extra: dict[str, float | None] = {}
    for route in ("hello", "item"):
        mine, base = (
            by_label.get(f"multiproc/batch/{route}"),
            by_label.get(f"routetimer/batch/{route}"),
        )
        extra[f"multiproc dir set, batch/{route}"] = (
            None if mine is None or base is None else paired_overhead(mine, base)
        )

    print("\nratios of overheads (routetimer/otel < 1 means routetimer is cheaper):")
    for key, value in ratios.items():
        print(f"  {key:36} {'n/a' if value is None else f'{value:6.2f}'}")
    print("\ncase overhead, % of bare on the same route:")
    for key, value in cases.items():
        print(f"  {key:36} {'n/a' if value is None else f'{value:6.1f}%'}")
    print("\nROUTETIMER_MULTIPROC_DIR set, us/request more than routetimer on the same route:")
    for key, value in extra.items():
        print(f"  {key:36} {'n/a' if value is None else f'{value:+6.2f} us'}")
    harness = by_label["harness"].median
    print(
        f"\nharness alone (environ copy + call + body loop): {harness:.2f} us/request, "
        f"included in every cell, bare too"
    )
    return {
        "cells": rows,
        "ratios": ratios,
        "cases_pct_of_bare": cases,
        "multiproc_extra_us": extra,
        "pipelines": {p.name: p.notes for p in pipelines},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, CI smoke")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("-n", "--requests", type=int, default=None, help="per cell per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="cpu", help="process CPU time (default) or wall"
    )
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    rounds = args.rounds or (3 if args.quick else 15)
    n = args.requests or (100 if args.quick else 1000)
    warmup = 50 if args.quick else 300

    cells, pipelines, skipped = build_cells([name for name in args.pipelines.split(",") if name])
    for note in verify(cells):
        print(note)
    print(
        f"{len(cells)} cells x {rounds} rounds x {n} requests; python {platform.python_version()}"
        f", pid {os.getpid()}"
    )
    for name, notes in {p.name: p.notes for p in pipelines}.items():
        print(f"  pipeline {name}: {notes} (one per variant)")
    t0 = time.monotonic()
    try:
        run_rounds(cells, pipelines, rounds, n, warmup, args.seed)
        result = report(cells, pipelines)
    finally:
        cleanup()
        for p in pipelines:
            p.shutdown()
    print(f"\nwall time {time.monotonic() - t0:.1f} s")
    if args.json:
        result.update(
            {
                "rounds": rounds,
                "requests_per_round": n,
                "skipped": skipped,
                "quick": args.quick,
                "python": platform.python_version(),
            }
        )
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
