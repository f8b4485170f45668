"""Unit tests for the incident_record module and its record store (plugins/module_utils/_incident.py)."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import re
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident as rec
from ansible_collections.taskscheduler.ops.plugins.modules import incident_record

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


def run(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """Run the module in-process; return its JSON result (failed results included)."""
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        incident_record.main()
    return json.loads(out.getvalue())


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    return {"record_dir": str(tmp_path / "records"), "log_dir": str(tmp_path / "log")}


def lines(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def open_api_down(dirs: dict[str, str], **extra: Any) -> dict[str, Any]:
    args = dict(dirs, state="open", alert="TaskSchedulerAPIDown", commander="alice", impact="API down",
                started_at="2026-11-26T21:15:00Z", timestamp="2026-11-26T21:16:30Z", services=["api"])
    args.update(extra)
    return run(args)


# --------------------------------------------------------------------------------------------------------- open
def test_open_writes_record_and_runbook_log_line(dirs: dict[str, str]) -> None:
    res = open_api_down(dirs)
    assert res["changed"] is True
    assert res["id"] == "INC-20261126-211500-apidown"
    [entry] = lines(res["path"])
    assert entry["type"] == "open" and entry["seq"] == 1
    assert entry["severity"] == "P0" and entry["commander"] == "alice"
    assert entry["deadlines"]["respond_by"] == "2026-11-26T21:20:00+00:00"
    assert entry["deadlines"]["resolve_by"] == "2026-11-26T21:45:00+00:00"
    assert entry["escalation"] == {"audience": "Immediate all-hands", "level": 1, "to": "On-call Engineer",
                                   "escalate_after_minutes": 15}
    assert os.path.basename(res["log_path"]) == "20261126_211500_INC-20261126-211500-apidown_incident.log"
    assert Path(res["log_path"]).read_text() == \
        "2026-11-26T21:16:30+00:00 [IC] P0 incident started: TaskSchedulerAPIDown\n"
    summary = res["incident"]
    assert summary["time_to_acknowledge_seconds"] == 90 and summary["response_met"] is True


def test_reopen_open_incident_continues_it(dirs: dict[str, str]) -> None:
    first = open_api_down(dirs)
    again = open_api_down(dirs, timestamp="2026-11-26T21:20:00Z")
    assert again["changed"] is False and again["id"] == first["id"]
    assert len(lines(first["path"])) == 1


def test_caller_given_id_and_severity_map_override(dirs: dict[str, str]) -> None:
    res = run(dict(dirs, state="open", id="3f2a9c1d0e4b5a67", alert="HighAPILatency",
                   severity_map={"HighAPILatency": "P0"}))
    assert res["id"] == "3f2a9c1d0e4b5a67" and res["incident"]["severity"] == "P0"


def test_unknown_alert_fails_clearly(dirs: dict[str, str]) -> None:
    res = run(dict(dirs, state="open", alert="MysteryAlert"))
    assert res["failed"] is True
    assert "MysteryAlert" in res["msg"] and "tsops_severity_map" in res["msg"]
    assert not Path(dirs["record_dir"]).exists()
    res = run(dict(dirs, state="open", alert="MysteryAlert", default_severity="P2"))
    assert res["incident"]["severity"] == "P2"


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 200])
def test_bad_ids_rejected(dirs: dict[str, str], bad: str) -> None:
    res = run(dict(dirs, state="open", id=bad or None, alert="HighAPILatency") if bad else
              dict(dirs, state="append", id="", step="x"))
    assert res["failed"] is True
    assert not (Path(dirs["record_dir"]).parent / "etc").exists()


def test_check_mode_writes_nothing(dirs: dict[str, str]) -> None:
    res = run(dict(dirs, state="open", alert="NoActiveWorkers"), check_mode=True)
    assert res["changed"] is True and res["entry"]["type"] == "open"
    assert not Path(dirs["record_dir"]).exists() and not Path(dirs["log_dir"]).exists()


# ------------------------------------------------------------------------------------------------ append / close
def test_append_action_and_notification(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    act = run(dict(dirs, id=inc["id"], actor="ansible", host="node1", step="restart api", result="changed",
                   details={"container": "api"}, flags=["service_restored"], status="monitoring",
                   update="API restarted", timestamp="2026-11-26T21:20:00Z"))
    assert act["changed"] is True and act["entry"]["seq"] == 2
    note = run(dict(dirs, id=inc["id"], type="notification", channel="email", ok=False,
                    error="connection refused", audience="immediate", timestamp="2026-11-26T21:20:05Z"))
    assert note["entry"]["ok"] is False
    summary = note["incident"]
    assert summary["status"] == "monitoring"
    assert summary["notifications"] == {"sent": 0, "failed": 1, "failed_channels": ["email"]}
    assert summary["flags"] == {"service_restored": "2026-11-26T21:20:00+00:00"}
    assert summary["latest_update"]["message"] == "API restarted"
    log = Path(inc["log_path"]).read_text().splitlines()
    assert log[1] == "2026-11-26T21:20:00+00:00 [ansible] node1 restart api: changed"
    assert log[2] == "2026-11-26T21:20:05+00:00 [NOTIFY] email (immediate) FAILED: connection refused"
    assert [e["seq"] for e in lines(inc["path"])] == [1, 2, 3]


def test_append_to_missing_incident_fails(dirs: dict[str, str]) -> None:
    res = run(dict(dirs, id="INC-nope", step="x"))
    assert res["failed"] is True and "open it first" in res["msg"]


def test_unknown_flag_rejected(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    res = run(dict(dirs, id=inc["id"], step="x", flags=["everything_fine"]))
    assert res["failed"] is True and "flags" in res["msg"]


def test_close_is_idempotent_and_writes_resolved_line(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    args = dict(dirs, state="close", id=inc["id"], root_cause="connection pool exhausted",
                resolution=["restarted api", "raised pool size"], timestamp="2026-11-26T21:40:00Z")
    first = run(args)
    assert first["changed"] is True
    summary = first["incident"]
    assert summary["state"] == "closed" and summary["duration"] == "25m"
    assert summary["duration_seconds"] == 1500 and summary["resolution_met"] is True
    second = run(dict(args, timestamp="2026-11-26T21:50:00Z"))
    assert second["changed"] is False
    assert len(lines(inc["path"])) == 2
    assert Path(inc["log_path"]).read_text().splitlines()[-1] == (
        "2026-11-26T21:40:00+00:00 [RESOLVED] Root cause: connection pool exhausted, "
        "Resolution: restarted api; raised pool size")


def test_late_close_breaches_resolution_sla(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    res = run(dict(dirs, state="close", id=inc["id"], root_cause="x", timestamp="2026-11-26T22:15:00Z"))
    assert res["incident"]["resolution_met"] is False and res["incident"]["sla_breached"] is True


def test_reopen_closed_incident(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    run(dict(dirs, state="close", id=inc["id"], root_cause="x", timestamp="2026-11-26T21:30:00Z"))
    res = open_api_down(dirs, timestamp="2026-11-26T21:35:00Z", reason="fired again")
    assert res["changed"] is True and res["entry"]["type"] == "reopen"
    assert res["incident"]["state"] == "open" and res["incident"]["reopened"] == 1


def test_records_are_append_only(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    before = Path(inc["path"]).read_bytes()
    for i in range(3):
        run(dict(dirs, id=inc["id"], step=f"step {i}"))
    run(dict(dirs, state="close", id=inc["id"], root_cause="x"))
    after = Path(inc["path"]).read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 5


# -------------------------------------------------------------------------------------------------- escalation
def test_escalate_climbs_path_and_stays_at_top(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    roles = []
    for _attempt in range(4):
        res = run(dict(dirs, state="escalate", id=inc["id"], reasons=["service down"]))
        roles.append((res["entry"]["level"], res["entry"]["to"], res["entry"]["moved"]))
    assert roles == [(2, "Technical Lead", True), (3, "Engineering Manager", True), (4, "CTO", True),
                     (4, "CTO", False)]
    assert res["incident"]["escalated_to"] == "CTO" and len(res["incident"]["escalations"]) == 4
    assert "[ESCALATION] level 2 -> Technical Lead: service down" in Path(inc["log_path"]).read_text()


def test_escalate_custom_path_with_contacts(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    path = [{"role": "On-call", "email": "oncall@example.com"}, {"role": "Lead", "email": "lead@example.com"}]
    res = run(dict(dirs, state="escalate", id=inc["id"], escalation_path=path))
    assert res["entry"]["to"] == "Lead" and res["entry"]["contact"] == {"email": "lead@example.com"}


def test_escalate_closed_fails(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    run(dict(dirs, state="close", id=inc["id"], root_cause="x"))
    res = run(dict(dirs, state="escalate", id=inc["id"]))
    assert res["failed"] is True and "closed" in res["msg"]


# ---------------------------------------------------------------------------------------------------- read/list
def test_read_and_list(dirs: dict[str, str]) -> None:
    a = open_api_down(dirs)
    run(dict(dirs, state="open", alert="DiskSpaceCritical", started_at="2026-10-31T23:59:59Z",
             timestamp="2026-11-01T00:05:00Z"))
    run(dict(dirs, state="open", alert="HighAPILatency", started_at="2026-11-01T00:00:00Z",
             timestamp="2026-11-01T00:01:00Z"))
    read = run(dict(dirs, state="read", id=a["id"]))
    assert read["changed"] is False and [e["type"] for e in read["entries"]] == ["open"]
    november = run(dict(dirs, state="query", since="2026-11-01T00:00:00Z", until="2026-12-01T00:00:00Z"))
    assert november["count"] == 2
    assert [i["alert"] for i in november["incidents"]] == ["TaskSchedulerAPIDown", "HighAPILatency"]
    assert run(dict(dirs, state="query"))["count"] == 3


def test_no_plain_log_when_log_dir_empty(tmp_path: Path) -> None:
    res = run({"record_dir": str(tmp_path / "r"), "log_dir": "", "state": "open", "alert": "SchedulerOffline"})
    assert res["log_path"] is None and res["changed"] is True


def test_unwritable_dir_fails_with_hint(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run({"record_dir": str(blocker / "sub"), "log_dir": "", "state": "open", "alert": "SchedulerOffline"})
    assert res["failed"] is True and "record_dir" in res["msg"]


def test_hand_edited_record_is_reported_not_fatal(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    with open(inc["path"], "a") as handle:
        handle.write("not json\n")
    res = run(dict(dirs, id=inc["id"], step="x"))
    assert res["changed"] is True and res["bad_lines"] == [2]
    warned = rec.execute(dict(dirs, state="read", id=inc["id"]))["warnings"]
    assert any("line 2" in w and "not JSON" in w for w in warned)
    assert res["entry"]["seq"] == 2 and res["incident"]["actions"] == 1


# --------------------------------------------------------------------------------------------------- concurrency
def _hammer(record_dir: str, log_dir: str, incident_id: str, worker: int, count: int) -> None:
    for i in range(count):
        rec.execute({"state": "append", "record_dir": record_dir, "log_dir": log_dir, "id": incident_id,
                     "type": "action", "step": f"w{worker}-{i}", "host": f"host{worker}", "result": "ok",
                     "details": {"payload": "x" * 3000}})


def test_concurrent_appenders_lose_nothing(dirs: dict[str, str]) -> None:
    inc = open_api_down(dirs)
    workers, per_worker = 6, 40
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(dirs["record_dir"], dirs["log_dir"], inc["id"], w, per_worker))
             for w in range(workers)]
    for proc in procs:
        proc.start()
    # a concurrent open of the same id must neither duplicate the open entry nor block the appenders for good
    assert open_api_down(dirs)["changed"] is False
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    entries = lines(inc["path"])  # every line parses: no interleaved writes
    assert len(entries) == 1 + workers * per_worker
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert sum(e["type"] == "open" for e in entries) == 1
    steps = {e["step"] for e in entries if e["type"] == "action"}
    assert steps == {f"w{w}-{i}" for w in range(workers) for i in range(per_worker)}
    for w in range(workers):  # each writer's own entries stay in its order
        mine = [int(e["step"].split("-")[1]) for e in entries if e.get("host") == f"host{w}"]
        assert mine == sorted(mine)
    log = Path(inc["log_path"]).read_text().splitlines()
    assert len(log) == len(entries)
    assert all(re.match(ISO + r" \[", line) for line in log)


def test_check_mode_on_unrecorded_incident_does_not_fail(dirs: dict[str, str]) -> None:
    for state in ("append", "close", "escalate", "read"):
        res = run(dict(dirs, state=state, id="INC-not-yet", step="x", root_cause="y"), check_mode=True)
        assert res.get("failed") is not True and res["missing"] is True and res["incident"] is None
        assert res["changed"] is (state != "read")
    assert not Path(dirs["record_dir"]).exists()
