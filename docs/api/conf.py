"""Sphinx configuration of the API reference (built by scripts/docs.sh)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Document this checkout's package (not another copy installed in the venv), and find the local
# extension in _ext/.
sys.path[:0] = [str(ROOT), str(HERE / "_ext")]

project = "flask-routetimer"
copyright = "flask-routetimer developers"
author = "flask-routetimer developers"
release = str(runpy.run_path(str(ROOT / "flask_routetimer" / "_version.py"))["__version__"])
version = release

extensions = ["sphinx.ext.autodoc", "apicoverage", "configkeys"]
exclude_patterns = ["_build"]
templates_path: list[str] = []

# Every cross-reference must resolve: a typo in a :class: role or a type the reference forgot to
# cover is a warning, and scripts/docs.sh makes warnings errors.
nitpicky = True
# The exceptions, kept to what the public signatures use. Types of other libraries and of the
# standard library: their inventories would come from intersphinx, which needs the network; they
# are shown, just not linked.
nitpick_ignore_regex = [
    (r"py:class", r"(flask|opentelemetry|collections\.abc)\..+"),
    # The type variables of generic signatures (``exempt(view: T) -> T``) are not objects to
    # document.
    (r"py:class", r"flask_routetimer\.[\w.]+\.[A-Z]"),
    # opentelemetry.util.types.Attributes, which the overloads of RouteTimer.timed show by the
    # name they import (autodoc_type_aliases does not reach overload signatures).
    (r"py:class", r"Attributes"),
]

autodoc_member_order = "bysource"
# Types as the code spells them (``Optional[Flask]``), not ``Optional[flask.app.Flask]``.
python_use_unqualified_type_names = True

html_theme = "alabaster"
# Wider than alabaster's 940px: the config keys table holds unbreakable names such as
# OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS.
html_theme_options = {"page_width": "1240px"}
html_title = f"flask-routetimer {release} API reference"
html_show_sourcelink = False
