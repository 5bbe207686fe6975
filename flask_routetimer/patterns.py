"""Lists of regular expressions that match where any of them matches, each as written alone."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from typing import Optional, Union


class AnyOf:
    """Patterns tried one by one, so each works exactly as it does alone: global flags such as
    ``(?i)``, group names and numbers, backreferences."""

    __slots__ = ("patterns",)

    def __init__(self, patterns: tuple[re.Pattern[str], ...]) -> None:
        self.patterns = patterns

    def search(self, string: str) -> Optional[re.Match[str]]:
        """The first pattern's match anywhere in ``string``, or None (as ``re.Pattern``)."""
        for pattern in self.patterns:
            found = pattern.search(string)
            if found is not None:
                return found
        return None

    def fullmatch(self, string: str) -> Optional[re.Match[str]]:
        """The first pattern matching all of ``string``, or None (as ``re.Pattern``)."""
        for pattern in self.patterns:
            found = pattern.fullmatch(string)
            if found is not None:
                return found
        return None


#: What a list of patterns compiles to: one pattern, or several tried in turn.
Matcher = Union[re.Pattern[str], AnyOf]


def any_of(patterns: Iterable[str], flags: int = 0) -> Optional[Matcher]:
    """A matcher for where any of ``patterns`` matches; None when there are none.

    Patterns without groups or inline global flags are joined into one regular expression (the
    same matches, one search); joining any other could change what it matches, or fail (``(?i)``
    not at the start, one group name twice), so each of those is tried on its own after the
    joined ones. Each pattern must compile on its own (``config`` checks that, naming the key).
    """
    parts = [pattern for pattern in patterns if pattern]
    if not parts:
        return None
    plain_flags = re.compile("", flags).flags
    plain: list[str] = []  # no groups, no inline global flags: safe to join
    alone: list[re.Pattern[str]] = []
    for part in parts:
        compiled = re.compile(part, flags)
        if compiled.groups == 0 and compiled.flags == plain_flags:
            plain.append(part)
        else:
            alone.append(compiled)
    if plain:
        joined = _joined(plain, flags)
        if joined is None:  # e.g. "(?i)x" with flags=re.IGNORECASE: the same flags, yet inline
            alone[:0] = [re.compile(part, flags) for part in plain]
        elif not alone:
            return joined
        else:
            alone.insert(0, joined)
    return alone[0] if len(alone) == 1 else AnyOf(tuple(alone))


def _joined(parts: list[str], flags: int) -> Optional[re.Pattern[str]]:
    """One expression for all ``parts``, or None if joining them is refused or warned about."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Python < 3.11 only warns of a misplaced "(?i)"
            return re.compile("|".join(f"(?:{part})" for part in parts), flags)
    except (re.error, Warning):
        return None
