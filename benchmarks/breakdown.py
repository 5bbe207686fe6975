"""Where flask-routetimer's time goes: ``python -m benchmarks.breakdown [--quick]``.

The overhead benchmark says how much a request costs; this one says which part costs it, by
switching parts off in otherwise identical apps measured side by side (same loop, interleaved
rounds, medians of per-round differences against bare Flask):

* tracing or metrics off: the API's no-op provider in place of the SDK's, for flask-routetimer
  and for the SDK floor alike, so each part can be set against the floor's own;
* each signal receiver swapped for a no-op one, with both providers off: what the plumbing of
  each hook costs beyond Flask calling a receiver at all;
* the dashboard on, which keeps the trace buffer (a span processor) that is off by default.

Every SDK cell has providers of its own (BatchSpanProcessor to a no-op exporter, in-memory metric
reader), as in ``benchmarks.overhead``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from typing import Any, Callable

from flask import Flask
from flask import signals as flask_signals
from opentelemetry import metrics as metrics_api
from opentelemetry import trace

from benchmarks.apps import (
    Pipeline,
    make_bare,
    make_pipeline,
    make_routetimer,
    sdk_floor_middleware,
)
from benchmarks.overhead import make_environ, run_requests


def _mixed(tracing: bool, metrics: bool) -> Pipeline:
    """A batch pipeline with either provider replaced by the API's no-op one."""
    sdk = make_pipeline("batch")
    return Pipeline(
        "mixed",
        sdk.tracer_provider if tracing else trace.NoOpTracerProvider(),
        sdk.meter_provider if metrics else metrics_api.NoOpMeterProvider(),
        _closers=sdk._closers,
    )


def _routetimer(pipeline: Pipeline, noop_receivers: tuple[str, ...] = ()) -> Flask:
    app = make_routetimer(pipeline)
    _swap_receivers(app, noop_receivers)
    return app


def _with_dashboard(pipeline: Pipeline) -> Flask:
    """The dashboard on (every visitor refused), so the trace buffer is kept."""
    return make_routetimer(
        pipeline, ROUTETIMER_DASHBOARD=True, ROUTETIMER_DASHBOARD_AUTH=lambda: False
    )


def _swap_receivers(app: Flask, noop_receivers: tuple[str, ...]) -> None:
    if noop_receivers:
        lifecycle = _lifecycle(app)
        receivers = {
            "started": (flask_signals.request_started, lifecycle.on_started),
            "finished": (flask_signals.request_finished, lifecycle.on_finished),
            "teardown": (flask_signals.request_tearing_down, lifecycle.on_teardown),
        }
        for name in noop_receivers:
            signal, receiver = receivers[name]
            signal.disconnect(receiver, app)
            signal.connect(_nothing, app, weak=False)


def _lifecycle(app: Flask) -> Any:
    """The object whose receivers time ``app``'s requests (found through the signal)."""
    for receiver in flask_signals.request_started.receivers_for(app):
        owner = getattr(receiver, "__self__", None)
        if type(owner).__name__ == "RequestLifecycle":
            return owner
    raise LookupError("flask-routetimer's receivers are not connected to this app")


def _nothing(sender: Any, **extra: Any) -> None:
    return None


def _floor(pipeline: Pipeline) -> Flask:
    app = make_bare()
    app.wsgi_app = sdk_floor_middleware(app.wsgi_app, pipeline)  # type: ignore[method-assign,assignment]
    return app


#: label -> (builder, tracing on, metrics on, receivers made no-op)
CELLS: dict[str, tuple[Callable[..., Flask], bool, bool, tuple[str, ...]]] = {
    "routetimer": (_routetimer, True, True, ()),
    "routetimer, dashboard on": (_with_dashboard, True, True, ()),
    "routetimer, no metrics": (_routetimer, True, False, ()),
    "routetimer, no tracing": (_routetimer, False, True, ()),
    "routetimer, neither": (_routetimer, False, False, ()),
    "  + no-op finished": (_routetimer, False, False, ("finished",)),
    "  + no-op finished, teardown": (_routetimer, False, False, ("finished", "teardown")),
    "  + all receivers no-op": (_routetimer, False, False, ("finished", "teardown", "started")),
    "floor": (_floor, True, True, ()),
    "floor, no metrics": (_floor, True, False, ()),
    "floor, no tracing": (_floor, False, True, ()),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, CI smoke")
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rounds, n = (3, 100) if args.quick else (15, 1000)

    pipelines: list[Pipeline] = []
    apps: dict[str, Flask] = {"bare": make_bare()}
    for label, (build, tracing, metrics, noop) in CELLS.items():
        pipeline = _mixed(tracing, metrics)
        pipelines.append(pipeline)
        apps[label] = build(pipeline, noop) if noop else build(pipeline)
    environ = make_environ(args.path)
    samples: dict[str, list[float]] = {label: [] for label in apps}
    rng = random.Random(args.seed)
    try:
        for app in apps.values():
            run_requests(app.wsgi_app, environ, n // 4)
        for r in range(rounds):
            order = list(apps)
            rng.shuffle(order)
            for label in order:
                samples[label].append(run_requests(apps[label].wsgi_app, environ, n))
            print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        for pipeline in pipelines:
            pipeline.shutdown()
    report(samples)
    return 0


def report(samples: dict[str, list[float]]) -> None:
    bare = samples["bare"]

    def over(label: str) -> float:
        return statistics.median(a - b for a, b in zip(samples[label], bare))

    print(f"\n{'cell':32} {'us/req':>8} {'over bare':>10}")
    for label, values in samples.items():
        extra = "" if label == "bare" else f"{over(label):10.2f}"
        print(f"{label:32} {statistics.median(values):8.2f} {extra}")
    rt, floor = over("routetimer"), over("floor")
    neither = over("routetimer, neither")
    parts = {
        "routetimer plumbing (no SDK at all)": neither,
        "  Flask calling 3 receivers": over("  + all receivers no-op"),
        "  request_started receiver": over("  + no-op finished, teardown")
        - over("  + all receivers no-op"),
        "  request_finished receiver": neither - over("  + no-op finished"),
        "  teardown receiver (+ finish)": over("  + no-op finished")
        - over("  + no-op finished, teardown"),
        "trace buffer (dashboard on)": over("routetimer, dashboard on") - rt,
        "routetimer span part (on top of plumbing)": over("routetimer, no metrics") - neither,
        "floor span part": over("floor, no metrics"),
        "routetimer metric part (on top of plumbing)": over("routetimer, no tracing") - neither,
        "floor metric part (no exemplar)": over("floor, no tracing"),
        "routetimer: all on minus no metrics": rt - over("routetimer, no metrics"),
        "floor: all on minus no metrics": floor - over("floor, no metrics"),
    }
    print("\nparts, us per request (differences of medians; noisy at the 1 us level):")
    for name, value in parts.items():
        print(f"  {name:46} {value:7.2f}")
    print(f"\nroutetimer / floor overhead: {rt / floor:.2f}")


if __name__ == "__main__":
    sys.exit(main())
