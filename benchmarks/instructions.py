"""Instructions per request, counted by valgrind: ``python -m benchmarks.instructions``.

Wall or CPU time on a shared 2-core machine moves by 20-40% with the neighbours' load; the
number of instructions a request executes does not. Each cell runs a child process under
``valgrind --tool=callgrind`` twice, with N and 2N requests (after the same warm-up), and reports
``(I(2N) - I(N)) / N``: start-up and imports cancel out. A fixed ``PYTHONHASHSEED`` and
``gc.freeze()`` after the warm-up keep runs of the same code close together. Overheads are
against ``bare`` on the same pipeline; ratios against the SDK ``floor`` (the raw SDK work a
request needs) are the figures to compare before and after a hot-path change: run this on
both commits. ``hookedfloor`` is the floor's work done from three signal receivers, the least a
hook-based timer can cost; ``hookedsame`` adds only what flask-routetimer cannot leave out (the
fourth receiver of its teardown fallback, and the route attributes the semantic conventions
require on the span and the duration point). ``--variants`` restricts the cells (``bare`` and
``floor`` are always measured, for the ratios).

Slow (valgrind runs Python ~50x slower): a few minutes for the default cells.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

from flask import Flask

from benchmarks.apps import Pipeline, make_app, make_hooks_floor, make_pipeline, make_routetimer
from benchmarks.overhead import make_environ

CELLS = {
    "sdk on": ("simple", ("bare", "floor", "hookedfloor", "hookedsame", "routetimer")),
    "unsampled": ("unsampled", ("bare", "floor", "hookedfloor", "hookedsame", "routetimer")),
    "no sdk": ("nosdk", ("bare", "floor", "hooks", "routetimer")),
}
#: Run only when asked for (``--cases``).
OPTIONAL_CELLS = {
    # The teardown fallback's fourth receiver alone, on top of the hooked floor.
    "fallback": ("simple", ("bare", "floor", "hookedfloor", "hookedfallback")),
    # flask-routetimer with and without ROUTETIMER_MULTIPROC_DIR (its writer thread counts too).
    "multiproc": ("simple", ("bare", "floor", "routetimer", "multiproc")),
}


def serve(variant: str, pipeline_name: str, path: str, requests: int) -> None:
    """The child: warm up, then serve ``requests`` requests straight through the WSGI app."""
    with contextlib.ExitStack() as stack:
        pipeline = make_pipeline(pipeline_name)
        _serve(_child_app(variant, pipeline, stack).wsgi_app, path, requests)
        pipeline.shutdown()


def _child_app(variant: str, pipeline: Pipeline, stack: contextlib.ExitStack) -> Flask:
    if variant == "hooks":
        return make_hooks_floor()
    if variant == "multiproc":
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="routetimer-bench-"))
        app = make_routetimer(pipeline, ROUTETIMER_MULTIPROC_DIR=directory)
        stack.callback(app.extensions["routetimer"].multiproc.stop)  # before the directory goes
        return app
    return make_app(variant, pipeline)


def _serve(wsgi: Any, path: str, requests: int) -> None:
    template = make_environ(path)

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    for index, count in enumerate((200, requests)):
        if index:  # after the warm-up: the collector's work stays proportional to the requests
            gc.collect()
            gc.freeze()
        for _ in range(count):
            body = wsgi(dict(template), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()


def count(variant: str, pipeline: str, path: str, requests: int) -> int:
    """Instructions of one child run, whole process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            variant,
            pipeline,
            path,
            str(requests),
        ]
        # A fixed hash seed: dict and set layouts (and so probe counts) the same in every run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, capture_output=True, timeout=1800, env=env)
        with open(out) as handle:
            totals = re.search(r"^(?:summary|totals): (\d+)", handle.read(), re.MULTILINE)
        if totals is None:
            raise RuntimeError(f"no instruction total in callgrind's output for {variant}")
        return int(totals.group(1))


def per_request(variant: str, pipeline: str, path: str, requests: int) -> float:
    return (
        count(variant, pipeline, path, 2 * requests) - count(variant, pipeline, path, requests)
    ) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "PIPELINE", "PATH", "N"))
    parser.add_argument("-n", "--requests", type=int, default=500)
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--cases", default=",".join(CELLS))
    parser.add_argument("--variants", default="", help="comma-separated; default: all of a case")
    args = parser.parse_args(argv)
    if args.child:
        variant, pipeline, path, n = args.child
        serve(variant, pipeline, path, int(n))
        return 0
    print(f"instructions per request, {args.path}, {args.requests} requests per run")
    for case in args.cases.split(","):
        pipeline, variants = {**CELLS, **OPTIONAL_CELLS}[case]
        if args.variants:
            wanted = {"bare", "floor", *args.variants.split(",")}
            variants = tuple(v for v in variants if v in wanted)
        counts = {v: per_request(v, pipeline, args.path, args.requests) for v in variants}
        bare = counts["bare"]
        floor = counts["floor"] - bare
        for variant, value in counts.items():
            overhead = value - bare
            ratio = f"{overhead / floor:5.2f} x floor" if variant != "bare" and floor > 0 else ""
            print(f"  {case:10s} {variant:11s} {value:10.0f}  overhead {overhead:9.0f}  {ratio}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
