"""Parent context: incoming W3C trace context and baggage, and outer server spans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, Response
from opentelemetry import trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def test_traceparent_is_honoured(routed, client, server_spans):
    """A request carrying a valid traceparent joins that trace as a child of the caller."""
    client.get("/items/1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    (span,) = server_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote


def test_baggage_is_current_in_the_view(routed, client, server_spans):
    """W3C baggage from the request is in the context the view runs in."""
    response = client.get(
        "/baggage/user.id",
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "baggage": "user.id=42"},
    )
    assert response.json == {"user.id": "42"}


def test_malformed_traceparent_starts_a_new_trace(routed, client, server_spans):
    """A malformed header is ignored: new trace, no error, normal response."""
    response = client.get("/items/1", headers={"traceparent": "00-nothex-zz-01", "baggage": "=;;"})
    assert response.status_code == 200
    (span,) = server_spans()
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != TRACE_ID


def test_outer_server_span_gets_internal_child(routed, tracer_provider, server_spans, spans):
    """Under an outer SERVER span (e.g. a WSGI middleware) the request span is INTERNAL and
    the outer span learns the route."""
    tracer = tracer_provider.get_tracer("middleware")
    inner_wsgi = routed.wsgi_app

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with tracer.start_as_current_span("GET", kind=SpanKind.SERVER):
            return inner_wsgi(environ, start_response)

    routed.wsgi_app = middleware  # type: ignore[method-assign]
    routed.test_client().get("/hello/ada")
    inner, outer = spans()
    assert outer.kind is SpanKind.SERVER and inner.kind is SpanKind.INTERNAL
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert outer.attributes[HTTP_ROUTE] == "/hello/<name>"
    assert outer.name == "GET /hello/<name>"
    assert len(server_spans()) == 1


def test_span_is_current_in_hooks_and_view(app, timer, client, spans):
    """before_request, the view, after_request and error handlers see the request span."""
    seen: dict[str, int] = {}

    def remember(where: str) -> None:
        seen[where] = trace.get_current_span().get_span_context().span_id

    @app.before_request
    def before() -> None:
        remember("before")

    @app.after_request
    def after(response: Response) -> Response:
        remember("after")
        return response

    @app.errorhandler(LookupError)
    def lookup(error: LookupError) -> tuple[str, int]:
        remember("errorhandler")
        return "missing", 404

    @app.get("/find")
    def find() -> str:
        remember("view")
        raise LookupError("x")

    client.get("/find")
    (span,) = spans()
    assert seen == dict.fromkeys(["before", "view", "errorhandler", "after"], span.context.span_id)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_trace_context_passes_through_without_an_sdk(make_app):
    """With no SDK (no-op providers) the caller's trace id is still current in the view."""
    from opentelemetry.trace import NoOpTracerProvider

    from flask_routetimer import RouteTimer

    app = Flask("nosdk")
    RouteTimer(app, tracer_provider=NoOpTracerProvider())

    @app.get("/ids")
    def ids() -> dict[str, str]:
        context = trace.get_current_span().get_span_context()
        return {"trace": format(context.trace_id, "032x"), "span": format(context.span_id, "016x")}

    body = (
        app.test_client().get("/ids", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}).json
    )
    assert body == {"trace": TRACE_ID, "span": PARENT_ID}
