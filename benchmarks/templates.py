"""Cost of a template render span: ``python -m benchmarks.templates [--quick]``.

One view renders ``RENDERS`` tiny templates (``render_template`` from an in-memory loader).
The same app runs with ``ROUTETIMER_TIME_TEMPLATES`` on and off, each on SDK providers of its
own (BatchSpanProcessor to a no-op exporter), and again with no SDK; bare Flask is the reference.
Cells run in interleaved rounds in a fresh shuffled order, timed as in ``benchmarks.overhead``
(process CPU time); the cost per render is the median over rounds of (on - off) / RENDERS.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
from typing import Any

from flask import Flask, render_template
from jinja2 import DictLoader

from benchmarks.apps import Pipeline, load_routetimer, make_pipeline, write_json
from benchmarks.overhead import _STATUS, make_environ, run_requests

RENDERS = 10
TEMPLATES = {"item.html": "<li>{{ name }}: {{ value }}</li>"}


def make_app(pipeline: Pipeline | None, time_templates: bool) -> Flask:
    """An app whose ``/render`` view renders RENDERS templates; timed unless ``pipeline`` is
    None."""
    app = Flask("bench_templates")
    app.jinja_env.loader = DictLoader(TEMPLATES)
    if pipeline is not None:
        app.config["ROUTETIMER_TIME_TEMPLATES"] = time_templates
        load_routetimer()(
            app,
            tracer_provider=pipeline.tracer_provider,
            meter_provider=pipeline.meter_provider,
        )

    @app.get("/render")
    def render() -> str:
        return "".join(
            render_template("item.html", name=f"n{index}", value=index) for index in range(RENDERS)
        )

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, CI smoke")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("-n", "--requests", type=int, default=None, help="per cell per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    n = args.requests or (200 if args.quick else 2000)

    pipelines: list[Pipeline] = []

    def timed(name: str, on: bool) -> Flask:
        pipeline = make_pipeline(name)
        pipelines.append(pipeline)
        return make_app(pipeline, on)

    apps: dict[str, Any] = {
        "bare": make_app(None, False),
        "off": timed("batch", False),
        "on": timed("batch", True),
        "nosdk-off": timed("nosdk", False),
        "nosdk-on": timed("nosdk", True),
    }
    environ = make_environ("/render")
    samples: dict[str, list[float]] = {label: [] for label in apps}
    for label, app in apps.items():  # warm-up, and every cell answers 200
        run_requests(app.wsgi_app, environ, 50)
        if not _STATUS[0].startswith("200"):
            raise SystemExit(f"{label}: unexpected status {_STATUS[0]!r}")
    rng = random.Random(args.seed)
    for r in range(rounds):
        gc.collect()
        order = list(apps.items())
        rng.shuffle(order)
        for label, app in order:
            samples[label].append(run_requests(app.wsgi_app, environ, n))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    for pipeline in pipelines:
        pipeline.shutdown()

    print(f"{RENDERS} renders per request, {rounds} rounds x {n} requests, us per request (median)")
    for label, values in samples.items():
        print(f"  {label:<9} {statistics.median(values):8.1f}")
    per_render = statistics.median(
        (on - off) / RENDERS for on, off in zip(samples["on"], samples["off"])
    )
    no_sdk = statistics.median(
        (on - off) / RENDERS for on, off in zip(samples["nosdk-on"], samples["nosdk-off"])
    )
    print(f"a render span, SDK on: {per_render:.2f} us per render (on - off)")
    print(f"no SDK (no span is made): {no_sdk:.2f} us per render (on - off)")
    if args.json:
        write_json(
            args.json,
            {
                "renders_per_request": RENDERS,
                "rounds": rounds,
                "requests": n,
                "us_per_request": {k: statistics.median(v) for k, v in samples.items()},
                "us_per_render": {"sdk": per_render, "nosdk": no_sdk},
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
