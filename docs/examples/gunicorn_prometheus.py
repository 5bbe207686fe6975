"""gunicorn.conf.py for Prometheus: each worker serves its own /metrics, on 127.0.0.1.

Run with: gunicorn -c gunicorn_prometheus.py -w 2 quickstart:app
Worker 1 answers on 127.0.0.1:9464/metrics, worker 2 on :9465, and so on: scrape them all.
"""

import os

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

bind = os.environ.get("BIND", "127.0.0.1:8000")
METRICS_HOST = "127.0.0.1"  # the scraper's side of the network: never 0.0.0.0 by default
FIRST_METRICS_PORT = int(os.environ.get("METRICS_PORT", "9464"))


def post_fork(server, worker):
    # One port per worker: the first free one of FIRST_METRICS_PORT ... + workers - 1, so a
    # worker that replaces a dead one takes the port it freed.
    for port in range(FIRST_METRICS_PORT, FIRST_METRICS_PORT + server.cfg.workers):
        try:
            start_http_server(port, addr=METRICS_HOST)
            break
        except OSError:  # taken by another worker
            continue
    else:
        raise RuntimeError(f"no free metrics port from {FIRST_METRICS_PORT}")
    # RouteTimer(app) without providers looks this one up lazily, at the first request.
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
