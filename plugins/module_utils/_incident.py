"""PRIVATE to the collection: the incident record (JSON Lines, one file per incident) and its summary.

Not a public API: anything here may change without notice. Use the ``taskscheduler.ops.incident_record`` module.

File layout (control node):

* ``<record_dir>/<id>.jsonl``: one JSON object per line, append-only. Every writer takes an exclusive ``fcntl``
  lock on the file, reads what is there, appends whole lines and fsyncs before unlocking, so concurrent appenders
  (``delegate_to: localhost`` from many hosts, several playbooks) never interleave or lose entries, and ``seq``
  numbers stay contiguous.
* ``<log_dir>/<YYYYmmdd_HHMMSS>_<id>_incident.log``: the runbook's plain lines
  (``2026-11-26T21:15:00+00:00 [IC] P0 incident started: TaskSchedulerAPIDown``) for people who tail logs.
  Written best-effort: a failure there is a warning, the JSON record is what counts.
* ``<record_dir>/<id>.jsonl.corrupt``: bytes moved aside by a repair. A writer that finds a torn tail (a last line
  without its newline that is not a JSON object: an interrupted write) moves those bytes there verbatim, under the
  lock, before it appends; nothing is dropped. Corrupt lines elsewhere stay where they are: readers skip them and
  report their line numbers (``bad_lines`` and warnings), they never fail on them.

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

# Matched with fullmatch: ``$`` alone would accept "INC-1\n" (it matches before a trailing newline).
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
CORRUPT_SUFFIX = ".corrupt"
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
    if not isinstance(incident_id, str) or not ID_RE.fullmatch(incident_id):
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
        # What readers and writers had to work around (bad lines skipped, a torn tail moved aside, a plain log
        # that could not be written): the module returns these as warnings.
        self.warnings: list[str] = []
        self.bad_lines: dict[str, list[dict[str, Any]]] = {}
        self.repaired: dict[str, dict[str, Any]] = {}

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
        """The record's entries; bad lines are skipped and noted in ``bad_lines`` and ``warnings``."""
        path = self.path(incident_id)
        try:
            with open(path, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
                try:
                    data = handle.read()
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except FileNotFoundError:
            return []
        entries, bad = parse_record(data)
        self._note_bad(incident_id, path, bad)
        return entries

    def _note_bad(self, incident_id: str, path: str, bad: list[dict[str, Any]]) -> None:
        if not bad:
            self.bad_lines.pop(incident_id, None)
            return
        self.bad_lines[incident_id] = bad
        numbers = ", ".join(str(b["line"]) for b in bad[:20]) + (" ..." if len(bad) > 20 else "")
        self.warnings.append(f"{path}: skipped {len(bad)} unreadable line(s) (line {numbers}): "
                             f"{bad[0]['error']}; the rest of the record is used")

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.record_dir)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".jsonl")] for n in names
                      if n.endswith(".jsonl") and ID_RE.fullmatch(n[: -len(".jsonl")]))

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
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.seek(0)
                raw = handle.read()
                entries, bad = parse_record(raw)
                self._note_bad(incident_id, path, bad)
                added = _number(decide(entries), _last_seq(entries))
                if added:
                    self._repair_tail(handle, path, raw)
                    data = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in added)
                    handle.seek(0, os.SEEK_END)
                    handle.write(data.encode("utf-8"))
                    handle.flush()
                    os.fsync(handle.fileno())
                    self._write_log(incident_id, entries + added, added)
                return entries, added
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _repair_tail(self, handle: Any, path: str, raw: bytes) -> None:
        """Make the next append start on a line of its own (called under the exclusive lock).

        A last line without its newline is an interrupted write, unless it is a whole JSON object (a hand edit
        that forgot the newline: completed in place). A torn tail is appended verbatim to ``<record>.corrupt``
        and fsynced there before the record is truncated to its last complete line: no byte is lost."""
        if not raw or raw.endswith(b"\n"):
            return
        start = raw.rfind(b"\n") + 1
        tail = raw[start:]
        if _json_object(tail) is not None:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
            return
        aside = path + CORRUPT_SUFFIX
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, tail + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
        line = raw.count(b"\n") + 1
        self.repaired[os.path.basename(path)[: -len(".jsonl")]] = {"line": line, "bytes": len(tail), "moved_to": aside}
        self.warnings.append(f"{path}: line {line} was a torn write ({len(tail)} bytes without a newline); moved "
                             f"verbatim to {aside} before appending")

    def _write_log(self, incident_id: str, entries: list[dict[str, Any]], added: list[dict[str, Any]]) -> None:
        """The plain runbook log, best-effort: a failure is a warning, the JSON record is already written."""
        opened = next((e for e in entries if e.get("type") == "open"), None)
        if not self.log_dir or opened is None:
            return
        path: str | None = self.log_dir
        try:
            self._makedirs(self.log_dir, "log_dir (tsops_incident_log_dir)")
            path = self.log_path(incident_id, opened["started_at"])
            lines = "".join(log_line(e, opened) + "\n" for e in added)
            fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, lines.encode("utf-8"))
            finally:
                os.close(fd)
        except (OSError, IncidentError, PolicyError, KeyError, TypeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.warnings.append(f"plain incident log {path} not written ({reason}); the JSON record "
                                 f"{self.path(incident_id)} has the entry")

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


def _last_seq(entries: list[dict[str, Any]]) -> int:
    """Where numbering continues: past every readable entry's seq (skipped bad lines leave gaps, never repeats)."""
    seqs = [e["seq"] for e in entries if isinstance(e.get("seq"), int) and not isinstance(e.get("seq"), bool)]
    return max([len(entries), *seqs])


def _json_object(line: bytes | str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def parse_record(data: bytes | str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(entries, bad)``: the JSON objects of a record, and ``{line, error}`` for every line that is not one
    (a torn write, bytes that are not UTF-8, a hand edit). Blank lines are neither."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    entries: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append({"line": lineno, "error": "not UTF-8"})
            continue
        except ValueError as exc:
            bad.append({"line": lineno, "error": f"not JSON ({getattr(exc, 'msg', exc)})"})
            continue
        if not isinstance(value, dict):
            bad.append({"line": lineno, "error": f"a JSON {type(value).__name__}, not an entry object"})
            continue
        entries.append(value)
    return entries, bad


def parse_lines(text: str, path: str = "record") -> list[dict[str, Any]]:
    """The readable entries of a record's text (bad lines skipped; ``parse_record`` says which)."""
    return parse_record(text)[0]


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
    public: bool = False,
) -> dict[str, Any]:
    """An ``action`` entry. ``public`` marks ``message`` as text for the public status page (nothing else of an
    entry ever goes there)."""
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
    if public:
        if not message:
            raise IncidentError("public=true needs the public text in update (what the status page should say)")
        entry["public"] = True
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
    missing = [k for k in ("id", "alert", "severity", "started_at", "ts") if not isinstance(opened.get(k), str)]
    if missing:
        raise IncidentError(f"the record's 'open' entry lacks {', '.join(missing)}: it was edited by hand or torn")
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
        # The last update flagged public (incident_record public=true): the only free text the status page shows.
        "public_update": {},
        "labels": dict(opened.get("labels") or {}) if isinstance(opened.get("labels"), Mapping) else {},
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
            if entry.get("public") is True and entry.get("message"):
                summary["public_update"] = {"ts": ts, "message": str(entry["message"])}
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
              ids: Iterable[str] | None = None, unreadable: list[dict[str, Any]] | None = None,
              ) -> list[dict[str, Any]]:
    """Summaries of all incidents in ``store`` that started in ``[since, until)``, newest first.

    A record that cannot be summarised (no readable ``open`` entry, an entry with impossible values) is left out
    and described in ``unreadable`` (and ``store.warnings``): one bad file never hides the others."""
    lo = parse_time(since, "since") if since not in (None, "") else None
    hi = parse_time(until, "until") if until not in (None, "") else None
    out = []
    for incident_id in ids if ids is not None else store.ids():
        entries = store.read(incident_id)
        if not entries and not store.bad_lines.get(incident_id):
            continue
        try:
            summary = summarize(entries, now=now)
            start = parse_time(summary["started_at"])
        except (IncidentError, PolicyError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, (IncidentError, PolicyError)) else \
                f"an entry has a missing or malformed field ({type(exc).__name__}: {exc})"
            if unreadable is not None:
                unreadable.append({"id": incident_id, "path": store.path(incident_id), "error": reason})
            store.warnings.append(f"{store.path(incident_id)}: left out of the query: {reason}")
            continue
        summary["bad_lines"] = [b["line"] for b in store.bad_lines.get(incident_id, [])]
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
        unreadable: list[dict[str, Any]] = []
        found = summaries(store, params.get("since"), params.get("until"), now=now, unreadable=unreadable)
        result = {"changed": False, "incidents": found, "count": len(found), "record_dir": store.record_dir,
                  "unreadable": unreadable,
                  "bad_lines": {i: [b["line"] for b in bad] for i, bad in sorted(store.bad_lines.items())}}
        return _with_warnings(result, store)

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
            return _with_warnings(
                _result(store, incident_id, entries, [], now, include_entries=True, changed=False), store)
        decide = _decider(state, params, now)

    existing, added = store.transact(incident_id, decide, check_mode=check_mode)
    return _with_warnings(
        _result(store, incident_id, existing + added, added, now, include_entries=False, changed=bool(added)), store)


def _with_warnings(result: dict[str, Any], store: IncidentStore) -> dict[str, Any]:
    if "id" in result:
        result["bad_lines"] = [b["line"] for b in store.bad_lines.get(result["id"], [])]
        result["repaired"] = store.repaired.get(result["id"])
    if store.warnings:
        result["warnings"] = list(store.warnings)
    return result


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
            public=bool(params.get("public")),
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
    """The public view of incident summaries: status per service, open incidents with their latest public update,
    and the incidents resolved in the last ``history_days`` days.

    Only what is meant for the public goes in: the generic title of the alert (not the alert's own summary, which
    names instances), severity, status, affected services, times, and the text of updates flagged public
    (``public_update``). Never step names or results, details, host names, errors, impact notes, root causes,
    commanders or bridges."""
    current = parse_time(now, "now") if now is not None else now_utc()
    since = current - _dt.timedelta(days=history_days)
    open_incidents, history = [], []
    for summary in sorted(incidents, key=lambda s: s["started_at"], reverse=True):
        update = summary.get("public_update") or {}
        status = summary.get("status", "investigating")
        public = {
            "id": summary["id"],
            "title": ALERT_DESCRIPTIONS.get(summary["alert"]) or "Service disruption",
            "alert": summary["alert"],
            "severity": summary["severity"],
            "status": status if status in STATUSES else "investigating",
            "services": [str(s) for s in summary.get("services") or []],
            "started_at": summary["started_at"],
            "latest_update": {"ts": update.get("ts", ""), "message": update.get("message", "")} if update else {},
        }
        if summary.get("state") == "open":
            public["elapsed"] = human_duration((current - parse_time(summary["started_at"])).total_seconds())
            open_incidents.append(public)
        elif summary.get("ended_at") and parse_time(summary["ended_at"]) >= since:
            public.update(ended_at=summary["ended_at"], duration=summary.get("duration", ""))
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


# -------------------------------------------------------------------------------------------- post-incident silence
# Alerts that get no post-incident silence by default: a repeat must page at once (runbook: a breach is never
# "expected to flap").
SILENCE_EXEMPT_ALERTS = ("SecurityBreach",)


def post_incident_silence(
    summary: Mapping[str, Any],
    exempt: Iterable[str] | None = SILENCE_EXEMPT_ALERTS,
    instance: str = "",
    matchers: Any = None,
) -> dict[str, Any]:
    """Whether and how to silence the incident's alert after closing: ``{silence, matchers, reason}``.

    The silence covers the incident's own alert, never that alert on every host: ``alertname`` plus the
    ``instance`` (``instance`` argument, else the alert's label recorded at opening). An alert without an instance
    label (an aggregate, e.g. NoActiveWorkers) is matched on all its recorded labels. When neither is known (the
    incident was opened from a bare alert name) there is no silence, and the reason says how to give one.
    ``matchers`` given explicitly are used as they are; alerts in ``exempt`` get none."""
    if not isinstance(summary, Mapping) or not isinstance(summary.get("alert"), str) or not summary["alert"]:
        raise IncidentError("post_incident_silence: expected an incident summary with its alert (incident_record "
                            "read/open result's 'incident')")
    alert = summary["alert"]
    exempt_list = [exempt] if isinstance(exempt, str) else list(exempt or [])
    if alert in exempt_list:
        return {"silence": False, "matchers": [],
                "reason": f"{alert} gets no post-incident silence (listed in the exempt alerts): a repeat must page"}
    if matchers:
        if isinstance(matchers, Mapping):
            matchers = [{"name": k, "value": v} for k, v in matchers.items()]
        if not isinstance(matchers, list) or not all(isinstance(m, Mapping) and m.get("name") for m in matchers):
            raise IncidentError(f"silence matchers {matchers!r}: expected a list of {{name, value, is_regex}}")
        return {"silence": True, "matchers": [dict(m) for m in matchers], "reason": "matchers given explicitly"}
    labels = summary.get("labels") if isinstance(summary.get("labels"), Mapping) else {}
    target = str(instance or labels.get("instance") or "")
    if target:
        return {"silence": True, "reason": f"the incident's alert on {target}",
                "matchers": [{"name": "alertname", "value": alert}, {"name": "instance", "value": target}]}
    identity = {str(k): str(v) for k, v in labels.items() if k != "alertname" and isinstance(v, (str, int))
                and str(v) != ""}
    if identity:
        return {"silence": True, "reason": "the incident's alert (no instance label: matched on all its labels)",
                "matchers": [{"name": "alertname", "value": alert}]
                + [{"name": k, "value": v} for k, v in sorted(identity.items())]}
    return {"silence": False, "matchers": [],
            "reason": f"the instance of {alert} is unknown (the incident was opened from the alert's name, not the "
                      "alert): no silence rather than one for every host. Set incident_close_silence_instance or "
                      "incident_close_silence_matchers to silence it"}


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
