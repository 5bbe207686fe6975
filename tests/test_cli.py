"""``flask routetimer routes``: every rule with its endpoint, methods and timing status."""

from __future__ import annotations

import pytest


@pytest.fixture
def routes_output(make_app):
    """Run the command on an app with timed, exempt and excluded views; returns its lines."""

    def run(**config):
        app, timer = make_app(ROUTETIMER_EXCLUDED_URLS=["^/health"], **config)

        @app.route("/items/<int:id>", methods=["GET", "PUT"])
        def item(id: int) -> str:
            return "item"

        @app.get("/internal")
        @timer.exempt
        def internal() -> str:
            return "internal"

        @app.get("/health")
        def health() -> str:
            return "ok"

        result = app.test_cli_runner().invoke(args=["routetimer", "routes"])
        assert result.exit_code == 0, result.output
        return {line.split()[0]: line for line in result.output.splitlines()[2:]}

    return run


def test_routes_lists_timed_exempt_and_excluded(routes_output):
    """Each rule shows its methods (without HEAD/OPTIONS) and why it is or is not timed."""
    lines = routes_output()
    assert lines["item"].split()[1:] == ["GET,", "PUT", "/items/<int:id>", "timed"]
    assert lines["internal"].endswith("exempt")
    assert lines["health"].endswith("excluded (by path)")
    assert lines["static"].endswith("timed")


def test_dashboard_endpoints_are_listed_as_exempt(routes_output):
    """The dashboard's own endpoints are shown, and never timed."""
    lines = routes_output(DEBUG=True)
    dashboard = {name: line for name, line in lines.items() if name.startswith("routetimer.")}
    assert {"routetimer.routes", "routetimer.api_stats", "routetimer.static"} <= dashboard.keys()
    assert all(line.endswith("exempt") for line in dashboard.values())


def test_routes_says_when_timing_is_off(routes_output):
    """With ROUTETIMER_ENABLED False every rule is reported as off."""
    lines = routes_output(ROUTETIMER_ENABLED=False)
    assert lines["item"].endswith("off (ROUTETIMER_ENABLED is False)")
