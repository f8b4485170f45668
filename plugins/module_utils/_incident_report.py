"""PRIVATE to the collection: figures of the post-incident review and of the monthly incident review.

Not a public API: anything here may change without notice. The supported interfaces are the filters
``taskscheduler.ops.incident_review`` and ``taskscheduler.ops.incident_monthly_stats`` and the module
``taskscheduler.ops.incident_chart``. Everything here is pure (no I/O) except ``render_chart``.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from ._incident_policy import SEVERITIES, human_duration, iso, parse_time

UTC = _dt.timezone.utc  # module_utils support Python 3.9 (no datetime.UTC)


class ReportError(ValueError):
    """Bad input for a report; the message says what to fix."""


# ---------------------------------------------------------------------------------------------- post-incident
def review(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the runbook's post-incident review template needs beyond the summary: timeline rows with times,
    contributing factors, what went well, what could be improved."""
    start = parse_time(summary["started_at"])
    end = parse_time(summary["ended_at"]) if summary.get("ended_at") else None
    multi_day = end is not None and end.date() != start.date()
    rows = [{"ts": iso(start), "type": "alert", "event": f"{summary['alert']} alert triggered",
             "action": summary.get("description", ""), "owner": "Alertmanager", "result": "",
             "time": start.strftime("%Y-%m-%d %H:%M" if multi_day else "%H:%M")}]
    for row in summary.get("timeline") or []:
        ts = parse_time(row["ts"])
        rows.append(dict(row, time=ts.strftime("%Y-%m-%d %H:%M" if multi_day else "%H:%M")))
    deadlines = summary.get("deadlines") or {}
    went_well: list[str] = []
    improve: list[str] = []
    contributing: list[str] = []
    tta = summary.get("time_to_acknowledge_seconds")
    if summary.get("response_met"):
        went_well.append(f"Acknowledged in {human_duration(tta)} (target {deadlines.get('response_minutes')} min)")
    elif summary.get("response_met") is False:
        improve.append(f"Acknowledged after {human_duration(tta)}, past the {deadlines.get('response_minutes')} "
                       "minute response target")
    ttr = summary.get("time_to_resolve_seconds")
    if summary.get("resolution_met"):
        went_well.append(f"Resolved in {human_duration(ttr)} (target {deadlines.get('resolution_minutes')} min)")
    elif summary.get("resolution_met") is False:
        took = human_duration(ttr) if ttr is not None else "longer (still open)"
        improve.append(f"Resolved after {took}, past the {deadlines.get('resolution_minutes')} minute "
                       "resolution SLA")
    notes = summary.get("notifications") or {}
    if notes.get("sent") and not notes.get("failed"):
        went_well.append(f"All {notes['sent']} notifications delivered")
    if notes.get("failed"):
        improve.append(f"{notes['failed']} notification(s) failed ({', '.join(notes.get('failed_channels') or [])})")
    flags = summary.get("flags") or {}
    if flags.get("root_cause_identified"):
        went_well.append(f"Root cause identified at {_hhmm(flags['root_cause_identified'])}")
    for esc in summary.get("escalations") or []:
        reasons = "; ".join(esc.get("reasons") or []) or "by the incident commander"
        improve.append(f"Escalated to {esc.get('to')} at {_hhmm(esc.get('ts'))}: {reasons}")
        contributing.extend(r for r in esc.get("reasons") or [] if r not in contributing)
    failed = [r for r in summary.get("timeline") or [] if r.get("type") == "action" and r.get("result") == "failed"]
    for row in failed:
        line = f"Step failed: {row.get('action')}"
        if line not in contributing:
            contributing.append(line)
    for flag, text in (("data_loss", "Data corruption or loss detected"), ("breach_confirmed", "Security breach "
                       "confirmed"), ("cascading_failure", "Multiple cascading failures")):
        if flag in flags:
            contributing.append(f"{text} at {_hhmm(flags[flag])}")
    return {
        "timeline": rows,
        "went_well": went_well,
        "improve": improve,
        "contributing": contributing,
        "date_range": f"{iso(start)} to {iso(end) if end else 'ongoing'}",
    }


def _hhmm(ts: Any) -> str:
    return parse_time(ts).strftime("%H:%M") if ts else "?"


# -------------------------------------------------------------------------------------------------- monthly
def month_bounds(month: str) -> tuple[_dt.datetime, _dt.datetime]:
    """``"2026-11"`` -> (2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    try:
        start = _dt.datetime.strptime(month.strip(), "%Y-%m").replace(tzinfo=UTC)
    except (ValueError, AttributeError):
        raise ReportError(f"month {month!r}: expected YYYY-MM, e.g. 2026-11") from None
    nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, nxt


def previous_month(month: str) -> str:
    start = month_bounds(month)[0]
    prev = start - _dt.timedelta(days=1)
    return f"{prev:%Y-%m}"


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 1)


def _agg(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "max": None}
    return {"mean": round(statistics.fmean(values), 1), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1)}


def monthly_stats(incidents: Iterable[Mapping[str, Any]], month: str) -> dict[str, Any]:
    """Trend figures over the incidents that started in ``month`` (YYYY-MM), compared with the month before.

    Time to acknowledge = acknowledged_at - started_at (the alert's start); time to resolve = ended_at -
    started_at. A response breach is an acknowledgement after respond_by, a resolution breach a resolution after
    resolve_by (or an incident still open past it)."""
    start, end = month_bounds(month)
    prev_start = month_bounds(previous_month(month))[0]
    current, previous = [], []
    for summary in incidents:
        began = parse_time(summary["started_at"])
        if start <= began < end:
            current.append(summary)
        elif prev_start <= began < start:
            previous.append(summary)
    current.sort(key=lambda s: s["started_at"])

    by_severity = dict.fromkeys(SEVERITIES, 0)
    by_alert: dict[str, dict[str, int]] = {}
    for s in current:
        by_severity[s["severity"]] = by_severity.get(s["severity"], 0) + 1
        row = by_alert.setdefault(s["alert"], {"total": 0, **dict.fromkeys(SEVERITIES, 0)})
        row["total"] += 1
        row[s["severity"]] = row.get(s["severity"], 0) + 1

    per_severity = {}
    breaches = []
    for sev in sorted(by_severity):
        group = [s for s in current if s["severity"] == sev]
        tta = [m for m in (_minutes(s.get("time_to_acknowledge_seconds")) for s in group) if m is not None]
        ttr = [m for m in (_minutes(s.get("time_to_resolve_seconds")) for s in group) if m is not None]
        targets = next(((s.get("deadlines") or {}) for s in group), {})
        resp_breach = [s for s in group if s.get("response_met") is False]
        res_breach = [s for s in group if s.get("resolution_met") is False]
        per_severity[sev] = {
            "count": len(group),
            "resolved": sum(1 for s in group if s.get("state") == "closed"),
            "response_target_minutes": targets.get("response_minutes"),
            "resolution_target_minutes": targets.get("resolution_minutes"),
            "time_to_acknowledge_minutes": _agg(tta),
            "time_to_resolve_minutes": _agg(ttr),
            "response_breaches": len(resp_breach),
            "resolution_breaches": len(res_breach),
            "within_sla_percent": round(100.0 * (len(group) - len({s["id"] for s in resp_breach + res_breach}))
                                        / len(group), 1) if group else None,
        }
        for s in resp_breach:
            breaches.append({"id": s["id"], "alert": s["alert"], "severity": sev, "kind": "response",
                             "minutes": _minutes(s.get("time_to_acknowledge_seconds")),
                             "target_minutes": (s.get("deadlines") or {}).get("response_minutes")})
        for s in res_breach:
            breaches.append({"id": s["id"], "alert": s["alert"], "severity": sev, "kind": "resolution",
                             "minutes": _minutes(s.get("time_to_resolve_seconds")),
                             "target_minutes": (s.get("deadlines") or {}).get("resolution_minutes"),
                             "open": s.get("state") != "closed"})
    breaches.sort(key=lambda b: (b["severity"], b["id"], b["kind"]))

    all_tta = [m for m in (_minutes(s.get("time_to_acknowledge_seconds")) for s in current) if m is not None]
    all_ttr = [m for m in (_minutes(s.get("time_to_resolve_seconds")) for s in current) if m is not None]
    total, prev_total = len(current), len(previous)
    return {
        "month": month,
        "period": {"start": iso(start), "end": iso(end)},
        "total": total,
        "resolved": sum(1 for s in current if s.get("state") == "closed"),
        "open": sum(1 for s in current if s.get("state") != "closed"),
        "by_severity": by_severity,
        "by_alert": dict(sorted(by_alert.items(), key=lambda kv: (-kv[1]["total"], kv[0]))),
        "per_severity": per_severity,
        "time_to_acknowledge_minutes": _agg(all_tta),
        "time_to_resolve_minutes": _agg(all_ttr),
        "sla_breaches": breaches,
        "incidents_with_breach": len({b["id"] for b in breaches}),
        "escalated_incidents": sum(1 for s in current if s.get("escalations")),
        "escalation_steps": sum(len(s.get("escalations") or []) for s in current),
        "notification_failures": sum((s.get("notifications") or {}).get("failed", 0) for s in current),
        "previous": {
            "month": previous_month(month),
            "total": prev_total,
            "by_severity": {sev: sum(1 for s in previous if s["severity"] == sev) for sev in SEVERITIES},
        },
        "change_percent": round(100.0 * (total - prev_total) / prev_total, 1) if prev_total else None,
        "incidents": [{"id": s["id"], "alert": s["alert"], "severity": s["severity"], "started_at": s["started_at"],
                       "state": s.get("state"), "tta_minutes": _minutes(s.get("time_to_acknowledge_seconds")),
                       "ttr_minutes": _minutes(s.get("time_to_resolve_seconds")),
                       "sla_breached": bool(s.get("sla_breached"))} for s in current],
    }


# ---------------------------------------------------------------------------------------------------- chart
def render_chart(stats: Mapping[str, Any], path: str, title: str = "") -> dict[str, Any]:
    """Two panels as PNG: incidents per alert stacked by severity; median time to acknowledge and to resolve per
    severity against the SLA targets. Needs matplotlib on the control node."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError("matplotlib is not installed on the control node: pip install matplotlib "
                          "(it is in the collection's requirements)") from None
    colors = {"P0": "#cf222e", "P1": "#bc4c00", "P2": "#9a6700", "P3": "#57606a"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=100)
    alerts = list(stats.get("by_alert") or {})
    bottom = [0] * len(alerts)
    for sev in SEVERITIES:
        values = [stats["by_alert"][a].get(sev, 0) for a in alerts]
        if any(values):
            left.barh(alerts, values, left=bottom, color=colors[sev], label=sev)
            bottom = [b + v for b, v in zip(bottom, values)]
    left.invert_yaxis()
    left.set_xlabel("incidents")
    left.set_title(f"Incidents by alert ({stats.get('total', 0)} in {stats.get('month', '')})")
    if alerts:
        left.legend(loc="lower right")
    else:
        left.text(0.5, 0.5, "no incidents", ha="center", va="center", transform=left.transAxes)

    sevs = [s for s in SEVERITIES if (stats.get("per_severity") or {}).get(s, {}).get("count")]
    x = list(range(len(sevs)))
    per = stats.get("per_severity") or {}
    tta = [per[s]["time_to_acknowledge_minutes"]["median"] or 0 for s in sevs]
    ttr = [per[s]["time_to_resolve_minutes"]["median"] or 0 for s in sevs]
    width = 0.38
    right.bar([i - width / 2 for i in x], tta, width, label="median time to acknowledge", color="#0969da")
    right.bar([i + width / 2 for i in x], ttr, width, label="median time to resolve", color="#8250df")
    for i, sev in enumerate(sevs):
        for offset, key in ((-width / 2, "response_target_minutes"), (width / 2, "resolution_target_minutes")):
            target = per[sev].get(key)
            if target:
                right.hlines(target, i + offset - width / 2, i + offset + width / 2, colors="black",
                             linestyles="dashed", linewidth=1.5)
    right.set_xticks(x, sevs)
    right.set_yscale("symlog", linthresh=10)
    right.set_ylabel("minutes (dashed: SLA target)")
    right.set_title(f"Against the SLA ({stats.get('incidents_with_breach', 0)} incidents breached)")
    right.legend(loc="upper left", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return {"path": path, "alerts": len(alerts), "severities": sevs}
