"""Serve the example app in one process, as ``flask run`` does, for ``test_export.py``.

Usage: ``python tests/e2e/serve_example.py PORT`` with the ``OTEL_*`` variables set. The SDK is
set up the example's way (``create_app()`` calls ``configure_sdk()``); an in-memory exporter on
the same provider keeps what Phoenix drops (span kind, resource). Close stdin to stop: the
server shuts down, the provider is flushed, and one ``SPANS [...]`` JSON line is printed.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.serving import make_server

from example_app import create_app


def as_json(span: ReadableSpan) -> dict[str, Any]:
    """The fields Phoenix does not keep, plus the ids to match them with Phoenix's copy."""
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "resource": dict(span.resource.attributes),
    }


def main() -> None:
    port = int(sys.argv[1])
    app = create_app()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), provider
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sys.stdin.read()  # until the test closes our stdin
    finally:
        server.shutdown()
        thread.join(10)
        provider.force_flush()
        print("SPANS " + json.dumps([as_json(s) for s in memory.get_finished_spans()]), flush=True)
        provider.shutdown()


if __name__ == "__main__":
    main()
