"""Instructions per call of chosen functions, inside real requests: ``python -m benchmarks.probe``.

Callgrind counts instructions per C function, and every Python function is the same C function
(the eval loop). Here each probed function is called through a C function of its own,
``probe_<i>``, compiled at first use (needs ``cc``, Python's headers and valgrind's), so
callgrind's inclusive count of ``probe_<i>`` is that function's cost, callees included. Probed
functions must not nest (a probe's own call, ~7,000 instructions through ``ctypes``, would count
in its caller's figure); the named sets below do not. ``WHOLE REQUEST`` is the whole request
with the probes in it: compare it only with runs of the same set. ``--no-gc`` disables the
collector after the warm-up, so two versions of the code compare without collections falling
into one and not the other.

    python -m benchmarks.probe --set receivers --pipeline unsampled
    python -m benchmarks.probe --set none --no-gc        # the whole request only
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import importlib
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from typing import Any, Callable

from benchmarks.apps import make_app, make_pipeline
from benchmarks.overhead import make_environ

LIFECYCLE = "flask_routetimer.lifecycle"
SETS: dict[str, list[str]] = {
    "none": [],
    "receivers": [
        f"{LIFECYCLE}:RequestLifecycle.on_started",
        f"{LIFECYCLE}:RequestLifecycle.on_exception",
        f"{LIFECYCLE}:RequestLifecycle.on_finished",
        f"{LIFECYCLE}:RequestLifecycle.on_teardown",
        f"{LIFECYCLE}:RequestLifecycle.on_context_end",
    ],
    "steps": [
        f"{LIFECYCLE}:RequestRecord",
        f"{LIFECYCLE}:open_span",
        f"{LIFECYCLE}:pass_through",
        f"{LIFECYCLE}:app_path",
        f"{LIFECYCLE}:_read_response",
        f"{LIFECYCLE}:end_span",
        f"{LIFECYCLE}:detach",
        "flask_routetimer.attributes:protocol_version",
        "flask_routetimer.attributes:url_scheme",
        "flask_routetimer.attributes:is_failure",
        "flask_routetimer.routes:RouteCache.info",
        "flask_routetimer.metrics:RequestMetrics.started",
        "flask_routetimer.metrics:RequestMetrics.finished",
        "flask_routetimer.telemetry:Telemetry.active",
        "flask_routetimer.stats:RouteStatsTable.record",
    ],
    "sdk": [
        "flask_routetimer.attributes:span_attributes",
        "flask_routetimer.request_span:extract_parent",
        "flask_routetimer.request_span:_describe_end",
        "opentelemetry.sdk.trace:Tracer.start_span",
        "opentelemetry.trace:set_span_in_context",
        "opentelemetry.context:attach",
        "opentelemetry.context:detach",
        "opentelemetry.sdk.trace:Span.end",
        "opentelemetry.sdk.metrics._internal.instrument:Histogram.record",
        "flask_routetimer.stats:_RouteRow.add",
    ],
}
PROBES = 64
WHOLE = PROBES - 1


def _library() -> ctypes.PyDLL:
    """The probes: ``entry_<i>`` (called by ctypes) calls ``probe_<i>``, which calls the function.

    The extra step matters: callgrind does not see ctypes' jump into ``entry_<i>`` as a call.
    """
    build = os.path.join(tempfile.gettempdir(), "routetimer-probe")
    path = os.path.join(build, "libprobe.so")
    if not os.path.exists(path):
        os.makedirs(build, exist_ok=True)
        lines = ["#include <Python.h>", "#include <valgrind/callgrind.h>"]
        lines.append("void zero_stats(void) { CALLGRIND_ZERO_STATS; }")
        for i in range(PROBES):
            lines.append(
                f"__attribute__((noinline)) PyObject* probe_{i}(PyObject* f, PyObject* a, "
                f"PyObject* k) {{ return PyObject_Call(f, a, k); }}\n"
                f"PyObject* entry_{i}(PyObject* f, PyObject* a, PyObject* k) "
                f'{{ PyObject* r = probe_{i}(f, a, k); __asm__ volatile(""); return r; }}'
            )
        source = os.path.join(build, "probe.c")
        with open(source, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        flags = ["-O1", "-fno-inline", "-fno-optimize-sibling-calls", "-shared", "-fPIC"]
        include = "-I" + sysconfig.get_paths()["include"]
        # The classic layout: valgrind 3.19 reads no symbols of a separate-code library.
        link = "-Wl,-z,noseparate-code"
        subprocess.run(["cc", *flags, link, include, source, "-o", path], check=True)
    return ctypes.PyDLL(path)


def _probed(library: ctypes.PyDLL, index: int, func: Callable[..., Any]) -> Callable[..., Any]:
    entry = getattr(library, f"entry_{index}")
    entry.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.py_object]
    entry.restype = ctypes.py_object

    @functools.wraps(func)
    def probed(*args: Any, **kwargs: Any) -> Any:
        return entry(func, args, kwargs)

    return probed


def install(library: ctypes.PyDLL, targets: list[str]) -> None:
    """Replace each ``module:attr.path`` by its probe (before the app is made: receivers are
    bound when connected)."""
    for index, target in enumerate(targets):
        module_name, _, path = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        func = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, _probed(library, index, func))


def serve(targets: list[str], pipeline_name: str, variant: str, requests: int, no_gc: bool) -> None:
    """The child, under valgrind: warm up, zero the counts, serve ``requests`` requests."""
    library = _library()
    install(library, targets)
    pipeline = make_pipeline(pipeline_name)
    wsgi = make_app(variant, pipeline).wsgi_app
    template = make_environ("/hello")

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def one() -> None:
        body = wsgi(dict(template), start_response)
        for _chunk in body:
            pass
        getattr(body, "close", lambda: None)()

    for _ in range(200):
        one()
    gc.collect()
    gc.freeze()
    if no_gc:
        gc.disable()
    library.zero_stats()
    whole = _probed(library, WHOLE, one)
    for _ in range(requests):
        whole()
    pipeline.shutdown()


def measure(args: argparse.Namespace) -> list[tuple[float, str]]:
    """Run the child under callgrind; inclusive instructions per request of each probe."""
    _library()  # built before valgrind starts
    targets = SETS[args.set]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        child = [sys.executable, "-m", "benchmarks.probe", "--child", args.set, args.pipeline]
        child += [args.variant, str(args.requests), "1" if args.no_gc else "0"]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *child]
        subprocess.run(command, check=True, capture_output=True, env=env, timeout=1800)
        annotate = ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", out]
        text = subprocess.run(annotate, check=True, capture_output=True, text=True).stdout
    names = {**dict(enumerate(targets)), WHOLE: "WHOLE REQUEST"}
    rows = []
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+)\s.*:probe_(\d+) \[", line)
        if match:
            cost = int(match.group(1).replace(",", "")) / args.requests
            rows.append((cost, names[int(match.group(2))]))
    return sorted(rows, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=5, metavar=("SET", "PIPELINE", "VARIANT", "N", "NOGC"))
    parser.add_argument("--set", default="receivers", choices=sorted(SETS))
    parser.add_argument("--pipeline", default="simple")
    parser.add_argument("--variant", default="routetimer")
    parser.add_argument("-n", "--requests", type=int, default=200)
    parser.add_argument("--no-gc", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        name, pipeline, variant, n, no_gc = args.child
        serve(SETS[name], pipeline, variant, int(n), no_gc == "1")
        return 0
    print(f"instructions per request, {args.variant} on {args.pipeline}, set {args.set}")
    for cost, name in measure(args):
        print(f"{cost:10.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
