"""``flask routetimer ...`` commands, added to ``app.cli`` by ``init_app``."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from werkzeug.routing import Rule

from .exemptions import unreached_message
from .state import AppState, get_state

routetimer_cli = AppGroup("routetimer", help="Inspect what flask-routetimer times.")

#: Methods every rule answers implicitly; ``flask routes`` hides them too.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})


def timing_of(app: Flask, state: AppState, rule: Rule) -> str:
    """Whether requests to ``rule`` are timed, and if not, why."""
    if not state.settings.enabled:
        return "off (ROUTETIMER_ENABLED is False)"
    if state.routes.is_exempt(app, rule):
        return "exempt"
    excluded = state.settings.excluded
    if excluded is not None and excluded.search(rule.rule):
        # Exclusion matches request paths; a template matching is a strong hint, not proof.
        return "excluded (by path)"
    return "timed"


@routetimer_cli.command("routes")
def routes_command() -> None:
    """List each URL rule with its endpoint, methods and whether it is timed."""
    app = current_app
    state = get_state(app)
    state.routes.resolve(app, warn=False)  # the command says it below, not the logger
    rows = [
        (
            rule.endpoint,
            ", ".join(sorted((rule.methods or set()) - IMPLICIT_METHODS)),
            rule.rule,
            timing_of(app, state, rule),
        )
        for rule in sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint))
    ]
    header = ("Endpoint", "Methods", "Rule", "Timing")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, tuple("-" * w for w in widths) + ("-" * 6,), *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    if state.routes.unreached:
        click.echo("\nWarning: " + unreached_message(state.routes.unreached), err=True)
