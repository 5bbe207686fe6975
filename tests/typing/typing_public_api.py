"""The public API as a user writes it; checked by ``mypy --strict`` (see pyproject), never run.

Each assignment to an annotated variable, and each ``assert_type``, is a test: if a decorator
lost the decorated function's type (``Any`` would pass an assignment, never ``assert_type``), or a
field changed type, mypy fails here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any, Callable, Optional

from flask import Flask
from flask.views import MethodView
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Span
from typing_extensions import assert_type

from flask_routetimer import ConfigError, RouteTimer, RouteTiming, __version__, request_timed
from flask_routetimer.stats import RouteStats, StatsSnapshot
from flask_routetimer.testing import Captured, capture

version: str = __version__
app = Flask(__name__)
timer = RouteTimer(app)
other = RouteTimer(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
other.init_app(Flask("factory"))
error: type[ValueError] = ConfigError


# -- exempt returns what it is given, with its type ------------------------------------------


@app.get("/health")
@timer.exempt
def health() -> str:
    return "ok"


assert_type(health, Callable[[], str])


@timer.exempt
class ItemAPI(MethodView):
    def get(self, item_id: int) -> dict[str, int]:
        return {"id": item_id}


assert_type(ItemAPI, type[ItemAPI])
app.add_url_rule("/items/<int:item_id>", view_func=ItemAPI.as_view("item"))


# -- timed: context manager, bare decorator, named decorator, async ---------------------------


def view() -> str:
    with timer.timed("load", attributes={"rows": 3}) as span:
        current: Span = span
        current.set_attribute("ok", True)
    return "done"


@timer.timed
def tokenize(text: str, *, lower: bool = False) -> list[str]:
    return (text.lower() if lower else text).split()


@timer.timed("model.predict")
def predict(tokens: list[str], threshold: float = 0.5) -> tuple[str, float]:
    return ("positive", threshold)


@timer.timed
async def embed(text: str) -> list[float]:
    return [float(len(text))]


@timer.timed("fetch")
async def fetch(url: str) -> bytes:
    return url.encode()


tokenize_fn: Callable[[str], list[str]] = tokenize
words: list[str] = tokenize("A b", lower=True)
tokenize(1)  # type: ignore[arg-type]  # the parameters are checked, so this is refused
label, score = predict(words)
assert_type(label, str)
assert_type(score, float)
embed_fn: Callable[[str], Coroutine[Any, Any, list[float]]] = embed
fetch_fn: Callable[[str], Awaitable[bytes]] = fetch
# Parameters of async functions are checked too (coroutines never awaited: this file never runs).
_embedded = embed(1)  # type: ignore[arg-type]
_fetched = fetch(b"")  # type: ignore[arg-type]


# -- the request_timed signal and RouteTiming ---------------------------------------------


@request_timed.connect_via(app)
def on_timed(sender: Flask, timing: RouteTiming, **extra: Any) -> None:
    endpoint: Optional[str] = timing.endpoint
    route: Optional[str] = timing.route
    method: str = timing.method
    status: Optional[int] = timing.status_code
    seconds: float = timing.duration
    exception: Optional[BaseException] = timing.exception
    trace_id: Optional[str] = timing.trace_id
    span_id: Optional[str] = timing.span_id
    failed: bool = timing.failed
    print(endpoint, route, method, status, seconds, exception, trace_id, span_id, failed)


# -- statistics -----------------------------------------------------------------------------


def slowest(flask_app: Flask) -> list[tuple[str, Optional[str], float, float]]:
    snapshot: StatsSnapshot = timer.stats(flask_app)
    overflowed: bool = snapshot.overflowed
    limit: int = snapshot.max_routes
    rows: tuple[RouteStats, ...] = snapshot.routes
    as_json: dict[str, object] = snapshot.to_dict()
    print(overflowed, limit, as_json)
    timer.reset_stats(flask_app)
    return [(row.method, row.route, row.p99, row.quantile(0.999)) for row in rows if row.count]


# -- the testing helper ---------------------------------------------------------------------


def captured_spans(flask_app: Flask) -> Iterator[ReadableSpan]:
    with capture(flask_app) as captured:
        flask_app.test_client().get("/health")
    same: Captured = captured
    timings: list[RouteTiming] = same.timings
    print(timings, captured.metric_points("http.server.request.duration"))
    yield from captured.spans


# Dashboard auth: each helper is a ROUTETIMER_DASHBOARD_AUTH function.
def _dashboard_auth() -> None:
    from flask_routetimer import basic_auth, loopback_only, token_auth

    functions: list[Callable[[], bool]] = [basic_auth("ops"), token_auth(), loopback_only]
    app.config["ROUTETIMER_DASHBOARD_AUTH"] = functions[0]
    assert_type(basic_auth("ops", password="x").challenge, str)
