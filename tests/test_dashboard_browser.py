"""The dashboard in a real browser: Debian's headless chromium, driven by Playwright.

The example app runs on a threaded Werkzeug server on 127.0.0.1. Screenshots go to
``test-artifacts/``; with ``ROUTETIMER_UPDATE_SCREENSHOTS=1`` the README's images in
``docs/images/`` are rewritten too.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from werkzeug.serving import make_server

from example_app import DASHBOARD_USER, create_app
from example_app.load import PLAN, send

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMAGES = ROOT / "docs" / "images"
SCRIPT_PATH = "/nope/<script>alert(1)</script>"
PASSWORD = "browser-test-password-0123"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def traffic(base_url: str, plan: list[tuple[str, str, Any]]) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for method, path, body in plan:
            send(conn, method, path, body)
    finally:
        conn.close()


def screenshot(page: Any, name: str, docs_name: str = "") -> None:
    """Keep a screenshot as a test artifact, and as a README image when asked to."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.set_viewport_size({"width": 1200, "height": 200})  # full_page then fits the content
    page.screenshot(path=str(path), full_page=True)
    if docs_name and os.environ.get("ROUTETIMER_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / docs_name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The example app with its dashboard behind HTTP Basic auth, after some traffic."""
    provider = TracerProvider()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROUTETIMER_DASHBOARD_PASSWORD", PASSWORD)
        app = create_app(tracer_provider=provider, config={"PROPAGATE_EXCEPTIONS": False})
    with serve(app) as base_url:
        traffic(base_url, PLAN * 3)
        yield base_url
    provider.shutdown()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page, logged in, that records every dialog and console error (CSP violations
    included)."""
    context = browser.new_context(
        viewport={"width": 1200, "height": 760},
        http_credentials={"username": DASHBOARD_USER, "password": PASSWORD},
    )
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    yield page
    context.close()


def test_routes_table_lists_the_routes_hit(site, page):
    """The routes table lists the predict routes with their request counts."""
    response = page.goto(f"{site}/_routetimer/")
    assert response.status == 200
    rows = page.locator("table.routes tbody tr")
    v1 = rows.filter(has_text="/v1/predict/")
    v2 = rows.filter(has_text="/v2/predict/")
    sync_api.expect(v1).to_have_count(1)
    sync_api.expect(v2.locator("td.num").first).to_have_text("3")
    sync_api.expect(v1.locator("td.num").first).to_have_text("6")
    screenshot(page, "routes.png", "dashboard.png")
    assert page.errors == []


def test_trace_page_nests_child_spans(site, page):
    """A v1 predict trace shows v1.tokenize indented under POST /v1/predict/."""
    page.goto(f"{site}/_routetimer/")
    page.get_by_role("link", name="/v1/predict/").click()
    sync_api.expect(page.locator("svg.histogram rect.hbar").first).to_be_visible()
    screenshot(page, "route.png")
    page.locator("table.data a.mono").first.click()
    root = page.locator(".waterfall .name", has_text="POST /v1/predict/")
    child = page.locator(".waterfall .name", has_text="v1.tokenize")
    sync_api.expect(root).to_have_class("name depth-0")
    sync_api.expect(child).to_have_class("name depth-1")
    assert child.bounding_box()["x"] == root.bounding_box()["x"]  # same column, padded deeper
    padding = "el => parseFloat(getComputedStyle(el).paddingLeft)"
    assert child.evaluate(padding) > root.evaluate(padding)
    page.locator(".waterfall summary", has_text="model.predict").click()
    sync_api.expect(page.get_by_text("model.version")).to_be_visible()
    screenshot(page, "trace.png", "trace.png")
    assert page.errors == []


def test_streamed_route_shows_its_time_to_first_byte(site, page):
    """The routes table has a TTFB column with a time for /v1/stream only; the stream's trace
    marks its first byte on the request bar."""
    page.goto(f"{site}/_routetimer/")
    header = page.locator("table.routes thead th", has_text="TTFB p50")
    sync_api.expect(header).to_be_visible()
    stream = page.locator("table.routes tbody tr", has_text="/v1/stream").locator("td.ttfb")
    sync_api.expect(stream).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    predict = page.locator("table.routes tbody tr", has_text="/v1/predict/").locator("td.ttfb")
    sync_api.expect(predict).to_have_text("–")
    page.get_by_role("link", name="/v1/stream").click()
    page.locator("table.data a.mono").first.click()
    marker = page.locator(".waterfall svg.bar line.first-byte")
    sync_api.expect(marker).to_have_count(1)
    bar = page.locator(".waterfall summary", has_text="GET /v1/stream").locator("svg.bar")
    box, line = bar.bounding_box(), marker.bounding_box()
    assert box["x"] < line["x"] < box["x"] + box["width"] / 2  # 50 ms of a ~110 ms stream
    assert marker.evaluate("el => getComputedStyle(el).stroke") != "none"
    screenshot(page, "stream-trace.png", "stream.png")
    assert page.errors == []


def test_script_in_a_path_is_shown_as_text_and_never_runs(site, page):
    """A request path holding a script tag is shown literally and raises no dialog."""
    traffic(site, [("GET", SCRIPT_PATH.replace("<", "%3C").replace(">", "%3E"), None)])
    page.goto(f"{site}/_routetimer/")
    sync_api.expect(page.get_by_text(SCRIPT_PATH)).to_be_visible()
    page.get_by_text(SCRIPT_PATH).locator("xpath=..").get_by_role("link").click()
    sync_api.expect(page.locator("h1")).to_contain_text(SCRIPT_PATH)
    screenshot(page, "escaped.png")
    assert page.dialogs == []
    assert page.errors == []


def test_dashboard_asks_for_a_password(site, browser):
    """Without credentials the browser gets the 401 that makes it ask for them."""
    context = browser.new_context()
    try:
        # Headless, the browser cannot show its login prompt: navigation fails on the challenge.
        with pytest.raises(sync_api.Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
            context.new_page().goto(f"{site}/_routetimer/")
        response = context.request.get(f"{site}/_routetimer/")
        assert response.status == 401
        assert response.headers["www-authenticate"].startswith('Basic realm="flask-routetimer')
    finally:
        context.close()


def test_dashboard_is_404_without_debug_or_setting(page):
    """With debug off and ROUTETIMER_DASHBOARD unset, every dashboard URL answers 404."""
    provider = TracerProvider()
    app = create_app(tracer_provider=provider, config={"ROUTETIMER_DASHBOARD": None})
    with serve(app) as base_url:
        for path in ("/_routetimer/", "/_routetimer", "/_routetimer/api/stats"):
            assert page.goto(base_url + path).status == 404
    provider.shutdown()
