"""Cost of the merged view (ROUTETIMER_MULTIPROC_DIR): ``python -m benchmarks.multiproc``.

- **merge**: one worker answers ``/api/stats`` for 8 workers x 1000 routes (each route with
  ~500 requests spread over its latency buckets): through the dashboard (parse, validate,
  merge, quantiles, JSON) with every file new since the last read ("cold", the case under
  load, when every worker rewrote its file) and with unchanged files ("warm", parsed files
  cached by inode, size and mtime).
- **writer**: CPU of one write of a worker with 1000 routes and a full trace buffer (200
  traces of 2 spans): every route and all 200 traces new since the last write (the worst
  interval), every route but only 20 traces new, and nothing new (what an idle worker costs
  per interval); medians of 5 (20 idle).

- ``--base REF``: the merge and the writer of the package as committed at ``REF`` (``git
  archive``, as ``benchmarks.compare`` does) beside the working tree's, in the same run, each
  case's cells shuffled in every round: on a shared machine, compare the two columns of one run.

- **per request**: flask-routetimer (batch pipeline) with and without the directory, in
  interleaved rounds with the order shuffled each round, on process CPU time (the writer thread
  included); the figure is the median of the per-round differences. The same cells are also in
  ``benchmarks.overhead`` (``multiproc/batch``), among many others and so with fewer rounds each.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from flask import Flask
from opentelemetry.sdk.trace import TracerProvider

from benchmarks.apps import write_json

WORKERS = 8
ROUTES = 1000


def make_app(
    directory: Optional[str],
    routes: int,
    provider: TracerProvider,
    package: str = "flask_routetimer",
) -> tuple[Flask, Any]:
    """An app publishing to ``directory``, with the dashboard on as in production (auth set,
    no debug mode: Flask pretty-prints JSON in debug mode, several times slower)."""
    route_timer = importlib.import_module(package).RouteTimer

    app = Flask("bench_multiproc")
    app.config.update(
        ROUTETIMER_MULTIPROC_DIR=directory,
        ROUTETIMER_MULTIPROC_INTERVAL=3600,
        ROUTETIMER_DASHBOARD=True,
        ROUTETIMER_DASHBOARD_AUTH=lambda: True,
    )
    timer = route_timer(app, tracer_provider=provider)
    for index in range(routes):
        app.add_url_rule(f"/r{index}/<int:n>", f"r{index}", lambda n: "ok")
    return app, timer


def fill_stats(app: Flask, routes: int, per_route: int, seed: int) -> None:
    """``per_route`` lognormal latencies (median 20 ms) into each route's row."""
    rng = random.Random(seed)
    table = app.extensions["routetimer"].stats
    for index in range(routes):
        for _ in range(per_route):
            table.record("GET", f"/r{index}/<int:n>", rng.lognormvariate(-3.9, 0.8), False)


def timed(function: Callable[[], Any], repeat: int) -> list[float]:
    """CPU milliseconds of each call in this thread: on a shared machine wall time would also
    count the time other processes held the core."""
    return [cpu_ms(function) for _ in range(repeat)]


def cpu_ms(function: Callable[[], Any]) -> float:
    """CPU milliseconds of one call in this thread (what the writer thread would spend)."""
    start = time.thread_time()
    function()
    return (time.thread_time() - start) * 1000


def merge_cases(
    directory: str, routes: int, per_route: int, package: str = "flask_routetimer"
) -> tuple[dict[str, Callable[[], None]], dict[str, Any]]:
    """Publish 8 workers' tables, then the calls to time in a ninth app (no table of its own):
    ``timer.stats()`` and ``/api/stats``, with every file new ("cold": as if every worker had
    rewritten its file since the last read) and unchanged ("warm")."""
    provider = TracerProvider()
    for worker in range(WORKERS):
        app, _ = make_app(directory, routes, provider, package)
        fill_stats(app, routes, per_route, seed=worker)
        app.extensions["routetimer"].multiproc.publish()
    reader, timer = make_app(directory, 0, provider, package)
    client = reader.test_client()
    cache = reader.extensions["routetimer"].multiproc.cache

    def api(query: str, fresh: bool) -> Callable[[], None]:
        def call() -> None:
            if fresh:
                cache.keep_only(())
            answer = client.get(f"/_routetimer/api/stats{query}")
            # Not answer.get_json(): parsing ~120,000 buckets is the client's cost, not the
            # server's (and took longer than serving them).
            assert answer.status_code == 200 and f'"workers":{WORKERS}'.encode() in answer.data

        return call

    def merge_only(fresh: bool) -> Callable[[], None]:
        def call() -> None:
            if fresh:
                cache.keep_only(())
            assert timer.stats(reader).workers == WORKERS

        return call

    api("", True)()  # imports, first parse
    sizes = [os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)]
    info = {"workers": WORKERS, "routes": routes, "stats_file_kb": max(sizes) / 1024}
    cases = {
        "timer.stats(), files new": merge_only(True),
        "timer.stats(), files cached": merge_only(False),
        "/api/stats?buckets=0, files new": api("?buckets=0", True),
        "/api/stats?buckets=0, files cached": api("?buckets=0", False),
        "/api/stats, files new": api("", True),
        "/api/stats, files cached": api("", False),
    }
    return cases, info


def one_process_case(routes: int, per_route: int) -> Callable[[], None]:
    """/api/stats of one process with the same routes and requests, no directory."""
    alone, _ = make_app(None, routes, TracerProvider())
    for worker in range(WORKERS):
        fill_stats(alone, routes, per_route, seed=worker)
    client = alone.test_client()

    def call() -> None:
        assert client.get("/_routetimer/api/stats").status_code == 200

    return call


# freeze_fixtures: the fixture holds 9 apps of 1000 routes per package (18 with --base), each
# route's table row a tracked list of 551 counts. A full collection walks all of them (150-200
# ms here, where one worker's heap has one such table), and lands on whichever call happened
# to cross the threshold: gc.freeze() leaves the fixture out of collections, so the figures
# are the reads' own work, their own garbage collections included.


def shuffled_medians(cells: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median CPU ms of each cell over ``repeat`` rounds, the cells shuffled in every round."""
    samples: dict[str, list[float]] = {name: [] for name in cells}
    rng = random.Random(7)
    for _ in range(repeat):
        for name in rng.sample(list(cells), len(cells)):
            samples[name].append(cpu_ms(cells[name]))
    return {name: statistics.median(times) for name, times in samples.items()}


def bench_merge(directory: str, routes: int, per_route: int, repeat: int) -> dict[str, Any]:
    """The merge cases and the one-process baseline, in shuffled rounds."""
    cases, figures = merge_cases(directory, routes, per_route)
    figures["requests_per_route_per_worker"] = per_route
    cells = {"/api/stats, one process, no directory": one_process_case(routes, per_route)}
    cells.update(cases)
    gc.freeze()  # see freeze_fixtures
    figures["ms"] = shuffled_medians(cells, repeat)
    gc.unfreeze()
    return figures


def writer_cases(
    directory: str, routes: int, per_route: int, package: str = "flask_routetimer"
) -> tuple[dict[str, Callable[[], float]], Callable[[], dict[str, Any]]]:
    """One interval's write of a worker with ``routes`` routes and a full trace buffer: every
    route and all 200 traces new, every route and 20 traces new, nothing new (each returns its
    CPU ms); and what to call when done (the traces file's size)."""
    provider = TracerProvider()
    app, timer = make_app(directory, routes, provider, package)
    fill_stats(app, routes, per_route, seed=99)
    client = app.test_client()
    multiproc = app.extensions["routetimer"].multiproc

    def after(count: int) -> Callable[[], float]:
        def call() -> float:
            for index in range(count):
                with timer.timed("lookup"):
                    pass
                client.get(f"/r{index % routes}/{index}")
            for index in range(routes):  # every route changed too
                app.extensions["routetimer"].stats.record("GET", f"/r{index}/<int:n>", 0.01, False)
            return cpu_ms(multiproc.publish)

        return call

    def done() -> dict[str, Any]:
        traces = os.path.getsize(os.path.join(directory, f"traces-{multiproc.worker}.json"))
        stats = os.path.getsize(os.path.join(directory, f"stats-{multiproc.worker}.json"))
        multiproc.stop()
        provider.shutdown()
        return {"traces_file_kb": traces / 1024, "stats_file_kb": stats / 1024}

    after(200)()  # a full buffer
    cases = {
        "all_changed_cpu_ms": after(200),
        "20_new_traces_cpu_ms": after(20),
        "idle_cpu_ms": lambda: cpu_ms(multiproc.publish),
    }
    return cases, done


def bench_writer(directory: str, routes: int, per_route: int) -> dict[str, Any]:
    """CPU of one interval's write: everything new, 20 new traces, nothing new; medians of 5
    (20 idle)."""
    cases, done = writer_cases(directory, routes, per_route)
    figures: dict[str, Any] = {"routes": routes, "traces": 200}
    for name, call in cases.items():
        figures[name] = statistics.median(call() for _ in range(20 if "idle" in name else 5))
    figures.update(done())
    return figures


def bench_per_request(rounds: int, requests: int) -> dict[str, Any]:
    """Paired rounds of /hello: with ROUTETIMER_MULTIPROC_DIR (writer running) and without."""
    from benchmarks.apps import make_pipeline, make_routetimer
    from benchmarks.overhead import make_environ, run_requests

    directory = tempfile.mkdtemp(prefix="routetimer-bench-")
    plain_pipeline, shared_pipeline = make_pipeline("batch"), make_pipeline("batch")
    plain = make_routetimer(plain_pipeline).wsgi_app
    shared_app = make_routetimer(shared_pipeline, ROUTETIMER_MULTIPROC_DIR=directory)
    cells = {"without": plain, "with": shared_app.wsgi_app}
    samples: dict[str, list[float]] = {name: [] for name in cells}
    environ = make_environ("/hello")
    rng = random.Random(5)
    try:
        for wsgi in cells.values():
            run_requests(wsgi, environ, 500)  # warm-up; starts the writer thread
        for _ in range(rounds):
            order = list(cells)
            rng.shuffle(order)
            for name in order:
                samples[name].append(run_requests(cells[name], environ, requests))
    finally:
        shared_app.extensions["routetimer"].multiproc.stop()
        plain_pipeline.shutdown()
        shared_pipeline.shutdown()
        shutil.rmtree(directory, ignore_errors=True)
    diffs = [a - b for a, b in zip(samples["with"], samples["without"])]
    return {
        "rounds": rounds,
        "requests_per_round": requests,
        "without_us": statistics.median(samples["without"]),
        "with_us": statistics.median(samples["with"]),
        "extra_us_median": statistics.median(diffs),
        "extra_us_quartiles": statistics.quantiles(diffs, n=4) if len(diffs) >= 4 else None,
    }


def _writer_check(multiproc: Any) -> None:
    """The check ``RequestLifecycle.on_started`` makes inline on every request (a copy: the
    lifecycle has no function of its own for it to time)."""
    if multiproc is not None and not multiproc.started:
        multiproc.start()


def bench_hot_path(directory: str) -> dict[str, Any]:
    """What a request pays with the directory set, apart from the writer thread: the check that
    starts the writer (nanoseconds), and the writer's CPU per interval for the small benchmark
    app (4 routes, dashboard off, so no traces), spread over the requests of that interval."""
    import timeit

    from benchmarks.apps import make_pipeline, make_routetimer
    from benchmarks.overhead import make_environ, run_requests

    pipeline = make_pipeline("batch")
    app = make_routetimer(pipeline, ROUTETIMER_MULTIPROC_DIR=directory)
    multiproc = app.extensions["routetimer"].multiproc
    run_requests(app.wsgi_app, make_environ("/hello"), 100)  # starts the writer
    number = 1_000_000
    started = min(timeit.repeat(lambda: _writer_check(multiproc), number=number, repeat=5))
    unset = min(timeit.repeat(lambda: _writer_check(None), number=number, repeat=5))
    writes = []
    for _ in range(20):
        run_requests(app.wsgi_app, make_environ("/hello"), 50)  # something changed
        writes.append(cpu_ms(multiproc.publish))
    multiproc.stop()
    pipeline.shutdown()
    return {
        "check_ns_dir_set": started / number * 1e9,
        "check_ns_dir_unset": unset / number * 1e9,
        "small_app_write_cpu_ms": statistics.median(writes),
    }


def compare(base: str, routes: int, per_route: int, repeat: int) -> dict[str, Any]:
    """The merge and writer cases of the package at ``base`` and of the working tree, side by
    side: each case's two cells shuffled in every round (writer: 5 rounds, 20 idle)."""
    from benchmarks.compare import BASE_PACKAGE, load_base

    top = tempfile.mkdtemp(prefix="routetimer-bench-")
    packages = {"base": BASE_PACKAGE, "new": "flask_routetimer"}
    try:
        os.makedirs(os.path.join(top, "package"))
        load_base(base, os.path.join(top, "package"))
        merges, writers, done = {}, {}, []
        for label, package in packages.items():
            for kind in ("merge", "writer"):
                os.makedirs(os.path.join(top, label, kind))
            merges[label], _ = merge_cases(
                os.path.join(top, label, "merge"), routes, per_route, package
            )
            writers[label], finish = writer_cases(
                os.path.join(top, label, "writer"), routes, per_route, package
            )
            done.append(finish)
        figures: dict[str, dict[str, float]] = {}
        gc.freeze()  # see freeze_fixtures
        for case in merges["new"]:
            cells = {label: merges[label][case] for label in packages}
            figures[case] = shuffled_medians(cells, repeat)
        for case in writers["new"]:
            rounds = 20 if "idle" in case else 5
            samples: dict[str, list[float]] = {label: [] for label in packages}
            for _ in range(rounds):
                for label in random.sample(list(packages), 2):
                    samples[label].append(writers[label][case]())
            figures[f"writer {case}"] = {k: statistics.median(v) for k, v in samples.items()}
        sizes = {label: finish() for label, finish in zip(packages, done)}
    finally:
        gc.unfreeze()
        shutil.rmtree(top, ignore_errors=True)
    return {"cases": figures, "writer_files": sizes}


def print_comparison(base: str, figures: dict[str, Any], repeat: int) -> None:
    print(f"CPU ms (this thread), base = {base}, medians of {repeat} (writer 5, idle 20):")
    for case, cells in figures["cases"].items():
        ratio = cells["new"] / cells["base"] if cells["base"] else float("nan")
        print(f"  {case:36} base {cells['base']:8.1f}  new {cells['new']:8.1f}  {ratio:5.2f} x")
    for label, sizes in figures["writer_files"].items():
        print(f"  {label}: a worker's stats file {sizes['stats_file_kb']:.0f} kB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, CI smoke")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--base", metavar="REF", help="merge and writer beside this git ref's")
    args = parser.parse_args(argv)
    routes = 50 if args.quick else ROUTES
    per_route = 50 if args.quick else 500
    repeat = 3 if args.quick else 15
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.base:
        figures = compare(args.base, routes, per_route, repeat)
        print_comparison(args.base, figures, repeat)
        print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.json:
            write_json(args.json, {**figures, "base": args.base, "quick": args.quick})
        return 0
    merge_dir = tempfile.mkdtemp(prefix="routetimer-bench-")
    writer_dir = tempfile.mkdtemp(prefix="routetimer-bench-")
    try:
        per_request = bench_per_request(6 if args.quick else 40, 200 if args.quick else 2000)
        per_request.update(bench_hot_path(writer_dir))
        merge = bench_merge(merge_dir, routes, per_route, repeat)
        writer = bench_writer(writer_dir, routes, per_route)
    finally:
        shutil.rmtree(merge_dir, ignore_errors=True)
        shutil.rmtree(writer_dir, ignore_errors=True)
    quartiles = per_request["extra_us_quartiles"]
    print(
        f"per request (/hello, batch, CPU time): {per_request['without_us']:.2f} us without the "
        f"directory, {per_request['with_us']:.2f} us with it; paired difference "
        f"{per_request['extra_us_median']:+.2f} us (quartiles "
        f"{', '.join(f'{q:+.2f}' for q in quartiles) if quartiles else 'n/a'})"
    )
    print(
        f"hot path: the writer check costs {per_request['check_ns_dir_set']:.0f} ns per request "
        f"with the directory set ({per_request['check_ns_dir_unset']:.0f} ns unset, timeit, "
        f"call included); the small app's writer spends {per_request['small_app_write_cpu_ms']:.2f}"
        " ms CPU per interval in which something changed"
    )
    print(
        f"merging {merge['workers']} workers x {merge['routes']} routes "
        f"({merge['stats_file_kb']:.0f} kB per file), median of {repeat}:"
    )
    for name, ms in merge["ms"].items():
        print(f"  {name:34} {ms:8.1f} ms")
    print(
        f"writer CPU per interval, {writer['routes']} routes and {writer['traces']} traces "
        f"({writer['traces_file_kb']:.0f} kB, stats {writer['stats_file_kb']:.0f} kB): "
        f"{writer['all_changed_cpu_ms']:.1f} ms all new, "
        f"{writer['20_new_traces_cpu_ms']:.1f} ms with 20 new traces, "
        f"{writer['idle_cpu_ms']:.2f} ms idle"
    )
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        figures = {"per_request": per_request, "merge": merge, "writer": writer}
        write_json(args.json, {**figures, "quick": args.quick})
    return 0


if __name__ == "__main__":
    sys.exit(main())
