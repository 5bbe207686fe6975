"""The ``.. routetimer-config-keys::`` directive: the table of ``ROUTETIMER_*`` config keys.

The rows come from :data:`flask_routetimer.config.CONFIG_KEYS`, the table from which ``init_app``
takes its defaults and validation, so the reference cannot drift from the code. Each key's texts
are written for the Markdown docs (docs/configuration.md): their inline code and links are turned
into docutils nodes here, never parsed as reStructuredText, so no text needs escaping.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

MODULE = "flask_routetimer.config"
#: Two columns, not one per attribute: the key and variable names do not wrap, and five columns
#: of them would not fit the page.
HEADER = ("key", "meaning")
WIDTHS = (50, 50)
#: Markdown's inline code (`x`) and links ([text](target)), the only markup in the keys' texts.
MARKDOWN = re.compile(r"`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)")


def inline(text: str) -> list[nodes.Node]:
    """Text with Markdown's inline code and links, as docutils nodes."""
    result: list[nodes.Node] = []
    end = 0
    for match in MARKDOWN.finditer(text):
        if match.start() > end:
            result.append(nodes.Text(text[end : match.start()]))
        code, label, target = match.groups()
        if code is not None:
            result.append(nodes.literal(code, code))
        elif "://" in target:
            result.append(nodes.reference(label, label, refuri=target))
        else:
            # A link between the Markdown pages of docs/, which are not part of this build:
            # name the file in the repository instead.
            path = f"docs/{target}"
            result.append(nodes.literal(path, path))
        end = match.end()
    if end < len(text):
        result.append(nodes.Text(text[end:]))
    return result


def default_text(key: Any) -> str:
    """The default as the Markdown docs show it: their own wording if the key has one."""
    wording = getattr(key, "default_text", None)
    if wording:
        return str(wording)
    value = key.default
    return f'`"{value}"`' if isinstance(value, str) else f"`{value!r}`"


Paragraphs = list[list[nodes.Node]]


def row(cells: list[Paragraphs], ids: tuple[str, ...] = ()) -> nodes.row:
    result = nodes.row(ids=list(ids))
    for paragraphs in cells:
        entry = nodes.entry()
        for content in paragraphs:
            entry += nodes.paragraph("", "", *content)
        result += entry
    return result


def key_row(key: Any) -> nodes.row:
    """One config key's row; its id (e.g. ``routetimer-enabled``) is a link target."""
    about: Paragraphs = [
        [nodes.strong("", "", nodes.literal(key.name, key.name))],
        [nodes.Text("valid: "), *inline(key.valid)],
        [nodes.Text("default: "), *inline(default_text(key))],
    ]
    if key.env:
        variables = ", else ".join(f"`{name}`" for name in key.env)
        about.append([nodes.Text("environment variable: "), *inline(variables)])
    return row([about, [inline(key.doc)]], ids=(nodes.make_id(key.name),))


def table(keys: tuple[Any, ...]) -> nodes.table:
    result = nodes.table(classes=["routetimer-config-keys"])
    group = nodes.tgroup(cols=len(HEADER))
    result += group
    for width in WIDTHS:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += row([[[nodes.Text(title)]] for title in HEADER])
    group += head
    body = nodes.tbody()
    for key in keys:
        body += key_row(key)
    group += body
    return result


class ConfigKeysDirective(SphinxDirective):
    """``.. routetimer-config-keys::`` (no arguments, no content)."""

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(MODULE)
        # Rebuild this page when the keys change (autodoc tracks only the modules it documents).
        if module.__file__:
            self.env.note_dependency(module.__file__)
        keys = getattr(module, "CONFIG_KEYS", None)
        if keys is None:
            # A warning, not an exception: the -W build fails with this message, naming the page.
            logger.warning(
                "%s has no CONFIG_KEYS: the config keys table cannot be built.",
                MODULE,
                location=self.get_location(),
            )
            return []
        return [table(tuple(keys))]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("routetimer-config-keys", ConfigKeysDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
