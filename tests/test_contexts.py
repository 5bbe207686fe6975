"""Unusual context lifecycles: copied contexts, threads, test contexts, the debugger's re-push."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from flask import Flask, copy_current_request_context, g
from opentelemetry import trace
from werkzeug.test import EnvironBuilder

from flask_routetimer import RouteTiming, request_timed
from flask_routetimer.record import current_record


@pytest.fixture
def threads() -> Any:
    started: list[threading.Thread] = []
    yield started
    for thread in started:
        thread.join(timeout=10)
        assert not thread.is_alive()


releases: list[threading.Event] = []


@pytest.fixture
def context_app(app: Flask, timer, threads) -> Flask:
    """The ``app`` fixture with a plain view, a view whose thread copies its request context
    (``/copied/0`` leaves it running past the request), and one starting a plain thread."""
    releases.clear()

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/copied/<int:wait>")
    def copied(wait: int) -> str:
        release = threading.Event()

        @copy_current_request_context
        def work() -> None:
            release.wait(5)
            with timer.timed("background"):
                g.value = 1

        thread = threading.Thread(target=work)
        threads.append(thread)
        thread.start()
        if wait:
            release.set()
            thread.join(5)
        else:
            # The test releases the thread after this request's context has been popped.
            releases.append(release)
        return "copied"

    def detached() -> None:
        with timer.timed("detached"):
            pass

    @app.get("/plain-thread")
    def plain_thread() -> str:
        thread = threading.Thread(target=detached)
        threads.append(thread)
        thread.start()
        return "thread"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("debug me")

    return app


def quiet(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.name == "flask_routetimer"], caplog.text


@pytest.mark.parametrize("wait", [1, 0])
def test_copied_request_context_in_a_thread(context_app, server_spans, threads, caplog, wait):
    """A copied context used in a thread (before or after the request ends): one span, no error."""
    timings: list[RouteTiming] = []
    with request_timed.connected_to(lambda sender, timing: timings.append(timing), context_app):
        assert context_app.test_client().get(f"/copied/{wait}").data == b"copied"
        for release in releases:
            release.set()
        for thread in threads:
            thread.join(5)
    assert [s.name for s in server_spans()] == ["GET /copied/<int:wait>"]
    assert len(timings) == 1
    quiet(caplog)


def test_plain_thread_started_in_a_view(context_app, server_spans, threads, caplog):
    """A thread started in a view and using the timer does not disturb the request's span."""
    context_app.test_client().get("/plain-thread")
    for thread in threads:
        thread.join(5)
    assert sorted(s.name for s in server_spans()) == ["GET /plain-thread"]
    quiet(caplog)


def test_test_request_context_without_dispatch(context_app, server_spans, caplog):
    """A test_request_context that dispatches nothing times nothing and raises nothing."""
    with context_app.test_request_context("/ok"):
        assert current_record(context_app) is None
    assert server_spans() == []
    quiet(caplog)


def test_full_dispatch_inside_test_request_context(context_app, server_spans, caplog):
    """Dispatching inside a test_request_context times the request once, at teardown."""
    before = trace.get_current_span()
    with context_app.test_request_context("/ok"):
        response = context_app.full_dispatch_request()
        assert response.status_code == 200
        assert server_spans() == []  # ends when the context pops, like a real request
    assert [s.name for s in server_spans()] == ["GET /ok"]
    assert trace.get_current_span() is before
    quiet(caplog)


def test_debugger_preserved_context_re_pushed(context_app, server_spans, caplog):
    """The debugger's preserved contexts, pushed again (teardown runs again): no second end."""
    context_app.debug = True
    preserved: list[Any] = []
    environ = EnvironBuilder(path="/boom").get_environ()
    environ["werkzeug.debug.preserve_context"] = preserved.append
    with pytest.raises(RuntimeError, match="debug me"):
        context_app.wsgi_app(environ, lambda *args: None)
    assert len(preserved) == 2  # app and request context, as the debugger keeps them
    for _ in range(2):  # each console command in the debugger re-enters them
        with preserved[0], preserved[1]:
            pass
    (span,) = server_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    quiet(caplog)


def test_preserve_context_on_exception_config(context_app, server_spans, caplog):
    """PRESERVE_CONTEXT_ON_EXCEPTION with the test client: one span, nothing left attached."""
    context_app.config.update(PRESERVE_CONTEXT_ON_EXCEPTION=True, PROPAGATE_EXCEPTIONS=False)
    with context_app.test_client() as client:
        assert client.get("/boom").status_code == 500
        assert client.get("/ok").status_code == 200
    assert [s.name for s in server_spans()] == ["GET /boom", "GET /ok"]
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.name != "flask_routetimer" for r in records)
