"""Unit tests of the verdicts: figures in, status and reasons out, against the canonical thresholds.

The thresholds are read from _thresholds.THRESHOLDS at evaluation time; `test_verdicts_follow_the_canonical_table`
changes the table and shows the verdict moves with it (no copies of the numbers in the probes).
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.taskscheduler.ops.plugins.module_utils import _probes as probes
from ansible_collections.taskscheduler.ops.plugins.module_utils import _thresholds
from ansible_collections.taskscheduler.ops.plugins.module_utils._pg import Batch, Result
from ansible_collections.taskscheduler.ops.plugins.module_utils._verdict import (
    DEGRADED,
    DOWN,
    HEALTHY,
    SKIPPED,
    UNKNOWN,
    Area,
    worst,
)


def test_worst_ranks_statuses():
    assert worst([]) == SKIPPED
    assert worst([HEALTHY, SKIPPED]) == HEALTHY
    assert worst([HEALTHY, UNKNOWN]) == UNKNOWN
    assert worst([UNKNOWN, DEGRADED]) == DEGRADED
    assert worst([DEGRADED, DOWN, HEALTHY]) == DOWN


def test_area_summary_line():
    a = Area("queue")
    a.headline = "due now 3"
    a.flag(DEGRADED, "backlog")
    a.note("fyi")
    assert a.as_dict() == {"status": DEGRADED, "reasons": ["backlog"], "notes": ["fyi"], "error": None,
                           "summary": "queue       DEGRADED due now 3 | backlog"}


# --- containers ------------------------------------------------------------------------------------------
def c(name: str, service: str, state: str = "running", health: str = "healthy", **kw: Any) -> dict[str, Any]:
    out = {"name": name, "service": service, "state": state, "health": health, "restart_count": 0, "exit_code": 0,
           "oom_killed": False, "restart_policy": "unless-stopped", "cpu_percent": 1.0, "memory_bytes": 2**20,
           "memory_percent": 1.0}
    out.update(kw)
    return out


CORE = ("api", "postgres", "redis", "scheduler", "worker")


def healthy_containers() -> list[dict[str, Any]]:
    return [c("tsops-api-1", "api"), c("tsops-postgres-1", "postgres"), c("tsops-redis-1", "redis"),
            c("tsops-scheduler-1", "scheduler"), c("tsops-worker-1", "worker"), c("tsops-worker-2", "worker"),
            c("tsops-prometheus-1", "prometheus", health="none")]


def test_containers_healthy():
    a = probes.evaluate_containers(healthy_containers(), CORE, "tsops")
    assert a.status == HEALTHY and a.reasons == []
    assert a.figures["services"]["worker"] == {"running": 2, "total": 2}
    assert (a.figures["running"], a.figures["total"]) == (7, 7)
    assert a.headline.startswith("7/7 running, 0 unhealthy, 0 restarts; cpu 7.0%")


def test_containers_core_service_stopped_is_down():
    cs = healthy_containers()
    cs[0] = c("tsops-api-1", "api", state="exited", exit_code=137)
    a = probes.evaluate_containers(cs, CORE, "tsops")
    assert a.status == DOWN
    assert a.reasons == ["api: 0/1 running (tsops-api-1 exited exit 137)"]


def test_containers_missing_service_is_down_and_partial_replicas_degraded():
    cs = [x for x in healthy_containers() if x["service"] != "scheduler"]
    cs[-2] = c("tsops-worker-2", "worker", state="restarting")
    a = probes.evaluate_containers(cs, CORE, "tsops")
    assert a.status == DOWN
    assert "scheduler: no container" in a.reasons
    assert "worker: 1/2 running (tsops-worker-1 running, tsops-worker-2 restarting)" in a.reasons


def test_containers_auxiliary_unhealthy_memory_and_one_shots():
    cs = healthy_containers() + [
        c("tsops-postgres-exporter-1", "postgres-exporter", state="restarting"),
        c("tsops-loadgen-1", "loadgen", state="exited", restart_policy="no"),  # a finished one-shot: fine
    ]
    cs[1] = c("tsops-postgres-1", "postgres", health="unhealthy", memory_percent=95.0)
    a = probes.evaluate_containers(cs, CORE, "tsops")
    assert a.status == DEGRADED
    assert a.reasons == ["tsops-postgres-1: unhealthy",
                         "tsops-postgres-1: memory 95% of its limit (> 90%, MemoryUsageCritical)",
                         "tsops-postgres-exporter-1: restarting"]


# --- endpoints -------------------------------------------------------------------------------------------
def result(code: int = 200, t: float = 0.01, error: str | None = None, body: Any = None, **spec: Any) -> dict:
    out = {"name": "api /health", "url": "http://x/health", "area": "api", "severity": DOWN,
           "expect_status": [200], "status_code": code, "time_seconds": t, "error": error, "body": body,
           "samples": 1}
    out.update(spec)
    return out


def test_endpoint_ok_slow_refused_and_503_reason():
    assert probes.evaluate_endpoint(result(), result()) == []
    assert probes.evaluate_endpoint(result(t=2.5), result()) == [
        (DEGRADED, "api /health: 2.50s > 2s (HighAPILatency)")]
    assert probes.evaluate_endpoint(result(0, error="connection refused"), result()) == [
        (DOWN, "api /health: connection refused")]
    ready = result(503, body={"status": "unavailable", "reason": "postgres error: ConnectionRefusedError"},
                   name="api /health/ready", severity=DEGRADED)
    assert probes.evaluate_endpoint(ready, ready) == [
        (DEGRADED, "api /health/ready: HTTP 503: postgres error: ConnectionRefusedError")]


def attempts(*codes_times: tuple[int, float]) -> list[dict]:
    return [{"status_code": code, "time_seconds": t, "error": None if code else "timed out"} for code, t in codes_times]


def test_endpoint_samples_error_ratio_and_p95():
    ok = [(200, 0.01)] * 9
    r = result(attempts=attempts(*ok, (500, 0.01)), samples=10)  # 10% failing: not above the ratio
    assert probes.evaluate_endpoint(r, r) == []
    r = result(attempts=attempts(*ok[:8], (500, 0.01), (0, 5.0)), samples=10)
    assert probes.evaluate_endpoint(r, r) == [(DOWN, "api /health: 2/10 requests failed (> 10%, HighErrorRate)")]
    r = result(attempts=attempts((200, 0.1), (200, 0.1), (200, 3.0)), samples=3)
    assert probes.evaluate_endpoint(r, r) == [(DEGRADED, "api /health: p95 3.00s > 2s (HighAPILatency)")]
    r = result(0, error="timed out", attempts=attempts((0, 10.0), (0, 10.0)), samples=2)
    assert probes.evaluate_endpoint(r, r) == [(DOWN, "api /health: timed out (2/2 requests)")]


def test_endpoints_area_with_unconfigured_grafana():
    results = [result(name="prometheus", area="monitoring", severity=DEGRADED),
               {"name": "grafana", "url": None, "area": "monitoring"}]
    a = probes.evaluate_endpoints("monitoring", results)
    assert a.status == HEALTHY and a.notes == ["grafana: not configured"]
    assert a.headline == "prometheus 200 (0.010s), grafana not configured"
    assert probes.evaluate_endpoints("monitoring", [{"name": "grafana", "url": None}]).status == SKIPPED


def test_default_endpoints():
    eps = probes.default_endpoints("http://api:8080/", "http://prom:9090", None, "")
    assert [(e["name"], e["url"], e["area"], e["severity"]) for e in eps] == [
        ("api /health", "http://api:8080/health", "api", DOWN),
        ("api /health/ready", "http://api:8080/health/ready", "api", DEGRADED),
        ("prometheus", "http://prom:9090/-/healthy", "monitoring", DEGRADED),
        ("alertmanager", None, "monitoring", DEGRADED),
        ("grafana", None, "monitoring", DEGRADED)]


# --- database areas --------------------------------------------------------------------------------------
SERVER = {"version": "15.18 (Debian 15.18-0+deb12u1)", "version_full": "PostgreSQL 15.18", "database": "orchestrator",
          "size_bytes": 8 * 2**20, "uptime_seconds": 100, "in_recovery": False, "max_connections": 100,
          "connections_total": 8, "connections_by_state": {"idle": 7, "active": 1}, "long_running_queries": 0,
          "longest_query_seconds": 0.01, "waiting_on_locks": 0}
TASKS = {"active": 12, "paused": 1, "disabled": 0, "total": 13, "overdue": 0, "most_overdue_seconds": 0,
         "last_queued_at": "2025-01-10T09:00:00+00:00", "last_queued_age_seconds": 0.4}


def test_postgres_healthy_with_slow_statements_available():
    slow = Result({"available": True, "source": "pg_stat_statements.total_exec_time",
                   "statements": [{"query": "SELECT 1", "mean_ms": 0.1, "calls": 10, "total_ms": 1.0}]})
    a = probes.evaluate_postgres(Result(SERVER), Result(TASKS), slow, "psql in container x")
    assert a.status == HEALTHY
    assert a.figures["active_tasks"] == 12 and a.figures["connections_used_ratio"] == 0.08
    assert a.figures["slow_statements"]["over_threshold"] == 0
    assert a.headline == "PostgreSQL 15.18, 8.0 MiB, 8/100 connections (7 idle, 1 active), 12 active tasks"


def test_postgres_slow_and_long_running_are_degraded():
    server = dict(SERVER, long_running_queries=2, longest_query_seconds=95.5)
    slow = Result({"available": True, "statements": [
        {"query": "SELECT pg_sleep(2)", "mean_ms": 2001.3, "calls": 3, "total_ms": 6004.0},
        {"query": "SELECT 1", "mean_ms": 0.1, "calls": 10, "total_ms": 1.0}]})
    a = probes.evaluate_postgres(Result(server), Result(TASKS), slow)
    assert a.status == DEGRADED
    assert a.reasons == [
        "2 queries active for more than 30s (longest 95.5s, DatabaseSlowQueries)",
        "1 statements average more than 1000 ms (worst 2001 ms: SELECT pg_sleep(2), DatabaseSlowQueries)"]


def test_postgres_without_pg_stat_statements_is_a_note():
    slow = Result({"available": False, "statements": [], "reason": "extension pg_stat_statements is not installed"})
    a = probes.evaluate_postgres(Result(SERVER), Result(error='relation "task" does not exist'), slow)
    assert a.status == HEALTHY and a.figures["active_tasks"] is None
    assert a.notes == ['task counts unavailable: relation "task" does not exist',
                       "slow statements unavailable: extension pg_stat_statements is not installed"]


def test_database_unreachable_postgres_down_the_rest_unknown():
    batch = Batch({}, False, "service 'postgres' has no running container (tsops-postgres-1 exited)")
    areas = probes.evaluate_database(batch, ["postgres", "queue", "workers", "scheduler", "processing"], 2)
    assert areas["postgres"].status == DOWN
    assert areas["postgres"].reasons == [
        "database unreachable: service 'postgres' has no running container (tsops-postgres-1 exited)"]
    assert areas["postgres"].figures["reachable"] is False
    assert {n: a.status for n, a in areas.items() if n != "postgres"} == dict.fromkeys(
        ["queue", "workers", "scheduler", "processing"], UNKNOWN)
    assert areas["queue"].reasons == ["not assessed: database unreachable"]


def test_database_unknown_when_docker_cannot_be_asked():
    batch = Batch({}, False, "Docker daemon unreachable")
    areas = probes.evaluate_database(batch, ["postgres"], unreachable_status=UNKNOWN)
    assert areas["postgres"].status == UNKNOWN


QUEUE = {"due_now": 0, "locked": 2, "retry_wait": 0, "future": 1, "expired_leases": 0, "unfinished": 3,
         "oldest_due_at": None, "newest_due_at": None, "oldest_pending_age_seconds": 0}


def test_queue_backlog():
    assert probes.evaluate_queue(Result(QUEUE)).status == HEALTHY
    a = probes.evaluate_queue(Result(dict(QUEUE, due_now=200, oldest_pending_age_seconds=612.3, expired_leases=1)))
    assert a.status == DEGRADED
    assert a.reasons == ["backlog: 200 due items, oldest waiting 612s (> 300s)"]
    assert a.notes[0].startswith("1 leases expired")
    assert a.headline == "due now 200, locked 2, future 1, retry 0, oldest pending 612s"


def test_queue_query_failure_is_unknown():
    a = probes.evaluate_queue(Result(error="canceling statement due to statement timeout"))
    assert a.status == UNKNOWN and a.error == "query failed: canceling statement due to statement timeout"


WORKERS = {"window_seconds": 120, "alive": 2, "stale": 0, "stopped_last_hour": 0, "known": 2,
           "processed_count_alive": 500, "failed_count_alive": 1, "last_heartbeat_age_seconds": 1.0, "workers": []}


@pytest.mark.parametrize("alive,expected,status,reason", [
    (2, 2, HEALTHY, None),
    (1, 2, HEALTHY, None),  # 50% is not below the WorkerHealthDegraded ratio
    (1, 3, DEGRADED, "1/3 workers alive (< 50%, WorkerHealthDegraded)"),
    (0, 2, DOWN, "no worker heartbeat within 120s (last 131.0s ago, NoActiveWorkers)"),
    (0, None, DOWN, "no worker heartbeat within 120s (last 131.0s ago, NoActiveWorkers)"),
    (1, None, HEALTHY, None),
])
def test_workers(alive, expected, status, reason):
    data = dict(WORKERS, alive=alive, last_heartbeat_age_seconds=131.0 if alive == 0 else 1.0)
    a = probes.evaluate_workers(Result(data), expected)
    assert a.status == status
    assert a.reasons == ([reason] if reason else [])
    assert a.figures["alive_ratio"] == (round(alive / expected, 4) if expected else None)


def test_workers_partial_and_stale_are_notes():
    a = probes.evaluate_workers(Result(dict(WORKERS, alive=1, stale=1)), 2)
    assert a.notes == ["1 of 2 expected workers alive",
                       "1 workers stopped heartbeating in the last hour without a clean stop"]


def test_workers_more_than_expected_is_a_note():
    a = probes.evaluate_workers(Result(dict(WORKERS, alive=4)), 2)
    assert a.status == HEALTHY and a.notes[0].startswith("4 workers alive, 2 expected")


def test_scheduler_overdue():
    assert probes.evaluate_scheduler(Result(TASKS)).status == HEALTHY
    a = probes.evaluate_scheduler(Result(dict(TASKS, overdue=3, most_overdue_seconds=180.2)))
    assert a.status == DEGRADED
    assert a.reasons == ["3 active tasks overdue by more than 60s (most 180.2s, SchedulerOffline)"]
    assert a.figures["active_tasks"] == 12


PROCESSING = {"window_minutes": 60, "completed": 990, "failed": 10, "running": 1, "avg_duration_seconds": 0.052,
              "p95_duration_seconds": 0.06, "error_ratio": 0.0101, "last_finished_at": None,
              "per_minute": [{"minute": "m1", "created": 60, "completed": 59, "failed": 1},
                             {"minute": "m0", "created": 58, "completed": 58, "failed": 0}]}


def test_processing():
    a = probes.evaluate_processing(Result(PROCESSING))
    assert a.status == HEALTHY and a.figures["created_per_minute_avg"] == 59.0
    assert a.headline == "last hour 990 completed (avg 0.052s), 10 failed (1.0%)"
    a = probes.evaluate_processing(Result(dict(PROCESSING, error_ratio=0.25)))
    assert a.status == DEGRADED and a.reasons == ["25% of task runs failed in the last hour (> 10%)"]


# --- redis, host, logs -----------------------------------------------------------------------------------
def test_redis_verdicts():
    info = {"redis_version": "7.0.15", "used_memory": 950, "maxmemory": 1000, "db0": {"keys": 2},
            "rdb_last_bgsave_status": "err", "loading": 0}
    a = probes.evaluate_redis(info, None)
    assert a.status == DEGRADED and a.figures["keys_total"] == 2 and a.figures["memory_used_ratio"] == 0.95
    assert a.reasons == ["memory 95% of maxmemory (> 90%)", "rdb_last_bgsave_status is err: persistence is failing"]
    down = probes.evaluate_redis(None, "Could not connect to Redis")
    assert down.status == DOWN and down.figures == {"ping": None}


def test_host_verdicts():
    disks = [{"path": "/", "free_ratio": 0.3, "inodes_free_ratio": 0.9},
             {"path": "/var/lib/docker", "free_ratio": 0.05, "inodes_free_ratio": 0.9}]
    mem = {"used_ratio": 0.95, "total_bytes": 2**30}
    a = probes.evaluate_host(mem, disks, {"cpus": 2, "load_1m": 0.5})
    assert a.status == DEGRADED
    assert a.reasons == ["disk /var/lib/docker: 5% free (< 10%, DiskSpaceCritical)",
                         "memory 95% used (> 90%, MemoryUsageCritical)"]
    assert a.headline == "lowest disk /var/lib/docker 5% free, memory 95% used of 1.0 GiB, load 0.5 on 2 cpus"


def test_logs_are_evidence_not_a_verdict():
    per = {"tsops-postgres-1": {"matches": 3, "lines_read": 40, "last": ["FATAL: x"]},
           "tsops-api-1": {"matches": 0, "lines_read": 10, "last": []}}
    a = probes.evaluate_logs(per, 900, probes.LOG_PATTERN)
    assert a.status == HEALTHY and a.figures["error_lines"] == 3
    assert a.headline == "3 error lines in the last 15m (tsops-postgres-1 3)"
    unread = probes.evaluate_logs({}, 900, probes.LOG_PATTERN, ["tsops-api-1: Docker daemon unreachable"])
    assert unread.status == UNKNOWN


# --- the thresholds are the canonical ones ---------------------------------------------------------------
def test_verdicts_follow_the_canonical_table(monkeypatch):
    data = Result(dict(WORKERS, alive=2))
    assert probes.evaluate_workers(data, 3).status == HEALTHY  # 67% >= 50%
    monkeypatch.setitem(_thresholds.THRESHOLDS, "workers_alive_ratio_min", 0.75)
    assert probes.evaluate_workers(data, 3).status == DEGRADED
    monkeypatch.setitem(_thresholds.THRESHOLDS, "queue_oldest_pending_seconds_max", 10)
    assert probes.evaluate_queue(Result(dict(QUEUE, oldest_pending_age_seconds=11))).status == DEGRADED
    monkeypatch.setitem(_thresholds.THRESHOLDS, "api_latency_seconds_max", 0.001)
    assert probes.evaluate_endpoint(result(), result())[0][0] == DEGRADED


def test_assemble_overall():
    ok, bad = Area("api"), Area("workers")
    bad.flag(DOWN, "no worker heartbeat")
    out = probes.assemble({"api": ok, "workers": bad}, "2025-01-10T09:00:00+00:00", 1.0)
    assert (out["status"], out["down"], out["degraded"], out["unknown"]) == (DOWN, ["workers"], [], [])
    assert out["summary"] == ["api         HEALTHY ", "workers     DOWN     | no worker heartbeat"]
    assert out["thresholds"] == _thresholds.THRESHOLDS


def test_settings_empty_service_list_means_none():
    assert probes.Settings({}).services == list(probes.CORE_SERVICES)
    s = probes.Settings({"services": []})
    assert s.services == [] and s.log_services == []
    assert probes.Settings({"services": ["api"], "log_services": None}).log_services == ["api"]


def test_workers_heartbeats_from_stopped_containers_do_not_count():
    data = dict(WORKERS, alive=2, workers=[
        {"worker_id": "aaaaaaaaaaaa", "hostname": "aaaaaaaaaaaa", "alive": True, "status": "running"},
        {"worker_id": "w-2", "hostname": "bbbbbbbbbbbb", "alive": True, "status": "running"},
        {"worker_id": "cccccccccccc", "hostname": "cccccccccccc", "alive": False, "status": "stopped"}])
    a = probes.evaluate_workers(Result(data), 2, {"aaaaaaaaaaaa": "exited", "bbbbbbbbbbbb": "exited",
                                                  "cccccccccccc": "exited"})
    assert a.status == DOWN and a.figures["alive"] == 0 and a.figures["heartbeat_alive"] == 2
    assert a.notes[0] == ("2 heartbeats within the window come from containers that are not running "
                          "(aaaaaaaaaaaa, w-2): not counted as alive")
    assert [w["container_state"] for w in a.figures["workers"][:2]] == ["exited", "exited"]
    # Heartbeats from elsewhere (another host, unknown containers) still count.
    b = probes.evaluate_workers(Result(dict(data, workers=[dict(w) for w in data["workers"]])), 2, {"zzz": "exited"})
    assert b.status == HEALTHY and b.figures["alive"] == 2
