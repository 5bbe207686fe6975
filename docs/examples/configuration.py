"""Every config key and constructor argument at once, each set to its default.

Generated from flask_routetimer.config.CONFIG_KEYS: `python tests/docs_recipes.py
configuration-example` writes it here and into docs/configuration.md.
"""

from flask import Flask

from flask_routetimer import RouteTimer

app = Flask(__name__)
app.config.update(
    ROUTETIMER_ENABLED=True,
    # when not set: $OTEL_PYTHON_FLASK_EXCLUDED_URLS, else $OTEL_PYTHON_EXCLUDED_URLS
    ROUTETIMER_EXCLUDED_URLS="",
    ROUTETIMER_SERVER_TIMING=None,
    ROUTETIMER_LOG_REQUESTS=None,
    ROUTETIMER_RECORD_EXCEPTIONS=True,
    ROUTETIMER_MAX_ROUTES=1000,
    ROUTETIMER_TRACE_BUFFER=200,
    ROUTETIMER_DASHBOARD=None,
    ROUTETIMER_DASHBOARD_URL="/_routetimer",
    ROUTETIMER_DASHBOARD_AUTH=None,
    ROUTETIMER_DASHBOARD_HOST=None,
    ROUTETIMER_CONFIGURE_SDK=False,
    ROUTETIMER_TIMING_ALLOW_ORIGIN=None,
    # when not set: $OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST
    ROUTETIMER_CAPTURE_HEADERS_SERVER_REQUEST=[],
    # when not set: $OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE
    ROUTETIMER_CAPTURE_HEADERS_SERVER_RESPONSE=[],
    # when not set: $OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS
    ROUTETIMER_CAPTURE_HEADERS_SANITIZE=[],
    ROUTETIMER_REDACT_QUERY_PARAMS=[],
    ROUTETIMER_TIME_TEMPLATES=True,
    # when not set: $ROUTETIMER_MULTIPROC_DIR
    ROUTETIMER_MULTIPROC_DIR=None,
    ROUTETIMER_MULTIPROC_INTERVAL=1.0,
)
timer = RouteTimer(
    app,
    tracer_provider=None,  # None: the global provider, looked up at each request
    meter_provider=None,  # likewise
)
