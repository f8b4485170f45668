"""The whole incident lifecycle through real ansible-playbook runs: incident_open -> steps from several hosts at
once -> incident_escalate -> incident_close, against a real SMTP server, an HTTP health endpoint on loopback and
the lab's real Alertmanager (API v2).

Proves: three hosts appending at the same time leave one consistent record; the escalation rules fire for a P0
down for 40 minutes and move to the technical lead with a notice to that contact; once the service is restored and
the root cause known they do not fire again; closing verifies health, lists firing alerts, writes the resolution,
sends the resolution notice to all stakeholders and silences the alert in Alertmanager for 30 minutes; closing
again changes nothing (no second notice, no duplicate silence); the whole play in --check writes, sends and
silences nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from incident_support import (
    HTTPReceiver,
    Playbook,
    SMTPSink,
    alertmanager_url,
    am_expire,
    am_get,
    collections_dir,
    free_port,
    text_body,
)

pytestmark = pytest.mark.integration

HOSTS = ["node1", "node2", "node3"]


@pytest.fixture
def smtp() -> Any:
    sink = SMTPSink()
    yield sink
    sink.close()


@pytest.fixture
def http() -> Any:
    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def marker() -> Any:
    """A label only this test's silences carry: the shared lab's real alerts are never silenced by a test."""
    value = f"it-{uuid.uuid4().hex[:12]}"
    yield value
    try:
        url = alertmanager_url()
    except pytest.skip.Exception:
        return
    for silence in am_get(url, "/silences"):
        if any(m["name"] == "tsops_test" and m["value"] == value for m in silence["matchers"]) \
                and silence["status"]["state"] != "expired":
            am_expire(url, silence["id"])


def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    host_vars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path.write_text(yaml.safe_dump({"all": {"hosts": {h: dict(host_vars) for h in HOSTS}}}))
    return path


def settings(tmp_path: Path, smtp_port: int, am_url: str, health_url: str, marker: str) -> dict[str, Any]:
    return {
        "tsops_incident_dir": str(tmp_path / "records"),
        "tsops_incident_log_dir": str(tmp_path / "log"),
        "tsops_alertmanager_url": am_url,
        "tsops_notify_email_host": "127.0.0.1",
        "tsops_notify_email_port": smtp_port,
        "tsops_notify_email_secure": "never",
        "tsops_notify_stakeholders": {
            "immediate": {"email": ["oncall@example.com"]},
            "update": {"email": ["product@example.com"]},
            "resolution": {"email": ["customer-success@example.com"]},
        },
        "tsops_escalation_path": [
            {"role": "On-call Engineer", "email": "oncall@example.com"},
            {"role": "Technical Lead", "email": "lead@example.com"},
            {"role": "Engineering Manager", "email": "em@example.com"},
            {"role": "CTO", "email": "cto@example.com"},
        ],
        "incident_close_health_urls": [health_url],
        "incident_close_silence_matchers": [{"name": "alertname", "value": "TaskSchedulerAPIDown"},
                                            {"name": "tsops_test", "value": marker}],
        "facts_file": str(tmp_path / "facts.json"),
        "started": (dt.datetime.now(tz=dt.UTC) - dt.timedelta(minutes=40)).isoformat(timespec="seconds"),
    }


def step(name: str, **extra: Any) -> dict[str, Any]:
    args = {"id": "{{ tsops_incident_id }}", "actor": "responder", "host": "{{ inventory_hostname }}",
            "record_dir": "{{ tsops_incident_dir }}", "log_dir": "{{ tsops_incident_log_dir }}"}
    args.update(extra)
    return {"name": name, "taskscheduler.ops.incident_record": args, "delegate_to": "localhost"}


def lifecycle_play() -> list[dict[str, Any]]:
    return [{"name": "respond", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Open", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_open"},
         "vars": {"incident_open_alertname": "TaskSchedulerAPIDown", "incident_open_started_at": "{{ started }}",
                  "incident_open_commander": "alice", "incident_open_impact": "API unavailable"}},
        step("Every host restarts its api at once", step="restart api", result="changed"),
        {"name": "Escalate if due", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_escalate"}},
        {"name": "Keep the decision",
         "ansible.builtin.set_fact": {"first_escalation": "{{ tsops_escalation | default({}) }}"}},
        step("Service restored", step="verify api", result="ok", flags=["service_restored", "root_cause_identified"],
             status="monitoring", update="API answering again"),
        {"name": "Escalate again if due", "ansible.builtin.include_role": {
            "name": "taskscheduler.ops.incident_escalate"}},
        {"name": "Close", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_close"},
         "vars": {"incident_close_root_cause": "connection pool exhausted",
                  "incident_close_resolution": ["restarted api on all nodes", "raised the pool size"],
                  "incident_close_action_items": [{"action": "alert on pool usage", "owner": "bob",
                                                   "due": "2026-12-15"}]}},
        {"name": "Save what the play saw", "run_once": True, "delegate_to": "localhost", "changed_when": False,
         "check_mode": False, "ansible.builtin.copy": {
             "dest": "{{ facts_file }}",
             "content": "{{ {'id': tsops_incident_id, 'first': first_escalation,"
                        " 'second': tsops_escalation | default({}),"
                        " 'firing': tsops_firing_alerts | default(none),"
                        " 'silence': tsops_silence_id | default(none),"
                        " 'ids': ansible_play_hosts | map('extract', hostvars, 'tsops_incident_id') | list}"
                        " | to_json }}"}},
    ]}]


def close_again_play(incident_id: str) -> list[dict[str, Any]]:
    return [{"name": "close again", "hosts": "node1", "gather_facts": False, "tasks": [
        {"name": "Close", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_close"},
         "vars": {"incident_close_id": incident_id, "incident_close_root_cause": "connection pool exhausted"}},
    ]}]


def test_open_escalate_close(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, smtp: SMTPSink,
                             http: HTTPReceiver, marker: str) -> None:
    am_url = alertmanager_url()
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    extra = settings(tmp_path, smtp.port, am_url, f"{http.url}/health", marker)
    pb.run(lifecycle_play(), extra, inventory=inventory(tmp_path))

    facts = json.loads((tmp_path / "facts.json").read_text())
    incident_id = facts["id"]
    assert facts["ids"] == [incident_id] * 3, "every host of the play knows the incident id"
    entries = [json.loads(x) for x in (tmp_path / "records" / f"{incident_id}.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert sum(e["type"] == "open" for e in entries) == 1
    restarts = [e for e in entries if e.get("step") == "restart api"]
    assert sorted(e["host"] for e in restarts) == HOSTS

    # escalation: P0 down 40 minutes with no root cause -> technical lead; not again once restored
    assert facts["first"]["due"] is True
    # 40 minutes plus however long the play took to get there on a busy machine
    assert any(re.match(r"service down for [45]\d minutes", r) for r in facts["first"]["reasons"])
    assert facts["second"]["due"] is False
    [escalation] = [e for e in entries if e["type"] == "escalation"]
    assert (escalation["level"], escalation["to"], escalation["contact"]) == (2, "Technical Lead",
                                                                              {"email": "lead@example.com"})

    # closing: verified, alerts listed, resolution written, silence set, in that order
    steps = [e.get("step") or e["type"] for e in entries if e["type"] in ("action", "close")]
    assert steps[-4:] == ["verify system stability", "check alerts still firing", "close",
                          "silence alert for 30 minutes"]
    assert http.at("/health"), "the health endpoint was asked"
    close = next(e for e in entries if e["type"] == "close")
    assert close["root_cause"] == "connection pool exhausted" and re.match(r"[45]\dm", close["duration"])
    assert isinstance(facts["firing"], list)

    # e-mails: opening (immediate), escalation (immediate + the technical lead), resolution (everyone)
    subjects = [m["Subject"] for m in smtp.messages]
    assert subjects[0].startswith("[P0] CRITICAL INCIDENT: TaskSchedulerAPIDown")
    assert subjects[1] == f"[ESCALATED P0] TaskSchedulerAPIDown ({incident_id}) to Technical Lead"
    assert re.match(rf"\[RESOLVED\] TaskSchedulerAPIDown \({incident_id}\) after [45]\dm", subjects[2])
    assert len(subjects) == 3
    assert sorted(smtp.envelopes[1]["to"]) == ["lead@example.com", "oncall@example.com"]
    assert sorted(smtp.envelopes[2]["to"]) == ["customer-success@example.com", "oncall@example.com",
                                               "product@example.com"]
    escalated = text_body(smtp.messages[1])
    assert "ESCALATED TO: Technical Lead (level 2)" in escalated
    assert re.search(r"^- service down for [45]\d minutes", escalated, re.MULTILINE)
    resolved = text_body(smtp.messages[2])
    for line in ["✅ RESOLVED - Task Scheduling System Incident", "ROOT CAUSE: connection pool exhausted",
                 "RESOLUTION:\n- restarted api on all nodes\n- raised the pool size",
                 "- SLA: resolution OUTSIDE the 30 minute target; response OUTSIDE 5 minutes",
                 "- Data integrity: no data loss recorded", "Review scheduled for", "Incident Commander: alice"]:
        assert line in resolved, f"{line!r} missing from:\n{resolved}"

    # the lab's Alertmanager shows exactly one active silence for the alert, for 30 minutes
    ours = [s for s in am_get(am_url, "/silences") if s["status"]["state"] == "active"
            and any(m["name"] == "tsops_test" and m["value"] == marker for m in s["matchers"])]
    assert [s["id"] for s in ours] == [facts["silence"]]
    assert ours[0]["comment"] == f"Post-incident silence for {incident_id}"
    ends = dt.datetime.fromisoformat(ours[0]["endsAt"].replace("Z", "+00:00"))
    assert 28 < (ends - dt.datetime.now(tz=dt.UTC)).total_seconds() / 60 <= 30

    log = next((tmp_path / "log").glob("*_incident.log")).read_text()
    assert "[IC] P0 incident started: TaskSchedulerAPIDown" in log
    assert "[ESCALATION] level 2 -> Technical Lead" in log
    assert "[RESOLVED] Root cause: connection pool exhausted, Resolution: restarted api on all nodes" in log

    # closing a second time: no new close entry, no second notice, the same single silence
    pb.run(close_again_play(incident_id), extra, inventory=inventory(tmp_path))
    again = [json.loads(x) for x in (tmp_path / "records" / f"{incident_id}.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "close" for e in again) == 1
    assert len(smtp.messages) == 3
    ours_after = [s for s in am_get(am_url, "/silences") if s["status"]["state"] == "active"
                  and any(m["name"] == "tsops_test" and m["value"] == marker for m in s["matchers"])]
    assert [s["id"] for s in ours_after] == [facts["silence"]]
    # the same silence, left alone or (if the re-run came more than a minute later) extended in place
    assert again[-1]["details"]["action"] in ("unchanged", "extended")
    assert again[-1]["details"]["silence_id"] == facts["silence"]


def test_check_mode_is_harmless(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, smtp: SMTPSink,
                                http: HTTPReceiver, marker: str) -> None:
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    unreachable_am = f"http://127.0.0.1:{free_port()}"
    extra = settings(tmp_path, smtp.port, unreachable_am, f"{http.url}/health", marker)
    proc = pb.run(lifecycle_play(), extra, inventory=inventory(tmp_path), check=True)
    assert not (tmp_path / "records").exists() or not any((tmp_path / "records").glob("*.jsonl"))
    assert not (tmp_path / "log").exists()
    assert smtp.messages == []
    assert [r for r in http.requests if r["method"] != "GET"] == []
    assert "check mode: would send" in proc.stdout
