"""Unit tests: incident records that survive bad days (torn tails, corrupt lines, an unwritable plain log, odd ids),
the public-only status page, and the scope of the post-incident silence (plugins/module_utils/_incident.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible.module_utils.testing import patch_module_args
from ansible_collections.taskscheduler.ops.plugins.filter import incident as filters
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident as rec
from ansible_collections.taskscheduler.ops.plugins.modules import incident_record

START = "2026-11-26T21:15:00Z"


def run(args: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        incident_record.main()
    return json.loads(out.getvalue())


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    return {"record_dir": str(tmp_path / "records"), "log_dir": str(tmp_path / "log")}


def open_incident(dirs: dict[str, str], alert: str = "TaskSchedulerAPIDown", start: str = START,
                  **extra: Any) -> dict[str, Any]:
    res = run(dict(dirs, state="open", alert=alert, started_at=start, timestamp=start, **extra))
    assert res["changed"] is True, res
    return res


def execute(args: dict[str, Any]) -> dict[str, Any]:
    """The module's logic without the module: its result still holds ``warnings`` (run in-process, the module
    hands them to the controller's display instead of returning them)."""
    return rec.execute(dict({"state": "append", "log_dir": ""}, **args))


def warnings(res: dict[str, Any]) -> list[str]:
    return list(res.get("warnings") or [])


def records(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_bytes().split(b"\n") if line]


# ------------------------------------------------------------------------------------------------- torn tail
TORN = b'{"type":"action","ts":"2026-11-26T21:17:00+00:00","step":"resta'


def test_torn_tail_is_moved_aside_before_appending(dirs: dict[str, str]) -> None:
    inc = open_incident(dirs)
    with open(inc["path"], "ab") as handle:
        handle.write(TORN)  # an interrupted write: half a line, no newline
    res = execute(dict(dirs, id=inc["id"], step="restart api", result="changed"))
    assert res["repaired"] == {"line": 2, "bytes": len(TORN), "moved_to": inc["path"] + ".corrupt"}
    assert Path(inc["path"] + ".corrupt").read_bytes() == TORN + b"\n", "the torn bytes are kept verbatim"
    entries = records(inc["path"])  # every line of the record is JSON again
    assert [(e["type"], e["seq"]) for e in entries] == [("open", 1), ("action", 2)]
    assert any("torn write" in w for w in warnings(res))
    again = execute(dict(dirs, id=inc["id"], step="verify"))
    assert again["repaired"] is None and again["bad_lines"] == [] and warnings(again) == []


def test_complete_entry_without_newline_is_kept(dirs: dict[str, str]) -> None:
    inc = open_incident(dirs)
    hand = rec.action_entry(step="hand-written", now="2026-11-26T21:16:00Z")
    with open(inc["path"], "ab") as handle:
        handle.write(json.dumps(dict(hand, seq=2)).encode())
    res = run(dict(dirs, id=inc["id"], step="next"))
    assert res["repaired"] is None and not os.path.exists(inc["path"] + ".corrupt")
    assert [e.get("step") for e in records(inc["path"])] == [None, "hand-written", "next"]
    assert res["entry"]["seq"] == 3


def test_check_mode_repairs_nothing(dirs: dict[str, str]) -> None:
    inc = open_incident(dirs)
    with open(inc["path"], "ab") as handle:
        handle.write(TORN)
    before = Path(inc["path"]).read_bytes()
    res = run(dict(dirs, id=inc["id"], step="x", _ansible_check_mode=True))
    assert res["changed"] is True and res["bad_lines"] == [2]
    assert Path(inc["path"]).read_bytes() == before and not os.path.exists(inc["path"] + ".corrupt")


# ----------------------------------------------------------------------------------------------- corrupt lines
def test_corrupt_lines_are_skipped_and_reported_by_every_query(dirs: dict[str, str]) -> None:
    good = open_incident(dirs)
    run(dict(dirs, id=good["id"], step="restart api", result="changed"))
    with open(good["path"], "ab") as handle:
        handle.write(b"\xff\xfe not utf-8\n[1, 2]\n{\"type\": \"act\n")
    run(dict(dirs, id=good["id"], step="verify", update="API is back", public=True))
    headless = open_incident(dirs, alert="NoActiveWorkers", start="2026-11-26T22:00:00Z")
    Path(headless["path"]).write_bytes(b'{"type":"open","id":"INC-x"\n')  # the open line itself is broken

    read = run(dict(dirs, state="read", id=good["id"]))
    assert read["bad_lines"] == [3, 4, 5] and len(read["entries"]) == 3
    assert read["incident"]["public_update"]["message"] == "API is back"
    assert [e["seq"] for e in read["entries"]] == [1, 2, 3], "numbering continues, never repeats a seq"

    assert run(dict(dirs, state="query")).get("failed") is not True
    query = execute(dict(dirs, state="query"))
    assert [i["id"] for i in query["incidents"]] == [good["id"]]
    assert query["incidents"][0]["bad_lines"] == [3, 4, 5]
    assert query["bad_lines"] == {good["id"]: [3, 4, 5], headless["id"]: [1]}
    assert [u["id"] for u in query["unreadable"]] == [headless["id"]]
    assert any(headless["id"] in w and "left out" in w for w in warnings(query))
    page = filters.incident_status_page(query["incidents"], now="2026-11-26T23:00:00Z")
    assert [i["id"] for i in page["open_incidents"]] == [good["id"]]
    assert filters.incident_review(query["incidents"][0])["timeline"]


def test_open_entry_missing_fields_is_a_clear_error(dirs: dict[str, str]) -> None:
    inc = open_incident(dirs)
    Path(inc["path"]).write_text('{"type":"open","seq":1,"id":"x"}\n')
    res = run(dict(dirs, state="read", id=inc["id"]))
    assert res["failed"] is True and "lacks alert, severity, started_at, ts" in res["msg"]


# ------------------------------------------------------------------------------------------------- plain log
def test_plain_log_failure_is_a_warning_the_record_counts(dirs: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    args = dict(dirs, log_dir=str(blocker / "logs"))
    assert run(dict(args, state="open", alert="SchedulerOffline", started_at=START)).get("failed") is not True
    res = execute(dict(args, state="open", alert="TaskSchedulerAPIDown", started_at=START, timestamp=START))
    assert res["changed"] is True
    assert any("plain incident log" in w and "not written" in w for w in warnings(res))
    assert [e["type"] for e in records(res["path"])] == ["open"]
    app = run(dict(args, id=res["id"], step="restart scheduler"))
    assert app["changed"] is True and [e["type"] for e in records(res["path"])] == ["open", "action"]


# ---------------------------------------------------------------------------------------------------------- ids
@pytest.mark.parametrize("bad", ["INC-1\n", "INC-1\r", "a/b", "../etc", ".hidden", "INC-é", "INC-\uff11", "",
                                 "-x", "x" * 129, "INC 1", "INC-1\x00", "INC-1\n\n", None, 7])
def test_ids_are_matched_whole(dirs: dict[str, str], bad: Any) -> None:
    with pytest.raises(rec.IncidentError, match="is not valid"):
        rec.check_id(bad)
    if isinstance(bad, str) and bad and "\x00" not in bad:  # the module refuses those before our code runs
        res = run(dict(dirs, state="read", id=bad))
        assert res["failed"] is True and "is not valid" in res["msg"]


@pytest.mark.parametrize("good", ["INC-1", "INC-20261126-211500-apidown", "a.b.c", "0f3e:12_ab", "x" * 128])
def test_valid_ids(good: str) -> None:
    assert rec.check_id(good) == good


def test_listing_ignores_files_whose_name_is_not_an_id(dirs: dict[str, str]) -> None:
    inc = open_incident(dirs)
    Path(dirs["record_dir"], "INC-1\n.jsonl").write_text(Path(inc["path"]).read_text())
    assert rec.IncidentStore(dirs["record_dir"]).ids() == [inc["id"]]


# ----------------------------------------------------------------------------------------------- status page
SECRETS = ["db-primary-7.internal", "10.20.30.40", "restart api", "docker compose up", "OOMKilled",
           "connection refused", "alice", "#inc-bridge", "trace-id-4242", "/var/lib/docker", "api:8080"]


def test_status_page_shows_only_public_updates(dirs: dict[str, str]) -> None:
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "TaskSchedulerAPIDown", "instance": "api:8080"},
                           "annotations": {"summary": "API service unavailable: api:8080"},
                           "startsAt": START}]}
    info = filters.alert_info(payload)
    inc = open_incident(dirs, commander="alice", bridge="#inc-bridge", impact="db-primary-7.internal OOMKilled",
                        description=info["description"], labels=info["labels"])
    for step, result, details, update in [
        ("restart api", "failed", {"host": "db-primary-7.internal", "error": "connection refused"},
         "restart api on db-primary-7.internal failed: OOMKilled"),
        ("docker compose up", "changed", {"ip": "10.20.30.40", "dir": "/var/lib/docker"}, "trace-id-4242"),
    ]:
        run(dict(dirs, id=inc["id"], step=step, result=result, host="db-primary-7.internal", details=details,
                 update=update))
    run(dict(dirs, id=inc["id"], type="notification", channel="email", ok=False, error="connection refused"))
    run(dict(dirs, id=inc["id"], step="publish status", result="info", status="identified", public=True,
             update="We have identified the cause and are restoring the service."))
    run(dict(dirs, id=inc["id"], step="restart api", result="changed", host="10.20.30.40",
             update="restarted on 10.20.30.40"))  # internal again, after the public update
    summaries = run(dict(dirs, state="query", timestamp="2026-11-26T21:40:00Z"))["incidents"]
    page = filters.incident_status_page(summaries, now="2026-11-26T21:40:00Z")
    text = json.dumps(page)
    leaked = [s for s in SECRETS if s in text]
    assert leaked == [], f"internal details on the public page: {leaked}"
    [shown] = page["open_incidents"]
    assert shown["latest_update"]["message"] == "We have identified the cause and are restoring the service."
    assert shown["status"] == "identified" and shown["title"] == "API service unavailable"
    run(dict(dirs, state="close", id=inc["id"], root_cause="OOMKilled on db-primary-7.internal",
             timestamp="2026-11-26T21:50:00Z"))
    closed = run(dict(dirs, state="query", timestamp="2026-11-26T22:00:00Z"))["incidents"]
    history = filters.incident_status_page(closed, now="2026-11-26T22:00:00Z")
    assert [s for s in SECRETS if s in json.dumps(history)] == []
    assert history["history"][0]["status"] == "resolved"


def test_public_update_needs_its_text(dirs: dict[str, str]) -> None:
    inc = open_incident(dirs)
    res = run(dict(dirs, id=inc["id"], step="x", public=True))
    assert res["failed"] is True and "public=true needs the public text" in res["msg"]


# ---------------------------------------------------------------------------------------------------- silence
def summary(alert: str, labels: dict[str, Any] | None = None) -> dict[str, Any]:
    entries = [dict(rec.open_entry(alert=alert, started_at=START, now=START, labels=labels), seq=1)]
    return rec.summarize(entries, now=START)


def test_silence_matches_the_alert_and_its_instance() -> None:
    plan = filters.incident_silence(summary("TaskSchedulerAPIDown", {"alertname": "TaskSchedulerAPIDown",
                                                                     "instance": "api:8080", "job": "api"}))
    assert plan["silence"] is True
    assert plan["matchers"] == [{"name": "alertname", "value": "TaskSchedulerAPIDown"},
                                {"name": "instance", "value": "api:8080"}]
    given = filters.incident_silence(summary("TaskSchedulerAPIDown"), instance="api-2:8080")
    assert given["matchers"][1] == {"name": "instance", "value": "api-2:8080"}


def test_silence_of_an_aggregate_alert_uses_all_its_labels() -> None:
    plan = filters.incident_silence(summary("NoActiveWorkers", {"alertname": "NoActiveWorkers", "severity": "P0",
                                                                "service": "worker"}))
    assert plan["matchers"] == [{"name": "alertname", "value": "NoActiveWorkers"},
                                {"name": "service", "value": "worker"}, {"name": "severity", "value": "P0"}]


def test_no_silence_for_every_host_when_the_instance_is_unknown() -> None:
    plan = filters.incident_silence(summary("TaskSchedulerAPIDown"))  # opened from the alert's name
    assert plan["silence"] is False and plan["matchers"] == [] and "instance" in plan["reason"]


def test_security_breach_gets_no_post_incident_silence_by_default() -> None:
    breach = summary("SecurityBreach", {"alertname": "SecurityBreach", "instance": "api:8080"})
    plan = filters.incident_silence(breach)
    assert plan["silence"] is False and "SecurityBreach" in plan["reason"]
    assert filters.incident_silence(breach, [])["silence"] is True  # an operator may opt in
    assert filters.incident_silence(summary("TaskSchedulerAPIDown", {"instance": "a"}),
                                    ["TaskSchedulerAPIDown"])["silence"] is False


def test_explicit_matchers_are_used_and_checked() -> None:
    given = [{"name": "alertname", "value": "X"}, {"name": "job", "value": "api"}]
    assert filters.incident_silence(summary("TaskSchedulerAPIDown"), matchers=given)["matchers"] == given
    with pytest.raises(AnsibleFilterError, match="expected a list of"):
        filters.incident_silence(summary("TaskSchedulerAPIDown"), matchers=["alertname=X"])
    with pytest.raises(AnsibleFilterError, match="expected an incident summary"):
        filters.incident_silence("TaskSchedulerAPIDown")
