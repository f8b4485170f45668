"""Integration tests run against the real lab (docker compose). The `lab` fixture brings it up if needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from skip_policy import register

from lab import Lab

HERE = Path(__file__).parent
# The one list of integration skips that may happen under CI=true (tests/integration/README.md, "Skips").
ALLOWED_SKIPS = HERE / "allowed_skips.yml"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("tsops-skip-policy"):
        register(config, HERE, ALLOWED_SKIPS)


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
