"""Smoke tests of the Phoenix harness: spans go out over OTLP/HTTP and OTLP/gRPC and come
back intact through Phoenix's REST API. Later e2e tests rely on exactly these guarantees."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .phoenix import Phoenix, Span, screenshot

PARENT_ATTRS: dict[str, Any] = {
    "http.route": "/items/<int:item_id>",
    "http.response.status_code": 500,
    "routetimer.duration_s": 0.125,
    "routetimer.slow": True,
    "routetimer.tags": ["a", "b"],
}


def _exporter(phoenix: Phoenix, protocol: str) -> SpanExporter:
    """An OTLP exporter aimed at the test Phoenix over ``protocol``."""
    if protocol == "http":
        return HttpSpanExporter(endpoint=phoenix.http_endpoint, timeout=10)
    return GrpcSpanExporter(endpoint=phoenix.grpc_endpoint, timeout=10)


def _make_trace(project: str) -> tuple[ReadableSpan, ReadableSpan]:
    """Record a SERVER parent (OK, one event) and a CLIENT child (ERROR + exception event).

    Spans are recorded in memory and exported explicitly so a transport failure shows up
    as an assertion here instead of a log line from a span processor.
    """
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "smoke", "openinference.project.name": project})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e-smoke", "1.0")
    with tracer.start_as_current_span(
        "GET /items/<int:item_id>", kind=SpanKind.SERVER, attributes=PARENT_ATTRS
    ) as parent:
        with tracer.start_as_current_span("db.query", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.rows", 0)
            try:
                raise LookupError("item 7 not found")
            except LookupError as exc:
                child.record_exception(exc)
                child.set_status(Status(StatusCode.ERROR, "lookup failed"))
        parent.add_event("response.sent", {"bytes": 42})
        parent.set_status(Status(StatusCode.OK))
    provider.shutdown()
    child_span, parent_span = memory.get_finished_spans()
    return parent_span, child_span


def _hex(span: ReadableSpan) -> tuple[str, str]:
    """(trace_id, span_id) as Phoenix prints them: lowercase hex, 32 and 16 digits."""
    ctx = span.get_span_context()
    assert ctx is not None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _micros(iso: str) -> int:
    """Microseconds since the epoch of one of Phoenix's ISO-8601 timestamps (µs, not ns)."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (datetime.fromisoformat(iso) - epoch) // timedelta(microseconds=1)


def _export_and_fetch(
    phoenix: Phoenix, protocol: str, project: str
) -> tuple[ReadableSpan, ReadableSpan, dict[str, Span]]:
    """Export one two-span trace over ``protocol``; return it and Phoenix's copy by name."""
    parent, child = _make_trace(project)
    exporter = _exporter(phoenix, protocol)
    try:
        assert exporter.export([child, parent]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    trace_id, _ = _hex(parent)
    stored = phoenix.wait_for_spans(project, trace_id, count=2)
    return parent, child, {span["name"]: span for span in stored}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_round_trip(phoenix: Phoenix, protocol: str) -> None:
    """Names, ids, parentage, attributes, status, events and times survive the trip."""
    parent, child, by_name = _export_and_fetch(phoenix, protocol, f"smoke-{protocol}")
    assert set(by_name) == {"GET /items/<int:item_id>", "db.query"}
    got_parent, got_child = by_name["GET /items/<int:item_id>"], by_name["db.query"]
    trace_id, parent_id = _hex(parent)
    _, child_id = _hex(child)

    assert got_parent["context"] == {"trace_id": trace_id, "span_id": parent_id}
    assert got_child["context"] == {"trace_id": trace_id, "span_id": child_id}
    assert got_parent["parent_id"] is None
    assert got_child["parent_id"] == parent_id

    assert got_parent["attributes"] == PARENT_ATTRS  # list values come back as JSON arrays
    assert got_child["attributes"] == {"db.rows": 0}

    assert (got_parent["status_code"], got_parent["status_message"]) == ("OK", "")
    assert (got_child["status_code"], got_child["status_message"]) == ("ERROR", "lookup failed")

    assert [(e["name"], e["attributes"]) for e in got_parent["events"]] == [
        ("response.sent", {"bytes": 42})
    ]
    (exception,) = got_child["events"]
    assert exception["name"] == "exception"
    assert exception["attributes"]["exception.type"] == "LookupError"
    assert exception["attributes"]["exception.message"] == "item 7 not found"
    assert "LookupError: item 7 not found" in exception["attributes"]["exception.stacktrace"]

    for sent, got in ((parent, got_parent), (child, got_child)):
        assert sent.start_time is not None and sent.end_time is not None
        # Phoenix stores µs through a float, so allow one µs of rounding either way.
        assert abs(_micros(got["start_time"]) - sent.start_time // 1000) <= 1
        assert abs(_micros(got["end_time"]) - sent.end_time // 1000) <= 1


def test_what_phoenix_drops(phoenix: Phoenix) -> None:
    """Pin down what Phoenix does NOT keep, so later tests don't assert on it.

    OTel SpanKind is dropped (Phoenix's span_kind is the OpenInference kind, taken from
    the ``openinference.span.kind`` attribute), and resource attributes other than the
    project name and the instrumentation scope are not stored on the span.
    """
    _, _, by_name = _export_and_fetch(phoenix, "http", "smoke-drops")
    for span in by_name.values():
        assert span["span_kind"] == "UNKNOWN"  # sent as SERVER / CLIENT
        assert "service.name" not in span["attributes"]
        assert "openinference.project.name" not in span["attributes"]
        assert set(span) == {
            "id", "name", "context", "span_kind", "parent_id", "start_time",
            "end_time", "status_code", "status_message", "attributes", "events",
        }  # fmt: skip


def test_trace_ui_screenshot(phoenix: Phoenix, tmp_path: Path) -> None:
    """Phoenix's UI renders a trace for headless Chromium (needs Debian's chromium)."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    parent, _, by_name = _export_and_fetch(phoenix, "grpc", "smoke-ui")
    trace_id, _ = _hex(parent)
    url = phoenix.trace_ui_url("smoke-ui", trace_id, by_name["db.query"]["id"])
    assert f"/traces/{trace_id}?selectedSpanNodeId=" in url
    out = tmp_path / "trace.png"
    screenshot(url, out)
    # A blank, not-yet-rendered page is ~6 kB of flat colour; a rendered trace is ~80 kB.
    assert out.stat().st_size > 30_000, f"screenshot looks blank: {out}"
