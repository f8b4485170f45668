"""Filters for the incident runbook: alert -> severity -> SLA deadlines -> escalation path.

Every filter takes the inventory's overrides as arguments and merges them over the runbook's defaults, so
``tsops_severity_map`` and ``tsops_escalation_matrix`` only need the entries that differ. Every filter is
described, with an example, in docs/incident-lifecycle.md; the main ones also have ``<name>.yml`` beside this file
for ``ansible-doc -t filter taskscheduler.ops.<name>``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident_policy as policy
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident_report as report


def _wrap(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the policy's errors into AnsibleFilterError with the filter name in front."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (policy.PolicyError, _incident.IncidentError, report.ReportError) as exc:
            raise AnsibleFilterError(f"taskscheduler.ops.{func.__name__}: {exc}") from None

    return wrapper


@_wrap
def alert_name(alert: Any) -> str:
    """alertname of an alertname string, an Alertmanager alert, or an Alertmanager webhook payload."""
    return policy.alert_name(alert)


@_wrap
def alert_severity(alert: Any, severity_map: Any = None, default: Any = None) -> str:
    """``'TaskSchedulerAPIDown' | taskscheduler.ops.alert_severity(tsops_severity_map)`` -> ``'P0'``."""
    return policy.alert_severity(alert, severity_map or None, default)


@_wrap
def alert_info(alert: Any, severity_map: Any = None, default: Any = None) -> dict[str, Any]:
    """alertname, severity, description, services, labels, starts_at and fingerprint of an alert or payload."""
    return policy.alert_info(alert, severity_map or None, default)


@_wrap
def incident_sla(
    alert_or_severity: Any,
    started_at: Any = None,
    matrix: Any = None,
    severity_map: Any = None,
    default: Any = None,
) -> dict[str, Any]:
    """Deadlines for an alert (or a severity ``P0``-``P3``) that started at ``started_at`` (default: now)."""
    try:
        severity = policy.normalize_severity(alert_or_severity)
    except policy.PolicyError:
        severity = policy.alert_severity(alert_or_severity, severity_map or None, default)
    start = started_at if started_at not in (None, "") else policy.now_utc()
    return policy.sla(severity, start, matrix or None)


@_wrap
def escalation_next(level: Any = 0, path: Any = None, which: str = "technical") -> dict[str, Any]:
    """The escalation step after ``level`` (0 = not escalated yet) on the technical (or business) path."""
    return policy.escalation_step(int(level or 0), path or None, which)


@_wrap
def escalation_path(path: Any = None, which: str = "technical") -> list[dict[str, Any]]:
    """The escalation path as ``[{role, ...contact}]`` (defaults: the runbook's technical or business path)."""
    return policy.normalize_path(path or None, which)


@_wrap
def escalation_due(record: Any, now: Any = None, matrix: Any = None, path: Any = None) -> dict[str, Any]:
    """Evaluate the runbook's "When to escalate" rules on an incident record (entries or summary)."""
    return policy.escalation_due(record, now, matrix or None, path or None)


@_wrap
def incident_summary(entries: Any, now: Any = None) -> dict[str, Any]:
    """Summary of an incident from its record entries (status, deadlines, SLA met/breached, timeline)."""
    return _incident.summarize(entries, now)


@_wrap
def incident_notice_context(summary: Any, event: str, matrix: Any = None, now: Any = None,
                            system: str = "Task Scheduling System", review_after_hours: Any = 24,
                            stakeholders: Any = None) -> dict[str, Any]:
    """Headline, subject, next update time, review time, SMS line and recipients of a notice about ``summary``."""
    return _incident.notice_context(summary, event, matrix or None, now, system, float(review_after_hours),
                                    stakeholders or None)


@_wrap
def incident_status_page(incidents: Any, services: Any = None, now: Any = None, history_days: Any = 30,
                         system: str = "Task Scheduling System") -> dict[str, Any]:
    """Public status page data from incident summaries: status per service, open incidents, recent history."""
    return _incident.status_page(incidents or [], services or ("api", "scheduler", "worker", "postgres", "redis"),
                                 now, int(history_days), system)


@_wrap
def incident_review(summary: Any) -> dict[str, Any]:
    """Timeline rows, contributing factors, what went well and what to improve, for the post-incident review."""
    return report.review(summary)


@_wrap
def incident_monthly_stats(incidents: Any, month: str) -> dict[str, Any]:
    """Counts by alert and severity, time to acknowledge / resolve against the SLA and breaches for a month."""
    return report.monthly_stats(incidents or [], str(month))


@_wrap
def incident_month_bounds(month: str) -> dict[str, str]:
    """``'2026-11'`` -> ``{start, end, previous_start, previous}`` (ISO 8601, UTC)."""
    start, end = report.month_bounds(str(month))
    prev = report.previous_month(str(month))
    return {"start": policy.iso(start), "end": policy.iso(end), "previous": prev,
            "previous_start": policy.iso(report.month_bounds(prev)[0])}


@_wrap
def incident_update_due(summary: Any, now: Any = None, matrix: Any = None) -> dict[str, Any]:
    """Whether the next stakeholder update is due (update interval of the severity after the last notice)."""
    return _incident.update_due(summary, now, matrix or None)


@_wrap
def incident_silence(summary: Any, exempt: Any = _incident.SILENCE_EXEMPT_ALERTS, instance: Any = "",
                     matchers: Any = None) -> dict[str, Any]:
    """Whether and how to silence an incident's alert after closing: ``{silence, matchers, reason}``; the
    alert and its instance, never the alert on every host; none for the ``exempt`` alerts (SecurityBreach)."""
    return _incident.post_incident_silence(summary, exempt, str(instance or ""), matchers or None)


@_wrap
def severity_map(overrides: Any = None) -> dict[str, str]:
    """The runbook's alert -> severity map with ``overrides`` applied."""
    return policy.merged_severity_map(overrides or None)


@_wrap
def escalation_matrix(overrides: Any = None) -> dict[str, dict[str, Any]]:
    """The runbook's escalation matrix with ``overrides`` merged per severity and key."""
    return policy.merged_matrix(overrides or None)


@_wrap
def human_duration(seconds: Any) -> str:
    """``5400`` -> ``'1h 30m'``."""
    return policy.human_duration(None if seconds in (None, "") else float(seconds))


class FilterModule:
    """taskscheduler.ops incident filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "alert_name": alert_name,
            "alert_severity": alert_severity,
            "alert_info": alert_info,
            "incident_sla": incident_sla,
            "escalation_next": escalation_next,
            "escalation_path": escalation_path,
            "escalation_due": escalation_due,
            "incident_summary": incident_summary,
            "incident_notice_context": incident_notice_context,
            "incident_status_page": incident_status_page,
            "incident_review": incident_review,
            "incident_update_due": incident_update_due,
            "incident_silence": incident_silence,
            "incident_monthly_stats": incident_monthly_stats,
            "incident_month_bounds": incident_month_bounds,
            "severity_map": severity_map,
            "escalation_matrix": escalation_matrix,
            "human_duration": human_duration,
        }
