"""The reason flask-routetimer exists: timing two routes without renaming either view."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import pytest
from flask import Flask

from flask_routetimer import RouteTimer


def naive_timeit(func: Callable[..., Any]) -> Callable[..., Any]:
    """The home-made decorator people write first (no functools.wraps)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            print(f"{func.__name__} took {time.perf_counter() - start:.3f}s")

    return wrapper


def test_naive_decorator_breaks_the_second_route():
    """Two routes under the naive decorator: Flask refuses to start (the motivating crash)."""
    app = Flask("naive")

    @app.post("/v1/predict/")
    @naive_timeit
    def predict_v1() -> str:
        return "v1"

    with pytest.raises(AssertionError, match="overwriting an existing endpoint function: wrapper"):

        @app.post("/v2/predict/")
        @naive_timeit
        def predict_v2() -> str:
            return "v2"


def test_routetimer_times_both_routes_with_their_own_names(tracer_provider, server_spans):
    """With RouteTimer both predict routes start, serve, and keep their own endpoint names."""
    app = Flask("predict")
    timer = RouteTimer(app, tracer_provider=tracer_provider)

    @app.post("/v1/predict/")
    def predict_v1() -> dict[str, str]:
        with timer.timed("preprocess-v1"):
            return {"model": "v1"}

    @app.post("/v2/predict/")
    def predict_v2() -> dict[str, str]:
        with timer.timed("preprocess-v2"):
            return {"model": "v2"}

    views = dict(app.view_functions)
    client = app.test_client()
    assert client.post("/v1/predict/").json == {"model": "v1"}
    assert client.post("/v2/predict/").json == {"model": "v2"}
    assert app.view_functions == views
    assert app.view_functions["predict_v1"].__name__ == "predict_v1"
    assert app.view_functions["predict_v2"] is predict_v2
    assert [(s.name, s.attributes["flask.endpoint"]) for s in server_spans()] == [
        ("POST /v1/predict/", "predict_v1"),
        ("POST /v2/predict/", "predict_v2"),
    ]


def test_wraps_alone_is_not_enough_for_the_whole_request(tracer_provider, server_spans):
    """A functools.wraps decorator misses before_request time; the request span includes it."""
    app = Flask("hooks")
    RouteTimer(app, tracer_provider=tracer_provider)
    measured: list[float] = []

    def timeit(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                measured.append(time.perf_counter() - start)

        return wrapper

    @app.before_request
    def authenticate() -> None:
        time.sleep(0.05)

    @app.get("/")
    @timeit
    def index() -> str:
        return "ok"

    app.test_client().get("/")
    (span,) = server_spans()
    assert measured[0] < 0.05 <= (span.end_time - span.start_time) / 1e9
