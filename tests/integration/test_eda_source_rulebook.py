"""taskscheduler.ops.alertmanager under the real ansible-rulebook (from .venv, Java 17, the rule engine).

ansible-rulebook finds the source by its collection name through ``ansible-galaxy collection list`` (this work tree
linked as ``ansible_collections/taskscheduler/ops`` on ANSIBLE_COLLECTIONS_PATH) and runs
tests/integration/files/eda/rulebook.yml on a free loopback port. The test POSTs what Alertmanager sends (one
group: a firing database alert and a resolved API alert) and proves:

* with the bearer token: the firing alert's rule ran ``record_alert.yml`` through ansible-runner, limited to the
  host mapped from its ``instance`` label (meta.hosts), with the alert as ``ansible_eda.event``; the resolved one
  only printed; the source logged one line per request;
* a POST without the token, or with a forged one, gets 401 and starts nothing;
* a re-send of the same group starts nothing again (deduplication).

It needs no lab (nothing but loopback) and stops by itself: every wait has a deadline, and the ansible-rulebook
process group (with any ansible-playbook it started) is terminated in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from incident_support import collections_dir, free_port

pytestmark = pytest.mark.integration

FILES = Path(__file__).parent / "files" / "eda"
TOKEN = "integration-token-7d1e"
VENV_BIN = Path(sys.executable).parent

PAYLOAD: dict[str, Any] = {
    "receiver": "eda",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "TaskSchedulerDatabaseDown", "severity": "P0", "service": "postgres",
                       "instance": "postgres-exporter:9187", "job": "postgres"},
            "annotations": {"summary": "PostgreSQL connection failures: postgres-exporter:9187"},
            "startsAt": "2026-11-28T15:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=pg_up+%3D%3D+0",
            "fingerprint": "a1b2c3d4e5f60718",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "TaskSchedulerAPIDown", "severity": "P0", "service": "api",
                       "instance": "api:8080", "job": "api"},
            "annotations": {"summary": "API is down"},
            "startsAt": "2026-11-28T14:50:00.000Z",
            "endsAt": "2026-11-28T14:58:00.000Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "0f1e2d3c4b5a6978",
        },
    ],
    "groupLabels": {"alertname": "TaskSchedulerDatabaseDown"},
    "commonLabels": {"severity": "P0"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}:{alertname="TaskSchedulerDatabaseDown"}',
    "truncatedAlerts": 0,
}
FORGED: dict[str, Any] = dict(PAYLOAD, alerts=[{
    "status": "firing", "labels": {"alertname": "ForgedAlert", "instance": "api:8080"},
    "startsAt": "2026-11-28T15:01:00.000Z", "fingerprint": "ffffffffffffffff"}])


def java_home() -> str | None:
    """JAVA_HOME for the rule engine: the environment's, else the Java 17+ that `java` on PATH belongs to."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if not java:
        return None
    home = Path(java).resolve().parent.parent
    return str(home) if (home / "lib" / "server" / "libjvm.so").exists() else None


def post(url: str, payload: Any, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(what: str, check: Any, deadline: float, proc: subprocess.Popen, out: Path) -> Any:
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if proc.poll() is not None:
            pytest.fail(f"ansible-rulebook exited ({proc.returncode}) while waiting for {what}:\n{out.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{out.read_text()[-4000:]}")


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def test_alert_runs_the_rule_and_a_forged_post_starts_nothing(tmp_path: Path):
    rulebook_bin = VENV_BIN / "ansible-rulebook"
    if not rulebook_bin.exists():
        pytest.skip(f"{rulebook_bin} is missing: `make venv` installs ansible-rulebook (requirements-dev.txt)")
    jhome = java_home()
    if jhome is None:
        pytest.skip("no Java 17 runtime for ansible-rulebook's rule engine (apt-get install openjdk-17-jre-headless)")

    port = free_port()
    records = tmp_path / "records"
    records.mkdir()
    work = tmp_path / "work"  # ansible-rulebook resolves run_playbook's name from its working directory
    shutil.copytree(FILES, work)
    inventory = tmp_path / "inventory.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"database1": local, "api": local}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # ansible-galaxy, ansible-playbook of .venv
        JAVA_HOME=jhome,
        ANSIBLE_COLLECTIONS_PATH=str(collections_dir(tmp_path / "collections")),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        EDA_TEST_PORT=str(port),
        EDA_TEST_TOKEN=TOKEN,
        EDA_TEST_OUT=str(records),
        PYTHONUNBUFFERED="1",
    )
    out = tmp_path / "ansible-rulebook.log"
    started = time.monotonic()
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [str(rulebook_bin), "--rulebook", "rulebook.yml", "-i", str(inventory),
             "--env-vars", "EDA_TEST_PORT,EDA_TEST_TOKEN,EDA_TEST_OUT", "-v"],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the finally below ends ansible-playbook too
        )
    try:
        deadline = started + 180  # Java start-up; slow on a loaded 2-core machine
        wait_for("the source's /health", lambda: health(port), deadline, proc, out)
        ready = time.monotonic() - started
        url = f"http://127.0.0.1:{port}/endpoint"

        # Forged first: had it started anything, that run would come before the real one's.
        assert post(url, FORGED, {})[0] == 401
        assert post(url, FORGED, {"Authorization": "Bearer not-the-token"})[0] == 401
        assert post(url, FORGED, {"Authorization": f"Basic {TOKEN}"})[0] == 401

        sent = time.monotonic()
        assert post(url, PAYLOAD, {"Authorization": f"Bearer {TOKEN}"}) == (
            202, {"alerts": 2, "queued": 2, "duplicates": 0})
        record = records / "database1-TaskSchedulerDatabaseDown.json"
        wait_for(record.name, record.exists, sent + 120, proc, out)
        ran = time.monotonic() - sent
        wait_for("the resolved alert's debug", lambda: "resolved TaskSchedulerAPIDown" in out.read_text(),
                 sent + 120, proc, out)

        # Alertmanager re-sends the group (group_interval): nothing new is queued.
        assert post(url, PAYLOAD, {"Authorization": f"Bearer {TOKEN}"})[1]["queued"] == 0
        time.sleep(2)
        final = health(port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    log_text = out.read_text()
    event = json.loads(record.read_text())
    assert event["alert"]["status"] == "firing"
    assert event["alert"]["labels"]["instance"] == "postgres-exporter:9187"
    assert event["alert"]["fingerprint"] == "a1b2c3d4e5f60718"
    assert event["alertmanager"]["groupKey"] == PAYLOAD["groupKey"]
    assert event["meta"]["hosts"] == ["database1"]
    assert event["meta"]["source"]["type"] == "taskscheduler.ops.alertmanager"
    # Only what the authenticated firing alert started: on its mapped host, nothing for the forged or resolved one.
    assert sorted(p.name for p in records.iterdir()) == ["database1-TaskSchedulerDatabaseDown.json"]
    assert log_text.count("alertmanager source: rejected") == 3
    assert 'status=401 reason="missing bearer token"' in log_text
    assert 'status=401 reason="invalid bearer token"' in log_text
    assert log_text.count("alertmanager source: accepted") == 2
    assert TOKEN not in log_text.replace(f"EDA_TEST_TOKEN={TOKEN}", "")
    assert final is not None and final["events_queued"] == 2 and final["duplicates_dropped"] == 2
    assert final["requests_rejected"] == 3
    print(f"ansible-rulebook ready in {ready:.1f}s; POST -> playbook wrote its record in {ran:.1f}s")
