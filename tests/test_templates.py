"""Template renders become child spans, from Flask's own template signals."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from flask import (
    Flask,
    render_template,
    render_template_string,
    stream_template,
)
from jinja2 import DictLoader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode

from flask_routetimer import RouteTimer
from flask_routetimer.templates import TEMPLATE_NAME, UNFINISHED

TEMPLATES = {
    "page.html": "<h1>{{ title }}</h1>",
    "outer.html": "<main>{{ inner()|safe }}</main>",
    "inner.html": "<p>inner</p>",
    "broken.html": "{{ boom() }}",
    "500.html": "<h1>Sorry</h1>",
    "rows.html": "{% for row in rows %}{{ row }}\n{% endfor %}",
}


def boom() -> str:
    raise RuntimeError("the template failed")


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), f"span names repeat: {[s.name for s in spans]}"
    return named


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


@pytest.fixture
def make_template_app(make_app: Callable[..., tuple[Flask, RouteTimer]]) -> Callable[..., Flask]:
    """``make_template_app(**config)``: an app with templates in memory and a few rendering
    views."""

    def factory(**config: Any) -> Flask:
        app, timer = make_app(**config)
        app.jinja_env.loader = DictLoader(TEMPLATES)

        @app.get("/page")
        def page() -> str:
            return render_template("page.html", title="Hello")

        @app.get("/string")
        def string() -> str:
            return render_template_string("<b>{{ 1 + 1 }}</b>")

        @app.get("/nested")
        def nested() -> str:
            return render_template("outer.html", inner=lambda: render_template("inner.html"))

        @app.get("/broken")
        def broken() -> str:
            return render_template("broken.html", boom=boom)

        @app.get("/caught")
        def caught() -> str:
            try:
                return render_template("broken.html", boom=boom)
            except RuntimeError:
                return "handled by the view"

        @app.get("/timed")
        def timed() -> str:
            with timer.timed("build"):
                return render_template("page.html", title="in a timed block")

        @app.get("/streamed")
        def streamed() -> Any:
            return stream_template("rows.html", rows=["a", "b"])

        @app.get("/exempt")
        @timer.exempt
        def exempt() -> str:
            return render_template("page.html", title="untimed")

        @app.errorhandler(500)
        def server_error(error: Exception) -> tuple[str, int]:
            return render_template("500.html"), 500

        return app

    return factory


@pytest.fixture
def template_app(make_template_app: Callable[..., Flask]) -> Flask:
    return make_template_app(PROPAGATE_EXCEPTIONS=False)


def test_render_is_an_internal_child_span(template_app, spans):
    """``render <name>``: INTERNAL, the template name as attribute, a child of the request."""
    assert template_app.test_client().get("/page").data == b"<h1>Hello</h1>"
    named = by_name(spans())
    render, request = named["render page.html"], named["GET /page"]
    assert render.kind is SpanKind.INTERNAL
    assert render.attributes == {TEMPLATE_NAME: "page.html"}
    assert render.status.status_code is StatusCode.UNSET
    assert parent_of(render) == request.context.span_id
    assert render.context.trace_id == request.context.trace_id
    assert request.start_time <= render.start_time <= render.end_time <= request.end_time


def test_render_template_string_is_render_string(template_app, spans):
    """A template made from a string has no name: its span is ``render <string>``."""
    assert template_app.test_client().get("/string").data == b"<b>2</b>"
    render = by_name(spans())["render <string>"]
    assert render.attributes == {TEMPLATE_NAME: "<string>"}


def test_nested_renders_nest(template_app, spans):
    """A render made while another renders is that render's child, inside its time."""
    assert template_app.test_client().get("/nested").data == b"<main><p>inner</p></main>"
    named = by_name(spans())
    outer, inner = named["render outer.html"], named["render inner.html"]
    assert parent_of(outer) == named["GET /nested"].context.span_id
    assert parent_of(inner) == outer.context.span_id
    assert outer.start_time <= inner.start_time <= inner.end_time <= outer.end_time


def test_render_in_a_timed_block_is_its_child(template_app, spans):
    """A render inside ``timer.timed`` nests under that span (the current one)."""
    template_app.test_client().get("/timed")
    named = by_name(spans())
    assert parent_of(named["render page.html"]) == named["build"].context.span_id


def test_raising_render_ends_with_error_before_the_error_page(template_app, spans):
    """A render that raises ends with ERROR when Flask reports the exception; the error page's
    render is a sibling under the request, not a child of the failed one."""
    response = template_app.test_client().get("/broken")
    assert (response.status_code, response.data) == (500, b"<h1>Sorry</h1>")
    named = by_name(spans())
    failed, error_page = named["render broken.html"], named["render 500.html"]
    request = named["GET /broken"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "RuntimeError: the template failed"
    assert error_page.status.status_code is StatusCode.UNSET
    assert parent_of(failed) == parent_of(error_page) == request.context.span_id
    assert failed.end_time <= error_page.start_time
    assert request.status.status_code is StatusCode.ERROR


def test_raising_render_caught_by_the_view_ends_with_the_request(template_app, spans):
    """Flask sends no ``template_rendered`` and no exception: the span still ends, at the
    latest with the request, with status ERROR."""
    assert template_app.test_client().get("/caught").data == b"handled by the view"
    named = by_name(spans())
    failed, request = named["render broken.html"], named["GET /caught"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == UNFINISHED
    assert request.status.status_code is StatusCode.UNSET
    assert failed.end_time <= request.end_time


def test_stream_template_lasts_until_the_body_ends(template_app, spans):
    """``stream_template`` renders while the body is sent: its span ends with the last row,
    without error, after the request's teardown."""
    with template_app.test_client().get("/streamed") as response:
        assert response.get_data(as_text=True) == "a\nb\n"
    named = by_name(spans())
    render, request = named["render rows.html"], named["GET /streamed"]
    assert render.status.status_code is StatusCode.UNSET
    assert parent_of(render) == request.context.span_id


def test_stream_template_cut_short_ends_with_the_request(template_app, spans):
    """A client that leaves before the end of a streamed template: the span ends with it."""
    response = template_app.test_client().get("/streamed")
    next(response.response)
    response.close()
    named = by_name(spans())
    assert named["render rows.html"].status.status_code is StatusCode.ERROR
    assert "GET /streamed" in named


def test_off_switch(make_template_app, spans):
    """ROUTETIMER_TIME_TEMPLATES = False: the request is timed, its renders are not."""
    app = make_template_app(ROUTETIMER_TIME_TEMPLATES=False)
    app.test_client().get("/nested")
    assert [span.name for span in spans()] == ["GET /nested"]


def test_nothing_outside_a_timed_request(template_app, spans):
    """Renders outside a request, in an untimed request context or on an exempt route make no
    span."""
    with template_app.app_context():
        assert render_template("page.html", title="x") == "<h1>x</h1>"
    with template_app.test_request_context("/page"):
        render_template_string("{{ 1 }}")
    client = template_app.test_client()
    client.get("/exempt")
    assert spans() == []


class DropRequests(Sampler):
    """Records every span except SERVER ones, whatever their parent."""

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
    ) -> SamplingResult:
        decision = Decision.DROP if kind is SpanKind.SERVER else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, attributes)

    def get_description(self) -> str:
        return "DropRequests"


def test_no_render_span_when_the_request_is_not_recorded(exporter):
    """A request whose span is not recorded (unsampled, no SDK) gets no render spans, even from
    a sampler that would record them."""
    provider = TracerProvider(sampler=DropRequests())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Flask("unsampled")
    RouteTimer(app, tracer_provider=provider)
    app.jinja_env.loader = DictLoader(TEMPLATES)
    app.add_url_rule("/", "page", lambda: render_template("page.html", title="x"))
    with RouteTimer(tracer_provider=provider).timed("outside"):
        pass  # the sampler does record non-request spans
    assert app.test_client().get("/").data == b"<h1>x</h1>"
    assert [span.name for span in exporter.get_finished_spans()] == ["outside"]
    provider.shutdown()
