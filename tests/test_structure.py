"""The package's shape: imports point one way, nothing is a hub, docs come from the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flask_routetimer.config import markdown_table

PACKAGE = Path(__file__).resolve().parent.parent / "flask_routetimer"
ROOT = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, TYPE_CHECKING imports included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            # ``from . import x`` imports the module x, not what the package's __init__ holds.
            candidates = [c for c in submodules if c in MODULES] or [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in MODULES and c != name)
    return found


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def test_no_import_cycle() -> None:
    """No module reaches itself through imports (TYPE_CHECKING ones count too)."""
    for start in GRAPH:
        seen: set[str] = set()
        stack = list(GRAPH[start])
        while stack:
            module = stack.pop()
            assert module != start, f"import cycle through {start}"
            if module not in seen:
                seen.add(module)
                stack.extend(GRAPH[module])


def test_only_the_package_root_imports_the_extension() -> None:
    """``extension`` is the composition root: no feature module depends on it."""
    importers = {name for name, targets in GRAPH.items() if "flask_routetimer.extension" in targets}
    assert importers == {"flask_routetimer"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_class_over_200_and_no_function_over_60_lines(name: str) -> None:
    """Small units: a class over 200 lines or a function over 60 is a hub in the making."""
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = 200 if isinstance(node, ast.ClassDef) else 60
            assert length <= limit, f"{name}.{node.name} has {length} lines (limit {limit})"


def test_configuration_docs_show_the_config_table() -> None:
    """docs/configuration.md lists every key as CONFIG_KEYS defines it (regenerate on change)."""
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert markdown_table() in docs
