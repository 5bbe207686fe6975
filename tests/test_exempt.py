"""``@timer.exempt`` holds in any decorator order, and a mark that reaches no view is reported."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView, View

from flask_routetimer import RouteTimer


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A typical view decorator, with functools.wraps."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return wrapper


def cached(view: Callable[..., Any]) -> Callable[..., Any]:
    """A second decorator with functools.wraps, to stack."""

    @functools.wraps(view)
    def cached_view(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return cached_view


def no_wraps(view: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator without functools.wraps: it hides what it wraps."""

    def hiding(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return hiding


def route_above_exempt(app: Flask, timer: RouteTimer) -> None:
    @app.get("/x")
    @timer.exempt
    def x() -> str:
        return "x"


def exempt_above_route(app: Flask, timer: RouteTimer) -> None:
    @timer.exempt
    @app.get("/x")
    def x() -> str:
        return "x"


def route_wrapper_exempt(app: Flask, timer: RouteTimer) -> None:
    @app.get("/x")
    @login_required
    @timer.exempt
    def x() -> str:
        return "x"


def exempt_wrapper_route(app: Flask, timer: RouteTimer) -> None:
    @timer.exempt
    @login_required
    @app.get("/x")
    def x() -> str:
        return "x"


def route_exempt_wrapper(app: Flask, timer: RouteTimer) -> None:
    @app.get("/x")
    @timer.exempt
    @login_required
    def x() -> str:
        return "x"


def wrapper_route_exempt(app: Flask, timer: RouteTimer) -> None:
    @login_required
    @app.get("/x")
    @timer.exempt
    def x() -> str:
        return "x"


def route_two_wrappers_exempt(app: Flask, timer: RouteTimer) -> None:
    @app.get("/x")
    @login_required
    @cached
    @timer.exempt
    def x() -> str:
        return "x"


def exempt_wrapper_route_wrapper(app: Flask, timer: RouteTimer) -> None:
    @timer.exempt
    @login_required
    @app.get("/x")
    @cached
    def x() -> str:
        return "x"


def blueprint_wrapper_exempt(app: Flask, timer: RouteTimer) -> None:
    bp = Blueprint("bp", __name__)

    @bp.get("/x")
    @login_required
    @timer.exempt
    def x() -> str:
        return "x"

    app.register_blueprint(bp)


def blueprint_exempt_wrapper_route(app: Flask, timer: RouteTimer) -> None:
    bp = Blueprint("bp", __name__)

    @timer.exempt
    @login_required
    @bp.get("/x")
    def x() -> str:
        return "x"

    app.register_blueprint(bp)


class Ping(MethodView):
    def get(self) -> str:
        return "x"


def method_view_class(app: Flask, timer: RouteTimer) -> None:
    app.add_url_rule("/x", view_func=timer.exempt(type("Marked", (Ping,), {})).as_view("x"))


def method_view_with_decorators(app: Flask, timer: RouteTimer) -> None:
    marked = timer.exempt(type("Guarded", (Ping,), {"decorators": [login_required]}))
    app.add_url_rule("/x", view_func=marked.as_view("x"))


def method_view_wrapped_after_as_view(app: Flask, timer: RouteTimer) -> None:
    marked = timer.exempt(type("Marked", (Ping,), {}))
    app.add_url_rule("/x", view_func=login_required(marked.as_view("x")))


def as_view_result_marked(app: Flask, timer: RouteTimer) -> None:
    app.add_url_rule("/x", view_func=timer.exempt(Ping.as_view("x")))


def plain_view_class(app: Flask, timer: RouteTimer) -> None:
    @timer.exempt
    class Plain(View):
        def dispatch_request(self) -> str:
            return "x"

    app.add_url_rule("/x", view_func=login_required(Plain.as_view("x")))


class Unhashable:
    """A callable object as view that cannot go into a set."""

    __hash__ = None  # type: ignore[assignment]
    __name__ = "unhashable"

    def __call__(self) -> str:
        return "x"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unhashable)


def unhashable_view(app: Flask, timer: RouteTimer) -> None:
    app.add_url_rule("/x", "x", timer.exempt(Unhashable()))


def unhashable_below_wrapper(app: Flask, timer: RouteTimer) -> None:
    app.add_url_rule("/x", "x", login_required(timer.exempt(Unhashable())))


ORDERS = [
    route_above_exempt,
    exempt_above_route,
    route_wrapper_exempt,
    exempt_wrapper_route,
    route_exempt_wrapper,
    wrapper_route_exempt,
    route_two_wrappers_exempt,
    exempt_wrapper_route_wrapper,
    blueprint_wrapper_exempt,
    blueprint_exempt_wrapper_route,
    method_view_class,
    method_view_with_decorators,
    method_view_wrapped_after_as_view,
    as_view_result_marked,
    plain_view_class,
    unhashable_view,
    unhashable_below_wrapper,
]


def add_timed(app: Flask) -> None:
    app.add_url_rule("/t", "t", lambda: "t")


def routes_lines(app: Flask) -> tuple[dict[str, str], str]:
    """``flask routetimer routes``: the line of each endpoint, and the whole output."""
    result = app.test_cli_runner().invoke(args=["routetimer", "routes"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[2:]
    return {line.split()[0]: line for line in lines if line.strip()}, result.output


@pytest.mark.parametrize("register", ORDERS, ids=lambda f: f.__name__)
def test_exempt_in_any_decorator_order(register, app, timer, server_spans, caplog):
    """The route is served, gets no span, and nothing is warned, whatever the order."""
    register(app, timer)
    add_timed(app)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, "flask_routetimer"):
        assert client.get("/x").data == b"x"
        assert client.get("/t").data == b"t"
    assert [s.name for s in server_spans()] == ["GET /t"]
    assert caplog.messages == []


@pytest.mark.parametrize("register", ORDERS, ids=lambda f: f.__name__)
def test_routes_command_shows_exempt_in_any_order(register, app, timer):
    """``flask routetimer routes`` says exempt for the same rules the requests leave untimed."""
    register(app, timer)
    add_timed(app)
    lines, output = routes_lines(app)
    exempt = [line for line in lines.values() if line.split()[2] == "/x"]
    assert len(exempt) == 1 and exempt[0].endswith("exempt"), output
    assert lines["t"].endswith("timed")
    assert "Warning" not in output


def test_a_mark_on_a_wrapper_does_not_exempt_another_route_of_the_view(app, timer, server_spans):
    """A marked wrapper that is itself registered exempts its own route, not the plain route of
    the function it wraps."""

    @app.get("/report")
    def report() -> str:
        return "r"

    app.add_url_rule("/admin/report", "admin_report", timer.exempt(login_required(report)))
    client = app.test_client()
    client.get("/admin/report")
    client.get("/report")
    assert [s.name for s in server_spans()] == ["GET /report"]


def hidden_below(app: Flask, timer: RouteTimer) -> None:
    @app.get("/x")
    @no_wraps
    @timer.exempt
    def hidden() -> str:
        return "x"


def hidden_above(app: Flask, timer: RouteTimer) -> None:
    @timer.exempt
    @no_wraps
    @app.get("/x")
    def x() -> str:
        return "x"


@pytest.mark.parametrize(
    ("register", "name"),
    [(hidden_below, "hidden_below.<locals>.hidden"), (hidden_above, "no_wraps.<locals>.hiding")],
)
def test_a_mark_no_view_reaches_is_warned_once(register, name, app, timer, server_spans, caplog):
    """A decorator without functools.wraps hides the view: the route stays timed, and the first
    request logs one warning naming the marked function and saying how to fix it."""
    register(app, timer)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, "flask_routetimer"):
        client.get("/x")
        client.get("/x")
    assert [s.name for s in server_spans()] == ["GET /x", "GET /x"]
    assert len(caplog.messages) == 1, caplog.messages
    message = caplog.messages[0]
    assert f"@timer.exempt has no effect on {__name__}.{name}:" in message
    assert "functools.wraps" in message and "directly above @app.route" in message


def test_routes_command_names_a_mark_no_view_reaches(app, timer):
    """The command lists the route as timed and names the mark that has no effect."""
    hidden_below(app, timer)
    lines, output = routes_lines(app)
    assert lines["hiding"].endswith("timed")
    assert "Warning: @timer.exempt has no effect on" in output
    assert "hidden_below.<locals>.hidden" in output


def test_exempt_after_the_route_cache_filled(app, timer, server_spans):
    """Marking a view after requests were timed takes effect at the next request."""

    @app.get("/x")
    def x() -> str:
        return "x"

    client = app.test_client()
    client.get("/x")
    timer.exempt(x)
    client.get("/x")
    assert [s.name for s in server_spans()] == ["GET /x"]


def test_one_timer_several_apps(tracer_provider, server_spans, caplog):
    """A mark reached by one app's view is not warned about by another app of the same timer,
    and exempts only where that view is registered."""
    timer = RouteTimer(tracer_provider=tracer_provider)
    first, second = Flask("first"), Flask("second")
    timer.init_app(first)
    timer.init_app(second)

    @first.get("/x")
    @login_required
    @timer.exempt
    def x() -> str:
        return "x"

    second.add_url_rule("/x", "x", lambda: "second")
    with caplog.at_level(logging.WARNING, "flask_routetimer"):
        second.test_client().get("/x")
        first.test_client().get("/x")
    assert [s.name for s in server_spans()] == ["GET /x"]
    assert caplog.messages == []


class Looping:
    """A view whose ``__wrapped__`` chain is a cycle."""

    __name__ = "looping"

    def __init__(self) -> None:
        self.__wrapped__: Any = self

    def __call__(self) -> str:
        return "x"


class Endless:
    """A view inventing a fresh ``__wrapped__`` at each step (as a mock would)."""

    __name__ = "endless"

    def __getattr__(self, name: str) -> Any:
        if name == "__wrapped__":
            return Endless()
        raise AttributeError(name)

    def __call__(self) -> str:
        return "x"


class Raising:
    """A view whose ``__wrapped__`` raises."""

    __name__ = "raising"

    @property
    def __wrapped__(self) -> Any:
        raise RuntimeError("no")

    def __call__(self) -> str:
        return "x"


@pytest.mark.parametrize("kind", [Looping, Endless, Raising])
def test_odd_wrapped_chains_are_walked_safely(kind, app, timer, server_spans):
    """Cycles, endless and raising ``__wrapped__`` never hang or break a request."""
    cycle_a, cycle_b = login_required(lambda: "a"), login_required(lambda: "b")
    cycle_a.__wrapped__, cycle_b.__wrapped__ = cycle_b, cycle_a  # type: ignore[attr-defined]
    timer.exempt(cycle_a)  # a mark whose own chain is a cycle
    app.add_url_rule("/timed", "timed", kind())
    app.add_url_rule("/exempt", "exempt", timer.exempt(kind()))
    client = app.test_client()
    assert client.get("/timed").data == b"x"
    assert client.get("/exempt").data == b"x"
    assert [s.name for s in server_spans()] == ["GET /timed"]
