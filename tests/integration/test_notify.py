"""taskscheduler.ops.notify (through incident_open) against real receivers on loopback, with real ansible-playbook runs.

Proves: a P0 opening notice reaches a real SMTP server (right recipients, subject and the runbook's P0 template
filled with real values), a Slack-compatible webhook and an SMS/phone gateway webhook (payload, auth header, SMS
length); a P1 uses the P1 template and no phone/SMS; failing channels (HTTP 500, SMTP refused) are recorded as
failed in the incident record while the remaining channels still deliver and the play succeeds.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from incident_support import HTTPReceiver, Playbook, SMTPSink, collections_dir, free_port, text_body

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-gateway-token"


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collections_dir(tmp_path_factory.mktemp("collections"))


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


def settings(tmp_path: Path, http: HTTPReceiver, smtp_port: int) -> dict[str, Any]:
    return {
        "tsops_incident_dir": str(tmp_path / "records"),
        "tsops_incident_log_dir": str(tmp_path / "log"),
        "tsops_incident_bridge": "#inc-bridge / +1-555-0100 PIN 4242",
        "tsops_notify_slack_webhook_url": f"{http.url}/slack/T000/B000/{SECRET}",
        "tsops_notify_webhook_url": f"{http.url}/sms",
        "tsops_notify_webhook_headers": {"Authorization": f"Bearer {SECRET}"},
        "tsops_notify_email_host": "127.0.0.1",
        "tsops_notify_email_port": smtp_port,
        "tsops_notify_email_secure": "never",
        "tsops_notify_email_from": "incidents@example.com",
        "tsops_notify_stakeholders": {
            "immediate": {"email": ["oncall@example.com", "ops-team@example.com"], "phone": ["+15550100"]},
            "update": {"email": ["product@example.com"]},
            "resolution": {"email": ["customer-success@example.com"]},
        },
    }


def open_play(alert: str, **extra: Any) -> list[dict[str, Any]]:
    role_vars = {"incident_open_alertname": alert, "incident_open_impact": "All API requests fail with 502",
                 "incident_open_commander": "alice",
                 "incident_open_actions": ["Restarting the api container", "Checking database connectivity"]}
    role_vars.update(extra)
    return [{"name": "open", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Open", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_open"},
         "vars": role_vars},
    ]}]


def record(tmp_path: Path) -> list[dict[str, Any]]:
    [path] = (tmp_path / "records").glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_p0_opening_notice_on_every_channel(tmp_path: Path, collections: Path, smtp: SMTPSink,
                                            http: HTTPReceiver) -> None:
    pb = Playbook(tmp_path, collections)
    proc = pb.run(open_play("TaskSchedulerAPIDown"), settings(tmp_path, http, smtp.port))
    entries = record(tmp_path)
    opened = entries[0]
    incident_id = opened["id"]

    # email: one message to the immediate list only, runbook P0 template with real values
    [msg] = smtp.messages
    assert sorted(smtp.envelopes[0]["to"]) == ["oncall@example.com", "ops-team@example.com"]
    assert msg["From"] == "incidents@example.com"
    assert msg["Subject"] == f"[P0] CRITICAL INCIDENT: TaskSchedulerAPIDown - API service unavailable ({incident_id})"
    body = text_body(msg)
    next_update = (dt.datetime.fromisoformat(opened["ts"]) + dt.timedelta(minutes=15)).isoformat()
    for line in ["🚨 P0 CRITICAL INCIDENT - Task Scheduling System",
                 "INCIDENT: TaskSchedulerAPIDown - API service unavailable",
                 f"STARTED: {opened['started_at']}",
                 "IMPACT: All API requests fail with 502",
                 "STATUS: INVESTIGATING",
                 "Incident Commander: alice",
                 "Bridge: #inc-bridge / +1-555-0100 PIN 4242",
                 "Actions in progress:\n- Restarting the api container\n- Checking database connectivity\n",
                 f"respond by {opened['deadlines']['respond_by']}"]:
        assert line in body, f"{line!r} missing from:\n{body}"
    # the next update is 15 minutes after the notice was rendered (a few seconds after the open entry)
    stated = body.split("Next update: ")[1].split(" ")[0]
    assert 0 <= (dt.datetime.fromisoformat(stated) - dt.datetime.fromisoformat(next_update)).total_seconds() < 300

    # Slack-compatible webhook
    [slack] = [r for r in http.requests if r["path"].startswith("/slack/")]
    assert slack["json"]["channel"] == "#incident-response"
    assert slack["json"]["text"].startswith("🚨 P0 CRITICAL INCIDENT - Task Scheduling System")
    assert slack["json"]["text"] == body.rstrip("\n") or slack["json"]["text"].strip() == body.strip()

    # phone/SMS gateway
    [sms] = http.at("/sms")
    assert sms["headers"]["Authorization"] == f"Bearer {SECRET}"
    payload = sms["json"]
    assert payload["event"] == "opened" and payload["severity"] == "P0" and payload["incident_id"] == incident_id
    assert payload["to"] == ["+15550100"] and len(payload["message"]) <= 160
    assert payload["message"].startswith(f"P0 TaskSchedulerAPIDown {incident_id} INVESTIGATING IC alice")

    # every delivery recorded, in the runbook's priority order; the secrets never reach the output
    notes = [e for e in entries if e["type"] == "notification"]
    assert [(n["channel"], n["ok"]) for n in notes] == [("slack", True), ("email", True), ("webhook", True)]
    assert notes[1]["recipients"] == ["oncall@example.com", "ops-team@example.com"]
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    log = next((tmp_path / "log").glob("*_incident.log")).read_text().splitlines()
    assert log[0].endswith("[IC] P0 incident started: TaskSchedulerAPIDown")


def test_p1_from_alertmanager_payload_uses_p1_template_and_no_phone(tmp_path: Path, collections: Path,
                                                                    smtp: SMTPSink, http: HTTPReceiver) -> None:
    """An Alertmanager webhook payload (as EDA hands it over): id = fingerprint, start = startsAt."""
    starts = (dt.datetime.now(tz=dt.UTC) - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    payload = {"status": "firing", "commonLabels": {"alertname": "HighAPILatency"}, "alerts": [
        {"status": "firing", "labels": {"alertname": "HighAPILatency", "instance": "api:8080"},
         "annotations": {"summary": "API p95 latency 3.2s"}, "startsAt": starts, "fingerprint": "3f2a9c1d0e4b5a67"}]}
    pb = Playbook(tmp_path, collections)
    play = open_play("", incident_open_alert=payload, incident_open_source="eda")
    pb.run(play, settings(tmp_path, http, smtp.port))
    [msg] = smtp.messages
    assert msg["Subject"] == "[P1] HIGH PRIORITY: HighAPILatency - API p95 latency 3.2s (3f2a9c1d0e4b5a67)"
    body = text_body(msg)
    opened = record(tmp_path)[0]
    assert opened["id"] == "3f2a9c1d0e4b5a67" and opened["started_at"] == starts[:19] + "+00:00"
    assert opened["labels"]["instance"] == "api:8080" and opened["source"] == "eda"
    assert opened["acknowledged_at"] > opened["started_at"]
    resolve_by = opened["deadlines"]["resolve_by"]
    assert body.startswith("⚠️  P1 HIGH PRIORITY - Task Scheduling System")
    assert "Lead Responder: alice" in body and f"ETA Resolution: {resolve_by} (SLA 120 minutes)" in body
    assert "Current actions:\n- Restarting the api container" in body
    assert "(every 30 minutes)" in body
    assert http.at("/sms") == [], "P1 incidents do not page by phone/SMS"
    assert [n["channel"] for n in record(tmp_path) if n["type"] == "notification"] == ["slack", "email"]


def test_failing_channels_are_recorded_and_do_not_stop_the_response(tmp_path: Path, collections: Path,
                                                                    http: HTTPReceiver) -> None:
    http.status["/slack/T000/B000/" + SECRET] = 500
    closed_port = free_port()  # nothing listens there: SMTP connection refused
    pb = Playbook(tmp_path, collections)
    play = open_play("NoActiveWorkers")
    play[0]["tasks"].append({"name": "The response goes on", "ansible.builtin.copy": {
        "content": "{{ tsops_incident_id }}", "dest": str(tmp_path / "went-on.txt")}})
    proc = pb.run(play, settings(tmp_path, http, closed_port))
    assert (tmp_path / "went-on.txt").exists()
    notes = {n["channel"]: n for n in record(tmp_path) if n["type"] == "notification"}
    assert notes["slack"]["ok"] is False and "500" in notes["slack"]["error"]
    assert notes["email"]["ok"] is False and notes["email"]["error"]
    assert notes["webhook"]["ok"] is True and len(http.at("/sms")) == 1
    log = next((tmp_path / "log").glob("*_incident.log")).read_text()
    assert "[NOTIFY] slack (opened: immediate) FAILED" in log and "[NOTIFY] email (opened: immediate) FAILED" in log
    assert SECRET not in proc.stdout and SECRET not in json.dumps(notes)
