"""The emergency backup and the database-down responder against the real lab, including a really wedged database.

A wedged database answers but cannot be dumped: a session holds an ACCESS EXCLUSIVE lock on ``task_run`` (inside a
transaction that ends by itself after WEDGE_SECONDS: ``LOCK TABLE ...; SELECT pg_sleep(N)``). The backup must give
up while the lock is still held (by pg_dump's --lock-wait-timeout, or by its own deadline, killing the dump) and the
forced response must still restart PostgreSQL. The responder must also leave alone what is not TaskSchedulerDatabaseDown
(an API down on a working database, a slow database) and say which alert fits.

Run on a lab of your own: LAB_INSTANCE=<name> python -m pytest tests/integration/test_postgres_backup.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import REPO, Lab, wait_until

# Long enough to outlast an ansible run on a busy host, so "gave up while the lock was still held" is what is tested;
# bounded all the same (the transaction ends by itself, and the fixture ends it at teardown).
WEDGE_SECONDS = 300


def ansible_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=f"{REPO / '.venv' / 'bin'}:{env['PATH']}")
    return env


def backup_module(lab: Lab, run_timeout: float = 180, **args: Any) -> tuple[dict[str, Any], float]:
    """The module run ad hoc on the lab's Docker host; its result and the seconds it took."""
    args.setdefault("compose_project", lab.instance)
    env = dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    t0 = time.monotonic()
    proc = subprocess.run(["ansible", "localhost", "-i", str(lab.inventory), "-m", "taskscheduler.ops.postgres_backup",
                           "-a", json.dumps(args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=run_timeout, check=False)
    elapsed = time.monotonic() - t0
    try:
        doc = json.loads(proc.stdout[proc.stdout.index("{"):])
        return doc["plays"][0]["tasks"][0]["hosts"]["localhost"], elapsed
    except (ValueError, KeyError, IndexError):
        pytest.fail(f"no module result (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def respond(lab: Lab, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", "-i", str(lab.inventory), "playbooks/respond_db_down.yml", *extra],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False)


def incident_steps(lab: Lab, incident_id: str) -> list[dict[str, Any]]:
    path = lab.state_dir / "incidents" / f"{incident_id}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def backends(lab: Lab, pattern: str) -> int:
    return lab.scalar(f"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '{pattern}'")


def wedge_held(lab: Lab) -> bool:
    return lab.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                      "WHERE c.relname = 'task_run' AND l.mode = 'AccessExclusiveLock' AND l.granted") > 0


@pytest.fixture
def wedge(lab: Lab) -> Iterator[subprocess.Popen]:
    """A session holding ACCESS EXCLUSIVE on task_run for WEDGE_SECONDS (bounded: the transaction ends by itself)."""
    sql = ("BEGIN; LOCK TABLE task_run IN ACCESS EXCLUSIVE MODE; "
           f"SELECT pg_sleep({WEDGE_SECONDS}); COMMIT;")
    proc = subprocess.Popen(["docker", "exec", "-e", "PGAPPNAME=tsops-test-wedge", lab.container("postgres"),
                             "psql", "-X", "-q", "-U", "orchestrator", "-d", "orchestrator", "-c", sql],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: wedge_held(lab), timeout=60, what="the wedge's ACCESS EXCLUSIVE lock on task_run")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        lab.up()
        lab.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsops-test-wedge'")


def test_backup_is_streamed_to_the_host_hashed_listed_and_provable_later(lab: Lab, tmp_path: Path):
    result, elapsed = backup_module(lab, dest=str(tmp_path), name="b.dump")
    assert result.get("failed") is not True, result.get("msg")
    path = tmp_path / "b.dump"
    assert result["path"] == str(path) and result["verified"] is True and result["verify"]["toc_entries"] > 5
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.dump", "b.dump.sha256"]
    assert result["space"]["enough"] is True and result["space"]["database_size_bytes"] > 0
    leftovers = lab.docker("exec", lab.container("postgres"), "sh", "-c", "ls /tmp | grep -c tsops || true").stdout
    assert leftovers.strip() == "0", "nothing is written inside the container"
    print(f"\nBACKUP healthy lab: {elapsed:.1f}s in all, dump {result['dump_seconds']}s, {result['size_bytes']} bytes")

    proof, elapsed = backup_module(lab, src=str(path), verify="restore")
    assert proof.get("failed") is not True, proof.get("msg")
    assert proof["changed"] is False and proof["verify"]["restored"] is True
    assert proof["verify"]["restored_rows"]["task"] > 0
    print(f"BACKUP full restore proof: {elapsed:.1f}s")


def test_a_lack_of_space_is_refused_before_dumping(lab: Lab, tmp_path: Path):
    result, _elapsed = backup_module(lab, dest=str(tmp_path), name="b.dump", space_factor=1e9)
    assert result["failed"] is True and "not enough free space" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_a_clear_error(lab: Lab, tmp_path: Path):
    result, _elapsed = backup_module(lab, dest=str(tmp_path), name="../escape.dump")
    assert result["failed"] is True and "a plain file name" in result["msg"] and "Traceback" not in str(result)
    result, _elapsed = backup_module(lab, dest=str(tmp_path), timeout=0)
    assert result["failed"] is True and "timeout=0" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_a_locked_table_makes_the_dump_give_up_within_its_lock_wait_timeout(lab: Lab, tmp_path: Path, wedge):
    # connect_timeout 60: on a busy host docker exec alone can take tens of seconds; the lock is what is tested.
    result, elapsed = backup_module(lab, dest=str(tmp_path), name="b.dump", lock_wait_timeout=2, timeout=120,
                                    connect_timeout=60)
    print(f"\nBACKUP wedged (lock held), lock_wait_timeout 2s: gave up after {elapsed:.1f}s: {result['msg']}")
    assert result["failed"] is True and "LOCK TABLE public.task_run" in result["msg"]
    assert "timeout" in result["msg"] or "could not obtain lock" in result["msg"], result["msg"]
    assert wedge.poll() is None and wedge_held(lab), "the backup waited for the wedge instead of giving up"
    assert list(tmp_path.iterdir()) == []


def test_a_wedged_dump_is_killed_at_its_deadline_and_leaves_nothing(lab: Lab, tmp_path: Path, wedge):
    result, elapsed = backup_module(lab, dest=str(tmp_path), name="b.dump", lock_wait_timeout=600, timeout=4,
                                    connect_timeout=60)
    print(f"\nBACKUP wedged (lock held), deadline 4s: gave up after {elapsed:.1f}s: {result['msg']}")
    assert result["failed"] is True and result["timed_out"] is True and "did not finish within 4s" in result["msg"]
    assert wedge.poll() is None and wedge_held(lab), "the backup waited for the wedge instead of giving up"
    assert list(tmp_path.iterdir()) == [], "the partial dump is removed"
    wait_until(lambda: backends(lab, "tsops-backup-%") == 0, timeout=10, what="the killed dump's backend to end")


def test_the_forced_response_to_a_wedged_database_gives_up_the_backup_and_restarts(lab: Lab, wedge):
    incident = f"TEST-DBWEDGE-{int(time.time())}"
    started = lab.docker("inspect", "-f", "{{.State.StartedAt}}", lab.container("postgres")).stdout.strip()
    t0 = time.monotonic()
    proc = respond(lab, "-e", f"incident_id={incident}", "-e", "respond_db_down_force=true",
                   "-e", "respond_db_down_backup_timeout=5")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert elapsed < WEDGE_SECONDS, "the response waited for the wedge to end by itself"
    steps = {s.get("step"): s for s in incident_steps(lab, incident)}
    backup = steps["emergency backup (pg_dump -Fc)"]
    # The lock wait gives up (or, on a very busy host, the size check's deadline comes first).
    assert backup["result"] == "failed"
    assert re.search(r"timeout|could not obtain lock|did not finish within", json.dumps(backup["details"])), backup
    assert steps["restart postgres"]["result"] == "changed"
    assert lab.docker("inspect", "-f", "{{.State.StartedAt}}", lab.container("postgres")).stdout.strip() != started
    healthy = [s["details"]["time_to_healthy_seconds"] for s in steps.values()
               if isinstance(s.get("details"), dict) and "time_to_healthy_seconds" in s["details"]]
    print(f"\nRESPOND wedged database, forced: playbook {elapsed:.1f}s, time to healthy {healthy}")


def test_an_api_down_on_a_working_database_is_named_and_left_alone(lab: Lab):
    incidents_before = sorted((lab.state_dir / "incidents").glob("*.jsonl"))
    lab.compose("stop", "api")
    try:
        wait_until(lambda: lab.status_of("/health") == 0, timeout=30, what="the API to stop")
        proc = respond(lab)
    finally:
        lab.up()
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "TaskSchedulerAPIDown" in proc.stdout and "changed=0" in proc.stdout
    assert sorted((lab.state_dir / "incidents").glob("*.jsonl")) == incidents_before, "no incident is opened"


def test_a_long_running_query_is_named_slow_queries_and_left_alone(lab: Lab):
    incidents_before = sorted((lab.state_dir / "incidents").glob("*.jsonl"))
    slow = subprocess.Popen(["docker", "exec", "-e", "PGAPPNAME=tsops-test-slow", lab.container("postgres"), "psql",
                             "-X", "-q", "-U", "orchestrator", "-d", "orchestrator", "-c", "SELECT pg_sleep(60)"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(33)  # past the 30 s long-running threshold (DatabaseSlowQueries)
        proc = respond(lab)
    finally:
        slow.kill()
        slow.wait()
        lab.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsops-test-slow'")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "DatabaseSlowQueries" in proc.stdout and "changed=0" in proc.stdout
    assert sorted((lab.state_dir / "incidents").glob("*.jsonl")) == incidents_before, "no incident is opened"
