"""timer.timed: child spans for inner work, as a context manager or a decorator."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry.trace import StatusCode


def test_context_manager_nests_under_request_span(app, timer, client, spans):
    """`with timer.timed("name")` inside a view makes a child of the request span."""

    @app.get("/work")
    def work() -> str:
        with timer.timed("preprocess", attributes={"rows": 3}):
            pass
        return "ok"

    client.get("/work")
    child, server = spans()
    assert child.name == "preprocess" and child.attributes["rows"] == 3
    assert child.parent is not None and child.parent.span_id == server.context.span_id
    assert child.context.trace_id == server.context.trace_id


@pytest.mark.parametrize("style", ["bare", "named"])
def test_decorator_keeps_function_metadata(timer, style):
    """Decorated functions keep __name__, __qualname__, __doc__ and __wrapped__."""

    def tokenize(text: str) -> list[str]:
        """Split text."""
        return text.split()

    decorated = timer.timed(tokenize) if style == "bare" else timer.timed("tok")(tokenize)
    assert decorated.__name__ == "tokenize"
    assert decorated.__qualname__ == tokenize.__qualname__
    assert decorated.__doc__ == "Split text."
    assert decorated.__wrapped__ is tokenize
    assert decorated("a b") == ["a", "b"]


def test_decorator_span_names(timer, spans):
    """@timer.timed uses the function's qualified name, @timer.timed("x") the given name."""

    @timer.timed
    def load() -> None:
        pass

    @timer.timed("named-step")
    def step() -> None:
        pass

    load()
    step()
    step()
    assert [s.name for s in spans()] == [load.__qualname__, "named-step", "named-step"]


def test_async_function_is_timed_around_the_await(timer, spans):
    """An async function's span covers its awaited work."""

    @timer.timed
    async def fetch() -> int:
        await asyncio.sleep(0.01)
        return 7

    assert asyncio.run(fetch()) == 7
    (span,) = spans()
    assert span.end_time - span.start_time >= 0.01 * 1e9


def test_exception_is_recorded_and_reraised(timer, spans):
    """An exception inside timed work marks the child span ERROR and propagates unchanged."""
    with pytest.raises(ValueError, match="bad row"):
        with timer.timed("parse"):
            raise ValueError("bad row")
    (span,) = spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_one_instance_used_from_several_threads(timer, spans):
    """A module-level timed() object can be entered concurrently from several threads."""
    shared = timer.timed("shared")
    barrier = threading.Barrier(4)

    def run() -> None:
        with shared:
            barrier.wait(timeout=5)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(spans()) == 4


def test_context_manager_needs_a_name(timer):
    """timed() without a name cannot be used with `with`, and says how to fix it."""
    with pytest.raises(TypeError, match="needs a span name"):
        with timer.timed():
            pass
