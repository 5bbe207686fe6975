from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from flask_routetimer import RouteTimer, basic_auth

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
    # HTTP Basic auth, user "ops", password from $ROUTETIMER_DASHBOARD_PASSWORD (see dashboard.md)
    ROUTETIMER_DASHBOARD_AUTH=basic_auth("ops"),
    ROUTETIMER_CAPTURE_HEADERS_SANITIZE=[],  # more headers to redact; the defaults always apply
    ROUTETIMER_REDACT_QUERY_PARAMS=[],  # more query parameters to redact; likewise
)
timer = RouteTimer(
    app,
    tracer_provider=TracerProvider(),  # default: the global provider, looked up lazily
    meter_provider=MeterProvider(),  # default: the global provider, looked up lazily
)
