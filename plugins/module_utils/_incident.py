"""PRIVATE to the collection: the incident record (JSON Lines, one file per incident) and its summary.

Not a public API: anything here may change without notice. Use the ``taskscheduler.ops.incident_record`` module.

File layout (control node):

* ``<record_dir>/<id>.jsonl``: one JSON object per line, append-only. Every writer takes an exclusive ``fcntl``
  lock on the file, reads what is there, appends whole lines and fsyncs before unlocking, so concurrent appenders
  (``delegate_to: localhost`` from many hosts, several playbooks) never interleave or lose entries, and ``seq``
  numbers stay contiguous.
* ``<log_dir>/<YYYYmmdd_HHMMSS>_<id>_incident.log``: the runbook's plain lines
  (``2026-11-26T21:15:00+00:00 [IC] P0 incident started: TaskSchedulerAPIDown``) for people who tail logs.

Entry types: ``open``, ``action``, ``notification``, ``escalation``, ``close``, ``reopen``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._incident_policy import (
    ALERT_DESCRIPTIONS,
    ALERT_SERVICES,
    FLAGS,
    PolicyError,
    alert_severity,
    escalation_step,
    human_duration,
    iso,
    merged_matrix,
    next_update_at,
    normalize_severity,
    now_utc,
    parse_time,
    sla,
)

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ENTRY_TYPES = ("open", "action", "notification", "escalation", "close", "reopen")
RESULTS = ("ok", "changed", "failed", "skipped", "info")
STATUSES = ("investigating", "identified", "monitoring", "resolved")


class IncidentError(Exception):
    """A problem with the record: bad id, missing incident, unwritable directory. The message says what to do."""


# ------------------------------------------------------------------------------------------------------------ ids
def slug(alert: str) -> str:
    """``TaskSchedulerAPIDown`` -> ``apidown``; ``NoActiveWorkers`` -> ``noactiveworkers``."""
    text = re.sub(r"^TaskScheduler", "", alert or "")
    text = re.sub(r"[^A-Za-z0-9]+", "", text).lower()
    return text[:40] or "incident"


def make_id(alert: str, started_at: Any) -> str:
    """``INC-20261126-211500-apidown``."""
    start = parse_time(started_at, "started_at")
    return f"INC-{start:%Y%m%d-%H%M%S}-{slug(alert)}"


def check_id(incident_id: str) -> str:
    if not isinstance(incident_id, str) or not ID_RE.match(incident_id):
        raise IncidentError(
            f"incident id {incident_id!r} is not valid: use 1-128 letters, digits, '.', '_', ':' or '-' "
            "(e.g. INC-20261126-211500-apidown or an Alertmanager fingerprint)"
        )
    return incident_id


# ---------------------------------------------------------------------------------------------------------- store
class IncidentStore:
    """Append-only JSON Lines records under ``record_dir``; plain log lines under ``log_dir`` (optional)."""

    def __init__(self, record_dir: str, log_dir: str | None = None) -> None:
        if not record_dir:
            raise IncidentError("record_dir is empty: set tsops_incident_dir (or the module's record_dir)")
        self.record_dir = os.path.abspath(os.path.expanduser(record_dir))
        self.log_dir = os.path.abspath(os.path.expanduser(log_dir)) if log_dir else None

    def path(self, incident_id: str) -> str:
        return os.path.join(self.record_dir, check_id(incident_id) + ".jsonl")

    def log_path(self, incident_id: str, started_at: Any) -> str | None:
        if not self.log_dir:
            return None
        start = parse_time(started_at, "started_at")
        return os.path.join(self.log_dir, f"{start:%Y%m%d_%H%M%S}_{incident_id}_incident.log")

    # -- reading
    def exists(self, incident_id: str) -> bool:
        return os.path.exists(self.path(incident_id))

    def read(self, incident_id: str) -> list[dict[str, Any]]:
        path = self.path(incident_id)
        try:
            with open(path, encoding="utf-8") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
                try:
                    return parse_lines(handle.read(), path)
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except FileNotFoundError:
            return []

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.record_dir)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".jsonl")] for n in names if n.endswith(".jsonl") and ID_RE.match(n[: -len(".jsonl")]))

    # -- writing
    def transact(
        self,
        incident_id: str,
        decide: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        check_mode: bool = False,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Lock the record, call ``decide(existing_entries)`` for the entries to add, append them with ``seq``.

        Returns ``(existing, added)``. In check mode nothing is created or written; ``added`` is what would be."""
        path = self.path(incident_id)
        if check_mode:
            existing = self.read(incident_id)
            return existing, _number(decide(existing), len(existing))
        self._makedirs(self.record_dir, "record_dir (tsops_incident_dir)")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.seek(0)
                existing = parse_lines(handle.read(), path)
                added = _number(decide(existing), len(existing))
                if added:
                    data = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in added)
                    handle.seek(0, os.SEEK_END)
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                    self._write_log(incident_id, existing + added, added)
                return existing, added
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write_log(self, incident_id: str, entries: list[dict[str, Any]], added: list[dict[str, Any]]) -> None:
        opened = next((e for e in entries if e.get("type") == "open"), None)
        if not self.log_dir or opened is None:
            return
        self._makedirs(self.log_dir, "log_dir (tsops_incident_log_dir)")
        path = self.log_path(incident_id, opened["started_at"])
        lines = "".join(log_line(e, opened) + "\n" for e in added)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, lines.encode("utf-8"))
        finally:
            os.close(fd)

    @staticmethod
    def _makedirs(path: str, what: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            hint = " (run as a user that may write there, or point it at a writable directory)" \
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
            raise IncidentError(f"cannot create {what} {path}: {exc.strerror}{hint}") from exc


def _number(entries: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(entries, start=1):
        entry = dict(entry)
        entry["seq"] = start + i
        out.append(entry)
    return out


def parse_lines(text: str, path: str = "record") -> list[dict[str, Any]]:
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IncidentError(f"{path}:{lineno}: not JSON ({exc.msg}); the record was edited by hand?") from None
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def log_line(entry: Mapping[str, Any], opened: Mapping[str, Any]) -> str:
    """The runbook's plain log format for one entry."""
    ts = entry.get("ts", "")
    kind = entry.get("type")
    if kind == "open":
        return f"{ts} [IC] {entry.get('severity')} incident started: {entry.get('alert')}"
    if kind == "close":
        resolution = "; ".join(entry.get("resolution") or [])
        return f"{ts} [RESOLVED] Root cause: {entry.get('root_cause', '')}, Resolution: {resolution}"
    if kind == "reopen":
        return (f"{ts} [IC] {opened.get('severity')} incident reopened: {opened.get('alert')} "
                f"({entry.get('reason', '')})")
    if kind == "escalation":
        reasons = "; ".join(entry.get("reasons") or [])
        return f"{ts} [ESCALATION] level {entry.get('level')} -> {entry.get('to')}: {reasons}"
    if kind == "notification":
        state = "ok" if entry.get("ok") else f"FAILED: {entry.get('error', '')}"
        return f"{ts} [NOTIFY] {entry.get('channel')} ({entry.get('audience', '')}) {state}"
    host = f" {entry['host']}" if entry.get("host") else ""
    return f"{ts} [{entry.get('actor') or 'ansible'}]{host} {entry.get('step', '')}: {entry.get('result', '')}"


# -------------------------------------------------------------------------------------------------------- entries
def open_entry(
    *,
    alert: str,
    severity: str | None = None,
    severity_map: Mapping[str, Any] | None = None,
    default_severity: str | None = None,
    matrix: Mapping[str, Any] | None = None,
    escalation_path: Any = None,
    incident_id: str | None = None,
    commander: str = "",
    impact: str = "",
    services: Iterable[str] = (),
    bridge: str = "",
    started_at: Any = None,
    now: Any = None,
    labels: Mapping[str, Any] | None = None,
    source: str = "",
    status: str = "investigating",
    description: str = "",
) -> dict[str, Any]:
    """The ``open`` entry: severity (from the map unless given), deadlines from the matrix, first escalation step."""
    if not alert:
        raise IncidentError("alert is required to open an incident")
    at = parse_time(now, "timestamp") if now is not None else now_utc()
    start = parse_time(started_at, "started_at") if started_at not in (None, "") else at
    start = min(start, at)  # a clock ahead of ours must not make the acknowledgement look earlier than the alert
    try:
        level = normalize_severity(severity) if severity else \
            alert_severity({"alertname": alert, **dict(labels or {})}, severity_map, default_severity)
        deadlines = sla(level, start, matrix)
        first = escalation_step(0, escalation_path)
    except PolicyError as exc:
        raise IncidentError(str(exc)) from None
    return {
        "type": "open",
        "ts": iso(at),
        "id": incident_id or make_id(alert, start),
        "alert": alert,
        "description": description or ALERT_DESCRIPTIONS.get(alert, ""),
        "severity": level,
        "commander": commander or "",
        "impact": impact or "",
        "services": sorted(set(services or ALERT_SERVICES.get(alert, []))),
        "bridge": bridge or "",
        "source": source or "",
        "labels": dict(labels or {}),
        "status": status or "investigating",
        "started_at": iso(start),
        "acknowledged_at": iso(at),
        "deadlines": {
            "respond_by": deadlines["respond_by"],
            "resolve_by": deadlines["resolve_by"],
            "response_minutes": deadlines["response_minutes"],
            "resolution_minutes": deadlines["resolution_minutes"],
            "update_minutes": deadlines["update_minutes"],
            "next_update_at": next_update_at(level, at, matrix),
        },
        "escalation": {
            "audience": deadlines["audience"],
            "level": first["level"],
            "to": first["role"],
            "escalate_after_minutes": deadlines["escalate_after_minutes"],
        },
    }


def action_entry(
    *,
    step: str,
    result: str = "ok",
    actor: str = "",
    host: str = "",
    details: Any = None,
    flags: Iterable[str] = (),
    status: str | None = None,
    message: str = "",
    now: Any = None,
) -> dict[str, Any]:
    if not step:
        raise IncidentError("step is required for an action entry (what was done, e.g. 'restart api')")
    if result not in RESULTS:
        raise IncidentError(f"result {result!r}: expected one of {', '.join(RESULTS)}")
    bad = [f for f in flags or [] if f not in FLAGS]
    if bad:
        raise IncidentError(f"unknown flags {bad}: expected any of {', '.join(FLAGS)}")
    entry: dict[str, Any] = {
        "type": "action",
        "ts": iso(parse_time(now, "timestamp") if now is not None else now_utc()),
        "actor": actor or "",
        "host": host or "",
        "step": step,
        "result": result,
        "details": details if details is not None else {},
    }
    if flags:
        entry["flags"] = sorted(set(flags))
    if status:
        entry["status"] = _status(status)
    if message:
        entry["message"] = message
    return entry


def notification_entry(
    *, channel: str, ok: bool, error: str = "", audience: str = "", recipients: Iterable[str] = (),
    subject: str = "", now: Any = None,
) -> dict[str, Any]:
    if not channel:
        raise IncidentError("channel is required for a notification entry")
    entry = {
        "type": "notification",
        "ts": iso(parse_time(now, "timestamp") if now is not None else now_utc()),
        "channel": channel,
        "ok": bool(ok),
        "audience": audience or "",
    }
    if error:
        entry["error"] = str(error)[:2000]
    if recipients:
        entry["recipients"] = list(recipients)
    if subject:
        entry["subject"] = subject
    return entry


def escalation_entry(
    entries: list[dict[str, Any]], *, reasons: Iterable[str] = (), path: Any = None, actor: str = "",
    level: int | None = None, now: Any = None,
) -> dict[str, Any]:
    summary = summarize(entries)
    step = escalation_step((level - 1) if level else summary.get("escalation_level"), path)
    entry = {
        "type": "escalation",
        "ts": iso(parse_time(now, "timestamp") if now is not None else now_utc()),
        "level": step["level"],
        "to": step["role"],
        "at_top": step["at_top"],
        "moved": step["moved"],
        "reasons": list(reasons or []),
        "actor": actor or "",
    }
    contact = {k: v for k, v in step.items() if k not in ("level", "role", "at_top", "moved", "path")}
    if contact:
        entry["contact"] = contact
    return entry


def close_entry(
    entries: list[dict[str, Any]], *, root_cause: str = "", resolution: Any = None, impact_summary: Any = None,
    action_items: Any = None, actor: str = "", ended_at: Any = None, now: Any = None,
) -> dict[str, Any]:
    summary = summarize(entries)
    at = parse_time(now, "timestamp") if now is not None else now_utc()
    end = parse_time(ended_at, "ended_at") if ended_at not in (None, "") else at
    start = parse_time(summary["started_at"])
    if end < start:
        raise IncidentError(f"ended_at {iso(end)} is before the incident started ({iso(start)})")
    seconds = int((end - start).total_seconds())
    return {
        "type": "close",
        "ts": iso(at),
        "ended_at": iso(end),
        "root_cause": root_cause or "",
        "resolution": _lines(resolution),
        "impact_summary": _lines(impact_summary),
        "action_items": list(action_items or []),
        "actor": actor or "",
        "duration_seconds": seconds,
        "duration": human_duration(seconds),
        "status": "resolved",
    }


def reopen_entry(reason: str = "", now: Any = None) -> dict[str, Any]:
    return {
        "type": "reopen",
        "ts": iso(parse_time(now, "timestamp") if now is not None else now_utc()),
        "reason": reason or "alert fired again",
        "status": "investigating",
    }


def _lines(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [line.strip("- ").strip() for line in value.splitlines() if line.strip()]
    return [str(v) for v in value]


def _status(value: str) -> str:
    if value not in STATUSES:
        raise IncidentError(f"status {value!r}: expected one of {', '.join(STATUSES)}")
    return value


# -------------------------------------------------------------------------------------------------------- summary
def summarize(entries: Iterable[Mapping[str, Any]], now: Any = None) -> dict[str, Any]:
    """One dict describing the incident: what the status page, notices and reports need."""
    entries = sorted((dict(e) for e in entries), key=lambda e: (e.get("seq") or 0))
    opened = next((e for e in entries if e.get("type") == "open"), None)
    if opened is None:
        raise IncidentError("the record has no 'open' entry: open the incident first (state=open)")
    current = parse_time(now, "now") if now is not None else now_utc()
    summary: dict[str, Any] = {
        "id": opened["id"],
        "alert": opened["alert"],
        "description": opened.get("description", ""),
        "severity": opened["severity"],
        "commander": opened.get("commander", ""),
        "impact": opened.get("impact", ""),
        "services": list(opened.get("services") or []),
        "bridge": opened.get("bridge", ""),
        "source": opened.get("source", ""),
        "started_at": opened["started_at"],
        "acknowledged_at": opened.get("acknowledged_at") or opened["ts"],
        "deadlines": dict(opened.get("deadlines") or {}),
        "audience": (opened.get("escalation") or {}).get("audience", ""),
        "escalation_level": (opened.get("escalation") or {}).get("level", 1),
        "escalated_to": (opened.get("escalation") or {}).get("to", ""),
        "last_escalated_at": None,
        "escalations": [],
        "state": "open",
        "status": opened.get("status", "investigating"),
        "ended_at": None,
        "duration_seconds": None,
        "duration": "",
        "root_cause": "",
        "resolution": [],
        "impact_summary": [],
        "action_items": [],
        "flags": {},
        "flags_after_escalation": {},
        "failed_steps_after_escalation": 0,
        "actions": 0,
        "failed_actions": 0,
        "notifications": {"sent": 0, "failed": 0, "failed_channels": []},
        "last_notified_at": None,
        "latest_update": {"ts": opened["ts"], "message": f"{opened['severity']} incident opened: {opened['alert']}"},
        "actions_in_progress": [],
        "reopened": 0,
        "entry_count": len(entries),
        "timeline": [],
    }
    failed_pairs: set[tuple[str, str]] = set()
    for entry in entries:
        kind = entry.get("type")
        ts = entry.get("ts")
        if entry.get("status"):
            summary["status"] = entry["status"]
        if kind == "action":
            summary["actions"] += 1
            if entry.get("result") == "failed":
                summary["failed_actions"] += 1
                failed_pairs.add((entry.get("host", ""), entry.get("step", "")))
            for flag in entry.get("flags") or []:
                summary["flags"].setdefault(flag, ts)
                summary["flags_after_escalation"].setdefault(flag, ts)
            message = entry.get("message") or f"{entry.get('step')}: {entry.get('result')}"
            summary["latest_update"] = {"ts": ts, "message": message}
            summary["actions_in_progress"] = (summary["actions_in_progress"] + [entry.get("step")])[-5:]
        elif kind == "notification":
            if entry.get("ok"):
                summary["notifications"]["sent"] += 1
                summary["last_notified_at"] = ts
            else:
                summary["notifications"]["failed"] += 1
                if entry.get("channel") not in summary["notifications"]["failed_channels"]:
                    summary["notifications"]["failed_channels"].append(entry.get("channel"))
        elif kind == "escalation":
            summary["escalation_level"] = entry.get("level")
            summary["escalated_to"] = entry.get("to")
            summary["last_escalated_at"] = ts
            summary["escalations"].append({k: entry.get(k) for k in ("ts", "level", "to", "reasons", "contact")})
            summary["flags_after_escalation"] = {}
            failed_pairs = set()
            summary["latest_update"] = {"ts": ts, "message": f"escalated to {entry.get('to')}"}
        elif kind == "close":
            summary.update(
                state="closed", ended_at=entry.get("ended_at"), duration_seconds=entry.get("duration_seconds"),
                duration=entry.get("duration", ""), root_cause=entry.get("root_cause", ""),
                resolution=list(entry.get("resolution") or []),
                impact_summary=list(entry.get("impact_summary") or []),
                action_items=list(entry.get("action_items") or []), status="resolved",
            )
            summary["latest_update"] = {"ts": ts, "message": f"resolved: {entry.get('root_cause', '')}".rstrip(": ")}
            summary["actions_in_progress"] = []
        elif kind == "reopen":
            summary.update(state="open", ended_at=None, duration_seconds=None, duration="")
            summary["reopened"] += 1
            summary["latest_update"] = {"ts": ts, "message": f"reopened: {entry.get('reason', '')}"}
        summary["timeline"].append(_timeline_row(entry, summary))
    summary["failed_steps_after_escalation"] = len(failed_pairs)
    summary.update(_sla_status(summary, current))
    if summary["state"] == "open":
        summary["elapsed_seconds"] = int((current - parse_time(summary["started_at"])).total_seconds())
    else:
        summary["elapsed_seconds"] = summary["duration_seconds"]
    return summary


def _timeline_row(entry: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    kind = entry.get("type")
    if kind == "open":
        event = f"Incident opened ({entry.get('severity')}, {entry.get('alert')})"
        action, owner = "Acknowledged", entry.get("commander", "")
    elif kind == "action":
        event = entry.get("message") or entry.get("step", "")
        action = f"{entry.get('step', '')}: {entry.get('result', '')}"
        if entry.get("host"):
            action += f" on {entry['host']}"
        owner = entry.get("actor", "")
    elif kind == "notification":
        event = f"Notification via {entry.get('channel')}"
        action = "sent" if entry.get("ok") else f"failed: {entry.get('error', '')}"
        owner = entry.get("audience", "")
    elif kind == "escalation":
        event = "Escalation: " + "; ".join(entry.get("reasons") or [])
        action = f"escalated to level {entry.get('level')} ({entry.get('to')})"
        owner = entry.get("actor", "")
    elif kind == "close":
        event, action, owner = "Service restored, incident resolved", "; ".join(entry.get("resolution") or []) \
            or entry.get("root_cause", ""), entry.get("actor", "")
    else:
        event, action, owner = "Incident reopened", entry.get("reason", ""), ""
    return {"ts": entry.get("ts"), "type": kind, "event": event, "action": action, "owner": owner or "",
            "result": entry.get("result") if kind == "action" else ("ok" if entry.get("ok", True) else "failed")}


def _sla_status(summary: Mapping[str, Any], current: Any) -> dict[str, Any]:
    deadlines = summary.get("deadlines") or {}
    start = parse_time(summary["started_at"])
    ack = parse_time(summary["acknowledged_at"])
    out: dict[str, Any] = {"time_to_acknowledge_seconds": int((ack - start).total_seconds())}
    respond_by = deadlines.get("respond_by")
    resolve_by = deadlines.get("resolve_by")
    out["response_met"] = ack <= parse_time(respond_by) if respond_by else None
    if summary.get("ended_at"):
        end = parse_time(summary["ended_at"])
        out["time_to_resolve_seconds"] = int((end - start).total_seconds())
        out["resolution_met"] = end <= parse_time(resolve_by) if resolve_by else None
    else:
        out["time_to_resolve_seconds"] = None
        out["resolution_met"] = False if resolve_by and current > parse_time(resolve_by) else None
    out["sla_breached"] = out["response_met"] is False or out["resolution_met"] is False
    return out


def summaries(store: IncidentStore, since: Any = None, until: Any = None, now: Any = None,
              ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Summaries of all incidents in ``store`` that started in ``[since, until)``, newest first."""
    lo = parse_time(since, "since") if since not in (None, "") else None
    hi = parse_time(until, "until") if until not in (None, "") else None
    out = []
    for incident_id in ids if ids is not None else store.ids():
        entries = store.read(incident_id)
        if not entries:
            continue
        summary = summarize(entries, now=now)
        start = parse_time(summary["started_at"])
        if (lo and start < lo) or (hi and start >= hi):
            continue
        out.append(summary)
    out.sort(key=lambda s: s["started_at"], reverse=True)
    return out


__all__ = [
    "ENTRY_TYPES",
    "IncidentError",
    "IncidentStore",
    "action_entry",
    "close_entry",
    "escalation_entry",
    "make_id",
    "notification_entry",
    "open_entry",
    "reopen_entry",
    "summaries",
    "summarize",
]


# ------------------------------------------------------------------------------------------------- module logic
STATES = ("open", "append", "escalate", "close", "read", "query")


def execute(params: Mapping[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """What ``taskscheduler.ops.incident_record`` does for ``params``; raises IncidentError on bad input."""
    store = IncidentStore(params["record_dir"], params.get("log_dir") or None)
    state = params["state"]
    now = params.get("timestamp") or None
    if state == "query":
        found = summaries(store, params.get("since"), params.get("until"), now=now)
        return {"changed": False, "incidents": found, "count": len(found), "record_dir": store.record_dir}

    incident_id = params.get("id")
    if state == "open":
        entry = open_entry(
            alert=params.get("alert") or "", severity=params.get("severity"),
            severity_map=params.get("severity_map"), default_severity=params.get("default_severity"),
            matrix=params.get("escalation_matrix"), escalation_path=params.get("escalation_path"),
            incident_id=incident_id, commander=params.get("commander") or "", impact=params.get("impact") or "",
            services=params.get("services") or [], bridge=params.get("bridge") or "",
            started_at=params.get("started_at"), now=now, labels=params.get("labels"),
            source=params.get("source") or "", description=params.get("description") or "",
        )
        incident_id = check_id(entry["id"])

        def decide(existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if not existing:
                return [entry]
            if summarize(existing).get("state") == "closed":
                return [reopen_entry(params.get("reason") or "", now)]
            return []  # re-opening an open incident continues it
    elif not incident_id:
        raise IncidentError(f"id is required for state={state}")
    else:
        check_id(incident_id)
        if not store.exists(incident_id) and check_mode:
            # A check-mode run of a whole response: the open step only pretended to open it. Say what would
            # happen instead of failing, so playbooks stay harmless and green in --check.
            return {"changed": state in ("append", "escalate", "close"), "id": incident_id,
                    "path": store.path(incident_id), "log_path": None, "entry": None, "incident": None,
                    "entries": [], "missing": True, "msg": f"check mode: incident {incident_id} is not recorded yet"}
        if not store.exists(incident_id):
            raise IncidentError(
                f"no incident {incident_id!r} in {store.record_dir}: open it first (state=open), or check "
                "record_dir / tsops_incident_dir"
            )
        if state == "read":
            entries = store.read(incident_id)
            return _result(store, incident_id, entries, [], now, include_entries=True, changed=False)
        decide = _decider(state, params, now)

    existing, added = store.transact(incident_id, decide, check_mode=check_mode)
    return _result(store, incident_id, existing + added, added, now, include_entries=False, changed=bool(added))


def _decider(state: str, params: Mapping[str, Any], now: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def decide(existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        closed = summarize(existing).get("state") == "closed"
        if state == "close":
            if closed:
                return []  # closing twice changes nothing
            return [close_entry(
                existing, root_cause=params.get("root_cause") or "", resolution=params.get("resolution"),
                impact_summary=params.get("impact_summary"), action_items=params.get("action_items"),
                actor=params.get("actor") or "", ended_at=params.get("ended_at"), now=now,
            )]
        if state == "escalate":
            if closed:
                raise IncidentError("the incident is closed: there is nothing to escalate (open it again first)")
            return [escalation_entry(existing, reasons=params.get("reasons") or [],
                                     path=params.get("escalation_path"), actor=params.get("actor") or "",
                                     level=params.get("level"), now=now)]
        if params.get("type") == "notification":
            return [notification_entry(
                channel=params.get("channel") or "", ok=bool(params.get("ok")), error=params.get("error") or "",
                audience=params.get("audience") or "", recipients=params.get("recipients") or [],
                subject=params.get("subject") or "", now=now,
            )]
        return [action_entry(
            step=params.get("step") or "", result=params.get("result") or "ok", actor=params.get("actor") or "",
            host=params.get("host") or "", details=params.get("details"), flags=params.get("flags") or [],
            status=params.get("status"), message=params.get("update") or "", now=now,
        )]

    return decide


def _result(store: IncidentStore, incident_id: str, entries: list[dict[str, Any]], added: list[dict[str, Any]],
            now: Any, include_entries: bool, changed: bool) -> dict[str, Any]:
    summary = summarize(entries, now=now)
    result: dict[str, Any] = {
        "changed": changed,
        "id": incident_id,
        "path": store.path(incident_id),
        "log_path": store.log_path(incident_id, summary["started_at"]),
        "entry": added[-1] if added else None,
        "incident": summary,
    }
    if include_entries:
        result["entries"] = entries
    return result


# -------------------------------------------------------------------------------------------------------- notices
HEADLINES = {
    "P0": "🚨 P0 CRITICAL INCIDENT",
    "P1": "⚠️  P1 HIGH PRIORITY",
    "P2": "🔶 P2 MEDIUM PRIORITY",
    "P3": "🔷 P3 LOW PRIORITY",
}
EVENTS = ("opened", "update", "resolved", "escalated")
# Who hears about each event (runbook section 3, stakeholder notification list).
EVENT_AUDIENCES = {
    "opened": ["immediate"],
    "update": ["immediate", "update"],
    "escalated": ["immediate"],
    "resolved": ["immediate", "update", "resolution"],
}


def notice_context(
    summary: Mapping[str, Any],
    event: str,
    matrix: Mapping[str, Any] | None = None,
    now: Any = None,
    system: str = "Task Scheduling System",
    review_after_hours: float = 24,
    stakeholders: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values the notice templates print: headline, subject, next update time, review time, SMS line, and the
    recipients per channel (``stakeholders[audience][channel]`` for the event's audiences, plus the contact of the
    escalation step when the event is an escalation)."""
    if event not in EVENTS:
        raise IncidentError(f"notice event {event!r}: expected one of {', '.join(EVENTS)}")
    current = parse_time(now, "now") if now is not None else now_utc()
    severity = summary.get("severity", "P3")
    row = merged_matrix(matrix).get(severity) or {}
    update_minutes = row.get("update_minutes")
    next_update = iso(current + _dt.timedelta(minutes=update_minutes)) if update_minutes else None
    alert, incident_id = summary.get("alert", ""), summary.get("id", "")
    base = HEADLINES.get(severity, f"{severity} INCIDENT")
    ended = summary.get("ended_at")
    review_at = iso(parse_time(ended) + _dt.timedelta(hours=review_after_hours)) if ended else None
    elapsed = int((current - parse_time(summary["started_at"])).total_seconds())
    if event == "resolved":
        headline = f"✅ RESOLVED - {system} Incident"
        subject = f"[RESOLVED] {alert} ({incident_id}) after {summary.get('duration') or human_duration(elapsed)}"
        sms = f"RESOLVED {severity} {alert} {incident_id} after {summary.get('duration', '')}: " \
              f"{summary.get('root_cause', '')}"
    elif event == "escalated":
        headline = f"⬆️  ESCALATION - {severity} INCIDENT - {system}"
        subject = f"[ESCALATED {severity}] {alert} ({incident_id}) to {summary.get('escalated_to', '')}"
        sms = f"ESCALATED {severity} {alert} {incident_id} to {summary.get('escalated_to', '')} after " \
              f"{human_duration(elapsed)}"
    else:
        suffix = " - UPDATE" if event == "update" else ""
        headline = f"{base} - {system}{suffix}"
        word = {"P0": "CRITICAL INCIDENT", "P1": "HIGH PRIORITY"}.get(severity, "INCIDENT")
        subject = f"[{severity}{' UPDATE' if event == 'update' else ''}] {word}: {alert}" \
                  f"{' - ' + summary['description'] if summary.get('description') else ''} ({incident_id})"
        sms = f"{severity} {alert} {incident_id} {str(summary.get('status', '')).upper()} " \
              f"IC {summary.get('commander') or 'unassigned'}"
        if summary.get("bridge"):
            sms += f" bridge {summary['bridge']}"
    return {
        "event": event,
        "severity": severity,
        "severity_name": row.get("name", ""),
        "headline": headline,
        "subject": subject,
        "sms": sms[:160],
        "now": iso(current),
        "update_minutes": update_minutes,
        "next_update_at": next_update,
        "review_at": review_at,
        "elapsed": human_duration(elapsed),
        "audiences": list(EVENT_AUDIENCES[event]),
        "recipients": _recipients(summary, event, stakeholders or {}),
    }


def _recipients(summary: Mapping[str, Any], event: str, stakeholders: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for audience in EVENT_AUDIENCES[event]:
        lists = stakeholders.get(audience) or {}
        if not isinstance(lists, Mapping):
            raise IncidentError(f"stakeholders.{audience}: expected a mapping of channel to recipients "
                                "(e.g. {email: [ops@example.com], phone: ['+15550100']})")
        for channel, people in lists.items():
            bucket = out.setdefault(str(channel), [])
            for person in [people] if isinstance(people, str) else list(people or []):
                if person not in bucket:
                    bucket.append(person)
    if event == "escalated" and summary.get("escalations"):
        contact = summary["escalations"][-1].get("contact") or {}
        for channel, key in (("email", "email"), ("phone", "phone")):
            if contact.get(key) and contact[key] not in out.setdefault(channel, []):
                out[channel].append(contact[key])
    return out


# ---------------------------------------------------------------------------------------------------- status page
SERVICE_LEVELS = (
    # (status, label, rank): the worst open incident on a service decides its status
    ("operational", "Operational", 0),
    ("degraded", "Degraded performance", 1),
    ("partial_outage", "Partial outage", 2),
    ("major_outage", "Major outage", 3),
)
_SEVERITY_LEVEL = {"P0": "major_outage", "P1": "partial_outage", "P2": "degraded", "P3": "degraded"}
_LEVEL = {status: (label, rank) for status, label, rank in SERVICE_LEVELS}


def status_page(
    incidents: Iterable[Mapping[str, Any]],
    services: Iterable[str] = ("api", "scheduler", "worker", "postgres", "redis"),
    now: Any = None,
    history_days: int = 30,
    system: str = "Task Scheduling System",
) -> dict[str, Any]:
    """The public view of incident summaries: status per service, open incidents with their latest update, and
    the incidents resolved in the last ``history_days`` days. Nothing internal (commander, bridge, hosts)."""
    current = parse_time(now, "now") if now is not None else now_utc()
    since = current - _dt.timedelta(days=history_days)
    open_incidents, history = [], []
    for summary in sorted(incidents, key=lambda s: s["started_at"], reverse=True):
        public = {
            "id": summary["id"],
            "title": summary.get("description") or summary["alert"],
            "alert": summary["alert"],
            "severity": summary["severity"],
            "status": summary.get("status", "investigating"),
            "impact": summary.get("impact", ""),
            "services": list(summary.get("services") or []),
            "started_at": summary["started_at"],
            "latest_update": dict(summary.get("latest_update") or {}),
        }
        if summary.get("state") == "open":
            public["elapsed"] = human_duration((current - parse_time(summary["started_at"])).total_seconds())
            open_incidents.append(public)
        elif summary.get("ended_at") and parse_time(summary["ended_at"]) >= since:
            public.update(ended_at=summary["ended_at"], duration=summary.get("duration", ""),
                          root_cause=summary.get("root_cause", ""))
            history.append(public)
    rows = []
    names = list(services)
    for incident in open_incidents:
        names += [s for s in incident["services"] if s not in names]
    for name in names:
        affecting = [i for i in open_incidents if name in i["services"]]
        level = max((_SEVERITY_LEVEL.get(i["severity"], "degraded") for i in affecting),
                    key=lambda lv: _LEVEL[lv][1], default="operational")
        rows.append({"name": name, "status": level, "label": _LEVEL[level][0],
                     "incidents": [i["id"] for i in affecting]})
    overall = max((r["status"] for r in rows), key=lambda lv: _LEVEL[lv][1], default="operational")
    overall_label = "All systems operational" if overall == "operational" else _LEVEL[overall][0]
    return {
        "system": system,
        "generated_at": iso(current),
        "overall": {"status": overall, "label": overall_label},
        "services": rows,
        "open_incidents": open_incidents,
        "history": history,
        "history_days": history_days,
    }


def update_due(summary: Mapping[str, Any], now: Any = None, matrix: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Whether the next stakeholder update is due: ``update_minutes`` of the severity (P0 15, P1 30, ...) after the
    last delivered notice (or the opening). Closed incidents never are."""
    current = parse_time(now, "now") if now is not None else now_utc()
    severity = summary["severity"]
    last = parse_time(summary.get("last_notified_at") or summary["acknowledged_at"])
    next_at = next_update_at(severity, last, matrix)
    due = bool(next_at and summary.get("state") == "open" and current >= parse_time(next_at))
    return {"due": due, "last_at": iso(last), "next_at": next_at,
            "update_minutes": (merged_matrix(matrix).get(severity) or {}).get("update_minutes")}
