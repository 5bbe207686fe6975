"""tests/test_timing.py in your project: assert on the spans, timings and metrics of your app."""

from collections.abc import Iterator

import pytest
from app_factory import create_app  # your app factory
from flask import Flask

from flask_routetimer.testing import Captured, capture


@pytest.fixture
def app() -> Flask:
    return create_app({"TESTING": True})


@pytest.fixture
def captured(app: Flask) -> Iterator[Captured]:
    with capture(app) as captured:
        yield captured


def test_items_are_timed_under_their_route(app: Flask, captured: Captured) -> None:
    app.test_client().get("/api/items/1")
    (span,) = captured.spans
    assert span.name == "GET /api/items/<int:item_id>"
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    (timing,) = captured.timings
    assert timing.endpoint == "api.get_item" and not timing.failed
    (point,) = captured.metric_points("http.server.request.duration")
    assert point.attributes is not None
    assert point.attributes["http.route"] == "/api/items/<int:item_id>"


def test_clear_between_phases(app: Flask, captured: Captured) -> None:
    client = app.test_client()
    client.get("/api/items/1")  # warm-up, not part of the assertion
    captured.clear()
    client.get("/api/items/2")
    assert [span.attributes["url.path"] for span in captured.spans if span.attributes] == [
        "/api/items/2"
    ]
