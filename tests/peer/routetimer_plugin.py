"""pytest plugin: attach flask-routetimer to every Flask app a test suite builds; fail leaky tests.

Load it with ``-p routetimer_plugin`` (this folder on ``sys.path``), as scripts/peer-flask.sh does
for Flask's own test suite. It wraps ``Flask.__init__``, so each app gets one shared
``RouteTimer`` with SDK providers (spans to an in-memory exporter, metrics to an in-memory
reader), exactly as a user would attach it right after creating the app; and ``Flask.__call__``,
only to note in the environ when the app raised out of the WSGI call.

After each test (in its teardown report, once every fixture is gone) it fails the test when:

- an OpenTelemetry context is still attached that was not before the test (then it is reset, so
  the next test is not blamed);
- a span started in the test has a parent span from another test (a context leaked earlier, or
  in another thread);
- a span started in the test is still open although its request is finished: its context was
  popped and its body was not a streamed one the test left unclosed (the client has not finished
  reading such a body, so its span rightly stays open);
- a request that got a response has no request span, more than one, or one that ended without
  the status code the client got (when the app raised out of the WSGI call after the response, a
  failing teardown, a server sends 500: either is accepted);
- ``http.server.active_requests`` moved away from the number of request spans still open;
- flask_routetimer logged a WARNING or worse, or OpenTelemetry logged "Failed to detach context".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest
from flask import Flask, Request, Response, has_request_context, request
from flask import signals as flask_signals
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.metrics.http_metrics import HTTP_SERVER_ACTIVE_REQUESTS
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from werkzeug.wsgi import ClosingIterator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

from flask_routetimer import RouteTimer
from flask_routetimer._fence import forget_reported

#: The instrumentation scope of flask-routetimer's spans.
SCOPE = "flask_routetimer"
#: What OpenTelemetry logs when a token is detached in the wrong context or twice.
DETACH_ERROR = "Failed to detach context"
#: Where spans and requests come from when no test was running (collection, session fixtures).
NO_TEST = "<no test>"
#: Set in a request's WSGI environ when the app raised out of the WSGI call (a failing teardown,
#: an exception propagated in testing): the client then gets the server's 500, not the response.
RAISED = "routetimer_plugin.raised"


class RequestSeen:
    """One request of the current test: its request spans, and the response the client got."""

    __slots__ = ("request", "label", "spans", "status", "lazy", "closed")

    def __init__(self, current: Request) -> None:
        self.request = current  # held, so that its id is not reused during the test
        self.label = f"request {current.method} {current.path}"
        self.spans: list[int] = []
        self.status: Optional[int] = None
        self.lazy = False
        self.closed = False

    def finished(self) -> bool:
        """Over, unless its body is streamed and the test has not closed the response."""
        return not self.lazy or self.closed

    def statuses(self) -> tuple[Optional[int], ...]:
        """The status codes the client may have got: the response's, or when the app raised out
        of the WSGI call after it (a failing teardown), the server's 500 as well."""
        if self.request.environ.get(RAISED):
            return (self.status, 500)
        return (self.status,)


class SpanSeen:
    """A span as it started: its name, the test and request it started in, its parent."""

    __slots__ = ("name", "kind", "test", "request", "parent", "is_request")

    def __init__(self, span: Span, test: str, request: Optional[RequestSeen]) -> None:
        self.name = span.name
        self.kind = span.kind.name
        self.test = test
        self.request = request
        self.parent = span.parent
        self.is_request = is_request_span(span)

    def __str__(self) -> str:
        return f"{self.kind} span {self.name!r}"


def is_request_span(span: ReadableSpan) -> bool:
    """A span flask-routetimer made for a request (not one of its ``timed()`` child spans)."""
    scope = span.instrumentation_scope
    return (
        scope is not None
        and scope.name == SCOPE
        and span.attributes is not None
        and HTTP_REQUEST_METHOD in span.attributes
    )


def is_lazy_body(response: Response) -> bool:
    """Whether the body is produced as the client reads it; its span then ends when the client
    closes the response. flask-routetimer ends every other body's span at teardown: the same rule
    as its ``is_lazy_body`` (an ``abort()`` body is a ``ClosingIterator``, ``send_file`` is
    ``direct_passthrough``)."""
    return (
        response.is_streamed
        and not response.direct_passthrough
        and not isinstance(response.response, ClosingIterator)
    )


class LogCatcher(logging.Handler):
    """Keeps the records of one logger (and its children) that ``wanted`` accepts."""

    def __init__(self, logger: str, level: int, wanted: Callable[[logging.LogRecord], bool]):
        super().__init__(level)
        self.logger = logging.getLogger(logger)
        self.wanted = wanted
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.wanted(record):
            text = f"{record.levelname} from {record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            self.messages.append(text)

    def install(self) -> None:
        # The level on the logger too: a test that raises the root logger's level must not
        # hide a record from us.
        self.logger.setLevel(min(self.logger.getEffectiveLevel(), self.level))
        self.logger.addHandler(self)

    def remove(self) -> None:
        self.logger.removeHandler(self)


class LeakTracker(SpanProcessor):
    """Follows every span and request of the session, test by test, and says what leaked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # spans may start and end in other threads
        self.test = NO_TEST
        self.context_before = otel_context.get_current()
        #: Spans started and not yet ended, from any test.
        self.open: dict[int, SpanSeen] = {}
        #: The test each span started in, for naming a leaked parent (ids of the whole session).
        self.origin: dict[int, str] = {}
        #: Spans started in the current test.
        self.started: dict[int, SpanSeen] = {}
        #: The current test's requests, by id of their request object.
        self.requests: dict[int, RequestSeen] = {}
        self.apps = 0
        self.request_spans = 0
        self.violations = 0
        #: http.server.active_requests minus the request spans still open, after the last test.
        self.active_drift = 0
        self.routetimer_logs = LogCatcher(SCOPE, logging.WARNING, lambda record: True)
        self.detach_errors = LogCatcher(
            "opentelemetry.context", logging.ERROR, lambda record: DETACH_ERROR in str(record.msg)
        )

    def _request(self) -> Optional[RequestSeen]:
        """The current request, seen here before or new; None outside a request."""
        if not has_request_context():
            return None
        current: Request = request._get_current_object()  # type: ignore[attr-defined]
        seen = self.requests.get(id(current))
        if seen is None or seen.request is not current:
            seen = self.requests[id(current)] = RequestSeen(current)
        return seen

    # -- span processor ----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Optional[otel_context.Context] = None) -> None:
        span_id = span.context.span_id
        with self._lock:
            current = self._request()
            seen = SpanSeen(span, self.test, current)
            if current is not None and seen.is_request:
                current.spans.append(span_id)
            self.open[span_id] = seen
            self.started[span_id] = seen
            self.origin[span_id] = self.test

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        with self._lock:
            self.open.pop(span.context.span_id, None)

    # -- requests ----------------------------------------------------------------------------

    def on_request_finished(self, app: Flask, response: Response, **_: Any) -> None:
        """Note the response's status, whether its body is streamed, and when it is closed."""
        with self._lock:
            seen = self._request()
        assert seen is not None, "request_finished is sent with the request context pushed"
        seen.status = response.status_code
        seen.lazy = is_lazy_body(response)
        seen.closed = False

        def closed() -> None:
            seen.closed = True

        response.call_on_close(closed)

    # -- tests -------------------------------------------------------------------------------

    def begin(self, nodeid: str) -> None:
        forget_reported()  # flask_routetimer logs each cause once per process: once per test here
        with self._lock:
            self.test = nodeid
            self.started = {}
            self.requests = {}
        self.context_before = otel_context.get_current()
        self.routetimer_logs.messages.clear()
        self.detach_errors.messages.clear()

    def end(self, exported: Sequence[ReadableSpan], active_requests: int) -> list[str]:
        """What went wrong in the current test, one sentence each; resets a leaked context.

        ``exported``: the spans exported during the test; ``active_requests``: the value of
        ``http.server.active_requests`` now, summed over its series.
        """
        problems: list[str] = []
        current = otel_context.get_current()
        if current != self.context_before:
            span = trace.get_current_span(current)
            leaked = self.origin.get(span.get_span_context().span_id)
            name = getattr(span, "name", "?")
            problems.append(
                "an OpenTelemetry context is still attached after the test"
                + (f" (its span {name!r} started in {leaked})" if leaked else "")
            )
            # Put the context back, so the next test's spans do not inherit this test's leak.
            otel_context.attach(self.context_before)
        with self._lock:
            self.test = NO_TEST
            started = dict(self.started)
            still_open = [seen for span_id, seen in started.items() if span_id in self.open]
            requests = list(self.requests.values())
            open_requests = sum(seen.is_request for seen in self.open.values())
        ended_status: dict[int, object] = {
            span.context.span_id: (span.attributes or {}).get(HTTP_RESPONSE_STATUS_CODE)
            for span in exported
            if span.context is not None and is_request_span(span)
        }
        self.request_spans += len(ended_status)
        for seen in started.values():
            parent = seen.parent
            if parent is not None and not parent.is_remote and parent.span_id not in started:
                where = self.origin.get(parent.span_id, "outside any span this session saw")
                problems.append(f"{seen} has a parent span from another test: {where}")
        for seen in still_open:
            if seen.request is None:
                problems.append(f"{seen} was never ended (started outside a request)")
            elif seen.request.finished():
                problems.append(f"{seen} was never ended, though its {seen.request.label} is over")
        for req in requests:
            problems += self._check_request(req, ended_status)
        # Every open request span is an active request (a streamed body still being read, or a
        # leak reported above); a request counted in and never out shows as a change here.
        drift = active_requests - open_requests
        if drift != self.active_drift:
            problems.append(
                f"http.server.active_requests is {active_requests} while {open_requests} request "
                f"spans are open: {drift - self.active_drift:+d} during this test"
            )
            self.active_drift = drift
        problems += self.routetimer_logs.messages
        problems += self.detach_errors.messages
        self.violations += bool(problems)
        return problems

    @staticmethod
    def _check_request(req: RequestSeen, ended_status: dict[int, object]) -> list[str]:
        """A request that got a response has one request span, which records that response."""
        if req.status is None:
            return []  # no response: the view's exception reached the test
        if not req.spans:
            return [f"{req.label} got a {req.status} response but has no request span"]
        problems = []
        if len(req.spans) > 1:
            problems.append(f"{req.label} has {len(req.spans)} request spans")
        expected = req.statuses()
        for span_id in req.spans:
            if span_id in ended_status and ended_status[span_id] not in expected:
                got = " or ".join(map(str, expected))
                problems.append(
                    f"the span of {req.label} ended with {HTTP_RESPONSE_STATUS_CODE} = "
                    f"{ended_status[span_id]!r}, but the client got {got}"
                )
        return problems


class RouteTimerPlugin:
    """The pytest side: attach RouteTimer in ``Flask.__init__``, check each test at teardown."""

    def __init__(self) -> None:
        self.tracker = LeakTracker()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(self.tracker)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        # Delta histograms: each per-test read of active requests then walks only the duration
        # series of that test, not every route of the session (about ten times faster).
        self.metric_reader = InMemoryMetricReader(
            preferred_temporality={Histogram: AggregationTemporality.DELTA}
        )
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        # One timer for every app, as an app factory would share it (init_app per app).
        self.timer = RouteTimer(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )
        self._original_init = Flask.__init__
        self._original_call = Flask.__call__

    def attach(self, app: Flask) -> None:
        """Attach RouteTimer to a new app, and watch its responses."""
        self.timer.init_app(app)
        flask_signals.request_finished.connect(self.tracker.on_request_finished, app, weak=False)
        self.tracker.apps += 1

    def install(self) -> None:
        original, attach, original_call = self._original_init, self.attach, self._original_call

        def init_and_attach(app: Flask, *args: Any, **kwargs: Any) -> None:
            original(app, *args, **kwargs)
            attach(app)

        def call_and_watch(
            app: Flask, environ: WSGIEnvironment, start_response: StartResponse
        ) -> Iterable[bytes]:
            try:
                return original_call(app, environ, start_response)
            except BaseException:
                environ[RAISED] = True  # nothing else changes: the exception goes on
                raise

        Flask.__init__ = init_and_attach  # type: ignore[method-assign, assignment]
        Flask.__call__ = call_and_watch  # type: ignore[method-assign, assignment]
        self.tracker.routetimer_logs.install()
        self.tracker.detach_errors.install()

    def uninstall(self) -> None:
        Flask.__init__ = self._original_init  # type: ignore[method-assign]
        Flask.__call__ = self._original_call  # type: ignore[method-assign]
        self.tracker.routetimer_logs.remove()
        self.tracker.detach_errors.remove()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def active_requests(self) -> int:
        """``http.server.active_requests`` summed over its series (method, scheme)."""
        data = self.metric_reader.get_metrics_data()
        total = 0
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == HTTP_SERVER_ACTIVE_REQUESTS and isinstance(metric.data, Sum):
                        total += sum(int(point.value) for point in metric.data.data_points)
        return total

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.tracker.begin(nodeid)
        self.exporter.clear()  # nobody reads old spans; keep memory flat

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "teardown":
            problems = self.tracker.end(self.exporter.get_finished_spans(), self.active_requests())
            if problems:
                text = "routetimer_plugin: problems found in this test:\n" + "\n".join(
                    f"  - {problem}" for problem in problems
                )
                if report.failed:
                    text = f"{report.longreprtext}\n\n{text}"
                report.outcome = "failed"
                report.longrepr = text
        return report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tracker = self.tracker
        terminalreporter.write_line(
            f"routetimer_plugin: RouteTimer attached to {tracker.apps} apps, "
            f"{tracker.request_spans} request spans ended, {tracker.violations} tests with problems"
        )

    def peer_summary(self) -> dict[str, Any]:
        """What peer_outcomes adds to its file, so compare.py can tell this plugin really ran."""
        return {
            "routetimer": {
                "apps": self.tracker.apps,
                "request_spans": self.tracker.request_spans,
                "tests_with_problems": self.tracker.violations,
            }
        }


_plugin = pytest.StashKey[RouteTimerPlugin]()


def pytest_configure(config: pytest.Config) -> None:
    plugin = RouteTimerPlugin()
    plugin.install()
    config.stash[_plugin] = plugin
    config.pluginmanager.register(plugin, "routetimer-plugin")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(_plugin, None)
    if plugin is not None:
        plugin.uninstall()
