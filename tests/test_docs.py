"""Every Python sample in the README and docs/ is tested: included verbatim from docs/examples/
(which are run here), or executed directly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_recipes import CONFIGURATION_EXAMPLE, configuration_example, recipe
from serving import free_port, output_around_one_get

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- example: (docs/examples/[\w.]+\.py) -->")
#: Not run as a script: gunicorn configurations, checked by tests of their own (below,
#: tests/test_multiproc_server.py and tests/test_docs_commands.py).
SPECIAL = {"gunicorn_conf.py", "gunicorn_multiproc.py", "gunicorn_prometheus.py"}
#: Examples run with this package on the path and a dashboard password set, as in a deployment.
EXAMPLE_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    "ROUTETIMER_DASHBOARD_PASSWORD": "docs-example-password-0123",
}


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, included example or None) for each ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        previous = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        marker = MARKER.fullmatch(previous.strip())
        blocks.append((line, match.group(1), marker.group(1) if marker else None))
    return blocks


def examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: p.name)
def test_python_blocks_are_examples_or_run(markdown: Path) -> None:
    """A block after an example marker is that file verbatim; any other block runs as is."""
    for line, code, example in python_blocks(markdown):
        if example is not None:
            source = (ROOT / example).read_text(encoding="utf-8")
            assert code == source, f"{markdown.name}:{line} differs from {example}; copy it again"
        else:
            exec(compile(code, f"{markdown.name}:{line}", "exec"), {"__name__": "docs_block"})


def test_configuration_example_has_every_key_at_its_default() -> None:
    """configuration.md's "every key at once" is generated from the one config table."""
    assert CONFIGURATION_EXAMPLE.read_text() == configuration_example(), (
        "regenerate it: .venv/bin/python tests/docs_recipes.py configuration-example"
    )


def test_every_example_is_shown_in_the_docs() -> None:
    """No example file is orphaned: each is included in the README or a docs page."""
    included = {example for md in MARKDOWN for _, _, example in python_blocks(md) if example}
    assert {f"docs/examples/{p.name}" for p in examples()} <= included


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.Popen[str]]:
    """Start every example at once (each in its own interpreter: some set global providers)."""
    started = {}
    for path in examples():
        if path.name in SPECIAL:
            continue
        if path.name.startswith("test_"):
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path.name]
        else:
            command = [sys.executable, "-W", "error", path.name]
        started[path.name] = subprocess.Popen(
            command,
            cwd=EXAMPLES,
            env=EXAMPLE_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return started


@pytest.mark.parametrize(
    "name", [p.name for p in examples() if p.name not in SPECIAL], ids=lambda n: n
)
def test_example_runs(runs: dict[str, subprocess.Popen[str]], name: str) -> None:
    """The example runs to its end without an error or a warning."""
    output, _ = runs[name].communicate(timeout=120)
    assert runs[name].returncode == 0, output


def test_gunicorn_preload_recipe_exports_spans_from_workers() -> None:
    """recipes.md's command, as written: with --preload and the SDK set up in post_fork, forked
    workers export request spans."""
    port = free_port()
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    output = output_around_one_get(
        ["bash", "-euc", f"exec {recipe('gunicorn-preload').text}"],
        port,
        "/hello/you",
        b"Hello, you!",
        cwd=EXAMPLES,
        env={**os.environ, "BIND": f"127.0.0.1:{port}", "PATH": path},
    )
    assert '"name": "GET /hello/<name>"' in output, output
    assert '"name": "greeting"' in output, output


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda path: path.name)
def test_relative_links_resolve(markdown: Path) -> None:
    """Every relative link or image in the README and docs points at a file that exists."""
    targets = [t for t in LINK.findall(markdown.read_text()) if "://" not in t]
    missing = [t for t in targets if not (markdown.parent / t).exists()]
    assert not missing, f"{markdown.name} links to missing files: {missing}"
