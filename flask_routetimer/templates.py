"""Template rendering as child spans, from Flask's ``before_render_template`` and
``template_rendered`` signals (``ROUTETIMER_TIME_TEMPLATES``).

Each render during a timed request is an INTERNAL span ``render <template name>`` (``render
<string>`` for ``render_template_string``), a child of the span current when the render began, or
of the render it is nested in. Flask sends ``template_rendered`` only when a render succeeds, so
a render that raises leaves its span open: it ends with status ERROR when a later render of an
enclosing template finishes, when Flask reports the request's exception, or at the latest when
the request ends (:func:`end_open_renders`, called by the request's one end).

Outside a timed request (or when its span is not recorded) the receivers return at once. The
render span is not made current, so spans started inside a template are children of the
request, not of the render.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable, Optional, Protocol

from flask import Flask
from flask import signals as flask_signals
from jinja2 import Template
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._fence import report
from .attributes import exception_description
from .child_spans import TracerSource

#: Span attribute: the template's name, or ``<string>`` for ``render_template_string``.
TEMPLATE_NAME = "flask.template.name"
#: How a template made from a string is named (Jinja gives it no name).
STRING_TEMPLATE = "<string>"
#: Status of a render span ended without ``template_rendered``.
UNFINISHED = "the render did not finish: it raised, or the request ended first"


class RenderStack:
    """The renders of one request still open, innermost last."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open: list[tuple[Template, trace.Span]] = []

    def push(self, template: Template, span: trace.Span) -> None:
        self.open.append((template, span))

    def parent(self) -> Optional[trace.Span]:
        """The innermost open render, which a new render is nested in."""
        return self.open[-1][1] if self.open else None

    def end(self, template: Template) -> None:
        """End the render of ``template``; renders opened inside it and still open raised."""
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] is template:
                self.end_all(UNFINISHED, keep=index + 1)
                self.open.pop()[1].end()
                return

    def end_all(self, description: str, keep: int = 0) -> None:
        """End every open render above the first ``keep`` with status ERROR, innermost first."""
        while len(self.open) > keep:
            span = self.open.pop()[1]
            try:
                span.set_status(Status(StatusCode.ERROR, description))
            finally:
                span.end()


class Rendering(Protocol):
    """What this module needs of the lifecycle's per-request record."""

    span: trace.Span
    renders: Optional[RenderStack]


#: The render stack of the request whose view ran last in this context: ``stream_template``
#: sends ``template_rendered`` after the body's last chunk, once the request has been torn down.
_latest: ContextVar[Optional[RenderStack]] = ContextVar("flask_routetimer.renders", default=None)


def template_label(template: Template) -> str:
    """The name a render span shows: the template's name, or ``<string>``."""
    name = template.name
    return name if name is not None else STRING_TEMPLATE


class TemplateSpans:
    """The receivers that turn one app's template renders into child spans."""

    def __init__(
        self, source: TracerSource, lookup: Callable[[Flask], Optional[Rendering]]
    ) -> None:
        self._source = source
        self._lookup = lookup  # the app's request being timed here, if any

    def connect(self, app: Flask) -> None:
        """Connect the receivers for this app only (``sender=app``), strongly referenced."""
        flask_signals.before_render_template.connect(self.on_before, app, weak=False)
        flask_signals.template_rendered.connect(self.on_rendered, app, weak=False)
        flask_signals.got_request_exception.connect(self.on_exception, app, weak=False)

    def on_before(self, app: Flask, template: Template, **_: Any) -> None:
        record = self._lookup(app)
        if record is None or not record.span.is_recording():
            return  # not in a timed request, or nobody records its spans
        try:
            self._start(record, template)
        except Exception as exc:
            report("starting a template span", exc)

    def on_rendered(self, app: Flask, template: Template, **_: Any) -> None:
        record = self._lookup(app)
        stack = record.renders if record is not None else _latest.get()
        if stack is None or not stack.open:
            return
        try:
            stack.end(template)
        except Exception as exc:
            report("ending a template span", exc)

    def on_exception(self, app: Flask, exception: BaseException, **_: Any) -> None:
        record = self._lookup(app)
        if record is None or record.renders is None or not record.renders.open:
            return
        try:
            record.renders.end_all(exception_description(exception))
        except Exception as exc:
            report("ending a template span", exc)

    def _start(self, record: Rendering, template: Template) -> None:
        stack = record.renders
        if stack is None:
            stack = record.renders = RenderStack()
            _latest.set(stack)
        outer = stack.parent()
        label = template_label(template)
        span = self._source.tracer.start_span(
            f"render {label}",
            context=trace.set_span_in_context(outer) if outer is not None else None,
            kind=SpanKind.INTERNAL,
            attributes={TEMPLATE_NAME: label},
        )
        stack.push(template, span)


def end_open_renders(record: Rendering) -> None:
    """End, with status ERROR, every render of ``record`` still open; call when it ends."""
    stack = record.renders
    if stack is None or not stack.open:
        return
    try:
        stack.end_all(UNFINISHED)
    except Exception as exc:
        report("ending a template span", exc)
