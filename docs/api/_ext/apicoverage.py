"""Warn (so the -W build fails) when a public name is missing from the API reference.

Public means listed in ``__all__`` of a module in :data:`MODULES`. A new export without its
autodoc directive in index.rst would otherwise go unnoticed: autodoc documents only what it is
asked to.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

MODULES = ("flask_routetimer", "flask_routetimer.testing")
#: Public names that are not API to document.
SKIP = {"__version__"}


def check_coverage(app: Sphinx, env: BuildEnvironment) -> None:
    objects = cast(PythonDomain, env.get_domain("py")).objects
    # Module-level objects only (not methods or attributes), matched by their last name: one may
    # be documented where it is defined (flask_routetimer.signals.request_timed) rather than
    # where it is exported from.
    documented = {
        name.rpartition(".")[2]
        for name, entry in objects.items()
        if entry.objtype in {"class", "exception", "function", "data"}
    }
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if name in SKIP or name in documented:
                continue
            logger.warning(
                "%s.%s is public (in __all__) but missing from the API reference: add an autodoc "
                "directive for it to docs/api/index.rst.",
                module_name,
                name,
            )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", check_coverage)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
