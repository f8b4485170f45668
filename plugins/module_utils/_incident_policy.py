"""PRIVATE to the collection: severity, SLA and escalation policy of the incident runbook.

Not a public API: anything here may change without notice. The filter plugins in ``plugins/filter/incident.py``
and the ``incident_record`` module are the supported interfaces.

Sections 1 and 5 of the runbook as data plus pure functions (no I/O):

* ``DEFAULT_SEVERITY_MAP``: alertname -> severity for the twelve alerts of the runbook.
* ``DEFAULT_ESCALATION_MATRIX``: severity -> response time, resolution SLA, escalation audience and the
  "when to escalate" thresholds.
* ``DEFAULT_ESCALATION_PATHS``: the technical and business escalation paths.

Inventory overrides are merged over the defaults (per key, per severity level), so a user changes only what differs.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

UTC = _dt.timezone.utc  # module_utils support Python 3.9 (no datetime.UTC)

SEVERITIES = ("P0", "P1", "P2", "P3")

DEFAULT_SEVERITY_MAP: dict[str, str] = {
    # Critical (P0): immediate response required
    "TaskSchedulerAPIDown": "P0",
    "TaskSchedulerDatabaseDown": "P0",
    "NoActiveWorkers": "P0",
    "SecurityBreach": "P0",
    "DataCorruption": "P0",
    "HighErrorRate": "P0",
    # High priority (P1): 15 minute response
    "HighAPILatency": "P1",
    "DatabaseSlowQueries": "P1",
    "SchedulerOffline": "P1",
    "WorkerHealthDegraded": "P1",
    "DiskSpaceCritical": "P1",
    "MemoryUsageCritical": "P1",
}

# The runbook's one-line description of each alert (used in notices and on the status page).
ALERT_DESCRIPTIONS: dict[str, str] = {
    "TaskSchedulerAPIDown": "API service unavailable",
    "TaskSchedulerDatabaseDown": "PostgreSQL connection failures",
    "NoActiveWorkers": "All workers offline",
    "SecurityBreach": "Unauthorized access detected",
    "DataCorruption": "Database integrity violations",
    "HighErrorRate": ">10% API error rate for 5+ minutes",
    "HighAPILatency": "API response time >2 seconds",
    "DatabaseSlowQueries": "Query performance degraded",
    "SchedulerOffline": "Task scheduling stopped",
    "WorkerHealthDegraded": "<50% workers operational",
    "DiskSpaceCritical": "<10% disk space remaining",
    "MemoryUsageCritical": ">90% memory utilization",
}

# Services of the system each alert affects (status page components).
SERVICES = ("api", "scheduler", "worker", "postgres", "redis")
ALERT_SERVICES: dict[str, list[str]] = {
    "TaskSchedulerAPIDown": ["api"],
    "TaskSchedulerDatabaseDown": ["postgres"],
    "NoActiveWorkers": ["worker"],
    "SecurityBreach": ["api", "postgres"],
    "DataCorruption": ["postgres"],
    "HighErrorRate": ["api"],
    "HighAPILatency": ["api"],
    "DatabaseSlowQueries": ["postgres"],
    "SchedulerOffline": ["scheduler"],
    "WorkerHealthDegraded": ["worker"],
    "DiskSpaceCritical": ["postgres"],
    "MemoryUsageCritical": ["api", "worker"],
}

# Flags a response step can record on an action entry; the escalation rules read them.
FLAGS = ("data_loss", "breach_confirmed", "cascading_failure", "root_cause_identified", "service_restored")

DEFAULT_ESCALATION_MATRIX: dict[str, dict[str, Any]] = {
    "P0": {
        "name": "Critical",
        "response_minutes": 5,
        "resolution_minutes": 30,
        "audience": "Immediate all-hands",
        "update_minutes": 15,
        # "Immediate escalation (P0)": service down > 15 minutes, no root cause within 15 minutes, or at once on
        # data loss, confirmed breach, cascading failures.
        "escalate_after_minutes": 15,
        "root_cause_within_minutes": 15,
        "escalate_immediately_on": ["data_loss", "breach_confirmed", "cascading_failure"],
        "cascade_threshold": 3,
        "channels": ["slack", "email", "webhook", "status_page"],
    },
    "P1": {
        "name": "High",
        "response_minutes": 15,
        "resolution_minutes": 120,
        "audience": "Technical leads",
        "update_minutes": 30,
        "escalate_after_minutes": 30,
        "root_cause_within_minutes": None,
        "escalate_immediately_on": [],
        "cascade_threshold": None,
        "channels": ["slack", "email", "status_page"],
    },
    "P2": {
        "name": "Medium",
        "response_minutes": 30,
        "resolution_minutes": 480,
        "audience": "Operations team",
        "update_minutes": 60,
        "escalate_after_minutes": 120,
        "root_cause_within_minutes": None,
        "escalate_immediately_on": [],
        "cascade_threshold": None,
        "channels": ["slack", "email"],
    },
    "P3": {
        "name": "Low",
        "response_minutes": 120,
        "resolution_minutes": 1440,
        "audience": "Next business day",
        "update_minutes": 240,
        "escalate_after_minutes": None,
        "root_cause_within_minutes": None,
        "escalate_immediately_on": [],
        "cascade_threshold": None,
        "channels": ["email"],
    },
}

DEFAULT_ESCALATION_PATHS: dict[str, list[str]] = {
    "technical": ["On-call Engineer", "Technical Lead", "Engineering Manager", "CTO"],
    "business": ["Operations Manager", "Product Manager", "VP Engineering", "CEO"],
}

_MINUTE_KEYS = (
    "response_minutes",
    "resolution_minutes",
    "update_minutes",
    "escalate_after_minutes",
    "root_cause_within_minutes",
)
_SEVERITY_RE = re.compile(r"^P[0-9]$")


class PolicyError(ValueError):
    """Raised for bad input; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------------------------------------- time
def parse_time(value: Any, name: str = "time") -> _dt.datetime:
    """Return an aware UTC datetime from a datetime, an ISO 8601 string or epoch seconds (naive means UTC)."""
    if isinstance(value, _dt.datetime):
        dt = value
    elif isinstance(value, bool):
        raise PolicyError(f"{name}: expected a timestamp, got a boolean")
    elif isinstance(value, (int, float)):
        dt = _dt.datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Go trims trailing zeros (".27Z") and Alertmanager sends nanoseconds: Python < 3.11 wants 3 or 6 digits.
        text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
        try:
            dt = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise PolicyError(f"{name}: {value!r} is not an ISO 8601 timestamp (e.g. 2026-11-26T21:15:00Z)") from None
    else:
        raise PolicyError(f"{name}: expected an ISO 8601 timestamp, got {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: _dt.datetime) -> str:
    """ISO 8601 in UTC with seconds precision, as ``date -Iseconds -u`` prints it."""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(tz=UTC).replace(microsecond=0)


def human_duration(seconds: float | None) -> str:
    """``5400`` -> ``1h 30m``; ``59`` -> ``59s``; ``None`` -> ``""``."""
    if seconds is None:
        return ""
    seconds = round(seconds)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs and not days and not hours:
        parts.append(f"{secs}s")
    return sign + (" ".join(parts) or "0s")


# ----------------------------------------------------------------------------------------------------- data merge
def merged_severity_map(overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The built-in alert -> severity map with ``overrides`` (alertname -> P0..P9) applied over it."""
    result = dict(DEFAULT_SEVERITY_MAP)
    for alert, severity in (overrides or {}).items():
        result[str(alert)] = normalize_severity(severity, f"severity map entry {alert!r}")
    return result


def merged_matrix(overrides: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The built-in escalation matrix with ``overrides`` merged per severity level and per key."""
    result = copy.deepcopy(DEFAULT_ESCALATION_MATRIX)
    if overrides is None:
        return result
    if not isinstance(overrides, Mapping):
        raise PolicyError("escalation matrix: expected a mapping of severity (P0..P3) to settings")
    for raw_level, settings in overrides.items():
        level = normalize_severity(raw_level, "escalation matrix key")
        if not isinstance(settings, Mapping):
            raise PolicyError(f"escalation matrix {level}: expected a mapping, got {type(settings).__name__}")
        base = result.setdefault(level, {})
        base.update(settings)
    for level, settings in result.items():
        for key in _MINUTE_KEYS:
            value = settings.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PolicyError(f"escalation matrix {level}.{key}: expected minutes >= 0, got {value!r}")
        for key in ("response_minutes", "resolution_minutes"):
            if settings.get(key) is None:
                raise PolicyError(f"escalation matrix {level}: {key} is required")
    return result


def normalize_severity(value: Any, what: str = "severity") -> str:
    """``"p1"``, ``1``, ``"P1"`` -> ``"P1"``; anything else raises."""
    text = str(value).strip().upper()
    if text.isdigit():
        text = "P" + text
    if not _SEVERITY_RE.match(text):
        raise PolicyError(f"{what}: {value!r} is not a severity level (expected P0, P1, P2 or P3)")
    return text


# -------------------------------------------------------------------------------------------------- alert -> sev
def payload_alerts(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alert objects of a webhook payload's ``alerts``. Entries that are not objects (strings, null, numbers)
    are ignored; an ``alerts`` that is not a list, or holds only such entries, is a clear error."""
    raw = payload.get("alerts")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PolicyError(f"alert payload: 'alerts' must be a list of alert objects, got {type(raw).__name__}")
    found = [a for a in raw if isinstance(a, Mapping)]
    if raw and not found:
        kinds = ", ".join(sorted({type(a).__name__ for a in raw}))
        raise PolicyError(f"alert payload: 'alerts' holds no alert objects ({len(raw)} item(s) of type {kinds}); "
                          "expected Alertmanager's [{status, labels, annotations, startsAt, ...}]")
    return found


def alert_labels(alert: Any) -> dict[str, Any]:
    """Labels of a single alert given as an alertname, an alert object or an Alertmanager webhook payload."""
    if isinstance(alert, str):
        return {"alertname": alert}
    if not isinstance(alert, Mapping):
        raise PolicyError(f"alert: expected an alertname or an Alertmanager alert/payload, got {type(alert).__name__}")
    if "labels" in alert and isinstance(alert["labels"], Mapping):
        return dict(alert["labels"])
    if "alerts" in alert or "commonLabels" in alert or "groupLabels" in alert:
        # A webhook payload: commonLabels hold what all alerts of the group share; fall back to the first alert.
        labels: dict[str, Any] = {}
        alerts = payload_alerts(alert)
        firing = [a for a in alerts if a.get("status", "firing") == "firing"] or alerts
        if firing and isinstance(firing[0].get("labels"), Mapping):
            labels.update(firing[0]["labels"])
        for key in ("groupLabels", "commonLabels"):
            if isinstance(alert.get(key), Mapping):
                labels.update(alert[key])
        return labels
    if "alertname" in alert:
        return dict(alert)
    raise PolicyError("alert: mapping has no 'labels', 'alerts' or 'alertname' key; is it an Alertmanager payload?")


def alert_name(alert: Any) -> str:
    name = alert_labels(alert).get("alertname")
    if not name or not isinstance(name, str):
        raise PolicyError("alert: no alertname label found")
    return name


def alert_severity(
    alert: Any,
    severity_map: Mapping[str, Any] | None = None,
    default: Any = None,
) -> str:
    """Severity of ``alert``: the (merged) severity map first, then a ``P0``-``P3`` ``severity``/``priority`` label on
    the alert itself, then ``default`` if the user configured one. Otherwise a clear error: never a silent P3."""
    labels = alert_labels(alert)
    name = labels.get("alertname")
    smap = merged_severity_map(severity_map)
    if name in smap:
        return smap[name]
    for key in ("priority", "severity"):
        label = labels.get(key)
        if isinstance(label, str) and _SEVERITY_RE.match(label.strip().upper()):
            return label.strip().upper()
    if default not in (None, ""):
        return normalize_severity(default, "default severity")
    known = ", ".join(sorted(smap))
    raise PolicyError(
        f"unknown alert {name!r}: not in the severity map ({known}). Add it to tsops_severity_map or set "
        "tsops_default_severity to choose a severity for unknown alerts"
    )


def alert_info(alert: Any, severity_map: Mapping[str, Any] | None = None, default: Any = None) -> dict[str, Any]:
    """Everything an incident needs from an alert: name, severity, description, services, start, fingerprint."""
    labels = alert_labels(alert)
    name = alert_name(alert)
    annotations: dict[str, Any] = {}
    starts_at = None
    fingerprint = None
    if isinstance(alert, Mapping):
        first = alert
        alerts = payload_alerts(alert) if "alerts" in alert else []
        if alerts:
            firing = [a for a in alerts if a.get("status", "firing") == "firing"]
            first = (firing or alerts)[0]
            if isinstance(alert.get("commonAnnotations"), Mapping):
                annotations.update(alert["commonAnnotations"])
        if isinstance(first.get("annotations"), Mapping):
            annotations.update(first["annotations"])
        starts_at = first.get("startsAt") or None
        fingerprint = first.get("fingerprint") or None
    if starts_at and str(starts_at).startswith("0001-"):
        starts_at = None  # Go's zero time
    return {
        "alertname": name,
        "severity": alert_severity(alert, severity_map, default),
        "description": annotations.get("summary") or ALERT_DESCRIPTIONS.get(name, ""),
        "services": list(ALERT_SERVICES.get(name, [])),
        "labels": dict(labels),
        "annotations": annotations,
        "starts_at": iso(parse_time(starts_at, "startsAt")) if starts_at else None,
        "fingerprint": fingerprint,
    }


# ------------------------------------------------------------------------------------------------------------ SLA
def sla(
    severity: str,
    started_at: Any,
    matrix: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Response and resolution deadlines for an incident of ``severity`` that started at ``started_at``."""
    level = normalize_severity(severity)
    full = merged_matrix(matrix)
    if level not in full:
        raise PolicyError(f"severity {level} has no row in the escalation matrix (known: {', '.join(sorted(full))})")
    row = full[level]
    start = parse_time(started_at, "started_at")
    respond_by = start + _dt.timedelta(minutes=row["response_minutes"])
    resolve_by = start + _dt.timedelta(minutes=row["resolution_minutes"])
    update_minutes = row.get("update_minutes")
    return {
        "severity": level,
        "name": row.get("name", ""),
        "started_at": iso(start),
        "response_minutes": row["response_minutes"],
        "resolution_minutes": row["resolution_minutes"],
        "respond_by": iso(respond_by),
        "resolve_by": iso(resolve_by),
        "update_minutes": update_minutes,
        "audience": row.get("audience", ""),
        "escalate_after_minutes": row.get("escalate_after_minutes"),
        "channels": list(row.get("channels") or []),
    }


def next_update_at(severity: str, at: Any, matrix: Mapping[str, Any] | None = None) -> str | None:
    row = merged_matrix(matrix).get(normalize_severity(severity)) or {}
    minutes = row.get("update_minutes")
    if not minutes:
        return None
    return iso(parse_time(at, "at") + _dt.timedelta(minutes=minutes))


# ----------------------------------------------------------------------------------------------------- escalation
def normalize_path(path: Any = None, which: str = "technical") -> list[dict[str, Any]]:
    """An escalation path as a list of ``{role, ...contact}``; strings become ``{role: s}``."""
    if path is None or path == []:
        if which not in DEFAULT_ESCALATION_PATHS:
            raise PolicyError(f"escalation path {which!r}: expected one of {', '.join(DEFAULT_ESCALATION_PATHS)}")
        path = DEFAULT_ESCALATION_PATHS[which]
    elif isinstance(path, Mapping):
        if which not in path:
            raise PolicyError(f"escalation paths: no path named {which!r} (have: {', '.join(map(str, path))})")
        return normalize_path(path[which], which)
    if not isinstance(path, (list, tuple)):
        raise PolicyError("escalation path: expected a list of roles or {role: ..., email: ...} mappings")
    steps = []
    for i, step in enumerate(path):
        if isinstance(step, str):
            steps.append({"role": step})
        elif isinstance(step, Mapping) and step.get("role"):
            steps.append(dict(step))
        else:
            raise PolicyError(f"escalation path step {i + 1}: expected a role name or a mapping with 'role'")
    if not steps:
        raise PolicyError("escalation path is empty")
    return steps


def escalation_step(level: int | None, path: Any = None, which: str = "technical") -> dict[str, Any]:
    """The step after ``level`` (1-based; ``None``/0 = not yet escalated, the first step is the on-call engineer).

    Returns ``{level, role, ...contact, at_top, moved}``: ``at_top`` when the returned step is the last of the path,
    ``moved`` false when ``level`` was already the top (the top step is returned again, level unchanged, so
    escalating at the top notifies the top again)."""
    steps = normalize_path(path, which)
    current = int(level or 0)
    if current < 0:
        raise PolicyError(f"escalation level must be >= 0, got {current}")
    nxt = min(current + 1, len(steps))
    result = dict(steps[nxt - 1])
    result["level"] = nxt
    result["at_top"] = nxt == len(steps)
    result["moved"] = current < len(steps)
    result["path"] = [s["role"] for s in steps]
    return result


def escalation_due(
    record: Any,
    now: Any = None,
    matrix: Mapping[str, Any] | None = None,
    path: Any = None,
) -> dict[str, Any]:
    """Evaluate "When to escalate" (runbook section 5) on an incident record (its entries, or a summary).

    Time-based rules count from the later of the start and the last escalation, so an incident that stays down
    climbs one step per interval; event rules (data loss, confirmed breach, cascading failures) fire once for
    each flag recorded after the last escalation."""
    from ._incident import (
        summarize,  # local import: keeps this module free of I/O helpers at import time
    )

    if isinstance(record, Mapping) and "state" in record and "started_at" in record:
        summary = record  # already a summary
    elif isinstance(record, Mapping) and isinstance(record.get("entries"), list):
        summary = summarize(record["entries"], now)
    else:
        summary = summarize(record, now)
    current = parse_time(now, "now") if now is not None else now_utc()
    level = summary.get("severity")
    row = merged_matrix(matrix).get(level) or {}
    reasons: list[str] = []
    result: dict[str, Any] = {
        "due": False,
        "reasons": reasons,
        "severity": level,
        "level": summary.get("escalation_level") or 1,
        "now": iso(current),
    }
    if summary.get("state") == "closed":
        result["next"] = None
        return result
    base = parse_time(summary.get("last_escalated_at") or summary["started_at"], "base")
    since_base = (current - base).total_seconds() / 60.0
    since_start = (current - parse_time(summary["started_at"])).total_seconds() / 60.0
    flags_after = summary.get("flags_after_escalation") or {}
    flags_ever = summary.get("flags") or {}

    after = row.get("escalate_after_minutes")
    if after is not None:
        restored = bool(flags_ever.get("service_restored"))
        if level == "P0":
            if since_base > after and not restored:
                reasons.append(f"service down for {int(since_start)} minutes (escalate after {after})")
        elif since_base > after:
            reasons.append(f"unresolved after {int(since_start)} minutes (escalate after {after})")
    rc_within = row.get("root_cause_within_minutes")
    if rc_within is not None and since_base > rc_within and not flags_ever.get("root_cause_identified"):
        reasons.append(f"no root cause identified within {rc_within} minutes")
    for flag in row.get("escalate_immediately_on") or []:
        if flags_after.get(flag):
            reasons.append({
                "data_loss": "data corruption or loss detected",
                "breach_confirmed": "security breach confirmed",
                "cascading_failure": "multiple cascading failures",
            }.get(flag, flag.replace("_", " ")))
    threshold = row.get("cascade_threshold")
    if (threshold and "cascading_failure" in (row.get("escalate_immediately_on") or [])
            and not flags_after.get("cascading_failure")
            and int(summary.get("failed_steps_after_escalation") or 0) >= int(threshold)):
        reasons.append(f"multiple cascading failures ({summary['failed_steps_after_escalation']} distinct failed "
                       f"steps, threshold {threshold})")
    result["due"] = bool(reasons)
    result["next"] = escalation_step(result["level"], path) if reasons else None
    if after is not None:
        result["next_check_at"] = iso(base + _dt.timedelta(minutes=after))
    return result


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        return list(value)
    return [value]
