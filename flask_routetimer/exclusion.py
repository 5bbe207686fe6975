"""``ROUTETIMER_EXCLUDED_URLS``: matched only on the path inside the app, never on client choices.

OpenTelemetry's Flask instrumentation searches its patterns (``OTEL_PYTHON_FLASK_EXCLUDED_URLS``)
in the full URL, ``flask.request.url``: scheme, Host header, mount prefix, path and query string.
All but the path are the client's (or a proxy's, from the client's ``X-Forwarded-*``) to choose,
so ``?healthz`` or ``Host: healthz`` would let a client hide its own requests from timing. Here
every pattern is searched in the path inside the app (``PATH_INFO``), and a pattern written for a
full URL (it contains ``://``) in that path behind ``http://localhost`` and ``https://localhost``:
``healthz``, ``client/.*/info`` and ``^https?://[^/]+/healthz`` exclude the paths they name,
whatever the request's host, query string or mount prefix.
"""

from __future__ import annotations

import logging
import re
from typing import Optional, Union

from .patterns import Matcher, any_of

logger = logging.getLogger("flask_routetimer")

#: A pattern written for a full URL names a scheme: ``://``, or ``:\/\/`` with escaped slashes.
URL_FORM = re.compile(r":(?:\\?/){2}")
#: What stands for the host in the URL a full-URL pattern is searched in: never the Host header.
HOST = "localhost"
URL_PREFIXES = (f"http://{HOST}", f"https://{HOST}")
#: A full-URL pattern naming a host other than ``localhost`` (a heuristic, for the warning only).
_NAMED_HOST = re.compile(r":(?:\\?/){2}(?!localhost\b)[A-Za-z0-9]")


class PathOrUrl:
    """Patterns for paths searched in the path; full-URL patterns in ``URL_PREFIXES`` + path."""

    __slots__ = ("paths", "urls")

    def __init__(self, paths: Optional[Matcher], urls: Matcher) -> None:
        self.paths = paths
        self.urls = urls

    def search(self, path: str) -> Optional[re.Match[str]]:
        """The first match for the path inside the app, or None (as ``re.Pattern``)."""
        if self.paths is not None:
            found = self.paths.search(path)
            if found is not None:
                return found
        for prefix in URL_PREFIXES:
            found = self.urls.search(prefix + path)
            if found is not None:
                return found
        return None


#: What ``ROUTETIMER_EXCLUDED_URLS`` compiles to; its ``search`` takes the path inside the app.
Exclusion = Union[Matcher, PathOrUrl]


def exclusion(key: str, patterns: list[str]) -> Optional[Exclusion]:
    """A matcher for the path inside the app; None without patterns.

    Without full-URL patterns it is exactly ``any_of(patterns)``: no work added per request.
    """
    urls = [pattern for pattern in patterns if URL_FORM.search(pattern)]
    if not urls:
        return any_of(patterns)
    named = [pattern for pattern in urls if _NAMED_HOST.search(pattern)]
    if named:
        logger.warning(
            "flask-routetimer: %s pattern(s) %s name a host. The Host header is the client's "
            "choice, so it never decides what is excluded: a pattern with '://' is searched in "
            "'http://%s' or 'https://%s' followed by the path inside the app. Write the host "
            "as [^/]+ (as in '^https?://[^/]+/healthz'), or drop it.",
            key,
            ", ".join(repr(pattern) for pattern in named),
            HOST,
            HOST,
        )
    urls_matcher = any_of(urls)
    assert urls_matcher is not None  # urls is not empty
    return PathOrUrl(any_of([p for p in patterns if p not in urls]), urls_matcher)
