"""The lab itself: a real, breakable task scheduling system (issue 2).

Each test drives the running stack through its real interfaces (HTTP, SQL, Docker) and checks the
behaviour the runbook relies on. Tests that break something restore the lab afterwards.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import uuid

import pytest

from lab import Lab, wait_until

SERVICES = ["postgres", "redis", "api", "scheduler", "worker", "receiver", "postgres-exporter", "redis-exporter",
            "node-exporter", "prometheus", "alertmanager"]


def make_task(lab: Lab, duration_ms: int = 20, status: str = "paused", interval: int = 3600) -> int:
    status_code, body = lab.http("POST", "/api/v1/tasks", {
        "name": f"it-{uuid.uuid4().hex[:10]}", "interval_seconds": interval, "status": status,
        "payload": {"duration_ms": duration_ms}})
    assert status_code == 201, body
    return body["id"]


def queue_work(lab: Lab, task_id: int, count: int) -> tuple[int, int]:
    """Insert `count` due rows for a task in one statement; returns the (min, max) due_work ids."""
    out = lab.psql(f"WITH i AS (INSERT INTO due_work (task_id, run_at) SELECT {task_id}, now() "
                   f"FROM generate_series(1, {count}) RETURNING id) SELECT min(id) || ',' || max(id) FROM i")
    lo, hi = out.split(",")
    return int(lo), int(hi)


def health_of(lab: Lab) -> dict[str, list[str]]:
    """service -> list of 'state/health' of its containers."""
    proc = lab.compose("ps", "-a", "--format", "json")
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("["):
            rows.extend(json.loads(line))
        elif line:
            rows.append(json.loads(line))
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["Service"], []).append(f"{r['State']}/{r.get('Health') or '-'}")
    return out


def test_every_service_runs_and_is_healthy(lab: Lab):
    states = health_of(lab)
    for svc in SERVICES:
        assert svc in states, f"{svc} missing from the lab: {states}"
        for s in states[svc]:
            assert s.startswith("running"), f"{svc}: {s}"
            assert not s.endswith("/unhealthy") and not s.endswith("/starting"), f"{svc}: {s}"
    assert len(states["worker"]) == int(lab.env.get("LAB_WORKERS", "2"))
    assert lab.status_of("/health") == 200
    status, body = lab.http("GET", "/health/ready", token=None)
    assert status == 200 and body["checks"] == {"postgres": "ok", "redis": "ok"}, body
    # the runbook's own probes answer inside the containers
    assert "accepting connections" in lab.docker("exec", lab.container("postgres"), "pg_isready", "-U",
                                                 "orchestrator").stdout
    assert lab.docker("exec", lab.container("redis"), "redis-cli", "ping").stdout.strip() == "PONG"
    assert lab.scalar("SELECT count(*) FROM pg_extension WHERE extname IN ('pg_stat_statements', 'amcheck')") == 2


def test_prometheus_scrapes_every_target(lab: Lab):
    def all_up():
        _status, body = lab.http("GET", "/api/v1/targets", token=None, base=lab.url("prometheus"))
        targets = body["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t["health"] for t in targets}
        return jobs if len(jobs) >= 8 and all(h == "up" for h in jobs.values()) else None

    jobs = wait_until(all_up, timeout=60, what="all prometheus targets up")
    assert {"api", "scheduler", "worker", "postgres", "redis", "node", "alertmanager"} <= set(jobs)


def test_tasks_flow_end_to_end_at_a_measured_rate(lab: Lab):
    # A scheduled task: the scheduler turns it into due_work, a worker runs it, task_run records success.
    scheduled = make_task(lab, status="active", interval=1, duration_ms=10)
    wait_until(lambda: lab.scalar(f"SELECT count(*) FROM task_run WHERE task_id = {scheduled} AND success") >= 3,
               timeout=30, what="three successful scheduled runs")
    lab.http("POST", f"/api/v1/tasks/{scheduled}/pause")
    # Throughput: a burst of 600 due rows, timed from insert to the last success.
    task_id = make_task(lab, duration_ms=10)
    n = 600
    t0 = time.monotonic()
    lo, hi = queue_work(lab, task_id, n)
    wait_until(lambda: lab.scalar(f"SELECT count(*) FROM due_work WHERE id BETWEEN {lo} AND {hi} AND status = 'done'")
               == n, timeout=120, interval=0.2, what=f"{n} due rows done")
    elapsed = time.monotonic() - t0
    rate = n / elapsed
    print(f"\nTHROUGHPUT: {n} work items in {elapsed:.2f}s = {rate:.0f} items/s "
          f"({lab.env.get('LAB_WORKERS', '2')} workers)")
    assert lab.scalar(f"SELECT count(*) FROM task_run WHERE due_work_id BETWEEN {lo} AND {hi} AND success") == n
    assert rate > 5, f"throughput collapsed: {rate:.1f}/s"


def test_no_due_work_row_runs_twice_or_concurrently(lab: Lab):
    task_id = make_task(lab, duration_ms=30)
    n = 400
    lo, hi = queue_work(lab, task_id, n)
    wait_until(lambda: lab.scalar(f"SELECT count(*) FROM due_work WHERE id BETWEEN {lo} AND {hi} "
                                  f"AND status = 'done'") == n, timeout=120, what="all rows done")
    # exactly one run per row ...
    dup = lab.psql(f"SELECT due_work_id, count(*) FROM task_run WHERE due_work_id BETWEEN {lo} AND {hi} "
                   f"GROUP BY 1 HAVING count(*) <> 1")
    assert dup == "", f"rows run more or less than once: {dup}"
    assert lab.scalar(f"SELECT count(*) FROM task_run WHERE due_work_id BETWEEN {lo} AND {hi}") == n
    # ... recorded by the worker that held the lease, and both workers shared the load
    wrong = lab.scalar(f"SELECT count(*) FROM task_run r JOIN due_work d ON d.id = r.due_work_id "
                       f"WHERE d.id BETWEEN {lo} AND {hi} AND r.worker_id <> d.locked_by")
    assert wrong == 0
    workers = lab.scalar(f"SELECT count(DISTINCT worker_id) FROM task_run WHERE due_work_id BETWEEN {lo} AND {hi}")
    assert workers == len(lab.containers("worker")) >= 2
    # no two runs of the same row overlap in time (over all history of the lab)
    overlap = lab.scalar("SELECT count(*) FROM task_run a JOIN task_run b ON a.due_work_id = b.due_work_id "
                         "AND a.id < b.id AND tstzrange(a.started_at, a.finished_at) && "
                         "tstzrange(b.started_at, b.finished_at)")
    assert overlap == 0


def test_sigkill_of_a_worker_loses_no_work(healthy_lab: Lab):
    lab = healthy_lab
    task_id = make_task(lab, duration_ms=4000)
    due_id = queue_work(lab, task_id, 1)[0]
    holder = wait_until(lambda: lab.psql(f"SELECT locked_by FROM due_work WHERE id = {due_id} AND status = 'running'"),
                        timeout=20, what="the row to be claimed")
    victim = next(c for c in lab.containers("worker")
                  if lab.docker("inspect", "-f", "{{.Config.Hostname}}", c).stdout.strip() == holder)
    lease_end = float(lab.psql(f"SELECT extract(epoch FROM locked_until) FROM due_work WHERE id = {due_id}"))
    lab.docker("kill", "-s", "KILL", victim)
    # The lease stays valid after the kill: nobody may run the row before it ends ...
    time.sleep(2)
    assert lab.scalar(f"SELECT count(*) FROM task_run WHERE due_work_id = {due_id}") == 0
    # ... then another claim re-runs it to success exactly once.
    wait_until(lambda: lab.psql(f"SELECT status FROM due_work WHERE id = {due_id}") == "done",
               timeout=60, what="the orphaned row to be re-run")
    runs = lab.psql(f"SELECT attempt, success, extract(epoch FROM started_at) FROM task_run "
                    f"WHERE due_work_id = {due_id}").splitlines()
    assert len(runs) == 1, runs
    attempt, success, started = runs[0].split("|")
    assert attempt == "2" and success == "t"
    assert float(started) >= lease_end - 0.5, "re-run started while the first lease was still valid"


def test_sigterm_returns_leases_at_once(healthy_lab: Lab):
    lab = healthy_lab
    task_id = make_task(lab, duration_ms=8000)
    due_id = queue_work(lab, task_id, 1)[0]
    holder = wait_until(lambda: lab.psql(f"SELECT locked_by FROM due_work WHERE id = {due_id} AND status = 'running'"),
                        timeout=20, what="the row to be claimed")
    victim = next(c for c in lab.containers("worker")
                  if lab.docker("inspect", "-f", "{{.Config.Hostname}}", c).stdout.strip() == holder)
    lab.docker("stop", "-t", "10", victim)
    # returned, not left to expire: another worker runs it well before the 15 s lease would have ended
    wait_until(lambda: lab.psql(f"SELECT status FROM due_work WHERE id = {due_id}") == "done",
               timeout=14, what="the returned row to be run by another worker")
    assert lab.psql(f"SELECT status FROM worker_heartbeat WHERE worker_id = '{holder}'") == "stopped"


def test_bad_and_revoked_tokens_are_rejected_and_audited(lab: Lab):
    marker = uuid.uuid4().hex
    for token, reason in ((f"bad-{marker}", "invalid_token"), (None, "missing_token"),
                          (lab.env["LAB_REVOKED_TOKEN"], "revoked_token")):
        status, body = lab.http("GET", f"/api/v1/tasks?probe={marker}", token=token)
        assert status == 401 and body["error"] == reason
    rows = lab.psql("SELECT actor, outcome, detail->>'reason', source_addr IS NOT NULL FROM audit_log "
                    "WHERE action = 'auth.failed' AND at > now() - interval '1 minute' ORDER BY id DESC LIMIT 3")
    got = {r.split("|")[2]: r for r in rows.splitlines()}
    assert set(got) == {"invalid_token", "missing_token", "revoked_token"}
    assert got["revoked_token"].startswith("former-admin|denied|")
    assert all(r.endswith("|t") for r in got.values())
    # and a mutating call is audited with its actor
    task_id = make_task(lab)
    assert lab.psql(f"SELECT actor || ' ' || outcome FROM audit_log WHERE action = 'task.create' "
                    f"AND target = 'task/{task_id}'") == "admin success"


def test_readiness_follows_postgres(healthy_lab: Lab):
    lab = healthy_lab
    lab.compose("stop", "postgres")

    def unready():
        answer = lab.http("GET", "/health/ready", token=None)
        return answer if answer[0] == 503 else None

    _status, body = wait_until(unready, timeout=20, what="ready to turn 503")
    assert body["checks"]["postgres"].startswith("error") and body["checks"]["redis"] == "ok"
    assert "postgres" in body["reason"]
    assert lab.status_of("/health") == 200, "liveness must not depend on the database"
    assert lab.http("GET", "/api/v1/tasks?nocache=1&status=active")[0] == 503
    t0 = time.monotonic()
    lab.compose("start", "postgres")
    wait_until(lambda: lab.status_of("/health/ready") == 200, timeout=30, interval=0.2, what="ready 200 again")
    print(f"\nREADY AGAIN {time.monotonic() - t0:.2f}s after `compose start postgres`")


def test_redis_outage_is_visible(healthy_lab: Lab):
    lab = healthy_lab
    lab.compose("stop", "redis")
    wait_until(lambda: lab.http("GET", "/health/ready", token=None)[0] == 503, timeout=20, what="ready 503")
    status, body = lab.http("GET", "/api/v1/tasks")
    assert status == 503 and "redis" in body["error"]


def test_deploy_switches_the_api_image_and_records_it(healthy_lab: Lab):
    lab = healthy_lab
    good = lab.env["API_IMAGE"]
    bad = "tsops-lab/app:it-bad-release"
    proc = subprocess.run(["docker", "build", "-q", "-t", bad, "-"], text=True, capture_output=True, check=False,
                          input=f"FROM {good}\nENV TSAPP_RELEASE_FAULT=errors TSAPP_VERSION=1.0.1-bad\n")
    assert proc.returncode == 0, proc.stderr
    deployments = lab.state_dir / "deployments.jsonl"
    before = deployments.read_text().splitlines() if deployments.exists() else []
    try:
        lab.script("deploy", bad)
        wait_until(lambda: lab.http("GET", "/health", token=None)[1]["version"] == "1.0.1-bad", timeout=30,
                   what="the bad release to serve")
        assert lab.http("GET", "/api/v1/tasks")[0] == 500
        record = json.loads(deployments.read_text().splitlines()[-1])
        assert record["previous_image"] == good and record["new_image"] == bad and record["service"] == "api"
    finally:
        lab.script("deploy", good)
    wait_until(lambda: lab.http("GET", "/api/v1/tasks")[0] == 200, timeout=30, what="rolled back")
    assert len(deployments.read_text().splitlines()) == len(before) + 2
    assert lab.env["API_IMAGE"] == good


@pytest.fixture(scope="module")
def fresh_lab():
    """A second, separate lab instance started from nothing (own project, volumes and ports), wiped afterwards
    whatever happens, also when its `up` fails."""
    lab = Lab("tsops-fresh", port_offset=500)
    lab.script("wipe", check=False)
    t0 = time.monotonic()
    with lab.running(wipe=True):
        print(f"\nFRESH LAB UP (images cached) in {time.monotonic() - t0:.1f}s")
        yield lab


def user_tasks(lab: Lab) -> int:
    return lab.scalar(f"SELECT count(*) FROM task WHERE name NOT LIKE '{WORKLOAD_PREFIX}%'")


def test_a_lab_comes_up_healthy_from_nothing_and_keeps_data_across_down_up(fresh_lab: Lab):
    lab = fresh_lab
    states = health_of(lab)
    assert set(SERVICES) <= set(states) and all(s.startswith("running") for v in states.values() for s in v)
    assert user_tasks(lab) == 0, "a fresh lab starts with no task but the default workload's"
    task_id = make_task(lab)
    runs_before = lab.scalar("SELECT count(*) FROM task_run")
    lab.script("down")
    assert lab.containers("postgres") == []
    lab.up()
    assert lab.psql(f"SELECT name LIKE 'it-%' FROM task WHERE id = {task_id}") == "t"
    assert lab.scalar("SELECT count(*) FROM task_run") >= runs_before
    assert lab.http("GET", f"/api/v1/tasks/{task_id}")[0] == 200
    # the default workload was seeded once, not again at the second start
    assert lab.scalar(f"SELECT count(*) FROM task WHERE name LIKE '{WORKLOAD_PREFIX}%'") == WORKLOAD_TASKS


# --- the default workload (lab/app/tsapp/workload.py) ----------------------------------------------------------------
WORKLOAD_PREFIX = "lab-workload-"
WORKLOAD_TASKS = 4


def test_the_default_workload_runs_after_up(lab: Lab):
    if lab.env.get("LAB_WORKLOAD", "on") != "on":
        pytest.fail(f"this lab runs with LAB_WORKLOAD={lab.env['LAB_WORKLOAD']}; the test needs the default (on)")
    rows = lab.psql(f"SELECT name || ' ' || status || ' ' || interval_seconds FROM task "
                    f"WHERE name LIKE '{WORKLOAD_PREFIX}%' ORDER BY interval_seconds").splitlines()
    assert len(rows) == WORKLOAD_TASKS and all(" active " in r for r in rows), rows
    before = lab.scalar(f"SELECT count(*) FROM task_run r JOIN task t ON t.id = r.task_id "
                        f"WHERE t.name LIKE '{WORKLOAD_PREFIX}%'")
    t0 = time.monotonic()
    wait_until(lambda: lab.scalar(f"SELECT count(*) FROM task_run r JOIN task t ON t.id = r.task_id "
                                  f"WHERE t.name LIKE '{WORKLOAD_PREFIX}%' AND r.success") > before,
               timeout=15, interval=0.5, what="a workload run within 15 s")
    print(f"\nWORKLOAD: task_run grew {time.monotonic() - t0:.1f}s after the test started")
    failed = lab.scalar(f"SELECT count(*) FROM task_run r JOIN task t ON t.id = r.task_id "
                        f"WHERE t.name LIKE '{WORKLOAD_PREFIX}%' AND NOT r.success")
    assert failed == 0


# --- non-ASCII credentials -----------------------------------------------------------------------------------------
def raw_request(base: str, method: str, path: str, authorization: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """A request whose Authorization header is sent as raw bytes (urllib refuses anything but latin-1 text)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.putrequest(method, path)
        conn.putheader("Authorization", authorization)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


NON_ASCII_AUTH = [b"Bearer \xc3\xa9t\xc3\xa9-token", b"Bearer \xe9t\xe9", "Bearer токен".encode()]


def test_non_ascii_authorization_is_a_failed_authentication_not_an_error(lab: Lab):
    marker = uuid.uuid4().hex
    for header in NON_ASCII_AUTH:
        status, body = raw_request(lab.url("api"), "GET", f"/api/v1/tasks?probe={marker}", header)
        assert status == 401, (header, status, body)
        assert json.loads(body)["error"] == "invalid_token"
    audited = lab.scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.failed' AND outcome = 'denied' "
                         "AND detail->>'reason' = 'invalid_token' AND target = '/api/v1/tasks' "
                         "AND at > now() - interval '1 minute'")
    assert audited >= len(NON_ASCII_AUTH)
    for header in NON_ASCII_AUTH:
        status, body = raw_request(lab.url("receiver"), "POST", "/hook", header, b'{"alerts": []}')
        assert status == 401, (header, status, body)
    # nothing logged a traceback
    for service in ("api", "receiver"):
        logs = lab.docker("logs", "--since", "2m", lab.container(service)).stdout
        assert "Traceback" not in logs and "-> 500" not in logs, logs[-2000:]


# --- start-up on a slow host, and an up that gives up ----------------------------------------------------------------
def test_an_up_that_gives_up_names_what_is_not_healthy_and_leaves_nothing_running(lab: Lab):
    """LAB_WAIT_TIMEOUT=1 cannot be met: lab.sh up fails naming the services, their logs and health output, and
    Lab.running() takes the half-started instance down."""
    doomed = Lab("tsops-upfail", port_offset=530, extra_env={"LAB_WAIT_TIMEOUT": "1"})
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as failed, doomed.running(wipe=True):
        pytest.fail("up must not succeed within 1 s")
    message = str(failed.value)
    print(f"\nUP GAVE UP after {time.monotonic() - t0:.1f}s; cleaned up")
    assert "(waiting up to 1s, LAB_WAIT_TIMEOUT)" in message, message[-3000:]
    assert "postgres (running/starting)" in message or "waiting for their dependencies" in message, message[-3000:]
    assert "last health check output" in message and "log lines" in message, message[-3000:]
    left = lab.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=tsops-upfail").stdout.split()
    assert left == [], f"containers of the failed instance left behind: {left}"


def test_an_interrupted_first_initialisation_is_redone(lab: Lab):
    """A data directory whose initdb was interrupted (a lab taken down while it started) used to stay broken for
    ever ("database postgres does not exist"); it is initialised again, and healthy means the schema is there."""
    name = f"tsops-it-pginit-{uuid.uuid4().hex[:8]}"
    image = "tsops-lab/postgres:latest"
    mount = f"{name}:/var/lib/postgresql/data"
    try:
        lab.docker("run", "--rm", "--entrypoint", "sh", "-v", mount, image, "-c",
                   "echo 15 > /var/lib/postgresql/data/PG_VERSION")
        lab.docker("run", "-d", "--name", name, "-v", mount, "-e", "POSTGRES_PASSWORD=it", image)

        def health():
            out = lab.docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
            return out if out in ("healthy", "unhealthy") else None

        assert wait_until(health, timeout=600, interval=1, what="the container's health") == "healthy"
        logs = lab.docker("logs", name).stdout
        assert "interrupted initialisation" in logs and "schema are in place" in logs, logs[-2000:]
        tables = lab.docker("exec", name, "psql", "-U", "orchestrator", "-At", "-c",
                            "SELECT count(*) FROM pg_tables WHERE tablename IN ('task', 'due_work', 'task_run', "
                            "'worker_heartbeat', 'audit_log')").stdout.strip()
        assert tables == "5"
    finally:
        lab.docker("rm", "-f", "-v", name, check=False)
        lab.docker("volume", "rm", "-f", name, check=False)
