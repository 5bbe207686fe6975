"""One SERVER span per request: names, attributes and status, read back from the SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.trace import SpanKind, StatusCode

from flask_routetimer.attributes import FLASK_BLUEPRINT, FLASK_ENDPOINT


def only(spans: list[Any]) -> Any:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


class TestNamesAndAttributes:
    def test_matched_route_is_named_by_method_and_rule(self, routed, client, server_spans):
        """A matched request's span is called `{METHOD} {rule}`, never the raw path."""
        assert client.get("/hello/ada").status_code == 200
        span = only(server_spans())
        assert span.name == "GET /hello/<name>"
        assert span.kind is SpanKind.SERVER
        assert span.attributes[HTTP_ROUTE] == "/hello/<name>"
        assert span.attributes[URL_PATH] == "/hello/ada"
        assert span.attributes[HTTP_REQUEST_METHOD] == "GET"
        assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
        assert span.attributes[URL_SCHEME] == "http"
        assert span.attributes[SERVER_ADDRESS] == "localhost"
        assert span.attributes[FLASK_ENDPOINT] == "hello"
        assert span.status.status_code is StatusCode.UNSET

    def test_standard_attributes_are_present(self, routed, client, server_spans):
        """Client, protocol, user agent and port come from the WSGI environ."""
        client.get(
            "/hello/x",
            base_url="https://api.example.com:8443",
            headers={"User-Agent": "probe/1.0"},
            environ_base={"REMOTE_ADDR": "10.1.2.3"},
        )
        attrs = only(server_spans()).attributes
        assert attrs[URL_SCHEME] == "https"
        assert attrs[SERVER_ADDRESS] == "api.example.com"
        assert attrs[SERVER_PORT] == 8443
        assert attrs["client.address"] == "10.1.2.3"
        assert attrs["network.protocol.version"] == "1.1"
        assert attrs["user_agent.original"] == "probe/1.0"

    def test_post_predict_route(self, routed, client, server_spans):
        """The motivating route keeps its trailing slash in the span name."""
        client.post("/v1/predict/", json={"x": 1})
        assert only(server_spans()).name == "POST /v1/predict/"

    @pytest.mark.parametrize(
        "query, expected",
        [
            ("sig=abc&x=1", "sig=REDACTED&x=1"),
            ("Signature=s3cr3t&AWSAccessKeyId=AKIA", "Signature=REDACTED&AWSAccessKeyId=REDACTED"),
            ("X-Goog-Signature=zz", "X-Goog-Signature=REDACTED"),
            ("q=flask&page=2", "q=flask&page=2"),
        ],
    )
    def test_query_credentials_are_redacted(self, routed, client, server_spans, query, expected):
        """Sensitive query values never reach the span; other values are kept."""
        client.get(f"/hello/x?{query}")
        assert only(server_spans()).attributes[URL_QUERY] == expected

    def test_no_query_attribute_without_query(self, routed, client, server_spans):
        """`url.query` is absent when the request has none."""
        client.get("/hello/x")
        assert URL_QUERY not in only(server_spans()).attributes

    def test_unicode_path_is_percent_encoded(self, routed, client, server_spans):
        """A non-ASCII path is recorded percent-encoded, as on the wire."""
        client.get("/hello/zoë")
        assert only(server_spans()).attributes[URL_PATH] == "/hello/zo%C3%AB"


class TestUnmatchedAndMethods:
    def test_404_span_is_named_by_method_only(self, routed, client, server_spans):
        """No rule matched: the span name is just the method and there is no http.route."""
        assert client.get("/nowhere/42").status_code == 404
        span = only(server_spans())
        assert span.name == "GET"
        assert HTTP_ROUTE not in span.attributes
        assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 404
        assert span.status.status_code is StatusCode.UNSET

    def test_405_span(self, routed, client, server_spans):
        """A wrong method is a 405 with no route, status left unset (client error)."""
        assert client.delete("/hello/x").status_code == 405
        span = only(server_spans())
        assert span.name == "DELETE"
        assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 405
        assert span.status.status_code is StatusCode.UNSET

    def test_unknown_method_is_other(self, routed, client, server_spans):
        """A non-standard method becomes `_OTHER`, the span is named `HTTP`."""
        client.open("/hello/x", method="FROBNICATE")
        span = only(server_spans())
        assert span.name == "HTTP"
        assert span.attributes[HTTP_REQUEST_METHOD] == "_OTHER"
        assert span.attributes[HTTP_REQUEST_METHOD_ORIGINAL] == "FROBNICATE"

    def test_lower_case_method_keeps_its_original_spelling(self, routed, app, server_spans):
        """`get` is served as GET by Werkzeug; the original spelling is kept."""
        app.test_client().open("/hello/x", environ_overrides={"REQUEST_METHOD": "get"})
        span = only(server_spans())
        assert span.name == "GET /hello/<name>"
        assert span.attributes[HTTP_REQUEST_METHOD_ORIGINAL] == "get"

    def test_automatic_head_and_options(self, routed, client, server_spans):
        """Flask's automatic HEAD and OPTIONS are timed under the same rule."""
        client.head("/hello/x")
        client.options("/hello/x")
        assert [s.name for s in server_spans()] == ["HEAD /hello/<name>", "OPTIONS /hello/<name>"]


class TestErrors:
    def test_unhandled_exception_marks_span_error_once(self, routed, app, server_spans):
        """A view that raises gives a 500 span with ERROR status and one exception event."""
        app.config["PROPAGATE_EXCEPTIONS"] = False
        assert app.test_client().get("/boom").status_code == 500
        span = only(server_spans())
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 500
        assert span.attributes[ERROR_TYPE] == "ZeroDivisionError"
        events = [e for e in span.events if e.name == "exception"]
        assert len(events) == 1
        assert events[0].attributes["exception.type"] == "ZeroDivisionError"

    def test_propagated_exception_still_ends_span(self, routed, client, server_spans):
        """Under PROPAGATE_EXCEPTIONS (testing) the span ends at teardown without a status code."""
        with pytest.raises(ZeroDivisionError):
            client.get("/boom")
        span = only(server_spans())
        assert span.status.status_code is StatusCode.ERROR
        assert HTTP_RESPONSE_STATUS_CODE not in span.attributes
        assert span.attributes[ERROR_TYPE] == "ZeroDivisionError"
        assert len([e for e in span.events if e.name == "exception"]) == 1

    def test_record_exceptions_can_be_turned_off(self, make_app, server_spans):
        """ROUTETIMER_RECORD_EXCEPTIONS=False keeps the ERROR status but adds no event."""
        app, _ = make_app(ROUTETIMER_RECORD_EXCEPTIONS=False, PROPAGATE_EXCEPTIONS=False)

        @app.get("/boom")
        def boom() -> str:
            raise KeyError("k")

        app.test_client().get("/boom")
        span = only(server_spans())
        assert span.status.status_code is StatusCode.ERROR
        assert not span.events

    def test_abort_4xx_is_not_an_error(self, routed, client, server_spans):
        """abort(418) is a client error: status unset, no exception event, span already ended."""
        assert client.get("/teapot").status_code == 418
        span = only(server_spans())
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 418
        assert not span.events

    def test_abort_500_sets_error_type_to_status(self, routed, client, server_spans):
        """A 5xx without an exception is an ERROR whose error.type is the status code."""
        client.get("/abort500")
        span = only(server_spans())
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[ERROR_TYPE] == "500"

    def test_errorhandler_response_status_is_used(self, app, client, server_spans):
        """A user error handler's response decides the recorded status."""

        class Invalid(Exception):
            pass

        @app.errorhandler(Invalid)
        def invalid(error: Invalid) -> tuple[str, int]:
            return "bad input", 422

        @app.get("/validate")
        def validate() -> str:
            raise Invalid()

        assert client.get("/validate").status_code == 422
        span = only(server_spans())
        assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 422
        assert span.status.status_code is StatusCode.UNSET

    def test_redirect(self, routed, client, server_spans):
        """A redirect is timed as its own request with its 302."""
        client.get("/old", follow_redirects=True)
        assert [(s.name, s.attributes[HTTP_RESPONSE_STATUS_CODE]) for s in server_spans()] == [
            ("GET /old", 302),
            ("GET /hello/<name>", 200),
        ]


class TestFlaskFeatures:
    def test_nested_blueprints(self, app, client, server_spans):
        """Nested blueprints: prefix in the route, dotted blueprint name in flask.blueprint."""
        parent = Blueprint("api", __name__, url_prefix="/api")
        child = Blueprint("users", __name__, url_prefix="/users")

        @child.get("/<int:user_id>")
        def show(user_id: int) -> str:
            return str(user_id)

        parent.register_blueprint(child)
        app.register_blueprint(parent)
        client.get("/api/users/7")
        span = only(server_spans())
        assert span.name == "GET /api/users/<int:user_id>"
        assert span.attributes[FLASK_ENDPOINT] == "api.users.show"
        assert span.attributes[FLASK_BLUEPRINT] == "api.users"

    def test_method_view(self, app, client, server_spans):
        """Class-based views are timed per method under their rule."""

        class Items(MethodView):
            def get(self) -> str:
                return "list"

            def post(self) -> tuple[str, int]:
                return "made", 201

        app.add_url_rule("/items", view_func=Items.as_view("items"))
        client.get("/items")
        client.post("/items")
        assert [s.name for s in server_spans()] == ["GET /items", "POST /items"]
        assert server_spans()[1].attributes[HTTP_RESPONSE_STATUS_CODE] == 201

    def test_async_view_nests_child_spans(self, app, timer, client, spans):
        """An async view runs with the request span current, so its child spans nest."""

        @app.get("/async")
        async def slow() -> str:
            with timer.timed("await-model"):
                await asyncio.sleep(0)
            return "done"

        assert client.get("/async").data == b"done"
        child, server = spans()
        assert server.name == "GET /async"
        assert child.parent is not None and child.parent.span_id == server.context.span_id

    def test_static_files(self, tmp_path, tracer_provider, server_spans):
        """Static files are timed under Flask's static rule, up to handing the file over."""
        (tmp_path / "app.css").write_text("body {}")
        from flask_routetimer import RouteTimer

        app = Flask("static_app", static_folder=str(tmp_path), static_url_path="/static")
        RouteTimer(app, tracer_provider=tracer_provider)
        with app.test_client().get("/static/app.css") as response:
            assert response.data == b"body {}"
        assert only(server_spans()).name == "GET /static/<path:filename>"

    def test_script_name_prefix(self, routed, client, server_spans):
        """Mounted under a prefix: the route is the app's rule, url.path the full path."""
        client.get("/hello/x", environ_overrides={"SCRIPT_NAME": "/mounted"})
        span = only(server_spans())
        assert span.name == "GET /hello/<name>"
        assert span.attributes[URL_PATH] == "/mounted/hello/x"

    def test_several_apps_one_timer(self, tracer_provider, server_spans):
        """One RouteTimer serves two apps; each request is timed once, by its own app."""
        from flask_routetimer import RouteTimer

        timer = RouteTimer(tracer_provider=tracer_provider)
        apps = [Flask("one"), Flask("two")]
        for index, each in enumerate(apps):
            timer.init_app(each)
            each.add_url_rule(f"/app{index}", f"view{index}", lambda: "ok")
        apps[0].test_client().get("/app0")
        apps[1].test_client().get("/app1")
        assert [s.name for s in server_spans()] == ["GET /app0", "GET /app1"]

    def test_span_ended_before_test_client_returns(self, routed, client, exporter):
        """An ordinary response's span has ended by the time client.get() returns."""
        client.get("/hello/x")
        client.get("/teapot")
        assert len(exporter.get_finished_spans()) == 2


def test_a_huge_exception_message_is_bounded(make_app, server_spans):
    """A view raising with client input in its message (here 200 KB) gives a span whose status
    description and exception event stay bounded (issue 13: every span string is bounded)."""
    from flask_routetimer.attributes import MAX_STACKTRACE_LENGTH, MAX_VALUE_LENGTH

    app, _ = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.get("/echo")
    def echo() -> str:
        raise ValueError("bad input: " + "x" * 200_000)

    assert app.test_client().get("/echo").status_code == 500
    (span,) = server_spans()
    assert span.status.description.startswith("ValueError: bad input: xxx")
    assert len(span.status.description) <= MAX_VALUE_LENGTH
    (event,) = span.events
    assert len(event.attributes["exception.message"]) == MAX_VALUE_LENGTH
    stack = event.attributes["exception.stacktrace"]
    assert stack.startswith("Traceback") and "characters left out" in stack
    assert len(stack) <= MAX_STACKTRACE_LENGTH + 100
    assert event.attributes["exception.type"] == "ValueError"
