# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

The reports of a health / performance check run: one JSON document and one Markdown page covering every host,
built from the results of taskscheduler.ops.system_health (one per host).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Callable

from ._verdict import UNKNOWN, worst

_DROP = ("invocation", "changed", "_ansible_no_log", "_ansible_verbose_always")

# Options of taskscheduler.ops.health_report, shared by its module and its action plugin.
REPORT_ARGS: dict[str, Any] = {
    "results": {"type": "dict", "required": True},
    "dest": {"type": "path", "required": True},
    "name": {"type": "str", "default": "health_check"},
    "title": {"type": "str", "default": "Health check"},
    "fail_on": {"type": "list", "elements": "str", "default": ["down", "unknown"]},
    "formats": {"type": "list", "elements": "str", "choices": ["json", "markdown"], "default": ["json", "markdown"]},
}


def host_status(result: dict[str, Any]) -> str:
    return UNKNOWN if result.get("failed") or "status" not in result else result["status"]


def build(results: dict[str, dict[str, Any]], name: str, title: str, fail_on: Sequence[str],
          generated_at: datetime) -> dict[str, Any]:
    hosts = {}
    for host, result in results.items():
        clean = {k: v for k, v in (result or {}).items() if k not in _DROP}
        if not result:
            clean = {"failed": True, "msg": "not checked (unreachable or skipped)"}
        clean["status"] = host_status(clean)
        hosts[host] = clean
    return {
        "check": name,
        "title": title,
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "generated_by": f"taskscheduler.ops.{name}",
        "status": worst(h["status"] for h in hosts.values()) if hosts else UNKNOWN,
        "fail_on": list(fail_on),
        "hosts": hosts,
    }


# --- Markdown ------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    return "-" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _size(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"  # pragma: no cover


def _pct(ratio: Any) -> str:
    return "-" if ratio is None else f"{float(ratio) * 100:.1f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("-" * (len(h) + 2) for h in headers) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _bold(status: str) -> str:
    return f"**{status}**" if status in ("down", "degraded", "unknown") else status


def _overview(r: dict[str, Any]) -> list[str]:
    rows = []
    for name, a in r["areas"].items():
        figures = a.get("summary", "").split(" | ")[0][20:].strip()
        rows.append((name, _bold(a["status"]), figures, "; ".join(a.get("reasons") or [])))
    return _table(["Area", "Status", "Key figures", "Reasons"], rows)


def _containers(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    rows = [(c["name"], c["service"], c["state"] + (f" (exit {c['exit_code']})" if c["state"] == "exited" else ""),
             c["health"], c["restart_count"], None if c.get("uptime_seconds") is None else round(c["uptime_seconds"]),
             c.get("cpu_percent"), _size(c.get("memory_bytes")) if c.get("memory_bytes") is not None else None,
             c.get("memory_percent"))
            for c in a.get("containers", [])]
    return [f"### Containers ({a.get('project') or '-'})", ""] + _table(
        ["Container", "Service", "State", "Health", "Restarts", "Uptime (s)", "CPU %", "Memory", "Mem %"], rows)


def _endpoints(eps: list[dict[str, Any]], th: dict[str, Any]) -> list[str]:
    rows = []
    for e in eps:
        if not e.get("url"):
            rows.append((e["name"], "not configured", None, None, None, None, "skipped"))
            continue
        t = e.get("time_stats")
        stats = f"{t['min']} / {t['avg']} / {t['p95']} / {t['max']}" if t else None
        rows.append((e["name"], e["url"], e["error"] or e["status_code"], e["time_seconds"], e.get("samples"), stats,
                     _bold(e.get("status", "-"))))
    return ["### HTTP endpoints", "",
            f"HighAPILatency above {th.get('api_latency_seconds_max')} s; HighErrorRate above "
            f"{_pct(th.get('api_error_ratio_max'))} % failing requests.", ""] + _table(
        ["Endpoint", "URL", "HTTP", "Time (s)", "Samples", "min / avg / p95 / max (s)", "Status"], rows)


def _postgres(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    states = ", ".join(f"{k} {v}" for k, v in sorted((a.get("connections_by_state") or {}).items())) or "none"
    tasks = ", ".join(f"{k} {v}" for k, v in sorted((a.get("tasks_by_status") or {}).items()))
    out = ["### PostgreSQL", "",
           f"- {a.get('version_full')}",
           f"- database `{a.get('database')}`: {_size(a.get('size_bytes'))}, up {a.get('uptime_seconds')} s"
           + (", in recovery (standby)" if a.get("in_recovery") else "") + f"; reached by {a.get('via')}",
           f"- connections: {a.get('connections_total')} of {a.get('max_connections')}; by state: {states}",
           f"- queries active longer than {th.get('long_running_query_seconds_max')} s: "
           f"{a.get('long_running_queries')} (longest {a.get('longest_query_seconds')} s); "
           f"waiting on locks: {a.get('waiting_on_locks')}",
           f"- active tasks: {a.get('active_tasks')}" + (f" ({tasks})" if tasks else "")]
    slow = a.get("slow_statements")
    if slow is not None:
        out += ["", "#### Slowest statements", ""]
        if slow.get("available"):
            out += [f"Ranked by `{slow.get('source')}`; DatabaseSlowQueries above a mean of "
                    f"{th.get('slow_query_mean_ms_max')} ms.", ""]
            out += _table(["Mean (ms)", "Calls", "Total (ms)", "Rows/call", "Query"],
                          [(s.get("mean_ms"), s.get("calls"), s.get("total_ms"), s.get("avg_rows"),
                            f"`{s.get('query')}`") for s in slow.get("statements", [])])
        else:
            out.append(f"pg_stat_statements is not available: {slow.get('reason')}")
    return out


def _redis(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    keys = ", ".join(f"{db} {v.get('keys')} keys" for db, v in sorted((a.get("keyspace") or {}).items())) or "empty"
    maxmem = a.get("maxmemory_bytes")
    return ["### Redis", "",
            f"- {a.get('ping')}, Redis {a.get('version')} ({a.get('role')}), up {a.get('uptime_seconds')} s, "
            f"{a.get('connected_clients')} clients",
            f"- memory {_size(a.get('used_memory_bytes'))}" + (f" of {_size(maxmem)}" if maxmem else " (no maxmemory)")
            + f"; last RDB save {a.get('rdb_last_bgsave_status')}",
            f"- keyspace: {keys}"]


def _queue(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    return ["### Work queue", "",
            f"Backlog above {th.get('queue_oldest_pending_seconds_max')} s of waiting for the oldest due item.", ""
            ] + _table(["Due now", "Locked", "Retry wait", "Future", "Expired leases", "Oldest pending (s)",
                        "Oldest due at"],
                       [(a.get("due_now"), a.get("locked"), a.get("retry_wait"), a.get("future"),
                         a.get("expired_leases"), a.get("oldest_pending_age_seconds"), a.get("oldest_due_at"))])


def _workers(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    return ["### Workers", "",
            f"{a.get('alive')} alive of {a.get('expected') or 'unknown'} expected (heartbeat within "
            f"{a.get('window_seconds')} s), {a.get('stale')} stale, {a.get('stopped_last_hour')} stopped cleanly in "
            "the last hour.", ""] + _table(
        ["Worker", "Status", "Alive", "Last seen (s ago)", "Processed", "Failed"],
        [(w.get("worker_id"), w.get("status"), "yes" if w.get("alive") else "no", w.get("age_seconds"),
          w.get("processed_count"), w.get("failed_count")) for w in a.get("workers", [])])


def _scheduler(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    age = a.get("last_queued_age_seconds")
    return ["### Scheduler", "",
            f"{a.get('active_tasks')} active tasks, {a.get('overdue')} overdue by more than "
            f"{th.get('scheduler_stale_seconds')} s; work last queued "
            + (f"{age} s ago." if age is not None else "never.")]


def _processing(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    return ["### Task processing (last hour)", "",
            f"{a.get('completed')} completed (average {a.get('avg_duration_seconds')} s, p95 "
            f"{a.get('p95_duration_seconds')} s), {a.get('failed')} failed, error ratio "
            f"{_pct(a.get('error_ratio'))} %.", ""] + _table(
        ["Minute", "Created", "Completed", "Failed"],
        [(m.get("minute"), m.get("created"), m.get("completed"), m.get("failed")) for m in a.get("per_minute", [])])


def _host(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    mem, load = a.get("memory") or {}, a.get("load") or {}
    rows = [(d["path"] + (f" (also {', '.join(d['also'])})" if d.get("also") else ""), _size(d.get("free_bytes")),
             _size(d.get("total_bytes")), _pct(d.get("free_ratio")), _pct(d.get("inodes_free_ratio")))
            for d in a.get("disks", [])]
    return ["### Host resources", ""] + _table(["File system", "Free", "Size", "Free %", "Inodes free %"], rows) + [
        "", f"Memory: {_size(mem.get('used_bytes'))} used of {_size(mem.get('total_bytes'))} "
            f"({_pct(mem.get('used_ratio'))} %); load {load.get('load_1m', '-')} / {load.get('load_5m', '-')} / "
            f"{load.get('load_15m', '-')} on {load.get('cpus')} CPUs."]


def _logs(a: dict[str, Any], th: dict[str, Any]) -> list[str]:
    out = [f"### Recent errors in the logs (last {a.get('since_seconds', 0) / 60:g} min)", ""]
    for name, c in sorted((a.get("containers") or {}).items()):
        if c.get("matches"):
            out += [f"{name}: {c['matches']} matching lines, the last {len(c.get('last', []))}:", "", "```"]
            out += [line.replace("```", "'''") for line in c.get("last", [])]
            out += ["```", ""]
    if not a.get("error_lines"):
        out.append("No matching lines.")
    return out


_SECTIONS: list[tuple[str, str, Callable[[dict[str, Any], dict[str, Any]], list[str]]]] = [
    ("containers", "containers", _containers),
    ("postgres", "version", _postgres),
    ("redis", "version", _redis),
    ("queue", "due_now", _queue),
    ("workers", "alive", _workers),
    ("scheduler", "active_tasks", _scheduler),
    ("processing", "completed", _processing),
    ("host", "disks", _host),
    ("logs", "containers", _logs),
]


def _host_section(host: str, r: dict[str, Any]) -> list[str]:
    if r.get("failed") or "areas" not in r:
        return [f"## {host}: CHECK FAILED", "", f"The check could not run: {r.get('msg') or 'unknown error'}"]
    th = r.get("thresholds") or {}
    areas = r["areas"]
    out = [f"## {host}: {r['status'].upper()}", "",
           f"Checked at {r.get('checked_at')} in {r.get('duration_seconds')} s.", ""] + _overview(r)
    # Sections in the order of the overview, each only when its area has figures (not when it failed).
    eps = [e for name in ("api", "monitoring") for e in (areas.get(name) or {}).get("endpoints", [])]
    blocks: dict[str, list[str]] = {}
    for name, key, render in _SECTIONS:
        if key in (areas.get(name) or {}):
            blocks[name] = render(areas[name], th)
    if eps:
        blocks["api"] = _endpoints(eps, th)
    for name in areas:
        if name in blocks:
            out += [""] + blocks[name]
    notes = [f"{name}: {n}" for name, a in areas.items() for n in a.get("notes") or []]
    if notes:
        out += ["", "### Notes", ""] + [f"- {n}" for n in notes]
    return out


def markdown(report: dict[str, Any]) -> str:
    hosts = report["hosts"]
    lines = [f"# {report['title']}: {report['status'].upper()}", "",
             f"Generated {report['generated_at']} by `{report['generated_by']}` for {len(hosts)} host(s). "
             f"The play fails when an area is {' or '.join(report['fail_on']) or 'never'}."]
    for host, r in hosts.items():
        lines += [""] + _host_section(host, r)
    return "\n".join(lines) + "\n"


# --- files ---------------------------------------------------------------------------------------------
def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Build and write the reports (module and action plugin alike); the result without `changed`."""
    report = build(params["results"], params["name"], params["title"], params["fail_on"], datetime.now(timezone.utc))
    try:
        paths = write(report, params["dest"], params["formats"], check_mode)
    except OSError as exc:
        raise ReportError(f"health_report: cannot write the reports into {params['dest']}: {exc.strerror or exc} "
                          "(choose another dest, or fix its permissions)") from exc
    return {"status": report["status"], "hosts": {h: r["status"] for h, r in report["hosts"].items()},
            "json_path": paths.get("json"), "markdown_path": paths.get("markdown")}


class ReportError(Exception):
    """The reports could not be written; the message says where and what to do."""


def write(report: dict[str, Any], dest: str, formats: Sequence[str], check_mode: bool = False) -> dict[str, str]:
    """Write the report files into `dest` (created if missing); returns their paths by format."""
    stamp = datetime.fromisoformat(report["generated_at"]).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(dest, f"{report['check']}-{stamp}")
    paths = {fmt: f"{base}.{'md' if fmt == 'markdown' else 'json'}" for fmt in formats}
    if check_mode:
        return paths
    os.makedirs(dest, mode=0o755, exist_ok=True)
    if "json" in paths:
        write_atomic(paths["json"], json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    if "markdown" in paths:
        write_atomic(paths["markdown"], markdown(report))
    return paths
