"""Every command and config sample of the README and docs runs as written, or says why not.

The markers and the recipe venvs are explained in tests/docs_recipes.py. Servers started here
listen on 127.0.0.1 only, on free ports; each test stops what it starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from docs_recipes import ROOT, blocks, environment, install, recipe, split
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from serving import free_port

from flask_routetimer.multiproc_files import parse_exited, parse_stats

EXAMPLES = ROOT / "docs" / "examples"
#: The blocks marked ``<!-- run: NAME -->``, each run by the test named here.
RECIPES = {
    "instrument": "test_opentelemetry_instrument_recipe_prints_spans",
    "gunicorn-preload": "test_docs.py::test_gunicorn_preload_recipe_exports_spans_from_workers",
    "uwsgi": "test_uwsgi_recipe_serves_the_app",
    "uwsgi-ini": "test_uwsgi_recipe_serves_the_app",
    "prometheus": "test_prometheus_recipe_under_two_gunicorn_workers",
    "multiproc-uwsgi-ini": "test_multiproc_uwsgi_recipe_shares_the_workers_statistics",
    "multiproc-wsgi-py": "test_multiproc_uwsgi_recipe_shares_the_workers_statistics",
}


def test_every_block_is_run_or_says_why() -> None:
    """A command or config block is run by a test, or marked not runnable with the reason."""
    unmarked = [b.where for b in blocks() if b.kind is None]
    assert not unmarked, f"mark each with <!-- run: NAME --> or <!-- not run: why -->: {unmarked}"
    for block in blocks():
        if block.kind == "not run":
            assert len(block.argument.split()) >= 3, f"{block.where}: say why it is not run"
        else:
            assert block.argument in RECIPES, f"{block.where}: no test runs {block.argument!r}"


def test_every_recipe_is_in_the_docs_once() -> None:
    """No test runs a recipe that the docs no longer show."""
    shown = [b.argument for b in blocks() if b.kind == "run"]
    assert sorted(shown) == sorted(RECIPES)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@dataclass
class Running:
    """A recipe's commands running under bash, in their own process group."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_answers(self, url: str) -> None:
        """Poll URL for at most 60 s (a cold start under load); fail early if the shell died."""
        deadline = time.monotonic() + 60
        while True:
            try:
                get(url)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{url} never answered:\n{self.output()}") from None
                time.sleep(0.2)


@contextmanager
def shell(command: str, cwd: Path, env: dict[str, str], stop: int) -> Iterator[Running]:
    """Run a recipe's commands with bash; at exit stop them with STOP and wait (60 s at most).

    STOP goes to the process bash runs (it execs a single command: the server's master, which
    stops its workers itself); the process group is killed only when that fails.
    """
    log = cwd / "recipe.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-euc", command], cwd=cwd, env=env, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    running = Running(process, log)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(stop)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            raise AssertionError(f"{command!r} did not stop:\n{running.output()}") from None


def scratch(tmp_path: Path, *examples: str) -> Path:
    """A directory holding copies of the examples a recipe names (as a user's project would)."""
    for name in examples:
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path


@pytest.mark.load
def test_opentelemetry_instrument_recipe_prints_spans(tmp_path: Path) -> None:
    """recipes.md: under opentelemetry-instrument, with only opentelemetry-distro installed
    (no OTLP exporter), each request's span and its child span are printed on the console."""
    install("instrument")
    port = free_port()
    env = environment("instrument", FLASK_RUN_PORT=str(port))
    url = f"http://127.0.0.1:{port}/hello/you"
    with shell(
        split("instrument")[1], scratch(tmp_path, "quickstart.py"), env, signal.SIGINT
    ) as run:
        run.wait_until_answers(url)
        assert get(url) == "Hello, you!"
    output = run.output()
    assert "Failed to auto initialize" not in output, output
    assert output.count('"name": "GET /hello/<name>"') == 2, output
    assert output.count('"name": "greeting"') == 2, output
    assert '"service.name": "my-api"' in output, output


@pytest.mark.load
def test_uwsgi_recipe_serves_the_app(tmp_path: Path) -> None:
    """recipes.md: uWSGI as installed by the recipe, with its uwsgi.ini (on a free port instead
    of 8000), starts its 4 workers and serves the app."""
    install("uwsgi")
    port = free_port()
    config = recipe("uwsgi-ini").text
    assert "127.0.0.1:8000" in config
    cwd = scratch(tmp_path, "quickstart.py")
    (cwd / "uwsgi.ini").write_text(config.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    # uWSGI stops on SIGINT (SIGTERM means "reload" to it).
    with shell(split("uwsgi")[1], cwd, environment("uwsgi"), signal.SIGINT) as run:
        run.wait_until_answers(f"http://127.0.0.1:{port}/hello/you")
        assert get(f"http://127.0.0.1:{port}/hello/uwsgi") == "Hello, uwsgi!"
        # lazy-apps: each of the 4 workers loads the app itself. Wait for all of them: a worker
        # interrupted while importing never exits, and uWSGI waits for it.
        deadline = time.monotonic() + 60
        while run.output().count("WSGI app 0 (mountpoint='') ready") < 4:
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.2)


COUNT = re.compile(r"^http_server_request_duration_seconds_count\{(.*?)\} ([0-9.]+)$", re.M)


def served(metrics_text: str, route: str) -> float:
    """The request count of ROUTE in a Prometheus scrape."""
    return sum(
        float(n) for labels, n in COUNT.findall(metrics_text) if f'http_route="{route}"' in labels
    )


@pytest.mark.load
def test_prometheus_recipe_under_two_gunicorn_workers(tmp_path: Path) -> None:
    """migrating.md: gunicorn -w 2 boots both workers, each serves /metrics on its own port of
    127.0.0.1, and the scrapes add up to the requests sent."""
    install("prometheus")
    port, metrics_port = free_port(), free_port()
    env = environment("prometheus", BIND=f"127.0.0.1:{port}", METRICS_PORT=str(metrics_port))
    cwd = scratch(tmp_path, "quickstart.py", "gunicorn_prometheus.py")
    with shell(split("prometheus")[1], cwd, env, signal.SIGTERM) as run:
        run.wait_until_answers(f"http://127.0.0.1:{port}/hello/warm-up")
        for i in range(29):
            assert get(f"http://127.0.0.1:{port}/hello/{i}") == f"Hello, {i}!"
        scrapes = [get(f"http://127.0.0.1:{p}/metrics") for p in (metrics_port, metrics_port + 1)]
        assert "Worker failed to boot" not in run.output()
    assert sum(served(text, "/hello/<name>") for text in scrapes) == 30, scrapes


#: The app for the fork test: the SDK with an OTLP/gRPC exporter, set up in the master at import
#: (which then exports a span through it before gunicorn forks) or in each worker's post_fork.
GRPC_APP = """
import json
import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def set_up_sdk():
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


if os.environ["SET_UP"] == "master":
    provider = set_up_sdk()
    with trace.get_tracer("master").start_as_current_span("master"):
        pass
    provider.force_flush()  # the channel is used before the fork

from quickstart import app
"""
GRPC_CONF = """
import json
import os


def post_fork(server, worker):
    if os.environ["SET_UP"] == "post_fork":
        from grpc_app import set_up_sdk

        set_up_sdk()
"""


class Receiver:
    """A minimal OTLP/gRPC trace receiver: keeps the names of the spans it is sent."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's method name)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.names.extend(span.name for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


@pytest.mark.load
@pytest.mark.parametrize("set_up", ["master", "post_fork"])
def test_grpc_exporter_across_preload_fork(
    tmp_path: Path, receiver: tuple[Receiver, int], set_up: str
) -> None:
    """recipes.md and BACKENDS.md: with gunicorn --preload and 2 workers, an OTLP/gRPC exporter
    set up in the master (and used there before the fork) or in post_fork delivers every span."""
    servicer, grpc_port = receiver
    cwd = scratch(tmp_path, "quickstart.py")
    (cwd / "grpc_app.py").write_text(GRPC_APP)
    (cwd / "grpc_conf.py").write_text(GRPC_CONF)
    port = free_port()
    env = {
        **os.environ, "SET_UP": set_up, "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
    }  # fmt: skip
    command = f"{sys.executable} -m gunicorn -w 2 --preload -c grpc_conf.py"
    command += f" -b 127.0.0.1:{port} grpc_app:app"
    with shell(command, cwd, env, signal.SIGTERM) as run:
        run.wait_until_answers(f"http://127.0.0.1:{port}/hello/warm-up")
        for i in range(39):
            get(f"http://127.0.0.1:{port}/hello/{i}")
        deadline = time.monotonic() + 30  # spans arrive while the workers run, not only at exit
        while servicer.names.count("GET /hello/<name>") < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert servicer.names.count("GET /hello/<name>") == 40, run.output()
    assert servicer.names.count("master") == (set_up == "master"), run.output()
    assert len(set(re.findall(r"Booting worker with pid: (\d+)", run.output()))) == 2


def published(directory: Path, route: str) -> int:
    """Requests for ROUTE in the workers' statistics files of a ROUTETIMER_MULTIPROC_DIR."""
    total = 0
    for path in directory.glob("stats-*.json"):
        stats = parse_stats(path.read_text(), path.stem, 0)
        total += sum(sketch.count for sketch in stats.routes if sketch.route == route)
    exited = directory / "exited.json"
    if exited.exists():
        stats, _ = parse_exited(exited.read_text())
        total += sum(sketch.count for sketch in stats.routes if sketch.route == route)
    return total


@pytest.mark.load
def test_multiproc_uwsgi_recipe_shares_the_workers_statistics(tmp_path: Path) -> None:
    """multiprocess.md: its uwsgi.ini and wsgi.py (the app factory standing in for myapi, a
    directory under tmp_path for /run/myapi/routetimer, a free port for 8000) create the
    directory (0700) and the workers publish every request there."""
    install("uwsgi")
    cwd = scratch(tmp_path, "app_factory.py")
    (cwd / "app_factory.py").rename(cwd / "myapi.py")
    directory, port = tmp_path / "run" / "routetimer", free_port()
    for name, block, written, here in [
        ("wsgi.py", "multiproc-wsgi-py", "/run/myapi/routetimer", str(directory)),
        ("uwsgi.ini", "multiproc-uwsgi-ini", "127.0.0.1:8000", f"127.0.0.1:{port}"),
    ]:
        text = recipe(block).text
        assert written in text
        (cwd / name).write_text(text.replace(written, here))
    with shell(split("uwsgi")[1], cwd, environment("uwsgi"), signal.SIGINT) as run:
        run.wait_until_answers(f"http://127.0.0.1:{port}/api/items/0")
        for i in range(1, 30):
            assert json.loads(get(f"http://127.0.0.1:{port}/api/items/{i}")) == {"id": i}
        deadline = time.monotonic() + 20  # each worker writes once a second
        while published(directory, "/api/items/<int:item_id>") < 30:
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.2)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert run.output().count("spawned uWSGI worker") == 4, run.output()
