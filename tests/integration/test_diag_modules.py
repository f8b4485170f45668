"""The per-area diagnostic modules against the real, healthy lab, in one ansible-playbook run.

Covers both transports (docker exec and TCP: psycopg for PostgreSQL, RESP for Redis), pg_stat_statements absent
(the lab's maintenance database has no extension), the shared options of the action group through
module_defaults, and check mode (same verdicts, nothing changed).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from diag_support import REPO, ansible_bin, container_states

from lab import Lab

MODULES = ["container_info", "http_check", "postgres_info", "postgres_info_tcp", "postgres_info_no_pss",
           "redis_info", "redis_info_tcp", "work_queue_info", "host_resources_info", "service_logs_info",
           "system_health", "system_health_check_mode"]


def ip_of(lab: Lab, service: str) -> str:
    return lab.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                      lab.container(service)).stdout.split()[0]


def playbook(out: Path) -> list[dict[str, Any]]:
    api = "{{ tsops_api_url }}"
    tasks: list[dict[str, Any]] = [
        {"name": "container_info", "taskscheduler.ops.container_info": {}, "register": "container_info"},
        {"name": "http_check", "register": "http_check", "taskscheduler.ops.http_check": {
            "http_samples": 3,
            "endpoints": [{"name": "api /health", "url": api + "/health"},
                          {"name": "api /health/ready", "url": api + "/health/ready", "severity": "degraded"},
                          {"name": "prometheus", "url": "{{ tsops_prometheus_url }}/-/healthy", "area": "monitoring"},
                          {"name": "grafana", "url": "", "area": "monitoring"}]}},
        {"name": "postgres_info", "taskscheduler.ops.postgres_info": {}, "register": "postgres_info"},
        {"name": "postgres_info over TCP", "register": "postgres_info_tcp", "taskscheduler.ops.postgres_info": {
            "db_transport": "tcp", "db_host": "{{ pg_ip }}", "db_sslmode": "disable", "slow_statements": 2}},
        {"name": "postgres_info without pg_stat_statements", "register": "postgres_info_no_pss",
         "taskscheduler.ops.postgres_info": {"db_name": "postgres"}},
        {"name": "redis_info", "taskscheduler.ops.redis_info": {}, "register": "redis_info"},
        {"name": "redis_info over TCP", "register": "redis_info_tcp", "taskscheduler.ops.redis_info": {
            "redis_transport": "tcp", "redis_host": "{{ redis_ip }}"}},
        {"name": "work_queue_info", "register": "work_queue_info", "taskscheduler.ops.work_queue_info": {
            "expected_workers": "{{ tsops_expected_workers }}", "queue_depth_minutes": 5}},
        {"name": "host_resources_info", "register": "host_resources_info",
         "taskscheduler.ops.host_resources_info": {"disk_paths": ["/tmp"]}},
        {"name": "service_logs_info", "register": "service_logs_info",
         "taskscheduler.ops.service_logs_info": {"log_since": "1h", "log_pattern": "INFO", "log_lines": 2}},
        {"name": "system_health", "register": "system_health", "taskscheduler.ops.system_health": {
            "api_url": api, "expected_workers": "{{ tsops_expected_workers }}", "include_stats": False}},
        {"name": "system_health in check mode", "register": "system_health_check_mode", "check_mode": True,
         "taskscheduler.ops.system_health": {"api_url": api, "expected_workers": "{{ tsops_expected_workers }}",
                                             "include_stats": False}},
        {"name": "save", "delegate_to": "localhost", "ansible.builtin.copy": {
            "dest": str(out), "mode": "0644",
            "content": "{{ {" + ", ".join(f"'{m}': {m}" for m in MODULES) + "} | to_json }}"}},
    ]
    return [{"name": "diagnostic modules", "hosts": "lab", "gather_facts": False,
             "module_defaults": {"group/taskscheduler.ops.diagnostics": {
                 "project": "{{ tsops_compose_project }}", "db_password": "{{ tsops_db_password }}"}},
             "tasks": tasks}]


@pytest.fixture(scope="module")
def results(lab: Lab, tmp_path_factory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("diag_modules")
    out = work / "results.json"
    (work / "play.yml").write_text(yaml.safe_dump(playbook(out), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    before = container_states(lab)
    proc = subprocess.run([ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(work / "play.yml"),
                           "-e", f"pg_ip={ip_of(lab, 'postgres')}", "-e", f"redis_ip={ip_of(lab, 'redis')}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert container_states(lab) == before
    data = json.loads(out.read_text())
    data["_stdout"] = proc.stdout
    return data


def test_no_module_changes_anything(results):
    for name in MODULES:
        assert results[name]["changed"] is False, name


def test_container_info(results, lab: Lab):
    r = results["container_info"]
    assert r["status"] == "healthy", r["reasons"]
    assert r["project"] == lab.instance and r["running"] == r["total"] >= 11
    api = next(c for c in r["containers"] if c["service"] == "api")
    assert api["name"] == f"{lab.instance}-api-1" and api["state"] == "running" and api["health"] == "healthy"
    assert api["uptime_seconds"] > 0 and api["memory_bytes"] > 0 and api["cpu_percent"] >= 0


def test_http_check(results):
    r = results["http_check"]
    # A loaded host may answer slower than HighAPILatency allows; that, and only that, may degrade it.
    assert r["status"] == "healthy" or all("HighAPILatency" in x for x in r["reasons"]), r["reasons"]
    by_name = {e["name"]: e for e in r["endpoints"]}
    assert by_name["api /health"]["samples"] == 3 and by_name["api /health"]["body"]["status"] == "ok"
    assert by_name["api /health/ready"]["body"]["status"] == "ready"
    assert by_name["grafana"]["status"] == "skipped" and r["notes"] == ["grafana: not configured"]
    assert len(r["summary"]) == 2


@pytest.mark.parametrize("name", ["postgres_info", "postgres_info_tcp"])
def test_postgres_info_both_transports(results, name):
    r = results[name]
    assert r["status"] == "healthy" and r["reachable"] is True, r["reasons"]
    assert r["server_version_num"] >= 150000 and r["database"] == "orchestrator" and r["size_bytes"] > 0
    assert r["connections_total"] >= 1 and sum(r["connections_by_state"].values()) >= 1
    assert isinstance(r["active_tasks"], int)
    slow = r["slow_statements"]
    assert slow["available"] is True and slow["source"] == "pg_stat_statements.total_exec_time"
    assert len(slow["statements"]) == (5 if name == "postgres_info" else 2)
    assert r["via"].startswith("psql in container" if name == "postgres_info" else "PostgreSQL at ")


def test_postgres_info_without_pg_stat_statements(results):
    r = results["postgres_info_no_pss"]
    assert r["status"] == "healthy" and r["database"] == "postgres"
    assert r["slow_statements"]["available"] is False
    assert r["slow_statements"]["reason"].startswith("extension pg_stat_statements is not installed")
    assert any(n.startswith("slow statements unavailable") for n in r["notes"])


@pytest.mark.parametrize("name", ["redis_info", "redis_info_tcp"])
def test_redis_info_both_transports(results, name):
    r = results[name]
    assert r["status"] == "healthy" and r["ping"] == "PONG" and r["version"].startswith("7.")
    assert r["role"] == "master" and r["used_memory_bytes"] > 0


def test_work_queue_info(results):
    r = results["work_queue_info"]
    assert r["status"] == "healthy", r["reasons"]
    assert {"queue", "workers", "scheduler", "processing"} <= set(r)
    assert r["workers"]["alive"] >= r["workers"]["expected"] >= 1
    assert r["queue"]["oldest_pending_age_seconds"] < 300
    assert len(r["processing"]["per_minute"]) == 5 and len(r["summary"]) == 4


def test_host_resources_info(results):
    r = results["host_resources_info"]
    assert r["memory"]["total_bytes"] > 0 and r["load"]["cpus"] >= 1
    paths = [d["path"] for d in r["disks"]] + [p for d in r["disks"] for p in d.get("also", [])]
    assert "/tmp" in paths or any(Path("/tmp").resolve().is_relative_to(p) for p in paths)


def test_service_logs_info(results, lab: Lab):
    r = results["service_logs_info"]
    assert r["status"] == "healthy" and r["since_seconds"] == 3600
    api = r["containers"][f"{lab.instance}-api-1"]
    assert api["matches"] >= 1 and 1 <= len(api["last"]) <= 2 and all("INFO" in line for line in api["last"])


def test_system_health_check_mode_same_verdicts(results):
    real, check = results["system_health"], results["system_health_check_mode"]
    assert real["status"] == "healthy", real["summary"]
    assert {k: a["status"] for k, a in real["areas"].items()} == {k: a["status"] for k, a in check["areas"].items()}
    assert real["thresholds"]["workers_alive_ratio_min"] == 0.5


def test_password_never_returned(results, lab: Lab):
    secret = lab.env["POSTGRES_PASSWORD"]
    text = json.dumps({k: v for k, v in results.items() if k != "_stdout"}) + results["_stdout"]
    assert secret not in text
