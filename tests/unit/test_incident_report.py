"""Unit tests for the post-incident review context and the monthly figures (plugins/module_utils/_incident_report)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.taskscheduler.ops.plugins.filter import incident as flt
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident as rec
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident_report as report

UTC = dt.UTC


def build(alert: str, start: dt.datetime, tta: int, ttr: int | None, escalations: int = 0,
          failed: int = 0) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []

    def add(entry: dict[str, Any]) -> None:
        entry["seq"] = len(entries) + 1
        entries.append(entry)

    add(rec.open_entry(alert=alert, started_at=start, now=start + dt.timedelta(minutes=tta), commander="alice"))
    for k in range(escalations):
        add(rec.escalation_entry(entries, reasons=["still down"], now=start + dt.timedelta(minutes=16 + k)))
    for _attempt in range(failed):
        add(rec.notification_entry(channel="email", ok=False, error="refused", now=start))
    if ttr is not None:
        add(rec.close_entry(entries, root_cause="x", now=start + dt.timedelta(minutes=ttr)))
    return entries


# alert, day, minutes to acknowledge, minutes to resolve (None: open)
NOVEMBER = [
    ("TaskSchedulerAPIDown", 2, 2, 10), ("TaskSchedulerAPIDown", 5, 2, 20), ("TaskSchedulerAPIDown", 9, 2, 25),
    ("TaskSchedulerAPIDown", 12, 2, 28), ("TaskSchedulerAPIDown", 17, 2, 35), ("TaskSchedulerAPIDown", 21, 2, 50),
    ("SecurityBreach", 13, 8, 20),
    ("HighAPILatency", 3, 20, 60), ("HighAPILatency", 8, 5, 90), ("HighAPILatency", 15, 10, 100),
    ("HighAPILatency", 22, 14, 130), ("DiskSpaceCritical", 6, 3, 45), ("DiskSpaceCritical", 26, 3, 200),
    ("MemoryUsageCritical", 30, 1, None),
]
MONTH_END = "2026-12-01T00:00:00Z"


@pytest.fixture(scope="module")
def stats() -> dict[str, Any]:
    summaries = []
    for alert, day, tta, ttr in NOVEMBER:
        start = dt.datetime(2026, 11, day, 23 if alert == "MemoryUsageCritical" else 10, 0, tzinfo=UTC)
        summaries.append(rec.summarize(build(alert, start, tta, ttr, escalations=int(alert == "SecurityBreach"),
                                             failed=int(day == 12)), now=MONTH_END))
    for day in range(1, 11):  # October, for the trend
        summaries.append(rec.summarize(build("WorkerHealthDegraded", dt.datetime(2026, 10, day, tzinfo=UTC), 5, 30),
                                       now=MONTH_END))
    summaries.append(rec.summarize(build("SchedulerOffline", dt.datetime(2026, 12, 1, tzinfo=UTC), 1, 5),
                                   now=MONTH_END))
    return flt.incident_monthly_stats(summaries, "2026-11")


def test_counts_by_severity_and_alert(stats: dict[str, Any]) -> None:
    assert stats["total"] == 14 and stats["resolved"] == 13 and stats["open"] == 1
    assert stats["by_severity"] == {"P0": 7, "P1": 7, "P2": 0, "P3": 0}
    assert list(stats["by_alert"]) == ["TaskSchedulerAPIDown", "HighAPILatency", "DiskSpaceCritical",
                                       "MemoryUsageCritical", "SecurityBreach"]
    assert stats["by_alert"]["TaskSchedulerAPIDown"] == {"total": 6, "P0": 6, "P1": 0, "P2": 0, "P3": 0}


def test_trend_against_previous_month(stats: dict[str, Any]) -> None:
    assert stats["previous"]["month"] == "2026-10" and stats["previous"]["total"] == 10
    assert stats["change_percent"] == 40.0


def test_times_against_sla_per_severity(stats: dict[str, Any]) -> None:
    p0, p1 = stats["per_severity"]["P0"], stats["per_severity"]["P1"]
    assert p0["time_to_acknowledge_minutes"] == {"mean": 2.9, "median": 2.0, "max": 8.0}
    assert p0["time_to_resolve_minutes"] == {"mean": 26.9, "median": 25.0, "max": 50.0}
    assert (p0["response_target_minutes"], p0["resolution_target_minutes"]) == (5, 30)
    assert (p0["response_breaches"], p0["resolution_breaches"], p0["within_sla_percent"]) == (1, 2, 57.1)
    assert p1["time_to_acknowledge_minutes"] == {"mean": 8.0, "median": 5.0, "max": 20.0}
    assert p1["time_to_resolve_minutes"] == {"mean": 104.2, "median": 95.0, "max": 200.0}
    assert (p1["response_breaches"], p1["resolution_breaches"], p1["within_sla_percent"]) == (1, 2, 57.1)
    assert p1["resolved"] == 6 and stats["per_severity"]["P2"]["count"] == 0
    assert stats["time_to_acknowledge_minutes"] == {"mean": 5.4, "median": 2.5, "max": 20.0}
    assert stats["time_to_resolve_minutes"] == {"mean": 62.5, "median": 45.0, "max": 200.0}


def test_breaches_listed(stats: dict[str, Any]) -> None:
    kinds = sorted((b["alert"], b["kind"], b["minutes"]) for b in stats["sla_breaches"])
    assert kinds == [("DiskSpaceCritical", "resolution", 200.0), ("HighAPILatency", "resolution", 130.0),
                     ("HighAPILatency", "response", 20.0), ("SecurityBreach", "response", 8.0),
                     ("TaskSchedulerAPIDown", "resolution", 35.0), ("TaskSchedulerAPIDown", "resolution", 50.0)]
    assert stats["incidents_with_breach"] == 6
    assert stats["escalated_incidents"] == 1 and stats["escalation_steps"] == 1
    assert stats["notification_failures"] == 1


def test_open_incident_past_its_deadline_counts_as_breach() -> None:
    start = dt.datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    summary = rec.summarize(build("HighAPILatency", start, 1, None), now=MONTH_END)  # open 4h, SLA 2h
    stats = report.monthly_stats([summary], "2026-11")
    assert stats["sla_breaches"] == [{"id": summary["id"], "alert": "HighAPILatency", "severity": "P1",
                                      "kind": "resolution", "minutes": None, "target_minutes": 120, "open": True}]


def test_empty_month_and_bad_month() -> None:
    stats = report.monthly_stats([], "2026-02")
    assert stats["total"] == 0 and stats["change_percent"] is None
    assert stats["time_to_resolve_minutes"] == {"mean": None, "median": None, "max": None}
    assert report.month_bounds("2026-12")[1] == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert report.previous_month("2026-01") == "2025-12"
    with pytest.raises(report.ReportError, match="YYYY-MM"):
        report.month_bounds("November")
    assert flt.incident_month_bounds("2026-03") == {
        "start": "2026-03-01T00:00:00+00:00", "end": "2026-04-01T00:00:00+00:00", "previous": "2026-02",
        "previous_start": "2026-02-01T00:00:00+00:00"}


def test_chart_is_a_png(stats: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "chart.png"
    info = report.render_chart(stats, str(out), "Incidents 2026-11")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and info["alerts"] == 5 and info["severities"] == ["P0", "P1"]
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1300, 550)


# ------------------------------------------------------------------------------------------------ post-incident
def test_review_context_over_midnight() -> None:
    start = dt.datetime(2026, 11, 9, 23, 50, tzinfo=UTC)
    entries = build("TaskSchedulerAPIDown", start, 8, 45, escalations=1, failed=1)
    entries.insert(2, dict(rec.action_entry(step="restart api", result="failed", host="node1",
                                            now=start + dt.timedelta(minutes=9)), seq=0))
    for n, entry in enumerate(entries, 1):
        entry["seq"] = n
    ctx = report.review(rec.summarize(entries))
    assert ctx["timeline"][0]["time"] == "2026-11-09 23:50" and ctx["timeline"][-1]["time"] == "2026-11-10 00:35"
    assert ctx["date_range"] == "2026-11-09T23:50:00+00:00 to 2026-11-10T00:35:00+00:00"
    assert "Acknowledged after 8m, past the 5 minute response target" in ctx["improve"]
    assert "Resolved after 45m, past the 30 minute resolution SLA" in ctx["improve"]
    assert "1 notification(s) failed (email)" in ctx["improve"]
    assert any(x.startswith("Escalated to Technical Lead at 00:06") for x in ctx["improve"])
    assert "Step failed: restart api: failed on node1" in ctx["contributing"]
    assert ctx["went_well"] == []


def test_review_context_good_incident() -> None:
    start = dt.datetime(2026, 11, 9, 10, 0, tzinfo=UTC)
    entries = build("HighAPILatency", start, 3, 40)
    ctx = report.review(rec.summarize(entries))
    assert ctx["went_well"] == ["Acknowledged in 3m (target 15 min)", "Resolved in 40m (target 120 min)"]
    assert ctx["timeline"][0]["time"] == "10:00" and ctx["improve"] == []
