"""configure_sdk(): opt-in SDK providers from OTEL_* variables, never replacing existing ones."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from flask_routetimer import ConfigError
from flask_routetimer.sdk import exporter_names, load_exporter


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Global providers can be set once per process, so each case runs in its own."""
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


APP = """
import logging
logging.basicConfig(level=logging.INFO)
from flask import Flask
from opentelemetry import trace, metrics
from flask_routetimer import RouteTimer
app = Flask("sdk")
app.config["ROUTETIMER_CONFIGURE_SDK"] = True
RouteTimer(app)
app.add_url_rule("/x", "x", lambda: "x")
app.test_client().get("/x")
trace.get_tracer_provider().force_flush()
print("PROVIDER", type(trace.get_tracer_provider()).__module__)
print("RESOURCE", trace.get_tracer_provider().resource.attributes["service.name"])
"""


def test_console_exporter_and_service_name_from_environment():
    """OTEL_TRACES_EXPORTER=console and OTEL_SERVICE_NAME are honoured through the SDK's own
    classes; the request span is printed; where spans go is logged once."""
    result = run_python(APP, {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "checkout"})
    assert result.returncode == 0, result.stderr
    assert "PROVIDER opentelemetry.sdk.trace" in result.stdout
    assert "RESOURCE checkout" in result.stdout
    assert '"name": "GET /x"' in result.stdout
    assert result.stderr.count("traces go to console") == 1


def test_existing_provider_is_never_replaced():
    """A provider the app configured first is kept, and the log says so."""
    code = """
    import logging
    logging.basicConfig(level=logging.INFO)
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    mine = TracerProvider()
    trace.set_tracer_provider(mine)
    from flask_routetimer import configure_sdk
    setup = configure_sdk()
    print(setup.tracer_provider is mine, trace.get_tracer_provider() is mine, setup.kept)
    """
    result = run_python(code, {"OTEL_TRACES_EXPORTER": "console"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True ['traces']"
    assert "traces: the provider already configured is kept" in result.stderr


def test_sdk_disabled_sets_nothing_up():
    """OTEL_SDK_DISABLED=true leaves the API's no-op providers in place."""
    code = """
    from opentelemetry import trace
    from flask_routetimer import configure_sdk
    configure_sdk()
    print(type(trace.get_tracer_provider()).__name__)
    """
    result = run_python(code, {"OTEL_SDK_DISABLED": "true"})
    assert result.stdout.strip() == "ProxyTracerProvider"


def test_no_exporter_still_gives_an_sdk_provider_for_the_dashboard():
    """With nothing configured, spans stay in process (trace buffer) and nothing is exported."""
    code = """
    import json
    from opentelemetry import trace
    from flask_routetimer import configure_sdk
    setup = configure_sdk()
    print(json.dumps(setup.exporters), type(trace.get_tracer_provider()).__name__)
    """
    result = run_python(code, {})
    exporters, provider = result.stdout.strip().rsplit(" ", 1)
    assert json.loads(exporters) == {"traces": [], "metrics": []}
    assert provider == "TracerProvider"


class TestExporterNames:
    @pytest.mark.parametrize(
        "environ, expected",
        [
            ({}, []),
            ({"OTEL_TRACES_EXPORTER": "none"}, []),
            ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp_proto_http"]),
            (
                {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                ["otlp_proto_grpc"],
            ),
            (
                {
                    "OTEL_TRACES_EXPORTER": "otlp,console",
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                },
                ["otlp_proto_grpc", "console"],
            ),
            (
                {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"},
                [],
            ),
        ],
    )
    def test_names_follow_the_standard_variables(self, environ, expected):
        """OTEL_TRACES_EXPORTER and the OTLP protocol pick exporter entry points; one endpoint
        variable alone means OTLP/HTTP."""
        assert exporter_names("traces", environ, default="none") == expected

    def test_bad_protocol_is_named(self):
        """An unknown OTLP protocol is an error naming the variable and the valid values."""
        with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL.*grpc, http/protobuf"):
            exporter_names(
                "traces",
                {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp"},
                "none",
            )

    def test_missing_otlp_exporter_names_the_extra(self):
        """Asking for an OTLP exporter that is not installed says which extra to install."""
        with pytest.raises(ConfigError, match=r"pip install 'flask-routetimer\[otlp\]'"):
            load_exporter("traces", "otlp_proto_not_installed")

    def test_console_exporter_loads(self):
        """Installed exporters are found by their registered entry-point name."""
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        assert load_exporter("traces", "console") is ConsoleSpanExporter
