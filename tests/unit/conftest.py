"""Shared set-up for unit tests.

The collection is importable as ``ansible_collections.taskscheduler.ops`` because pytest puts ``collections/`` on
sys.path (``pythonpath`` in pyproject.toml) and ``collections/ansible_collections/taskscheduler/ops`` is a symlink to
the repository root made by ``scripts/setup-venv.sh`` (``make venv``). So a test imports what a module imports::

    from ansible_collections.taskscheduler.ops.plugins.module_utils import _thresholds
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION_LINK = REPO_ROOT / "collections" / "ansible_collections" / "taskscheduler" / "ops"


def pytest_configure(config: pytest.Config) -> None:
    if not (COLLECTION_LINK.is_symlink() and COLLECTION_LINK.resolve() == REPO_ROOT):
        raise pytest.UsageError(f"{COLLECTION_LINK} is not a link to {REPO_ROOT}: run `make venv` first")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (= the collection root)."""
    return REPO_ROOT
