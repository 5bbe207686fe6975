"""Opt-in SDK set-up from the standard ``OTEL_*`` environment variables.

Instrumentation libraries leave the SDK to the application, and so does flask-routetimer by
default. ``configure_sdk()`` is for apps that have no SDK set-up of their own: it builds SDK
providers the way the SDK's own classes read the environment (``Resource.create()`` reads
``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``, ``TracerProvider()`` reads
``OTEL_TRACES_SAMPLER``, exporters read their ``OTEL_EXPORTER_OTLP_*`` endpoint, headers and
timeouts), picks exporters by their registered entry-point names, and never replaces a provider
that is already configured.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Optional

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .config import ConfigError
from .telemetry import is_unset

logger = logging.getLogger("flask_routetimer")

OTLP_EXTRA_HINT = "pip install 'flask-routetimer[otlp]'"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_SIGNALS = {
    "traces": ("OTEL_TRACES_EXPORTER", "opentelemetry_traces_exporter"),
    "metrics": ("OTEL_METRICS_EXPORTER", "opentelemetry_metrics_exporter"),
}


@dataclass
class SdkSetup:
    """What ``configure_sdk()`` did, for logs and tests."""

    tracer_provider: Optional[trace.TracerProvider] = None
    meter_provider: Optional[metrics.MeterProvider] = None
    #: Exporter entry-point names in use per signal; empty when nothing is exported.
    exporters: dict[str, list[str]] = field(default_factory=dict)
    #: Signals left alone because the app already had a provider for them.
    kept: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for signal in ("traces", "metrics"):
            if signal in self.kept:
                parts.append(f"{signal}: the provider already configured is kept")
            else:
                names = self.exporters.get(signal, [])
                if names:
                    parts.append(f"{signal} go to {', '.join(names)}{_endpoint(signal, names)}")
                else:
                    parts.append(
                        f"{signal} stay in this process (set OTEL_EXPORTER_OTLP_ENDPOINT or "
                        f"OTEL_{signal.upper()}_EXPORTER to export them)"
                    )
        return "flask-routetimer: " + "; ".join(parts) + "."


def _endpoint(signal: str, names: list[str], environ: Mapping[str, str] = os.environ) -> str:
    if not any(name.startswith("otlp") for name in names):
        return ""
    endpoint = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return f" at {endpoint}" if endpoint else " at the exporter's default endpoint (localhost)"


def exporter_names(signal: str, environ: Mapping[str, str], default: str) -> list[str]:
    """Entry-point names for ``OTEL_<SIGNAL>_EXPORTER``, resolving ``otlp`` by protocol.

    Unset means ``otlp`` when an OTLP endpoint is configured (one variable to send spans to a
    backend), else ``default``. ``otlp`` uses ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]PROTOCOL``,
    defaulting to ``http/protobuf`` as the OpenTelemetry specification says.
    """
    variable = _SIGNALS[signal][0]
    value = environ.get(variable, "").strip()
    if not value:
        has_endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        )
        value = "otlp" if has_endpoint else default
    names = [name.strip() for name in value.split(",") if name.strip()]
    if names == ["none"] or not names:
        return []
    protocol = (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    resolved = []
    for name in names:
        if name == "otlp":
            if protocol not in _OTLP_BY_PROTOCOL:
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}; valid values are "
                    f"{', '.join(sorted(_OTLP_BY_PROTOCOL))}."
                )
            name = _OTLP_BY_PROTOCOL[protocol]
        resolved.append(name)
    return resolved


def load_exporter(signal: str, name: str) -> Any:
    """The exporter class registered under ``name``, with an error saying what to install."""
    group = _SIGNALS[signal][1]
    try:
        candidates: Any = entry_points(group=group, name=name)  # Python 3.10+
    except TypeError:  # Python 3.9: a dict of groups
        all_points: Any = entry_points()
        candidates = [ep for ep in all_points.get(group, []) if ep.name == name]
    for candidate in candidates:
        return candidate.load()
    hint = f" Install it with: {OTLP_EXTRA_HINT}." if name.startswith("otlp") else ""
    raise ConfigError(
        f"{_SIGNALS[signal][0]} asks for the {name!r} exporter, which is not installed.{hint}"
    )


def _traces(environ: Mapping[str, str], resource: Resource, setup: SdkSetup) -> None:
    names = exporter_names("traces", environ, default="none")
    exporters: list[SpanExporter] = [load_exporter("traces", name)() for name in names]
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    setup.tracer_provider = provider
    setup.exporters["traces"] = names


def _metrics(environ: Mapping[str, str], resource: Resource, setup: SdkSetup) -> None:
    names = exporter_names("metrics", environ, default="none")
    readers = []
    for name in names:
        exporter_class = load_exporter("metrics", name)
        exporter = exporter_class()
        if isinstance(exporter, MetricExporter):
            readers.append(PeriodicExportingMetricReader(exporter))
        else:  # pull exporters (e.g. Prometheus) are readers themselves
            readers.append(exporter)
    provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(provider)
    setup.meter_provider = provider
    setup.exporters["metrics"] = names


def configure_sdk(environ: Optional[Mapping[str, str]] = None) -> SdkSetup:
    """Build and install global SDK providers from ``OTEL_*`` variables, unless already set.

    Idempotent: a provider that is already configured (by the app, by
    ``opentelemetry-instrument``, or by an earlier call) is kept. Logs once where telemetry goes.
    """
    environ = os.environ if environ is None else environ
    setup = SdkSetup()
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        setup.kept = ["traces", "metrics"]
        logger.info("flask-routetimer: OTEL_SDK_DISABLED=true, no SDK set up.")
        return setup
    resource = Resource.create()
    if is_unset(trace.get_tracer_provider()):
        _traces(environ, resource, setup)
    else:
        setup.kept.append("traces")
        setup.tracer_provider = trace.get_tracer_provider()
    if is_unset(metrics.get_meter_provider()):
        _metrics(environ, resource, setup)
    else:
        setup.kept.append("metrics")
        setup.meter_provider = metrics.get_meter_provider()
    logger.info(setup.describe())
    return setup
