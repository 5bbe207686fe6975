"""Session-wide Arize Phoenix for the end-to-end tests; every test in this folder is ``e2e``.

Run them with ``scripts/setup-phoenix.sh && scripts/in-netns.sh python -m pytest tests/e2e``.
Outside such a namespace, or without ``.venv-phoenix/``, the tests skip with the reason;
set ``E2E_REQUIRED=1`` (as CI should) to make that an error instead of a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .phoenix import PHOENIX_VENV, REPO_ROOT, Phoenix, netns_problem, start_phoenix

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as ``e2e`` so ``-m "not e2e"`` can leave them out."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def _unavailable(reason: str) -> None:
    """Skip, or fail when E2E_REQUIRED=1 so CI cannot go green without running them."""
    if os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """One Phoenix for the whole session (startup costs ~10 s); its log is kept for debugging.

    Tests share it, so each should use its own project name (resource attribute
    ``openinference.project.name``) or filter by its own trace id.
    """
    problem = netns_problem()
    if problem is not None:
        _unavailable(problem)
    if not (PHOENIX_VENV / "bin" / "phoenix").exists():
        _unavailable(f"{PHOENIX_VENV} is missing; run scripts/setup-phoenix.sh")
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"))
    try:
        yield server
    finally:
        server.stop()
        artifacts = REPO_ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copy(server.log_path, artifacts / "phoenix.log")
