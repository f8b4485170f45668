"""alertmanager_silence against the lab's real Alertmanager (0.25, API v2), through real ansible-playbook runs.

Proves: check mode creates nothing; the first run creates one silence that Alertmanager reports active with our
matchers and a 30 minute end; a second run finds it and creates no duplicate; a longer duration extends the same
silence in place; state=absent expires it. incident_close's post-incident silence matches the incident's alert and
its instance only (never the alert on every host), and SecurityBreach gets none.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from incident_support import Playbook, alertmanager_url, am_expire, am_get, collections_dir, recap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def am_url() -> str:
    return alertmanager_url()


@pytest.fixture
def marker(am_url: str) -> Any:
    """A label value unique to this test, so parallel runs and other engineers' silences are never touched."""
    value = f"it-{uuid.uuid4().hex[:12]}"
    yield value
    for silence in am_get(am_url, "/silences"):
        if any(m["name"] == "tsops_test" and m["value"] == value for m in silence["matchers"]) \
                and silence["status"]["state"] != "expired":
            am_expire(am_url, silence["id"])


def silence_play(out: Path, **module_args: Any) -> list[dict[str, Any]]:
    return [{
        "name": "silence",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"name": "Silence", "taskscheduler.ops.alertmanager_silence": module_args, "register": "result"},
            {"name": "Save the result", "check_mode": False, "changed_when": False,
             "ansible.builtin.copy": {"content": "{{ result | to_json }}", "dest": str(out)}},
        ],
    }]


def ours(am_url: str, marker: str) -> list[dict[str, Any]]:
    return [s for s in am_get(am_url, "/silences")
            if any(m["name"] == "tsops_test" and m["value"] == marker for m in s["matchers"])]


def ends_in(silence: dict[str, Any]) -> float:
    ends = dt.datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
    return (ends - dt.datetime.now(tz=dt.UTC)).total_seconds() / 60


def test_silence_create_no_duplicate_extend_expire(am_url: str, marker: str, tmp_path: Path,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    out = tmp_path / "result.json"
    args = {"url": am_url, "alertname": "TaskSchedulerAPIDown", "matchers": [{"name": "tsops_test", "value": marker}],
            "duration": "30m", "comment": f"Post-incident silence for INC-{marker}"}

    pb.run(silence_play(out, **args), check=True)
    checked = json.loads(out.read_text())
    assert checked["changed"] is True and checked["action"] == "created"
    assert ours(am_url, marker) == [], "check mode must not create a silence"

    first = pb.run(silence_play(out, **args))
    created = json.loads(out.read_text())
    assert created["action"] == "created" and recap(first)["changed"] == 1
    [silence] = ours(am_url, marker)
    assert silence["id"] == created["silence_id"] and silence["status"]["state"] == "active"
    assert {(m["name"], m["value"]) for m in silence["matchers"]} == {("alertname", "TaskSchedulerAPIDown"),
                                                                      ("tsops_test", marker)}
    assert 29 < ends_in(silence) <= 30
    assert silence["comment"] == f"Post-incident silence for INC-{marker}"

    second = pb.run(silence_play(out, **args))
    again = json.loads(out.read_text())
    assert again["action"] == "unchanged" and again["silence_id"] == created["silence_id"]
    assert recap(second)["changed"] == 0
    assert len(ours(am_url, marker)) == 1, "a second run must not create a duplicate"

    pb.run(silence_play(out, **{**args, "duration": "2h"}))
    extended = json.loads(out.read_text())
    assert extended["action"] == "extended"
    assert extended["silence_id"] == created["silence_id"] and extended["replaced"] is False, "extended in place"
    active = [s for s in ours(am_url, marker) if s["status"]["state"] == "active"]
    assert len(active) == 1 and active[0]["id"] == extended["silence_id"]
    assert 119 < ends_in(active[0]) <= 120

    pb.run(silence_play(out, url=am_url, state="absent", silence_id=extended["silence_id"]))
    assert json.loads(out.read_text())["action"] == "expired"
    assert all(s["status"]["state"] == "expired" for s in ours(am_url, marker))


# --------------------------------------------------------------------------------- incident_close's silence
def close_play(alert: str, instance: str, incident_id: str) -> list[dict[str, Any]]:
    """Open an incident from an Alertmanager payload (its labels recorded), close it with the role's defaults."""
    payload = {"status": "firing", "alerts": [{"status": "firing", "startsAt": "2026-11-26T21:15:00Z",
                                               "labels": {"alertname": alert, "instance": instance, "job": "api"}}]}
    return [{"name": "open and close", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Open", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_open"},
         "vars": {"incident_open_alert": payload, "incident_open_id": incident_id, "incident_open_notify": False}},
        {"name": "Close", "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_close"},
         "vars": {"incident_close_root_cause": "test", "incident_close_verify": False,
                  "incident_close_check_alerts": False, "incident_close_notify": False}},
    ]}]


def by_instance(am_url: str, instance: str) -> list[dict[str, Any]]:
    return [s for s in am_get(am_url, "/silences") if s["status"]["state"] != "expired"
            and any(m["name"] == "instance" and m["value"] == instance for m in s["matchers"])]


@pytest.fixture
def instance(am_url: str) -> Any:
    value = f"it-{uuid.uuid4().hex[:12]}:8080"
    yield value
    for silence in by_instance(am_url, value):
        am_expire(am_url, silence["id"])


def test_post_incident_silence_is_the_alert_on_its_instance(am_url: str, instance: str, tmp_path: Path,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    settings = {"tsops_incident_dir": str(tmp_path / "records"), "tsops_incident_log_dir": str(tmp_path / "log"),
                "tsops_alertmanager_url": am_url}
    before = {s["id"] for s in am_get(am_url, "/silences")}
    pb.run(close_play("TaskSchedulerAPIDown", instance, "INC-silence-api"), settings)
    [silence] = by_instance(am_url, instance)
    assert {(m["name"], m["value"], m["isEqual"]) for m in silence["matchers"]} == {
        ("alertname", "TaskSchedulerAPIDown", True), ("instance", instance, True)}, "never the alert on every host"
    new = [s for s in am_get(am_url, "/silences") if s["id"] not in before and s["status"]["state"] != "expired"]
    assert [s["id"] for s in new] == [silence["id"]]
    record = [json.loads(x) for x in (tmp_path / "records" / "INC-silence-api.jsonl").read_text().splitlines()]
    [step] = [e for e in record if e.get("step", "").startswith("silence alert")]
    assert step["details"]["silence_id"] == silence["id"]


def test_security_breach_gets_no_post_incident_silence(am_url: str, instance: str, tmp_path: Path,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    settings = {"tsops_incident_dir": str(tmp_path / "records"), "tsops_incident_log_dir": str(tmp_path / "log"),
                "tsops_alertmanager_url": am_url}
    before = {s["id"] for s in am_get(am_url, "/silences") if s["status"]["state"] != "expired"}
    pb.run(close_play("SecurityBreach", instance, "INC-silence-breach"), settings)
    after = {s["id"] for s in am_get(am_url, "/silences") if s["status"]["state"] != "expired"}
    breach = [s for s in am_get(am_url, "/silences") if s["id"] in after - before
              and any(m["name"] == "alertname" and m["value"] == "SecurityBreach" for m in s["matchers"])]
    assert breach == [] and by_instance(am_url, instance) == []
    record = [json.loads(x) for x in (tmp_path / "records" / "INC-silence-breach.jsonl").read_text().splitlines()]
    [step] = [e for e in record if e.get("step") == "no post-incident silence"]
    assert step["result"] == "skipped" and "SecurityBreach" in step["details"]["reason"]
    assert record[-1]["type"] == "action" and any(e["type"] == "close" for e in record)
