"""Run a throwaway Arize Phoenix server for end-to-end tests and read spans back over REST.

Phoenix is a real OTLP backend (OTLP/HTTP and OTLP/gRPC in, REST + UI out), so spans the
tests export travel the same wire path as in production. It runs from ``.venv-phoenix/``
(``scripts/setup-phoenix.sh``) and must run inside the loopback-only namespace made by
``scripts/in-netns.sh``, because its gRPC port binds every interface.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOENIX_VENV = REPO_ROOT / ".venv-phoenix"
LOOPBACK = "127.0.0.1"

Span = dict[str, Any]


class PhoenixError(RuntimeError):
    """Phoenix could not be started or did not answer as expected."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # HTTP status of a failed REST call, if that is what failed


def netns_problem() -> str | None:
    """Say why this process is not in a private loopback-only network namespace, or None.

    ``socket.if_nameindex()`` asks the kernel about *this* process's namespace (unlike
    /sys/class/net, which shows the namespace sysfs was mounted in). A listening socket
    is used for the "lo is up" check because bind() succeeds even while lo is down.
    """
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        return (
            f"network interfaces {names} are visible; Phoenix's gRPC port binds all of them. "
            "Run the tests inside a private namespace: scripts/in-netns.sh python -m pytest ..."
        )
    with socket.socket() as server:
        server.bind((LOOPBACK, 0))
        server.listen(1)
        try:
            socket.create_connection(server.getsockname(), timeout=1).close()
        except OSError as exc:
            return f"loopback is not usable in this namespace ({exc}); bring lo up first"
    return None


def free_port() -> int:
    """Pick a currently free loopback TCP port (the namespace is private, so races are moot)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def trace_ui_url(base_url: str, project_id: str, trace_id: str, span_id: str | None = None) -> str:
    """URL of one trace's page in Phoenix's web UI.

    ``project_id`` and ``span_id`` are Phoenix's global ids (the REST ``id`` fields, e.g.
    ``UHJvamVjdDoy``), not names or OTel ids; ``trace_id`` is the 32-hex OTel trace id.
    Passing ``span_id`` preselects that span in the trace's detail pane.
    """
    url = f"{base_url}/projects/{urllib.parse.quote(project_id)}/traces/{trace_id}"
    if span_id is not None:
        url += "?" + urllib.parse.urlencode({"selectedSpanNodeId": span_id})
    return url


@dataclass
class Phoenix:
    """A running ``phoenix serve`` bound to loopback; stop it with :meth:`stop`."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    workdir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        """Root of the UI and the REST API (``/v1/...``)."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def http_endpoint(self) -> str:
        """Full OTLP/HTTP traces URL, for ``OTLPSpanExporter(endpoint=...)`` (proto-http)."""
        return f"{self.base_url}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        """OTLP/gRPC target; the ``http://`` scheme makes OTel's gRPC exporter use plaintext."""
        return f"http://{LOOPBACK}:{self.grpc_port}"

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` from the REST API; list values in ``params`` become repeated keys."""
        query = "?" + urllib.parse.urlencode(params, doseq=True) if params else ""
        try:
            with urllib.request.urlopen(self.base_url + path + query, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            message = f"GET {path}{query}: {exc.code} {exc.read()[:500]!r}"
            raise PhoenixError(message, exc.code) from exc

    def spans(
        self, project: str, trace_id: str | None = None, limit: int = 100, **filters: Any
    ) -> list[Span]:
        """Spans of ``project`` (a name or global id), newest first, optionally one trace's.

        Wraps ``GET /v1/projects/{project}/spans``. Other filters the endpoint takes pass
        through ``filters``: span_id, parent_id ("null" for roots), name, status_code,
        start_time, end_time, sort ("id"|"start_time"), order ("asc"|"desc").
        A project that has received no span yet answers 404, returned here as ``[]``.
        """
        params = {"limit": limit, **filters}
        if trace_id is not None:
            params["trace_id"] = trace_id
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        try:
            body = self.get_json(path, params)
        except PhoenixError as exc:
            if exc.status == 404:
                return []
            raise
        data: list[Span] = body["data"]
        return data

    def wait_for_spans(
        self, project: str, trace_id: str, count: int, timeout: float = 20.0
    ) -> list[Span]:
        """Poll until ``trace_id`` has at least ``count`` spans; Phoenix inserts in batches."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.spans(project, trace_id=trace_id)
            if len(found) >= count or time.monotonic() > deadline:
                if len(found) < count:
                    raise PhoenixError(
                        f"trace {trace_id} in project {project!r}: {len(found)} of {count} "
                        f"spans after {timeout}s; Phoenix log: {self.log_path}"
                    )
                return found
            time.sleep(0.25)

    def project_id(self, project: str) -> str:
        """Phoenix's global id (e.g. ``UHJvamVjdDoy``) of the project named ``project``."""
        body = self.get_json(f"/v1/projects/{urllib.parse.quote(project, safe='')}")
        project_id: str = body["data"]["id"]
        return project_id

    def trace_ui_url(self, project: str, trace_id: str, span_id: str | None = None) -> str:
        """UI URL of a trace, resolving the project name; see module-level :func:`trace_ui_url`."""
        return trace_ui_url(self.base_url, self.project_id(project), trace_id, span_id)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server by PID: SIGTERM, bounded wait, then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_phoenix(
    workdir: Path,
    http_port: int | None = None,
    grpc_port: int | None = None,
    startup_timeout: float = 120.0,
) -> Phoenix:
    """Start ``phoenix serve`` on loopback with its data and log in ``workdir``.

    Ports default to free non-default ones so a stray Phoenix on 6006/4317 can never be hit.
    Phoenix's and OTel's own env vars are dropped from the inherited environment so the
    caller's settings (e.g. a real collector endpoint) cannot leak in. Startup takes about
    10 s (database migrations), so the health wait is generous but bounded.
    """
    problem = netns_problem()
    if problem is not None:
        raise PhoenixError(problem)
    executable = PHOENIX_VENV / "bin" / "phoenix"
    if not executable.exists():
        raise PhoenixError(f"{executable} is missing; run scripts/setup-phoenix.sh first")

    workdir.mkdir(parents=True, exist_ok=True)
    http_port = http_port or free_port()
    grpc_port = grpc_port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env.update(
        PHOENIX_HOST=LOOPBACK,  # UI, REST API and OTLP/HTTP share this host:port
        PHOENIX_PORT=str(http_port),
        PHOENIX_GRPC_PORT=str(grpc_port),  # always bound on [::], hence the namespace
        PHOENIX_WORKING_DIR=str(workdir / "data"),  # SQLite database lives here
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",  # no web fonts / downloads / pixels
    )
    log_path = workdir / "phoenix.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(executable), "serve"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C aimed at pytest must not hit Phoenix mid-write
        )
    phoenix = Phoenix(process, http_port, grpc_port, workdir, log_path)
    try:
        _wait_healthy(phoenix, startup_timeout)
    except BaseException:
        phoenix.stop()
        raise
    return phoenix


def screenshot(url: str, out: Path, budget_ms: int = 15000, timeout: float = 120.0) -> None:
    """Save a PNG of ``url`` as headless Chromium renders it (Debian's ``chromium`` package).

    Phoenix's UI is a React app that fetches its data after load; without
    ``--virtual-time-budget`` Chromium shoots the empty shell (a blank dark page).
    Run it inside the namespace too: the flags stop Chromium's own background traffic.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise PhoenixError("chromium is not installed (apt-get install -y chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,900",
            f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not out.exists():
        raise PhoenixError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")


def _wait_healthy(phoenix: Phoenix, timeout: float) -> None:
    """Poll ``/healthz`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if phoenix.process.poll() is not None:
            raise PhoenixError(
                f"phoenix exited with {phoenix.process.returncode} during startup:\n"
                + _tail(phoenix.log_path)
            )
        try:
            with urllib.request.urlopen(f"{phoenix.base_url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise PhoenixError(f"phoenix not healthy after {timeout}s:\n" + _tail(phoenix.log_path))


def _tail(path: Path, lines: int = 30) -> str:
    """Last lines of Phoenix's log, for error messages that explain themselves."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


__all__ = [
    "PHOENIX_VENV",
    "Phoenix",
    "PhoenixError",
    "Span",
    "free_port",
    "netns_problem",
    "screenshot",
    "start_phoenix",
    "trace_ui_url",
]
