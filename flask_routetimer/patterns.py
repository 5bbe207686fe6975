"""One regular expression matching any of several, each kept a group of its own."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Optional


def any_of(patterns: Iterable[str], flags: int = 0) -> Optional[re.Pattern[str]]:
    """A pattern matching where any of ``patterns`` matches; None when there are none."""
    parts = [pattern for pattern in patterns if pattern]
    if not parts:
        return None
    return re.compile("|".join(f"(?:{part})" for part in parts), flags)
