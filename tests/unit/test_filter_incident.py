"""Unit tests for the severity / SLA / escalation filters (plugins/filter/incident.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.taskscheduler.ops.plugins.filter import incident as flt
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident as rec

P0_ALERTS = ["TaskSchedulerAPIDown", "TaskSchedulerDatabaseDown", "NoActiveWorkers", "SecurityBreach",
             "DataCorruption", "HighErrorRate"]
P1_ALERTS = ["HighAPILatency", "DatabaseSlowQueries", "SchedulerOffline", "WorkerHealthDegraded",
             "DiskSpaceCritical", "MemoryUsageCritical"]


# ------------------------------------------------------------------------------------------------ alert -> severity
@pytest.mark.parametrize("alert", P0_ALERTS)
def test_p0_alerts(alert: str) -> None:
    assert flt.alert_severity(alert) == "P0"


@pytest.mark.parametrize("alert", P1_ALERTS)
def test_p1_alerts(alert: str) -> None:
    assert flt.alert_severity(alert) == "P1"


def test_filter_module_exposes_all_filters() -> None:
    names = set(flt.FilterModule().filters())
    assert {"alert_severity", "incident_sla", "escalation_next", "escalation_due", "incident_summary"} <= names


def test_unknown_alert_is_an_error_not_p3() -> None:
    with pytest.raises(AnsibleFilterError) as err:
        flt.alert_severity("SomethingNew")
    assert "SomethingNew" in str(err.value)
    assert "tsops_severity_map" in str(err.value)


def test_unknown_alert_with_explicit_default() -> None:
    assert flt.alert_severity("SomethingNew", {}, "p2") == "P2"
    # the default does not override a known alert
    assert flt.alert_severity("NoActiveWorkers", {}, "P3") == "P0"


def test_severity_map_override_merges_over_defaults() -> None:
    overrides = {"HighAPILatency": "P0", "QueueBacklog": 2}
    assert flt.alert_severity("HighAPILatency", overrides) == "P0"
    assert flt.alert_severity("QueueBacklog", overrides) == "P2"
    # untouched entries keep the runbook's value
    assert flt.alert_severity("DiskSpaceCritical", overrides) == "P1"
    assert len(flt.severity_map(overrides)) == 13


def test_bad_override_value_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="not a severity level"):
        flt.alert_severity("HighAPILatency", {"HighAPILatency": "critical"})


def test_alertmanager_webhook_payload() -> None:
    payload = {
        "status": "firing",
        "groupLabels": {"alertname": "NoActiveWorkers"},
        "commonLabels": {"alertname": "NoActiveWorkers", "severity": "critical"},
        "alerts": [{"status": "firing", "labels": {"alertname": "NoActiveWorkers", "instance": "w1"},
                    "startsAt": "2026-11-26T21:15:00.123456789Z"}],
    }
    assert flt.alert_name(payload) == "NoActiveWorkers"
    assert flt.alert_severity(payload) == "P0"
    assert flt.alert_severity(payload["alerts"][0]) == "P0"


@pytest.mark.parametrize("alerts", [["TaskSchedulerAPIDown"], [None], [5], [None, "x", 3.5, True], [[]]])
@pytest.mark.parametrize("name", ["alert_info", "alert_name", "alert_severity"])
def test_payload_alerts_that_are_not_objects_are_a_clear_error(alerts: list[object], name: str) -> None:
    with pytest.raises(AnsibleFilterError, match=r"'alerts' holds no alert objects"):
        getattr(flt, name)({"status": "firing", "alerts": alerts})


@pytest.mark.parametrize("alerts", [5, "TaskSchedulerAPIDown", {"labels": {"alertname": "X"}}, 1.5])
@pytest.mark.parametrize("name", ["alert_info", "alert_name", "alert_severity"])
def test_payload_alerts_that_are_not_a_list_are_a_clear_error(alerts: object, name: str) -> None:
    with pytest.raises(AnsibleFilterError, match=r"'alerts' must be a list of alert objects"):
        getattr(flt, name)({"alerts": alerts, "commonLabels": {"alertname": "TaskSchedulerAPIDown"}})


def test_payload_alerts_skip_non_objects_beside_real_alerts() -> None:
    payload = {"alerts": [None, "junk", {"status": "firing", "startsAt": "2026-11-26T21:15:00Z", "fingerprint": "ab1",
                                         "labels": {"alertname": "TaskSchedulerAPIDown", "instance": "api:8080"}}]}
    info = flt.alert_info(payload)
    assert (info["alertname"], info["severity"], info["fingerprint"]) == ("TaskSchedulerAPIDown", "P0", "ab1")
    assert info["labels"]["instance"] == "api:8080"


def test_priority_label_used_only_for_unmapped_alerts() -> None:
    assert flt.alert_severity({"labels": {"alertname": "Custom", "priority": "P1"}}) == "P1"
    assert flt.alert_severity({"labels": {"alertname": "HighAPILatency", "priority": "P3"}}) == "P1"
    with pytest.raises(AnsibleFilterError):
        # 'critical' is not a P-level: no guessing
        flt.alert_severity({"labels": {"alertname": "Custom", "severity": "critical"}})


# --------------------------------------------------------------------------------------------------------- SLA
def test_p0_deadlines_cross_midnight() -> None:
    sla = flt.incident_sla("TaskSchedulerAPIDown", "2026-11-26T23:50:00Z")
    assert sla["severity"] == "P0"
    assert sla["respond_by"] == "2026-11-26T23:55:00+00:00"
    assert sla["resolve_by"] == "2026-11-27T00:20:00+00:00"
    assert sla["audience"] == "Immediate all-hands"


def test_p3_deadlines_cross_year_end() -> None:
    sla = flt.incident_sla("P3", "2026-12-31T23:30:00+00:00")
    assert sla["respond_by"] == "2027-01-01T01:30:00+00:00"
    assert sla["resolve_by"] == "2027-01-01T23:30:00+00:00"
    assert sla["audience"] == "Next business day"
    assert sla["escalate_after_minutes"] is None


@pytest.mark.parametrize("severity,respond,resolve", [
    ("P0", 5, 30), ("P1", 15, 120), ("P2", 30, 480), ("P3", 120, 1440),
])
def test_matrix_minutes(severity: str, respond: int, resolve: int) -> None:
    sla = flt.incident_sla(severity, "2026-06-01T12:00:00Z")
    assert (sla["response_minutes"], sla["resolution_minutes"]) == (respond, resolve)


def test_p0_vs_p3_ordering() -> None:
    start = "2026-06-01T12:00:00Z"
    p0, p3 = flt.incident_sla("P0", start), flt.incident_sla("P3", start)
    assert p0["resolve_by"] < p3["respond_by"] < p3["resolve_by"]


def test_offset_input_is_converted_to_utc() -> None:
    # 01:50 at +02:00 is 23:50 UTC the day before
    sla = flt.incident_sla("P0", "2026-11-27T01:50:00+02:00")
    assert sla["started_at"] == "2026-11-26T23:50:00+00:00"
    assert sla["resolve_by"] == "2026-11-27T00:20:00+00:00"


def test_epoch_and_nanoseconds() -> None:
    assert flt.incident_sla("P1", 0)["respond_by"] == "1970-01-01T00:15:00+00:00"
    assert flt.incident_sla("P1", "2026-11-26T21:15:00.123456789Z")["started_at"] == "2026-11-26T21:15:00+00:00"
    # Go's RFC 3339 output trims trailing zeros
    assert flt.incident_sla("P1", "2026-11-26T21:15:59.27Z")["started_at"] == "2026-11-26T21:15:59+00:00"


def test_matrix_override_changes_only_that_key() -> None:
    matrix = {"P0": {"resolution_minutes": 20}, "p2": {"audience": "Ops rota"}}
    sla = flt.incident_sla("TaskSchedulerAPIDown", "2026-11-26T23:50:00Z", matrix)
    assert sla["resolve_by"] == "2026-11-27T00:10:00+00:00"
    assert sla["respond_by"] == "2026-11-26T23:55:00+00:00"  # response time untouched
    assert flt.incident_sla("P2", "2026-01-01T00:00:00Z", matrix)["audience"] == "Ops rota"


def test_severity_override_and_matrix_together() -> None:
    sla = flt.incident_sla("DiskSpaceCritical", "2026-11-26T22:00:00Z", {"P0": {"resolution_minutes": 10}},
                           {"DiskSpaceCritical": "P0"})
    assert sla["severity"] == "P0"
    assert sla["resolve_by"] == "2026-11-26T22:10:00+00:00"


@pytest.mark.parametrize("bad", [{"P0": {"response_minutes": -1}}, {"P0": {"resolution_minutes": "soon"}},
                                 {"X1": {}}, {"P0": 5}, ["P0"]])
def test_bad_matrix_overrides(bad: object) -> None:
    with pytest.raises(AnsibleFilterError):
        flt.incident_sla("P0", "2026-11-26T22:00:00Z", bad)


def test_bad_timestamp() -> None:
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        flt.incident_sla("P0", "yesterday")


# ------------------------------------------------------------------------------------------------- escalation path
def test_escalation_moves_one_step_along_technical_path() -> None:
    roles = [flt.escalation_next(level)["role"] for level in range(4)]
    assert roles == ["On-call Engineer", "Technical Lead", "Engineering Manager", "CTO"]
    assert flt.escalation_next(1)["level"] == 2


def test_escalation_at_top_stays_at_cto() -> None:
    step = flt.escalation_next(4)
    assert step["role"] == "CTO" and step["level"] == 4 and step["at_top"] is True and step["moved"] is False
    assert flt.escalation_next(3)["at_top"] is True and flt.escalation_next(3)["moved"] is True
    assert flt.escalation_next(2)["at_top"] is False


def test_business_path_and_custom_contacts() -> None:
    assert flt.escalation_next(0, None, "business")["role"] == "Operations Manager"
    path = [{"role": "On-call", "email": "oncall@example.com"}, {"role": "Lead", "phone": "+15550100"}]
    step = flt.escalation_next(1, path)
    assert step == {"role": "Lead", "phone": "+15550100", "level": 2, "at_top": True, "moved": True,
                    "path": ["On-call", "Lead"]}
    assert flt.escalation_path({"technical": ["A", "B"]})[1] == {"role": "B"}


# ---------------------------------------------------------------------------------------------- when to escalate
def _record(alert: str = "TaskSchedulerAPIDown", start: str = "2026-11-26T23:55:00Z",
            severity: str | None = None) -> list[dict]:
    entry = rec.open_entry(alert=alert, started_at=start, now=start, commander="alice", severity=severity)
    entry["seq"] = 1
    return [entry]


def _add(entries: list[dict], entry: dict) -> list[dict]:
    entry["seq"] = len(entries) + 1
    return [*entries, entry]


def test_p0_not_due_before_15_minutes() -> None:
    due = flt.escalation_due(_record(), "2026-11-27T00:09:00Z")
    assert due["due"] is False and due["next"] is None
    assert due["next_check_at"] == "2026-11-27T00:10:00+00:00"


def test_p0_due_after_15_minutes_down_and_no_root_cause() -> None:
    due = flt.escalation_due(_record(), "2026-11-27T00:11:00Z")
    assert due["due"] is True
    assert any("service down for 16 minutes" in r for r in due["reasons"])
    assert any("no root cause" in r for r in due["reasons"])
    assert due["next"]["role"] == "Technical Lead" and due["next"]["level"] == 2


def test_p0_not_due_when_restored_and_root_cause_known() -> None:
    entries = _add(_record(), rec.action_entry(step="restart api", result="changed", now="2026-11-27T00:05:00Z",
                                               flags=["service_restored", "root_cause_identified"]))
    assert flt.escalation_due(entries, "2026-11-27T00:20:00Z")["due"] is False


def test_p0_immediate_on_data_loss() -> None:
    entries = _add(_record(), rec.action_entry(step="check integrity", result="failed", now="2026-11-26T23:57:00Z",
                                               flags=["data_loss"]))
    due = flt.escalation_due(entries, "2026-11-26T23:58:00Z")
    assert due["due"] is True and due["reasons"] == ["data corruption or loss detected"]


def test_p0_breach_confirmed_fires_once() -> None:
    entries = _add(_record("SecurityBreach"), rec.action_entry(step="audit log", now="2026-11-26T23:56:00Z",
                                                               flags=["breach_confirmed"]))
    assert flt.escalation_due(entries, "2026-11-26T23:57:00Z")["reasons"] == ["security breach confirmed"]
    entries = _add(entries, rec.escalation_entry(entries, reasons=["security breach confirmed"],
                                                 now="2026-11-26T23:57:00Z"))
    # the same flag does not escalate again; time rules count from the escalation
    assert flt.escalation_due(entries, "2026-11-27T00:05:00Z")["due"] is False


def test_p0_cascading_failures_counted_from_distinct_failed_steps() -> None:
    entries = _record()
    for host, step in [("h1", "restart api"), ("h1", "restart api"), ("h2", "restart worker")]:
        entries = _add(entries, rec.action_entry(step=step, host=host, result="failed", now="2026-11-26T23:58:00Z"))
    assert flt.escalation_due(entries, "2026-11-26T23:59:00Z")["due"] is False  # 2 distinct, threshold 3
    entries = _add(entries, rec.action_entry(step="restart db", host="h3", result="failed",
                                             now="2026-11-26T23:58:30Z"))
    due = flt.escalation_due(entries, "2026-11-26T23:59:00Z")
    assert due["due"] is True and "cascading" in due["reasons"][0]


def test_p0_climbs_one_step_per_interval() -> None:
    entries = _record()
    entries = _add(entries, rec.escalation_entry(entries, reasons=["down"], now="2026-11-27T00:11:00Z"))
    assert entries[-1]["to"] == "Technical Lead"
    assert flt.escalation_due(entries, "2026-11-27T00:20:00Z")["due"] is False
    due = flt.escalation_due(entries, "2026-11-27T00:27:00Z")
    assert due["due"] is True and due["next"]["role"] == "Engineering Manager"
    assert due["level"] == 2


@pytest.mark.parametrize("alert,minutes,due", [
    ("HighAPILatency", 29, False), ("HighAPILatency", 31, True),
])
def test_p1_after_30_minutes(alert: str, minutes: int, due: bool) -> None:
    import datetime as dt
    start = dt.datetime(2026, 11, 26, 23, 45, tzinfo=dt.UTC)
    result = flt.escalation_due(_record(alert, start.isoformat()), start + dt.timedelta(minutes=minutes))
    assert result["due"] is due
    if due:
        assert result["reasons"] == ["unresolved after 31 minutes (escalate after 30)"]


def test_p2_after_two_hours_and_p3_never() -> None:
    entries = _record("QueueBacklog", "2026-11-26T22:00:00Z", severity="P2")
    assert flt.escalation_due(entries, "2026-11-26T23:59:00Z")["due"] is False
    assert flt.escalation_due(entries, "2026-11-27T00:01:00Z")["due"] is True
    entries[0]["severity"] = "P3"
    assert flt.escalation_due(entries, "2026-11-30T00:00:00Z")["due"] is False


def test_escalation_override_in_matrix() -> None:
    due = flt.escalation_due(_record("HighAPILatency", "2026-11-26T23:45:00Z"), "2026-11-26T23:56:00Z",
                             {"P1": {"escalate_after_minutes": 10}})
    assert due["due"] is True


def test_closed_incident_never_due() -> None:
    entries = _record()
    entries = _add(entries, rec.close_entry(entries, root_cause="oom", now="2026-11-27T00:05:00Z"))
    assert flt.escalation_due(entries, "2026-11-27T03:00:00Z")["due"] is False


def test_escalation_due_accepts_summary() -> None:
    summary = flt.incident_summary(_record(), "2026-11-27T00:11:00Z")
    assert flt.escalation_due(summary, "2026-11-27T00:11:00Z")["due"] is True


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (59, "59s"), (5400, "1h 30m"), (90061, "1d 1h 1m"),
                                          (None, "")])
def test_human_duration(seconds: int | None, text: str) -> None:
    assert flt.human_duration(seconds) == text


def test_alert_info_from_webhook_payload() -> None:
    payload = {
        "status": "firing",
        "commonLabels": {"alertname": "TaskSchedulerDatabaseDown"},
        "commonAnnotations": {},
        "alerts": [
            {"status": "resolved", "labels": {"alertname": "TaskSchedulerDatabaseDown"}, "fingerprint": "old",
             "startsAt": "2026-11-26T20:00:00Z"},
            {"status": "firing", "labels": {"alertname": "TaskSchedulerDatabaseDown", "instance": "postgres:5432"},
             "annotations": {"summary": "PostgreSQL down on postgres:5432"}, "fingerprint": "a1b2c3d4e5f60718",
             "startsAt": "2026-11-26T21:14:07.5Z"},
        ],
    }
    info = flt.alert_info(payload)
    assert info["alertname"] == "TaskSchedulerDatabaseDown" and info["severity"] == "P0"
    assert info["fingerprint"] == "a1b2c3d4e5f60718" and info["starts_at"] == "2026-11-26T21:14:07+00:00"
    assert info["description"] == "PostgreSQL down on postgres:5432" and info["services"] == ["postgres"]
    plain = flt.alert_info("SchedulerOffline")
    assert plain["description"] == "Task scheduling stopped" and plain["starts_at"] is None
