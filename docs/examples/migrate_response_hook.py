"""Was: response_hook(span, status, headers). The request span is still open in after_request."""

from flask import Flask, Response
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_routetimer import RouteTimer

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
app = Flask(__name__)
timer = RouteTimer(app, tracer_provider=provider)


@app.after_request
def response_hook(response: Response) -> Response:
    # request_timed comes after the span has ended: too late to add attributes there.
    span = trace.get_current_span()
    span.set_attribute("app.response.content_type", response.mimetype or "")
    return response


@app.get("/hello")
def hello() -> str:
    return "hello"


if __name__ == "__main__":
    app.test_client().get("/hello")
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["app.response.content_type"] == "text/html"
    print(span.name, dict(span.attributes))
