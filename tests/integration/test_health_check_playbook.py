"""playbooks/health_check.yml and playbooks/performance_check.yml against the real lab.

A healthy lab is all green and the play succeeds; each broken state of the runbook's incidents (API stopped,
PostgreSQL stopped, workers stopped, a queue backlog) turns the right area red with the right figures, the play
still writes its JSON and Markdown reports, and exits non-zero when something is down. Every breaking test uses
`healthy_lab`, which brings the lab back (lab.sh up) afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from diag_support import Run, container_states, drop_backlog, make_backlog, run_playbook

from lab import Lab

AREAS = ["containers", "api", "monitoring", "postgres", "redis", "queue", "workers", "scheduler", "processing",
         "host", "logs"]
DB_READ = ["queue", "workers", "scheduler", "processing"]


def health_check(lab: Lab, tmp_path: Path, *args: str) -> Run:
    return run_playbook(lab, "playbooks/health_check.yml", tmp_path, *args)


def assert_report_written(run: Run) -> None:
    assert run.report is not None and run.markdown is not None, run.explain()
    assert run.report["check"] == "health_check" and set(run.report["hosts"]) == {"lab"}
    assert run.markdown.startswith(f"# Health check: {run.report['status'].upper()}")
    for area in AREAS:
        assert f"| {area} |" in run.markdown


def healthy_run(lab: Lab, tmp_path: Path, attempts: int = 3) -> Run:
    """The health check of a healthy lab; retried because a loaded host can flap a container's healthcheck."""
    run = None
    for i in range(attempts):
        run = health_check(lab, tmp_path / f"attempt{i}")
        if run.rc == 0 and set(run.statuses().values()) == {"healthy"}:
            break
    return run


def test_healthy_lab_is_all_green(lab: Lab, tmp_path: Path):
    run = healthy_run(lab, tmp_path)
    assert run.rc == 0, run.explain()
    assert_report_written(run)
    assert run.statuses() == dict.fromkeys(AREAS, "healthy"), run.explain()
    host = run.host()
    assert host["status"] == "healthy" and host["down"] == [] and run.report["status"] == "healthy"
    # Key figures are there, and right.
    assert host["areas"]["containers"]["services"]["worker"]["running"] == int(lab.env.get("LAB_WORKERS", 2))
    assert host["areas"]["postgres"]["reachable"] is True and host["areas"]["postgres"]["version"].startswith("15")
    assert host["areas"]["redis"]["ping"] == "PONG"
    # At least the expected workers (replaced workers' heartbeats count until they age out of the window).
    assert host["areas"]["workers"]["alive"] >= host["areas"]["workers"]["expected"] >= 1
    assert [e["status_code"] for e in host["areas"]["api"]["endpoints"]] == [200, 200]
    # One summary line per area in the output.
    for area in AREAS:
        assert f"{area:<11} HEALTHY" in run.stdout, area


def test_each_host_checks_what_its_groups_call_for(lab: Lab, tmp_path: Path):
    """A second host in the monitoring group only: no core service is expected there, no database area."""
    inventory = yaml.safe_load(lab.inventory.read_text())
    inventory["all"]["children"]["monitoring"]["hosts"]["mon"] = {}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    run = run_playbook(lab, "playbooks/health_check.yml", tmp_path / "reports", inventory=tmp_path / "inventory.yml")
    assert run.report is not None and set(run.report["hosts"]) == {"lab", "mon"}, run.explain()
    assert set(run.host("mon")["areas"]) == {"containers", "monitoring", "host", "logs"}
    assert run.area("containers", "mon")["status"] == "healthy"  # the API's container is not required here
    assert run.area("logs", "mon")["containers"] == {}
    assert len(run.host("lab")["areas"]) == len(AREAS)
    assert "## lab: " in run.markdown and "## mon: " in run.markdown
    assert "Health check of mon:" in run.stdout and "Health check of lab:" in run.stdout


def test_check_mode_changes_nothing(lab: Lab, tmp_path: Path):
    before = container_states(lab)
    run = health_check(lab, tmp_path, "--check")
    assert run.report is not None, run.explain()
    assert container_states(lab) == before
    assert set(run.statuses().values()) <= {"healthy", "degraded"}, run.explain()


def test_api_stopped_is_down(healthy_lab: Lab, tmp_path: Path):
    healthy_lab.compose("stop", "api")
    run = health_check(healthy_lab, tmp_path)
    assert run.rc != 0, run.explain()
    assert_report_written(run)
    api = run.area("api")
    assert api["status"] == "down"
    health = next(e for e in api["endpoints"] if e["name"] == "api /health")
    assert (health["status_code"], health["error"]) == (0, "connection refused")
    assert "api /health: connection refused" in api["reasons"]
    containers = run.area("containers")
    assert containers["status"] == "down" and containers["services"]["api"] == {"running": 0, "total": 1}
    assert any(r.startswith("api: 0/1 running") for r in containers["reasons"])
    # Everything behind the API is still reported, and healthy.
    assert {a: run.statuses()[a] for a in ["postgres", "redis", "queue", "workers"]} == dict.fromkeys(
        ["postgres", "redis", "queue", "workers"], "healthy")
    assert "Fail when an area is down or unknown" in run.stdout and "api down" in run.stdout


def test_postgres_stopped_is_down(healthy_lab: Lab, tmp_path: Path):
    healthy_lab.compose("stop", "postgres")
    run = health_check(healthy_lab, tmp_path)
    assert run.rc != 0, run.explain()
    assert_report_written(run)
    pg = run.area("postgres")
    assert pg["status"] == "down" and pg["reachable"] is False
    assert pg["reasons"][0].startswith("database unreachable: service 'postgres' has no running container")
    for area in DB_READ:
        assert run.area(area)["status"] == "unknown", area
        assert run.area(area)["reasons"] == ["not assessed: database unreachable"]
    api = run.area("api")
    ready = next(e for e in api["endpoints"] if e["name"] == "api /health/ready")
    assert ready["status_code"] == 503 and "postgres" in ready["body"]["reason"]
    assert api["status"] == "degraded"
    assert run.area("containers")["services"]["postgres"]["running"] == 0
    assert run.area("redis")["status"] == "healthy"


def test_workers_stopped_is_down(healthy_lab: Lab, tmp_path: Path):
    healthy_lab.compose("stop", "worker")
    run = health_check(healthy_lab, tmp_path)
    assert run.rc != 0, run.explain()
    assert_report_written(run)
    workers = run.area("workers")
    assert workers["status"] == "down" and workers["alive"] == 0 and workers["alive_ratio"] == 0
    assert "NoActiveWorkers" in workers["reasons"][0]
    assert workers["stopped_last_hour"] >= int(healthy_lab.env.get("LAB_WORKERS", 2))
    containers = run.area("containers")
    assert containers["services"]["worker"]["running"] == 0 and containers["status"] == "down"
    # The rest is still up (a loaded host may make the API slow, never down).
    assert run.area("postgres")["reachable"] is True and run.area("api")["status"] != "down"


def test_workers_killed_are_down_at_once(healthy_lab: Lab, tmp_path: Path):
    """SIGKILL: no clean stop, the heartbeats stay fresh for the whole window; their containers tell the truth."""
    healthy_lab.compose("kill", "worker")
    run = health_check(healthy_lab, tmp_path)
    assert run.rc != 0, run.explain()
    workers = run.area("workers")
    assert workers["status"] == "down" and workers["alive"] == 0, workers
    assert workers["heartbeat_alive"] >= 1
    assert any("come from containers that are not running" in n for n in workers["notes"])
    assert {w["container_state"] for w in workers["workers"] if "container_state" in w} == {"exited"}


def test_queue_backlog_is_degraded(healthy_lab: Lab, tmp_path: Path):
    healthy_lab.compose("stop", "worker")
    # 200 overdue items, and beside them what the runbook's queries miscount: 60 finished rows (counted as due and
    # as locked by `COUNT(*)` and `locked_until IS NOT NULL`), 20 validly leased, 30 not due yet.
    name = make_backlog(healthy_lab, count=200, minutes_overdue=10, finished=60, leased=20, future=30)
    try:
        run = health_check(healthy_lab, tmp_path)
    finally:
        drop_backlog(healthy_lab, name)
    assert run.rc != 0, run.explain()  # the workers are down
    assert_report_written(run)
    queue = run.area("queue")
    assert queue["status"] == "degraded", run.explain()
    # Other tasks of a busy lab may add a few due items while the workers are stopped, never 60.
    assert 200 <= queue["due_now"] < 260 and 20 <= queue["locked"] < 80 and queue["future"] >= 30, queue
    assert queue["oldest_pending_age_seconds"] >= 600
    assert queue["reasons"][0].startswith(f"backlog: {queue['due_now']} due items, oldest waiting")
    assert run.area("workers")["status"] == "down"
    assert "| Due now | Locked |" in run.markdown and f"| {queue['due_now']} |" in run.markdown


def test_performance_check(lab: Lab, tmp_path: Path):
    run = run_playbook(lab, "playbooks/performance_check.yml", tmp_path)
    assert run.report is not None and run.report["check"] == "performance_check", run.explain()
    host = run.host()
    assert set(host["areas"]) == {"containers", "api", "postgres", "queue", "workers", "processing", "host"}
    health = next(e for e in host["areas"]["api"]["endpoints"] if e["name"] == "api /health")
    assert health["samples"] == 5 and len(health["attempts"]) == 5
    assert set(health["time_stats"]) == {"min", "avg", "p95", "max"}
    slow = host["areas"]["postgres"]["slow_statements"]
    assert slow["available"] is True and slow["source"] == "pg_stat_statements.total_exec_time"
    assert 1 <= len(slow["statements"]) <= 5 and {"query", "calls", "mean_ms", "total_ms"} <= set(slow["statements"][0])
    assert len(host["areas"]["processing"]["per_minute"]) == 30
    assert run.markdown.startswith("# Performance check") and "#### Slowest statements" in run.markdown
    assert run.rc == (0 if not (set(run.statuses().values()) & {"down", "unknown"}) else 2), run.explain()


@pytest.mark.parametrize("playbook", ["playbooks/health_check.yml", "playbooks/performance_check.yml"])
def test_playbooks_pass_syntax_check(lab: Lab, tmp_path: Path, playbook: str):
    run = run_playbook(lab, playbook, tmp_path, "--syntax-check")
    assert run.rc == 0, run.explain()
