"""Integration tests run against the real lab (docker compose). The `lab` fixture brings it up if needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lab import Lab


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab() -> Lab:
    lab = Lab()
    lab.up()
    return lab


@pytest.fixture
def healthy_lab(lab: Lab) -> Lab:
    """The lab, brought back to every service running and healthy after the test (faults undone)."""
    yield lab
    lab.up()
