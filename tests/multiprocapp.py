"""A timed app for the multiprocess tests: gunicorn serves it with ROUTETIMER_MULTIPROC_DIR set.

Each response names the worker that served it (``pid``), so a test knows the load was spread.
The dashboard is on for 127.0.0.1; the SDK's TracerProvider (no exporter) lets the trace buffer
keep traces.
"""

from __future__ import annotations

import os

from flask import Flask, request
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import RouteTimer

app = Flask("multiprocapp")
app.config.update(
    ROUTETIMER_DASHBOARD=True,
    ROUTETIMER_DASHBOARD_AUTH=lambda: request.remote_addr == "127.0.0.1",
    ROUTETIMER_MULTIPROC_INTERVAL=float(os.environ.get("MULTIPROCAPP_INTERVAL", "0.1")),
)
timer = RouteTimer(app, tracer_provider=TracerProvider())


@app.get("/items/<int:n>")
def item(n: int) -> dict[str, int]:
    with timer.timed("lookup"):
        return {"n": n, "pid": os.getpid()}
