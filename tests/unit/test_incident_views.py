"""Unit tests for what the incident summary turns into: notice context (subjects, recipients, SMS, next update,
review time) and the public status page data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident as rec


def incident(alert: str, start: str, *, end: str | None = None, severity: str | None = None,
             **open_args: Any) -> list[dict[str, Any]]:
    entries = [rec.open_entry(alert=alert, started_at=start, now=start, severity=severity, commander="alice",
                              bridge="#bridge", **open_args)]
    entries[0]["seq"] = 1
    if end:
        close = rec.close_entry(entries, root_cause="disk full", resolution=["freed space"], now=end)
        close["seq"] = 2
        entries.append(close)
    return entries


STAKEHOLDERS = {
    "immediate": {"email": ["oncall@example.com"], "phone": ["+15550100"]},
    "update": {"email": ["pm@example.com", "oncall@example.com"]},
    "resolution": {"email": "cs@example.com"},
}


# -------------------------------------------------------------------------------------------------------- notices
def test_opened_p0_context() -> None:
    summary = rec.summarize(incident("TaskSchedulerAPIDown", "2026-11-26T23:50:00Z"), now="2026-11-26T23:51:00Z")
    ctx = rec.notice_context(summary, "opened", now="2026-11-26T23:51:00Z", stakeholders=STAKEHOLDERS)
    assert ctx["headline"] == "🚨 P0 CRITICAL INCIDENT - Task Scheduling System"
    assert ctx["subject"] == ("[P0] CRITICAL INCIDENT: TaskSchedulerAPIDown - API service unavailable "
                              "(INC-20261126-235000-apidown)")
    assert ctx["next_update_at"] == "2026-11-27T00:06:00+00:00" and ctx["update_minutes"] == 15
    assert ctx["recipients"] == {"email": ["oncall@example.com"], "phone": ["+15550100"]}
    assert ctx["sms"] == "P0 TaskSchedulerAPIDown INC-20261126-235000-apidown INVESTIGATING IC alice bridge #bridge"


def test_update_goes_to_immediate_and_update_lists_without_duplicates() -> None:
    summary = rec.summarize(incident("HighAPILatency", "2026-11-26T10:00:00Z"))
    ctx = rec.notice_context(summary, "update", now="2026-11-26T10:15:00Z", stakeholders=STAKEHOLDERS)
    assert ctx["recipients"]["email"] == ["oncall@example.com", "pm@example.com"]
    assert ctx["subject"].startswith("[P1 UPDATE] HIGH PRIORITY: HighAPILatency")
    assert ctx["headline"].endswith("- UPDATE") and ctx["next_update_at"] == "2026-11-26T10:45:00+00:00"


def test_resolved_goes_to_everyone_with_review_next_day() -> None:
    summary = rec.summarize(incident("DiskSpaceCritical", "2026-11-26T22:00:00Z", end="2026-11-26T23:35:00Z"))
    ctx = rec.notice_context(summary, "resolved", now="2026-11-26T23:36:00Z", stakeholders=STAKEHOLDERS)
    assert ctx["recipients"]["email"] == ["oncall@example.com", "pm@example.com", "cs@example.com"]
    assert ctx["subject"] == "[RESOLVED] DiskSpaceCritical (INC-20261126-220000-diskspacecritical) after 1h 35m"
    assert ctx["review_at"] == "2026-11-27T23:35:00+00:00"
    assert ctx["headline"] == "✅ RESOLVED - Task Scheduling System Incident"


def test_escalated_adds_the_contact_of_the_new_step() -> None:
    entries = incident("NoActiveWorkers", "2026-11-26T10:00:00Z")
    path = [{"role": "On-call", "email": "oncall@example.com"},
            {"role": "Technical Lead", "email": "lead@example.com", "phone": "+15550111"}]
    esc = rec.escalation_entry(entries, reasons=["down"], path=path, now="2026-11-26T10:16:00Z")
    esc["seq"] = 2
    summary = rec.summarize([*entries, esc])
    ctx = rec.notice_context(summary, "escalated", now="2026-11-26T10:16:00Z", stakeholders=STAKEHOLDERS)
    assert ctx["recipients"] == {"email": ["oncall@example.com", "lead@example.com"],
                                 "phone": ["+15550100", "+15550111"]}
    assert ctx["subject"] == "[ESCALATED P0] NoActiveWorkers (INC-20261126-100000-noactiveworkers) to Technical Lead"


def test_sms_is_cut_to_160_characters() -> None:
    summary = rec.summarize(incident("SecurityBreach", "2026-11-26T10:00:00Z"))
    summary["bridge"] = "x" * 300
    assert len(rec.notice_context(summary, "opened")["sms"]) == 160


def test_bad_event_and_bad_stakeholders() -> None:
    summary = rec.summarize(incident("SchedulerOffline", "2026-11-26T10:00:00Z"))
    with pytest.raises(rec.IncidentError, match="notice event"):
        rec.notice_context(summary, "panic")
    with pytest.raises(rec.IncidentError, match=r"stakeholders\.immediate"):
        rec.notice_context(summary, "opened", stakeholders={"immediate": ["oncall@example.com"]})


# ---------------------------------------------------------------------------------------------------- status page
def test_status_page_worst_open_incident_decides() -> None:
    now = "2026-11-26T12:00:00Z"
    summaries = [
        rec.summarize(incident("TaskSchedulerAPIDown", "2026-11-26T11:50:00Z", impact="API down"), now=now),
        rec.summarize(incident("WorkerHealthDegraded", "2026-11-26T11:00:00Z"), now=now),
        rec.summarize(incident("HighAPILatency", "2026-11-26T11:40:00Z"), now=now),
        rec.summarize(incident("DiskSpaceCritical", "2026-11-20T10:00:00Z", end="2026-11-20T11:00:00Z"), now=now),
        rec.summarize(incident("DatabaseSlowQueries", "2026-09-01T10:00:00Z", end="2026-09-01T11:00:00Z"), now=now),
        rec.summarize(incident("Custom", "2026-11-26T11:55:00Z", severity="P3", services=["reports"]), now=now),
    ]
    page = rec.status_page(summaries, now=now)
    status = {s["name"]: s["status"] for s in page["services"]}
    assert status == {"api": "major_outage", "scheduler": "operational", "worker": "partial_outage",
                      "postgres": "operational", "redis": "operational", "reports": "degraded"}
    assert page["overall"] == {"status": "major_outage", "label": "Major outage"}
    assert [i["alert"] for i in page["open_incidents"]] == [
        "Custom", "TaskSchedulerAPIDown", "HighAPILatency", "WorkerHealthDegraded"]
    api_down = page["open_incidents"][1]
    assert api_down["title"] == "API service unavailable" and api_down["elapsed"] == "10m"
    assert api_down["latest_update"] == {}  # no update flagged public yet: nothing but status and times
    assert [i["alert"] for i in page["history"]] == ["DiskSpaceCritical"]  # September is outside 30 days
    assert "root_cause" not in page["history"][0] and page["history"][0]["duration"] == "1h"
    text = json.dumps(page)
    assert "alice" not in text and "#bridge" not in text, "nothing internal on the public page"


def test_status_page_all_operational() -> None:
    page = rec.status_page([], now="2026-11-26T12:00:00Z")
    assert page["overall"] == {"status": "operational", "label": "All systems operational"}
    assert {s["status"] for s in page["services"]} == {"operational"}


def test_update_due_after_the_severity_interval_since_the_last_notice() -> None:
    entries = incident("TaskSchedulerAPIDown", "2026-11-26T23:50:00Z")  # acknowledged 23:50, P0 every 15 min
    assert rec.update_due(rec.summarize(entries), now="2026-11-27T00:04:59Z")["due"] is False
    assert rec.update_due(rec.summarize(entries), now="2026-11-27T00:05:00Z")["next_at"] == "2026-11-27T00:05:00+00:00"
    sent = rec.notification_entry(channel="slack", ok=True, now="2026-11-27T00:06:00Z")
    failed = rec.notification_entry(channel="email", ok=False, error="x", now="2026-11-27T00:30:00Z")
    entries += [dict(sent, seq=2), dict(failed, seq=3)]
    due = rec.update_due(rec.summarize(entries), now="2026-11-27T00:20:00Z")
    assert due == {"due": False, "last_at": "2026-11-27T00:06:00+00:00", "next_at": "2026-11-27T00:21:00+00:00",
                   "update_minutes": 15}  # a failed delivery does not count as an update
    assert rec.update_due(rec.summarize(entries), now="2026-11-27T00:21:00Z")["due"] is True
    closed = [*entries, dict(rec.close_entry(entries, root_cause="x", now="2026-11-27T00:25:00Z"), seq=4)]
    assert rec.update_due(rec.summarize(closed), now="2026-11-27T03:00:00Z")["due"] is False
    p1 = incident("HighAPILatency", "2026-11-26T10:00:00Z")
    assert rec.update_due(rec.summarize(p1), now="2026-11-26T10:29:00Z", matrix={"P1": {"update_minutes": 20}})["due"]
