"""The dashboard: read-only pages and JSON over the app's own route statistics and traces.

A blueprint registered by ``init_app`` at ``ROUTETIMER_DASHBOARD_URL``. Every request to it
(pages, API and static files) passes :func:`_gate` first: off means 404, a refusing
``ROUTETIMER_DASHBOARD_AUTH`` means 401 (``basic_auth``, ``token_auth``) or 403. Every response
gets a strict Content-Security-Policy; the pages need no inline script or style (plots are
server-side SVG).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
)

from .._fence import logger
from ..attributes import blueprint_of
from ..config import ConfigError
from ..routes import DASHBOARD_BLUEPRINT
from ..state import AppState, get_state
from ..stats import RouteStats
from . import present
from .geometry import histogram, span_tree, time_window, waterfall
from .source import Source, source_of
from .stats_json import stats_json

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
#: Traces listed on the routes page and per route.
RECENT_TRACES = 20
SLOWEST_TRACES = 10


STATIC_FOLDER = os.path.join(os.path.dirname(__file__), "static")


def create_blueprint(url_prefix: str, host: Optional[str] = None) -> Blueprint:
    """A new dashboard blueprint (one per app, so each app may use its own URL prefix).

    ``host`` is the host its rules answer on, for apps with ``host_matching``; static files are
    a rule of its own for that reason (a blueprint's static route takes no host).
    """
    bp = Blueprint(
        DASHBOARD_BLUEPRINT, __name__, url_prefix=url_prefix, template_folder="templates"
    )
    bp.before_request(_gate)
    bp.after_request(_secure)
    options: dict[str, Any] = {} if host is None else {"host": host}
    # No redirect from the prefix without its slash: a 308 would reveal a disabled dashboard.
    bp.add_url_rule("/", "routes", routes_page, strict_slashes=False, **options)
    bp.add_url_rule("/route", "route", route_page, **options)
    bp.add_url_rule("/trace/<trace_id>", "trace", trace_page, **options)
    bp.add_url_rule("/api/stats", "api_stats", api_stats, **options)
    bp.add_url_rule("/api/traces/<trace_id>", "api_trace", api_trace, **options)
    bp.add_url_rule("/static/<path:filename>", "static", static_file, **options)
    return bp


def static_file(filename: str) -> Response:
    """The dashboard's CSS, script and icon."""
    return send_from_directory(STATIC_FOLDER, filename)


def overlapping_rules(app: Flask, url_prefix: str) -> list[str]:
    """The app's own URL rules under the dashboard's prefix (they would shadow or be shadowed)."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if blueprint_of(rule.endpoint) != DASHBOARD_BLUEPRINT
        and (rule.rule == url_prefix or rule.rule.startswith(url_prefix + "/"))
    )


def dashboard_host(app: Flask, configured: Optional[str]) -> Optional[str]:
    """The host the dashboard answers on: None unless the app matches hosts.

    With ``host_matching`` a rule without a host answers only an empty Host header, so the
    dashboard takes ``ROUTETIMER_DASHBOARD_HOST``, else ``SERVER_NAME``, else the host of the
    app's static files.
    """
    if not app.url_map.host_matching:
        return None
    host = configured or app.config.get("SERVER_NAME")
    if not host:
        static = (rule.host for rule in app.url_map.iter_rules() if rule.endpoint == "static")
        host = next((host for host in static if host), None)
    if not host:
        raise ConfigError(
            f"The app {app.name!r} matches URLs by host (host_matching=True), so the dashboard "
            "needs a host to answer on: set ROUTETIMER_DASHBOARD_HOST (e.g. 'admin.example.com') "
            "or SERVER_NAME, or give Flask a static_host."
        )
    return host


def _state() -> AppState:
    return get_state(current_app)


def _gate() -> None:
    """Hide the dashboard (404) when off; refuse when the auth function says no: 401 with its
    ``challenge`` (``basic_auth``, ``token_auth``), else 403."""
    state = _state()
    if not state.settings.dashboard_on(current_app.debug):
        abort(404)
    auth = state.settings.dashboard_auth
    if auth is not None and auth() is not True:
        challenge = getattr(auth, "challenge", None)
        if isinstance(challenge, str):
            headers = {"WWW-Authenticate": challenge}
            abort(Response("Log in to see this dashboard.\n", 401, headers, mimetype="text/plain"))
        abort(403)
    if not state.traces.decided:
        state.decide_trace_buffer(current_app)  # opened before any timed request
    if not state.overlaps_checked:
        _warn_about_overlaps(state)


def _warn_about_overlaps(state: AppState) -> None:
    """Routes added under the prefix after init_app (which refuses those added before)."""
    state.overlaps_checked = True
    overlaps = overlapping_rules(current_app, state.settings.dashboard_url)
    if overlaps:
        logger.warning(
            "flask-routetimer: ROUTETIMER_DASHBOARD_URL %r overlaps the app's routes %s, added "
            "after init_app: the dashboard may shadow them. Choose another prefix.",
            state.settings.dashboard_url,
            ", ".join(overlaps[:5]),
        )


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


# --- Pages ------------------------------------------------------------------------------------


def routes_page() -> str:
    state = _state()
    source = source_of(state)
    key, descending = present.sort_order(request.args.get("sort"), request.args.get("order"))
    snapshot = source.stats()
    recent = source.traces()[:RECENT_TRACES]
    return render_template(
        "routetimer/routes.html",
        snapshot=snapshot,
        rows=present.sort_rows(snapshot.routes, key, descending),
        streamed=any(row.ttfb_count for row in snapshot.routes),
        sort=key,
        descending=descending,
        text_keys=present.TEXT_KEYS,
        recent=[present.summarize(record) for record in recent],
        workers=source.workers(),
        **_common(state, source),
    )


def route_page() -> tuple[str, int]:
    state = _state()
    source = source_of(state)
    method = request.args.get("method", "")
    route: Optional[str] = request.args.get("route")  # absent: requests that matched no rule
    row = _find_row(source, method, route)
    plot = None
    if row is not None:
        plot = histogram(row.buckets, {"p50": row.p50, "p95": row.p95, "p99": row.p99})
    traces = present.slowest(source.traces(), method, route, SLOWEST_TRACES)
    page = render_template(
        "routetimer/route.html",
        method=method,
        route=route,
        row=row,
        plot=plot,
        traces=traces,
        **_common(state, source),
    )
    return page, 200 if row is not None else 404


def trace_page(trace_id: str) -> tuple[str, int]:
    state = _state()
    source = source_of(state)
    record = source.trace(trace_id)
    rows = waterfall(record.spans) if record is not None else []
    origin, total = time_window(record.spans if record is not None else ())
    page = render_template(
        "routetimer/trace.html",
        trace_id=trace_id,
        record=record,
        summary=present.summarize(record) if record is not None else None,
        rows=rows,
        origin=origin,
        total=total / 1e9,
        **_common(state, source),
    )
    return page, 200 if record is not None else 404


def _redaction(state: AppState) -> present.Redaction:
    settings = state.settings
    return present.Redaction(settings.redacted_query_params, settings.sanitized_headers)


def _common(state: AppState, source: Source) -> dict[str, Any]:
    """Template values every page uses."""
    redaction = _redaction(state)
    return {
        "unavailable": source.unavailable,
        "timing_enabled": state.settings.enabled,
        "fmt": present.format_seconds,
        "pct": present.format_percent,
        "redact": lambda key, value: present.redact_value(key, value, redaction),
        "show": present.show_value,
    }


def _find_row(source: Source, method: str, route: Optional[str]) -> Optional[RouteStats]:
    for row in source.stats().routes:
        if row.method == method and row.route == route and not row.overflow:
            return row
    return None


# --- JSON for scripts -------------------------------------------------------------------------


def api_stats() -> Response:
    """``StatsSnapshot.to_dict()``; ``?buckets=0`` leaves out the (up to 551) histogram buckets.

    Written by :func:`stats_json`, not ``jsonify``: the same JSON, several times faster for a
    thousand routes' buckets."""
    source = source_of(_state())
    snapshot = source.stats()
    buckets = request.args.get("buckets") not in ("0", "false", "no")
    workers = source.workers()
    extra = {}
    if workers is not None:
        extra["worker_processes"] = [present.worker_json(worker) for worker in workers]
    text = stats_json(snapshot, buckets, extra)
    return current_app.response_class(text, mimetype="application/json")


def api_trace(trace_id: str) -> tuple[Response, int]:
    state = _state()
    source = source_of(state)
    if source.unavailable is not None:
        return jsonify(error=source.unavailable), 404
    record = source.trace(trace_id)
    if record is None:
        return jsonify(error=f"No trace {trace_id[:64]} in the buffer (unknown or evicted)."), 404
    origin, _ = time_window(record.spans)
    summary = present.summarize(record)
    redaction = _redaction(state)
    return jsonify(
        trace_id=record.trace_id,
        unit="s",
        method=summary.method,
        route=summary.route,
        status_code=summary.status_code,
        duration=record.duration,
        dropped_spans=record.dropped_spans,
        pid=record.pid,
        spans=[
            present.span_json(span, origin, depth, redaction)
            for span, depth in span_tree(record.spans)
        ],
    ), 200
