"""Host figures and the verdict of "a healthy lab under load fires nothing" (tests/integration/host_load.py): the
API's own failures are judged, never excused; only host figures say the host was overloaded, and then the test tries
once more before it fails. It never skips."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import host_load  # tests/integration is not a package: on sys.path above
from host_load import CpuTimes, HostFigures, decide, figures_between, load_problems

PROC_STAT = """cpu  1000 10 500 8000 100 5 20 40 30 0
cpu0 500 5 250 4000 50 2 10 20 15 0
intr 12345
"""
PRESSURE = """some avg10=3.00 avg60=9.50 avg300=5.10 total=23231395
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
"""
HEALTHY = {"requests": 2000, "statuses": {"200": 1500, "201": 480, "404": 20}, "p50_seconds": 0.02,
           "p95_seconds": 0.3}


def figures(busy: float = 1.0, lab: float | None = 0.9, steal: float = 0.0, cpus: int = 2) -> HostFigures:
    return HostFigures(seconds=180, cpus=cpus, busy_cores=busy, steal_fraction=steal, lab_cores=lab,
                       pressure_some=0.5, load_per_core=1.0)


def test_proc_stat_busy_excludes_idle_iowait_and_guest():
    t = host_load.parse_proc_stat(PROC_STAT)
    assert t == CpuTimes(busy=1000 + 10 + 500 + 5 + 20 + 40, total=1000 + 10 + 500 + 8000 + 100 + 5 + 20 + 40,
                         steal=40)


def test_proc_stat_without_cpu_line_is_a_clear_error():
    with pytest.raises(ValueError, match="no aggregate `cpu` line"):
        host_load.parse_proc_stat("intr 1\n")


def test_pressure_total():
    assert host_load.parse_pressure_total(PRESSURE) == 23231395
    assert host_load.parse_pressure_total("") is None


def test_container_cpu_from_cgroup_v1_and_v2(tmp_path: Path):
    (tmp_path / "cpuacct" / "docker" / "abc").mkdir(parents=True)
    (tmp_path / "cpuacct" / "docker" / "abc" / "cpuacct.usage").write_text("761124650\n")
    (tmp_path / "system.slice" / "docker-def.scope").mkdir(parents=True)
    (tmp_path / "system.slice" / "docker-def.scope" / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    assert host_load.container_cpu_ns("abc", tmp_path) == 761124650
    assert host_load.container_cpu_ns("def", tmp_path) == 1_500_000
    assert host_load.container_cpu_ns("nope", tmp_path) is None


def test_figures_between_separates_the_lab_from_other_work():
    start = CpuTimes(busy=0, total=0, steal=0)
    end = CpuTimes(busy=3000, total=4000, steal=100)  # 75 % of 2 CPUs busy, 2.5 % stolen
    f = figures_between(start, end, seconds=20, cpus=2, lab_ns=10 * 10**9, pressure_us=5 * 10**6, load_per_core=2)
    assert f.busy_cores == pytest.approx(1.5) and f.lab_cores == pytest.approx(0.5)
    assert f.other_cores == pytest.approx(1.0) and f.pressure_some == pytest.approx(0.25)
    assert not f.overloaded  # other work on exactly half the CPUs is the limit, not over it


@pytest.mark.parametrize("kwargs, overloaded", [
    ({"busy": 2.0, "lab": 1.8}, False),  # the lab itself saturating the host is the system under test
    ({"busy": 2.0, "lab": 0.5}, True),  # 1.5 cores of other work on 2 CPUs
    ({"busy": 2.0, "lab": None}, False),  # unknown lab share: a busy host alone excuses nothing
    ({"busy": 1.0, "lab": None, "steal": 0.3}, True),
    ({"busy": 1.0, "lab": 0.9, "steal": 0.1}, False),
])
def test_overloaded_only_by_other_work_or_steal(kwargs: dict, overloaded: bool):
    f = figures(**kwargs)
    assert f.overloaded is overloaded
    assert ("OVERLOADED" in f.describe()) is overloaded


def test_healthy_quiet_run_has_no_problems():
    assert load_problems(HEALTHY, 540, ["SomeAlert/pending"], []) == []


def test_api_failures_latency_too_few_requests_alerts_and_notifications_are_problems():
    bad = {"requests": 500, "statuses": {"200": 480, "500": 15, "error": 5}, "p95_seconds": 2.5}
    problems = load_problems(bad, 540, ["HighErrorRate/firing"], [{"payload": {"status": "firing"}}])
    assert problems == ["only 500 requests (expected more than 540)", "20 of 500 requests failed (max 1%)",
                        "p95 latency 2.5s (max 2.0s)", "alerts fired: ['HighErrorRate/firing']",
                        "1 firing notification(s) reached the receiver"]


def test_an_unhealthy_api_on_a_calm_host_fails_it_used_to_skip():
    problems = load_problems({**HEALTHY, "statuses": {"200": 1900, "502": 100}}, 540, [], [])
    assert problems and decide(problems, figures(busy=2.0, lab=1.9), attempt=1, attempts=2) == "fail"


def test_an_overloaded_host_gets_one_more_attempt_then_fails():
    problems = ["p95 latency 3.1s (max 2.0s)"]
    busy = figures(busy=2.0, lab=0.4)
    assert decide(problems, busy, attempt=1, attempts=2) == "retry"
    assert decide(problems, busy, attempt=2, attempts=2) == "fail"
    assert decide([], busy, attempt=1, attempts=2) == "pass"
