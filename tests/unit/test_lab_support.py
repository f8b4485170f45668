"""Unit tests of the lab's own logic that need no Docker: the default workload's definition and switch, and the
integration tests' Lab.running() (an instance is taken down whatever happens, also when `up` fails)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab" / "app"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from tsapp import workload  # noqa: E402

import lab as lab_client  # noqa: E402


@pytest.mark.parametrize("value, enabled", [(None, True), ("", True), ("on", True), (" ON ", True), ("true", True),
                                            ("off", False), ("Off", False), ("0", False), ("no", False)])
def test_workload_switch(value, enabled):
    assert workload.parse_switch(value) is enabled


@pytest.mark.parametrize("value", ["maybe", "of", "2", "enabled"])
def test_workload_switch_refuses_unknown_values_clearly(value):
    with pytest.raises(ValueError, match=r"LAB_WORKLOAD=.*expected on or off"):
        workload.parse_switch(value)


def test_workload_is_small_bounded_and_never_fails():
    assert 3 <= len(workload.TASKS) <= 6
    assert len({t.name for t in workload.TASKS}) == len(workload.TASKS)
    assert all(t.name.startswith(workload.NAME_PREFIX) for t in workload.TASKS)
    # several intervals, the shortest a few seconds: task_run grows every few seconds
    intervals = [t.interval_seconds for t in workload.TASKS]
    assert min(intervals) <= 5 and len(set(intervals)) >= 3
    assert workload.runs_per_minute() <= 30
    for t in workload.TASKS:
        assert '"fail_rate": 0' in t.payload() and t.duration_ms <= 250  # no failures, far from any latency alert


def test_seed_statement_uses_only_scalar_parameters_one_per_placeholder():
    sql, args = workload.seed_statement()
    placeholders = sorted({int(n) for n in re.findall(r"\$(\d+)", sql)})
    assert placeholders == list(range(1, len(args) + 1)) == list(range(1, 3 * len(workload.TASKS) + 1))
    assert "[]" not in sql  # no array parameter: asyncpg would introspect its type, slow on a busy host
    assert "ON CONFLICT (name) DO NOTHING" in sql and "t.status = 'disabled'" in sql
    sql, args = workload.disable_statement()
    assert args == [t.name for t in workload.TASKS] and "[]" not in sql


class FakeScript:
    """Records lab.sh calls; `up` fails like a lab that does not become healthy."""

    def __init__(self, up_rc: int) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.up_rc = up_rc

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        self.calls.append(args)
        rc = self.up_rc if args[0] == "up" else 0
        return subprocess.CompletedProcess(["lab.sh", *args], rc, "",
                                           "[lab] not healthy after 1s (waiting up to 1s, LAB_WAIT_TIMEOUT): postgres")


@pytest.mark.parametrize("wipe, last", [(False, "down"), (True, "wipe")])
def test_running_takes_the_instance_down_when_up_fails(monkeypatch, wipe, last):
    lab = lab_client.Lab("tsops-unit", port_offset=990)
    fake = FakeScript(up_rc=1)
    monkeypatch.setattr(lab, "script", fake)
    failed = r"(?s)lab up failed.*LAB_WAIT_TIMEOUT\): postgres"
    with pytest.raises(RuntimeError, match=failed), lab.running(wipe=wipe):
        pytest.fail("the body must not run when up failed")
    assert fake.calls == [("up",), (last,)]


def test_running_takes_the_instance_down_when_the_body_fails(monkeypatch):
    lab = lab_client.Lab("tsops-unit", port_offset=990)
    fake = FakeScript(up_rc=0)
    monkeypatch.setattr(lab, "script", fake)
    entered = []

    def scenario() -> None:
        with lab.running() as running:
            entered.append(running)
            raise KeyError("scenario failed")

    with pytest.raises(KeyError):
        scenario()
    assert entered == [lab]
    assert fake.calls == [("up",), ("down",)]


def test_extra_env_reaches_lab_sh(monkeypatch):
    seen = {}

    def fake_run(argv, env, **_kw):
        seen.update(env)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(lab_client.subprocess, "run", fake_run)
    lab_client.Lab("tsops-unit", port_offset=990, extra_env={"LAB_WAIT_TIMEOUT": "1"}).script("status")
    assert seen["LAB_INSTANCE"] == "tsops-unit" and seen["LAB_PORT_OFFSET"] == "990" and seen["LAB_WAIT_TIMEOUT"] == "1"
