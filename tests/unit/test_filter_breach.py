"""Decisions of the SecurityBreach responder (plugins/filter/breach.py)."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.taskscheduler.ops.plugins.filter import breach as flt

NONE_FAILED = {"rc": 0, "stdout": json.dumps({"failed": 0, "revoked": 0, "peak_per_minute": 0}), "stderr": ""}
BURST = {"rc": 0, "stdout": json.dumps({"failed": 200, "revoked": 0, "peak_per_minute": 180}), "stderr": ""}
REVOKED = {"rc": 0, "stdout": json.dumps({"failed": 1, "revoked": 1, "peak_per_minute": 1}), "stderr": ""}
DB_DOWN = {"rc": 2, "stdout": "", "stderr": "psql: error: connection to server on socket failed: No such file"}
ALERT = {"receiver": "tsops", "status": "firing",
         "alerts": ["garbage", {"status": "firing", "labels": {"alertname": "SecurityBreach"},
                                "startsAt": "2026-11-28T15:00:00.123456789Z"}]}


def test_filters_are_exposed() -> None:
    assert set(flt.FilterModule().filters()) == {
        "breach_window", "breach_firewall_in_place", "breach_host_contained", "breach_triage", "breach_containment"}


def test_confirmed_lockdown_with_no_failed_logins_responds() -> None:
    """A stolen VALID token leaves no failed login: the operator's confirmation starts the response."""
    d = flt.breach_triage(NONE_FAILED, 30, confirmed=True)
    assert d["respond"] is True and d["seen"] is False and d["fail"] == ""
    assert d["triggers"] == ["lockdown confirmed by an operator"] and "responding" in d["message"]


def test_breach_confirmed_by_the_security_officer_responds() -> None:
    assert flt.breach_triage(NONE_FAILED, 30, breach_confirmed=True)["respond"] is True


def test_nothing_seen_nothing_asked_is_nothing_to_do() -> None:
    d = flt.breach_triage(NONE_FAILED, 30)
    assert d["respond"] is False and d["fail"] == "" and "nothing to do" in d["message"]


@pytest.mark.parametrize("reading", [BURST, REVOKED])
def test_indicators_respond(reading: dict) -> None:
    d = flt.breach_triage(reading, 30)
    assert d["respond"] is True and d["seen"] is True


@pytest.mark.parametrize("reading,why", [
    (DB_DOWN, "psql exited 2: psql: error: connection"),
    ({"rc": 0, "stdout": "ERROR: relation \"audit_log\" does not exist", "stderr": ""}, "no indicator document"),
    ({"rc": 0, "stdout": "[1, 2]", "stderr": ""}, "no indicator document"),
    ({"skipped": True, "changed": False}, "no database host"),
    ({}, "not read"),
])
def test_unreadable_audit_log_fails_never_nothing_to_do(reading: dict, why: str) -> None:
    d = flt.breach_triage(reading, 30)
    assert d["readable"] is False and d["respond"] is False and why in d["error"]
    assert d["fail"].startswith("triage incomplete: audit_log could not be read") and why in d["fail"]
    assert "nothing to do" not in d["message"]


def test_unreadable_audit_log_with_confirmation_responds_and_still_fails() -> None:
    d = flt.breach_triage(DB_DOWN, 30, confirmed=True)
    assert d["respond"] is True and "containment and evidence went ahead" in d["fail"]


def test_already_contained_and_sealed_is_left_alone() -> None:
    d = flt.breach_triage(BURST, 30, confirmed=True, contained=[True, True], sealed=[True, True])
    assert d["respond"] is False and d["done_already"] is True
    assert flt.breach_triage(BURST, 30, contained=[True, False], sealed=[True, True])["respond"] is True
    assert flt.breach_triage(BURST, 30, contained=[True], sealed=True)["done_already"] is True


def test_alert_payload_responds_and_bad_alert_is_refused() -> None:
    assert flt.breach_triage(NONE_FAILED, 30, alert=ALERT)["triggers"] == ["alert"]
    with pytest.raises(AnsibleFilterError, match="breach_triage: alert"):
        flt.breach_triage(NONE_FAILED, 30, alert="SecurityBreach")
    with pytest.raises(AnsibleFilterError, match="threshold_per_minute"):
        flt.breach_triage(NONE_FAILED, "many")
    with pytest.raises(AnsibleFilterError, match="confirmed: expected a boolean"):
        flt.breach_triage(NONE_FAILED, 30, confirmed="maybe")


def test_window_starts_at_the_alert_start() -> None:
    w = flt.breach_window(ALERT, 5, 60, now="2026-11-28T16:00:00Z")
    assert w["since"] == "2026-11-28T14:59:00+00:00" and w["source"] == "alert" and w["minutes"] == 61.0
    assert "2026-11-28T15:00:00+00:00" in w["label"]


def test_window_without_alert_is_the_last_minutes() -> None:
    for alert in (None, {}, {"alerts": []}, {"alerts": ["x"]}, {"startsAt": "0001-01-01T00:00:00Z"}):
        w = flt.breach_window(alert, 5, 60, now="2026-11-28T16:00:00Z")
        assert w == {"since": "2026-11-28T15:55:00+00:00", "source": "minutes", "minutes": 5.0,
                     "label": "last 5 minutes"}


def test_window_bad_input() -> None:
    with pytest.raises(AnsibleFilterError, match="startsAt"):
        flt.breach_window({"startsAt": "yesterday"})
    with pytest.raises(AnsibleFilterError, match="minutes"):
        flt.breach_window(None, -1)


def test_window_alert_in_the_future_never_reads_past_now() -> None:
    w = flt.breach_window({"startsAt": "2026-11-28T17:00:00Z"}, 5, 60, now="2026-11-28T16:00:00Z")
    assert w["since"] == "2026-11-28T16:00:00+00:00"


def _probe(before: str, after: str) -> dict:
    return {"changed": False, "rules": [], "diff": {"before": before, "after": after}}


def test_firewall_in_place() -> None:
    rules = "-A DOCKER-USER ... DROP\n-A INPUT ... DROP\n"
    assert flt.breach_firewall_in_place({"results": [_probe(rules, rules)]}) is True
    assert flt.breach_firewall_in_place({"results": [_probe(rules, rules), _probe("\n", "-A X\n")]}) is False
    assert flt.breach_firewall_in_place({"results": [_probe("\n", "\n")]}) is False
    assert flt.breach_firewall_in_place({"results": [{"failed": True, "msg": "no iptables"}]}) is False
    assert flt.breach_firewall_in_place({"results": []}) is False
    assert flt.breach_firewall_in_place({"skipped": True}) is False


def test_host_contained() -> None:
    rules = "-A DOCKER-USER ... DROP\n"
    probe = {"results": [_probe(rules, rules)]}
    assert flt.breach_host_contained(probe, [{"paused": True}]) is True
    assert flt.breach_host_contained(probe, [{"paused": False}]) is False
    assert flt.breach_host_contained(probe, [{"paused": False}], pause_api=False) is True
    assert flt.breach_host_contained(probe, []) is False
    assert flt.breach_host_contained({"skipped": True}, [], api_host=False) is True


def test_containment_pause_held_although_firewall_failed() -> None:
    c = flt.breach_containment({}, {"changed": True, "results": []},
                               firewall_error="Block ...: iptables -I DOCKER-USER failed: bad address")
    assert c["held"] is False and c["firewall"] == "failed" and c["pause"] == "changed"
    assert c["problems"] == ["firewall NOT in place (Block ...: iptables -I DOCKER-USER failed: bad address)"]


def test_containment_outcomes() -> None:
    ok = flt.breach_containment({"changed": True}, {"changed": True})
    assert ok["held"] is True and ok["problems"] == []
    assert flt.breach_containment({"changed": False}, {}, pause_error="no such container")["problems"] == [
        "API NOT paused (no such container)"]
    assert flt.breach_containment({"changed": True}, {"skipped": True}, pause_api=False)["held"] is True
    assert flt.breach_containment({}, {}, api_host=False)["held"] is True
    assert flt.breach_containment({"skipped": True}, {"changed": True})["held"] is False
