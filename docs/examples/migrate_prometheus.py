from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from flask_routetimer import RouteTimer

# In production: PrometheusMetricReader() from opentelemetry-exporter-prometheus, set up in each
# worker (gunicorn_prometheus.py). In memory here, to show the data.
reader = InMemoryMetricReader()
app = Flask(__name__)
app.config["ROUTETIMER_EXCLUDED_URLS"] = ["^/metrics$"]  # was: excluded_paths
timer = RouteTimer(app, meter_provider=MeterProvider(metric_readers=[reader]))


@app.get("/items/<int:item_id>")
def item(item_id: int) -> str:
    return str(item_id)


@app.get("/health")
@timer.exempt  # was: @metrics.do_not_track()
def health() -> str:
    return "ok"


if __name__ == "__main__":
    client = app.test_client()
    client.get("/items/1")
    client.get("/items/2")
    data = reader.get_metrics_data()
    assert data is not None
    for metric in data.resource_metrics[0].scope_metrics[0].metrics:
        for point in metric.data.data_points:
            print(metric.name, metric.unit, dict(point.attributes or {}))
    # http.server.active_requests {request} {'http.request.method': 'GET', 'url.scheme': 'http'}
    # http.server.request.duration s {'http.request.method': 'GET', 'url.scheme': 'http',
    #     'http.route': '/items/<int:item_id>', 'http.response.status_code': 200,
    #     'network.protocol.version': '1.1'}
