"""The command and config samples of the README and docs/*.md, and the venvs their tests run in.

Every fenced block that is not ``python`` stands after a marker that says what happens to it:

- ``<!-- run: NAME -->``: a test runs it as written (tests/test_docs_commands.py, looked up by
  NAME): a shell block in a scratch venv that holds this checkout and what the block's own
  ``pip install`` lines install, nothing else; a config file given to the program it configures.
- ``<!-- not run: REASON -->``: not runnable here, and why.

The ``pip install`` lines need the package registry, which the test suite does not have in CI (it
runs in a private network namespace, scripts/in-netns.sh). So they run, as written, before it:
``python tests/docs_recipes.py install`` (scripts/setup-doc-recipes.sh) makes one venv per shell
recipe under .venv-docs/, stamped with the hash of what decides its contents; the tests run the
rest of the block in it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
VENVS = ROOT / ".venv-docs"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- (run|not run): (.+?) -->")
INSTALL = re.compile(r"^pip install .*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """A fenced block that is not Python, with the marker before it (kind and argument)."""

    path: Path
    line: int
    language: str
    text: str
    kind: str | None  # "run", "not run", or None when no marker stands before the block
    argument: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    """Every fenced block of the README and docs that is not ``python`` (those are examples)."""
    found = []
    for path in MARKDOWN:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == "python":
                continue
            previous = text[: match.start()].rstrip("\n").rpartition("\n")[2].strip()
            marker = MARKER.fullmatch(previous)
            found.append(
                Block(
                    path=path,
                    line=text.count("\n", 0, match.start()) + 1,
                    language=match.group(1),
                    text=match.group(2),
                    kind=marker.group(1) if marker else None,
                    argument=marker.group(2) if marker else "",
                )
            )
    return found


def recipe(name: str) -> Block:
    """The one block marked ``<!-- run: NAME -->``."""
    (block,) = [b for b in blocks() if b.kind == "run" and b.argument == name]
    return block


def split(name: str) -> tuple[list[str], str]:
    """A shell recipe's ``pip install`` lines, and the rest of it, which the test runs."""
    text = recipe(name).text
    return INSTALL.findall(text), INSTALL.sub("", text).strip() + "\n"


def stamp(name: str) -> str:
    """What decides a recipe venv's contents: its install lines, our pyproject, the interpreter."""
    installs, _ = split(name)
    digest = hashlib.sha256("\n".join(installs).encode())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def venv_of(name: str) -> Path:
    return VENVS / name


def environment(name: str, **extra: str) -> dict[str, str]:
    """The environment of a shell running in a recipe's venv, as if it were activated."""
    venv = venv_of(name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra)
    return env


def is_installed(name: str) -> bool:
    marker = venv_of(name) / ".routetimer-installed"
    return marker.is_file() and marker.read_text() == stamp(name)


def install(name: str) -> None:
    """Make NAME's venv: this checkout (README's ``pip install -e .``), then its pip lines."""
    if is_installed(name):
        return
    venv = venv_of(name)
    shutil.rmtree(venv, ignore_errors=True)
    VENVS.mkdir(exist_ok=True)
    start = time.monotonic()
    python = os.environ.get("PYTHON", "python3")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    installs, _ = split(name)
    log = venv / "pip-install.log"
    with open(log, "w") as out:
        for command in ["pip install -e .", *installs]:
            print(f"$ {command}", file=out, flush=True)
            done = subprocess.run(
                ["bash", "-c", command], cwd=ROOT, env=environment(name), stdout=out, stderr=out
            )
            if done.returncode != 0:
                raise SystemExit(f"docs_recipes: {command!r} failed for {name}; see {log}")
    (venv / ".routetimer-installed").write_text(stamp(name))
    print(f"docs_recipes: {name}: installed in {time.monotonic() - start:.0f}s")


def shell_recipes() -> list[str]:
    """The names of the shell recipes that install something (they get a venv of their own)."""
    return [b.argument for b in blocks() if b.kind == "run" and INSTALL.search(b.text)]


CONFIGURATION_EXAMPLE = ROOT / "docs" / "examples" / "configuration.py"
CONFIGURATION_DOCS = ROOT / "docs" / "configuration.md"


def configuration_example() -> str:
    """docs/examples/configuration.py: every key of CONFIG_KEYS and every argument, at default."""
    from flask_routetimer.config import CONFIG_KEYS

    lines = [
        '"""Every config key and constructor argument at once, each set to its default.',
        "",
        "Generated from flask_routetimer.config.CONFIG_KEYS: `python tests/docs_recipes.py",
        "configuration-example` writes it here and into docs/configuration.md.",
        '"""',
        "",
        "from flask import Flask",
        "",
        "from flask_routetimer import RouteTimer",
        "",
        "app = Flask(__name__)",
        "app.config.update(",
    ]
    for key in CONFIG_KEYS:
        if key.env:
            lines.append(f"    # when not set: ${', else $'.join(key.env)}")
        value = f'"{key.default}"' if isinstance(key.default, str) else repr(key.default)
        lines.append(f"    {key.name}={value},")
    lines += [
        ")",
        "timer = RouteTimer(",
        "    app,",
        "    tracer_provider=None,  # None: the global provider, looked up at each request",
        "    meter_provider=None,  # likewise",
        ")",
    ]
    return "\n".join(lines) + "\n"


def write_configuration_example() -> None:
    """Regenerate the example, and the copy of it in docs/configuration.md."""
    old = CONFIGURATION_EXAMPLE.read_text()
    new = configuration_example()
    CONFIGURATION_EXAMPLE.write_text(new)
    docs = CONFIGURATION_DOCS.read_text()
    marker = "<!-- example: docs/examples/configuration.py -->\n```python\n"
    assert marker + old in docs, "docs/configuration.md does not show the current example"
    CONFIGURATION_DOCS.write_text(docs.replace(marker + old, marker + new))


def main() -> None:
    """Install every recipe venv that is not up to date, side by side (pip mostly waits)."""
    names = shell_recipes()
    for name in names:
        if is_installed(name):
            print(f"docs_recipes: {venv_of(name)} is up to date")
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        for done in [pool.submit(install, name) for name in names]:
            done.result()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] == ["install"]:
        main()
    elif sys.argv[1:] == ["configuration-example"]:
        write_configuration_example()
    else:
        sys.exit("usage: python tests/docs_recipes.py install|configuration-example")
