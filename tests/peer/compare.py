"""Compare the two runs of Flask's test suite (scripts/peer-flask.sh): without and with RouteTimer.

Usage: python compare.py BARE.json TIMED.json   (files written by the peer_outcomes plugin)

Exits 0 when exactly the tests that pass without RouteTimer pass with it, and RouteTimer was
really attached in the timed run; otherwise prints each difference with the reason and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Outcomes pytest counts as success (a non-strict xfail passes either way).
PASSING = ("passed", "xfailed", "xpassed")


def load(path: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(
            f"compare: {path} is missing: that pytest run wrote no outcomes."
        ) from None
    return data


def passing(tests: dict[str, dict[str, str]]) -> set[str]:
    return {node for node, entry in tests.items() if entry["outcome"] in PASSING}


def describe(node: str, entry: dict[str, str] | None) -> str:
    """One test, its outcome, and the first lines of its reason, indented."""
    if entry is None:
        return f"  {node}\n      not run (not collected)"
    text = f"  {node}  [{entry['outcome']}]"
    for line in entry["reason"].splitlines():
        text += f"\n      {line}"
    return text


def compare(bare: dict[str, Any], timed: dict[str, Any]) -> tuple[bool, str]:
    """(ok, report) for the two runs' outcome files."""
    bare_tests: dict[str, dict[str, str]] = bare["tests"]
    timed_tests: dict[str, dict[str, str]] = timed["tests"]
    bare_pass, timed_pass = passing(bare_tests), passing(timed_tests)
    lines = [
        f"compare: {len(bare_tests)} tests without RouteTimer ({len(bare_pass)} pass), "
        f"{len(timed_tests)} with it ({len(timed_pass)} pass)"
    ]
    ok = True
    timed_info = timed.get("routetimer")
    if not timed_info or not timed_info.get("apps"):
        # Requests without a span fail in the plugin; an app without RouteTimer is seen here.
        ok = False
        lines.append(
            "compare: RouteTimer was attached to no app in the timed run (was -p "
            f"routetimer_plugin loaded?): {timed_info}"
        )
    else:
        lines.append(
            f"compare: RouteTimer was attached to {timed_info['apps']} apps and ended "
            f"{timed_info['request_spans']} request spans"
        )
    only_bare = sorted(bare_pass - timed_pass)
    if only_bare:
        ok = False
        lines.append(f"compare: {len(only_bare)} tests FAIL ONLY WITH RouteTimer:")
        lines += [describe(node, timed_tests.get(node)) for node in only_bare]
    only_timed = sorted(timed_pass - bare_pass)
    if only_timed:
        ok = False
        lines.append(f"compare: {len(only_timed)} tests pass only with RouteTimer (flaky?):")
        lines += [describe(node, bare_tests.get(node)) for node in only_timed]
    failing_both = sorted(
        node
        for node, entry in bare_tests.items()
        if entry["outcome"] not in (*PASSING, "skipped") and node not in timed_pass
    )
    if failing_both:
        # Not RouteTimer's doing, but say so: a suite failing by itself proves less.
        lines.append(f"compare: {len(failing_both)} tests do not pass even without RouteTimer:")
        lines += [describe(node, bare_tests[node]) for node in failing_both]
    return ok, "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ok, report = compare(load(argv[1]), load(argv[2]))
    print(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
