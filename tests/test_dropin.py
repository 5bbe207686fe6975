"""Drop-in: with the dashboard off the app is left as it was; init_app is all or nothing;
OpenTelemetry parity details (server.port, QUERY); exclusions a client cannot steer."""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
from flask import Blueprint, Flask
from flask import signals as flask_signals
from flask.cli import routes_command
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_routetimer import ConfigError, RouteTimer

MakeApp = Callable[..., tuple[Flask, RouteTimer]]


def describe(app: Flask) -> dict[str, Any]:
    """What a user (or Flask's own tests) can see of an app's routing and templates."""
    return {
        "rules": sorted((rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()),
        "blueprints": sorted(app.blueprints),
        "templates": sorted(app.jinja_env.list_templates()),
        "routes_command": app.test_cli_runner().invoke(routes_command).output,
    }


def plain_app(**config: Any) -> Flask:
    app = Flask("dropin")
    app.config.update(TESTING=True, **config)

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def catch_all(path: str) -> str:
        return f"app saw {path!r}"

    return app


# --- Nothing added while the dashboard is off ------------------------------------------------


def test_dashboard_off_leaves_the_app_as_it_was(tracer_provider):
    """No rule, blueprint or template; `flask routes` unchanged; the app's catch-all still gets
    /_routetimer/ (a disabled dashboard cannot be detected)."""
    untouched, timed = plain_app(), plain_app()
    RouteTimer(timed, tracer_provider=tracer_provider)
    assert describe(timed) == describe(untouched)
    client = timed.test_client()
    assert client.get("/_routetimer/").text == "app saw '_routetimer/'"
    assert client.post("/_routetimer/").text == "app saw '_routetimer/'"
    assert client.get("/_routetimer").text == "app saw '_routetimer'"


@pytest.mark.parametrize("config", [{"DEBUG": True}, {"ROUTETIMER_DASHBOARD": True, "DEBUG": True}])
def test_dashboard_registered_when_it_can_be_on(tracer_provider, config):
    """Debug mode at init_app, or ROUTETIMER_DASHBOARD = True, registers it as before."""
    app = Flask("on")
    app.config.update(config)
    RouteTimer(app, tracer_provider=tracer_provider)
    assert "routetimer" in app.blueprints
    assert app.test_client().get("/_routetimer/").status_code == 200


def test_debug_turned_on_after_init_app_does_not_add_the_dashboard(tracer_provider):
    """app.run(debug=True) after init_app comes too late: documented, and nothing half-added."""
    app = plain_app()
    RouteTimer(app, tracer_provider=tracer_provider)
    app.debug = True
    assert app.test_client().get("/_routetimer/").text == "app saw '_routetimer/'"


# --- host_matching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "static_host", "host"),
    [
        (
            {"ROUTETIMER_DASHBOARD_HOST": "admin.example.com"},
            "www.example.com",
            "admin.example.com",
        ),
        ({"SERVER_NAME": "www.example.com"}, None, "www.example.com"),
        ({}, "static.example.com", "static.example.com"),
    ],
)
def test_dashboard_answers_on_its_host_with_host_matching(
    tracer_provider, config, static_host, host
):
    """With host_matching the dashboard answers on ROUTETIMER_DASHBOARD_HOST, else SERVER_NAME,
    else the static host; its static files too."""
    app = Flask(
        "hosts",
        host_matching=True,
        static_host=static_host,
        static_folder="static" if static_host else None,
    )
    app.config.update(DEBUG=True, **config)
    RouteTimer(app, tracer_provider=tracer_provider)
    client = app.test_client()
    assert client.get("/_routetimer/", headers={"Host": host}).status_code == 200
    css = client.get("/_routetimer/static/routetimer.css", headers={"Host": host}, buffered=True)
    assert css.status_code == 200 and b"body" in css.data
    if "SERVER_NAME" not in config:  # Flask < 3.1 matches SERVER_NAME whatever the Host says
        assert client.get("/_routetimer/", headers={"Host": "elsewhere.test"}).status_code == 404


def test_host_matching_without_any_host_is_a_config_error(tracer_provider):
    """No host to answer on: a ConfigError naming ROUTETIMER_DASHBOARD_HOST, app untouched."""
    app = Flask("nohost", host_matching=True, static_folder=None)
    app.config.update(DEBUG=True)
    with pytest.raises(ConfigError, match="ROUTETIMER_DASHBOARD_HOST"):
        RouteTimer(app, tracer_provider=tracer_provider)
    assert "routetimer" not in app.extensions and "routetimer" not in app.blueprints


# --- init_app is all or nothing ---------------------------------------------------------------


def test_taken_blueprint_name_fails_cleanly_and_a_retry_works(tracer_provider, server_spans):
    """A clash is reported before anything changes; after fixing it, init_app succeeds."""
    app = Flask("clash")
    app.config.update(DEBUG=True)
    app.register_blueprint(Blueprint("routetimer", __name__, url_prefix="/mine"))
    before = {key for key in app.config if key.startswith("ROUTETIMER_")}
    timer = RouteTimer(tracer_provider=tracer_provider)
    with pytest.raises(ConfigError, match="already has a blueprint named 'routetimer'"):
        timer.init_app(app)
    assert "routetimer" not in app.extensions
    assert {key for key in app.config if key.startswith("ROUTETIMER_")} == before == set()
    assert not list(flask_signals.request_started.receivers_for(app))  # nothing timed
    app.add_url_rule("/x", "x", lambda: "x")
    app.config["ROUTETIMER_DASHBOARD"] = False
    timer.init_app(app)
    app.test_client().get("/x")
    assert [span.name for span in server_spans()] == ["GET /x"]


@pytest.mark.parametrize("debug", [False, True])
def test_init_app_after_the_first_request_is_refused_cleanly(tracer_provider, debug):
    """Too late: a clear error, nothing registered, and a later request is not timed."""
    app = Flask("late")
    app.config.update(DEBUG=debug)
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x")
    with pytest.raises(RuntimeError, match="already handled a request"):
        RouteTimer(app, tracer_provider=tracer_provider)
    assert "routetimer" not in app.extensions and "routetimer" not in app.blueprints
    assert not any(key.startswith("ROUTETIMER_") for key in app.config)


# --- The dashboard's prefix -------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix", ["//", "/", "/a//b", "/<int:x>", "/ops/<path:p>", "/a b", "/../x", "/./x", ""]
)
def test_odd_dashboard_prefixes_are_refused(make_app: MakeApp, prefix):
    """Converters, empty, doubled or dot segments: a ConfigError naming the key."""
    with pytest.raises(ConfigError, match="ROUTETIMER_DASHBOARD_URL"):
        make_app(DEBUG=True, ROUTETIMER_DASHBOARD_URL=prefix)


def test_prefix_overlapping_app_routes_is_refused(tracer_provider):
    """A prefix that would shadow the app's own /api routes is an error, not a silent 404."""
    app = Flask("overlap")
    app.config.update(DEBUG=True, ROUTETIMER_DASHBOARD_URL="/api")
    app.add_url_rule("/api/users", "users", lambda: "users")
    with pytest.raises(ConfigError, match="overlaps the app's own routes /api/users"):
        RouteTimer(app, tracer_provider=tracer_provider)


def test_route_added_under_the_prefix_later_is_logged_once(make_app: MakeApp, caplog):
    """Routes added after init_app cannot be refused there: the first dashboard visit says so."""
    app, _ = make_app(DEBUG=True)
    app.add_url_rule("/_routetimer/mine", "mine", lambda: "mine")
    client = app.test_client()
    with caplog.at_level(logging.WARNING, "flask_routetimer"):
        client.get("/_routetimer/")
        client.get("/_routetimer/api/stats")
    messages = [r.getMessage() for r in caplog.records if r.name == "flask_routetimer"]
    warnings = [message for message in messages if "overlaps" in message]
    assert len(warnings) == 1 and "/_routetimer/mine" in warnings[0]


# --- OpenTelemetry parity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "host", "port"),
    [
        ("http://example.com", "example.com", 80),
        ("https://example.com", "example.com", 443),
        ("http://example.com:8080", "example.com", 8080),
        ("https://[::1]", "::1", 443),
    ],
)
def test_server_port_defaults_to_the_scheme(make_app: MakeApp, server_spans, base_url, host, port):
    """server.port is the scheme's default when the Host header names no port."""
    app, _ = make_app()
    app.add_url_rule("/x", "x", lambda: "x")
    app.test_client().get("/x", base_url=base_url)
    (span,) = server_spans()
    assert (span.attributes["server.address"], span.attributes["server.port"]) == (host, port)


def test_query_is_a_known_method(make_app: MakeApp, server_spans):
    """QUERY is well-known in the current semantic conventions."""
    app, _ = make_app()
    app.add_url_rule("/search", "search", lambda: "found", methods=["QUERY"])
    assert app.test_client().open("/search", method="QUERY").text == "found"
    (span,) = server_spans()
    assert span.name == "QUERY /search"
    assert span.attributes["http.request.method"] == "QUERY"
    assert "http.request.method_original" not in span.attributes


# --- Exclusions a client cannot steer ---------------------------------------------------------


def test_forwarded_prefix_cannot_move_a_request_into_an_exclusion(make_app: MakeApp, server_spans):
    """Behind ProxyFix(x_prefix=1) a client's X-Forwarded-Prefix: /static/ does not hide
    POST /admin/delete-everything; exclusions match the path inside the app (PATH_INFO)."""
    app, _ = make_app(ROUTETIMER_EXCLUDED_URLS=["^/static/"])
    app.add_url_rule("/admin/delete-everything", "wipe", lambda: "gone", methods=["POST"])
    app.wsgi_app = ProxyFix(app.wsgi_app, x_prefix=1)  # type: ignore[method-assign]
    client = app.test_client()
    response = client.post("/admin/delete-everything", headers={"X-Forwarded-Prefix": "/static/"})
    assert response.text == "gone"
    client.get("/static/app.css")  # really a static file: still excluded
    assert [span.name for span in server_spans()] == ["POST /admin/delete-everything"]
    assert server_spans()[0].attributes["url.path"].endswith("/admin/delete-everything")
