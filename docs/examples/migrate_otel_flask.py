from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_routetimer import RouteTimer

exporter = InMemorySpanExporter()  # your OTLP exporter in production
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))

app = Flask(__name__)
# was: FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
timer = RouteTimer(app, tracer_provider=provider)


@app.get("/hello/<name>")
def hello(name: str) -> str:
    return f"Hello, {name}"


if __name__ == "__main__":
    app.test_client().get(
        "/hello/you?lang=en", headers={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}
    )
    (span,) = exporter.get_finished_spans()
    print(span.name, span.kind)  # GET /hello/<name> SpanKind.SERVER
    print(dict(span.attributes or {}))
    assert span.context.trace_id == int("ab" * 16, 16)  # the incoming traceparent is honoured
