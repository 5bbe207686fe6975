from flask import Flask, request
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import RouteTimer

app = Flask(__name__)
app.config.update(
    ROUTETIMER_ENABLED=True,
    ROUTETIMER_EXCLUDED_URLS=["^/health$", "^/static/"],
    ROUTETIMER_SERVER_TIMING=True,
    ROUTETIMER_RECORD_EXCEPTIONS=True,
    ROUTETIMER_MAX_ROUTES=1000,
    ROUTETIMER_TRACE_BUFFER=200,
    ROUTETIMER_DASHBOARD=True,
    ROUTETIMER_DASHBOARD_URL="/_routetimer",
    ROUTETIMER_DASHBOARD_AUTH=lambda: request.remote_addr == "127.0.0.1",
)
timer = RouteTimer(
    app,
    tracer_provider=TracerProvider(),  # default: the global provider, looked up lazily
    meter_provider=MeterProvider(),  # default: the global provider, looked up lazily
)
