"""alertmanager_silence against the lab's real Alertmanager (0.25, API v2), through real ansible-playbook runs.

Proves: check mode creates nothing; the first run creates one silence that Alertmanager reports active with our
matchers and a 30 minute end; a second run finds it and creates no duplicate; a longer duration extends the same
silence in place; state=absent expires it.
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
