"""Before/after in one process: ``python -m benchmarks.compare --base main``.

The package as committed at ``--base`` (``git archive``, renamed ``flask_routetimer_base``) and
the working tree's, side by side with bare Flask, the SDK floor and the hooked floor (the
floor's work from three signal receivers) or the hooks floor (no SDK): each on providers of its
own, cells shuffled in every round, process CPU time, ``gc.freeze()`` after the warm-up so a
full collection over the whole heap costs little in whichever cell it falls. A cell's overhead
is the median of per-round differences against bare Flask; ratios are against the floor's.
On a loaded machine, compare the two columns of one run, never figures across runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Any

from flask import Flask

from benchmarks.apps import (
    ROUTETIMER_EXCLUDED,
    _add_routes,
    make_bare,
    make_floor,
    make_hooked_floor,
    make_hooks_floor,
    make_pipeline,
)
from benchmarks.overhead import make_environ

BASE_PACKAGE = "flask_routetimer_base"


def load_base(ref: str, into: str) -> None:
    """Put the package as committed at ``ref`` on the path as ``flask_routetimer_base``."""
    archive = os.path.join(into, "base.tar")
    with open(archive, "wb") as out:
        subprocess.run(["git", "archive", ref, "flask_routetimer"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    os.rename(os.path.join(into, "flask_routetimer"), os.path.join(into, BASE_PACKAGE))
    sys.path.insert(0, into)


def make_timed(package: str, pipeline: Any) -> Flask:
    """The benchmarks' routetimer app, built with ``package``'s RouteTimer."""
    route_timer = importlib.import_module(package).RouteTimer
    app = Flask(f"bench_{package}")
    app.config["ROUTETIMER_EXCLUDED_URLS"] = list(ROUTETIMER_EXCLUDED)
    timer = route_timer(
        app, tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
    )
    _add_routes(app, exempt=timer.exempt)
    return app


def cells_for(pipeline_name: str) -> list[tuple[str, Flask]]:
    def pipeline() -> Any:
        return make_pipeline(pipeline_name)

    reference = (
        ("hooks", make_hooks_floor())
        if pipeline_name == "nosdk"
        else ("hookedfloor", make_hooked_floor(pipeline()))
    )
    return [
        ("bare", make_bare()),
        ("floor", make_floor(pipeline())),
        reference,
        ("base", make_timed(BASE_PACKAGE, pipeline())),
        ("new", make_timed("flask_routetimer", pipeline())),
    ]


def run(app: Flask, environ: dict[str, Any], requests: int) -> float:
    """CPU µs per request over ``requests`` requests."""
    wsgi = app.wsgi_app

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    began = time.process_time()
    for _ in range(requests):
        body = wsgi(dict(environ), start_response)
        for _chunk in body:
            pass
        body.close()  # type: ignore[attr-defined]
    return (time.process_time() - began) / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git ref of the 'before' package")
    parser.add_argument("--pipelines", default="simple,unsampled,nosdk")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("-n", "--requests", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        load_base(args.base, tmp)
        cells = [(p, v, app) for p in args.pipelines.split(",") for v, app in cells_for(p)]
        environ = make_environ("/hello")
        for _, _, app in cells:
            run(app, environ, 300)
        gc.collect()
        gc.freeze()
        times: dict[tuple[str, str], list[float]] = {(p, v): [] for p, v, _ in cells}
        for _ in range(args.rounds):
            for p, v, app in random.sample(cells, len(cells)):
                times[(p, v)].append(run(app, environ, args.requests))
    print(f"CPU µs per request, /hello, {args.rounds} rounds x {args.requests}; base = {args.base}")
    for pipeline in args.pipelines.split(","):
        bare = times[(pipeline, "bare")]
        overheads = {
            v: statistics.median(a - b for a, b in zip(t, bare))
            for (p, v), t in times.items()
            if p == pipeline and v != "bare"
        }
        floor = overheads["floor"]
        print(f"  {pipeline:10s} bare        {statistics.median(bare):8.2f}")
        for variant, overhead in overheads.items():
            ratio = f"{overhead / floor:6.2f} x floor" if floor > 0 else ""
            print(f"  {pipeline:10s} {variant:11s} overhead {overhead:7.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
