# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

The diagnostic areas of the runbook's health_check.sh / performance_check.sh: how each is probed and how
its figures become a verdict against the canonical thresholds (_thresholds.THRESHOLDS).

``evaluate_*`` functions are pure (figures in, `Area` out) and unit tested; ``probe_*`` functions reach the
system (Docker, HTTP, PostgreSQL, Redis, /proc) and never raise for a component that is down: the failure
becomes the area's verdict. ``run`` runs the selected areas concurrently, all database areas in one round trip.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable

from . import _cgroup, _host, _http
from ._docker import DockerApi, DockerError, describe, find_containers, parse_duration, pick_running, stats_figures
from ._pg import Batch, PsqlViaDocker, PsycopgConnection, Result
from ._probes_sql import processing_query, queue_query, server_query, slow_statements_query, tasks_query, workers_query
from ._redis import RedisError, ping_info_via_docker, ping_info_via_tcp
from ._thresholds import THRESHOLDS
from ._verdict import DEGRADED, DOWN, HEALTHY, SKIPPED, UNKNOWN, Area, ratio, skipped, worst

CORE_SERVICES = ("api", "postgres", "redis", "scheduler", "worker")
DB_AREAS = ("postgres", "queue", "workers", "scheduler", "processing")
ALL_AREAS = ("containers", "api", "monitoring", "postgres", "redis", "queue", "workers", "scheduler",
             "processing", "host", "logs")
LOG_PATTERN = r"\b(ERROR|FATAL|CRITICAL|PANIC)\b"


class ProbeError(Exception):
    """A component could not be probed; `status` says what that means for the area (down or unknown)."""

    def __init__(self, message: str, status: str = DOWN) -> None:
        super().__init__(message)
        self.status = status


# --- settings ------------------------------------------------------------------------------------------
class Settings:
    """What to probe and how, from module parameters (see the doc fragments for their meaning)."""

    def __init__(self, params: dict[str, Any]) -> None:
        get = params.get
        self.project: str | None = get("project")
        self.services: list[str] = list(CORE_SERVICES if get("services") is None else get("services"))
        self.docker_host: str | None = get("docker_host")
        self.docker_cli: str = get("docker_cli") or "docker"
        self.timeout: float = float(get("timeout") or 10)
        self.db = {k[3:]: v for k, v in params.items() if k.startswith("db_")}
        self.redis = {k[6:]: v for k, v in params.items() if k.startswith("redis_")}
        self.endpoints: list[dict[str, Any]] = list(get("endpoints") or [])
        self.http_samples: int = int(get("http_samples") or 1)
        self.http_interval: float = float(get("http_interval") or 0)
        self.use_proxy: bool = bool(get("use_proxy", True))
        self.validate_certs: bool = bool(get("validate_certs", True))
        self.expected_workers: int | None = get("expected_workers")
        self.slow_statements: int = int(get("slow_statements") or 0)
        self.queue_depth_minutes: int = int(get("queue_depth_minutes") or 10)
        self.include_stats: bool = bool(get("include_stats", True))
        self.stats_interval: float = float(get("stats_interval") or 0.5)
        self.log_since: float = parse_duration(get("log_since") or "15m")
        self.log_lines: int = int(get("log_lines") if get("log_lines") is not None else 5)
        self.log_tail: int = int(get("log_tail") or 5000)
        self.log_services: list[str] = list(self.services if get("log_services") is None else get("log_services"))
        self.log_pattern: str = get("log_pattern") or LOG_PATTERN
        self.disk_paths: list[str] = list(get("disk_paths") or [])


class Context:
    """Shared by the probes of one module run: the Docker client and the project's containers (listed once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = DockerApi(settings.docker_host, timeout=settings.timeout, cli=settings.docker_cli)
        self._lock = threading.Lock()
        self._containers: dict[str, list[dict[str, Any]]] | None = None
        self._containers_error: DockerError | None = None

    def containers(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            if self._containers is None and self._containers_error is None:
                wanted = set(self.settings.services) | {self.settings.db.get("service") or "postgres",
                                                        self.settings.redis.get("service") or "redis"}
                try:
                    self._containers = find_containers(self.api, self.settings.project, sorted(wanted))
                except DockerError as exc:
                    self._containers_error = exc
            if self._containers_error is not None:
                raise ProbeError(str(self._containers_error), UNKNOWN)
            return self._containers or {}

    def exec_target(self, service: str, explicit: str | None) -> str:
        """The container to ``docker exec`` into for a service: `explicit`, else its first running container."""
        if explicit:
            return explicit
        entries = self.containers().get(service)
        running = pick_running(entries)
        if running is not None:
            return _name(running)  # docker exec takes names too, and messages read better
        where = f"compose project {self.settings.project!r}" if self.settings.project else "this host"
        if not entries:
            raise ProbeError(f"no container of service {service!r} in {where} (nor one named {service!r})")
        states = ", ".join(f"{_name(e)} {e.get('State')}" for e in entries)
        raise ProbeError(f"service {service!r} has no running container ({states})")


def _name(entry: dict[str, Any]) -> str:
    return ((entry.get("Names") or ["?"])[0]).lstrip("/")


# --- formatting helpers --------------------------------------------------------------------------------
def human_bytes(value: float | None) -> str:
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}s" if value < 10 else f"{value:.0f}s"


# --- containers ----------------------------------------------------------------------------------------
def evaluate_containers(containers: list[dict[str, Any]], core: Sequence[str], project: str | None) -> Area:
    """Verdict on the containers (as `describe()` + `stats_figures()`): core services missing or with no
    running container are down, some replicas not running / restarting / unhealthy is degraded; the other
    containers of the project only ever degrade."""
    area = Area("containers")
    by_service: dict[str, list[dict[str, Any]]] = {}
    for c in containers:
        by_service.setdefault(c["service"], []).append(c)
    mem_max = THRESHOLDS["memory_used_ratio_max"] * 100
    for service in core:
        entries = by_service.get(service, [])
        running = [c for c in entries if c["state"] == "running"]
        if not entries:
            area.flag(DOWN, f"{service}: no container")
        elif not running:
            area.flag(DOWN, f"{service}: 0/{len(entries)} running ({_states(entries)})")
        elif len(running) < len(entries):
            area.flag(DEGRADED, f"{service}: {len(running)}/{len(entries)} running ({_states(entries)})")
    for service, entries in sorted(by_service.items()):
        core_service = service in core
        for c in entries:
            if not core_service and c["state"] not in ("running",) and not _finished_one_shot(c):
                area.flag(DEGRADED, f"{c['name']}: {c['state']}")
            if c["state"] == "running" and c["health"] == "unhealthy":
                area.flag(DEGRADED, f"{c['name']}: unhealthy")
            if c.get("memory_percent") is not None and c["memory_percent"] > mem_max:
                area.flag(DEGRADED, f"{c['name']}: memory {c['memory_percent']:.0f}% of its limit "
                                    f"(> {mem_max:.0f}%, MemoryUsageCritical)")
            if c["oom_killed"]:
                area.note(f"{c['name']}: last exit was an OOM kill")
    running_all = [c for c in containers if c["state"] == "running"]
    restarts = sum(c["restart_count"] or 0 for c in containers)
    cpu = sum(c.get("cpu_percent") or 0 for c in running_all)
    mem = sum(c.get("memory_bytes") or 0 for c in running_all)
    area.figures = {
        "project": project,
        "containers": containers,
        "services": {s: {"running": sum(1 for c in e if c["state"] == "running"), "total": len(e)}
                     for s, e in sorted(by_service.items())},
        "running": len(running_all),
        "total": len(containers),
        "restarts": restarts,
        "cpu_percent_total": round(cpu, 2),
        "memory_bytes_total": mem,
    }
    unhealthy = sum(1 for c in containers if c["health"] == "unhealthy")
    area.headline = (f"{len(running_all)}/{len(containers)} running, {unhealthy} unhealthy, {restarts} restarts"
                     + (f"; cpu {cpu:.1f}%, mem {human_bytes(mem)}" if any("cpu_percent" in c for c in containers)
                        else ""))
    return area


def _states(entries: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['name']} {c['state']}" + (f" exit {c['exit_code']}" if c["state"] == "exited" else "")
                     for c in entries)


def _finished_one_shot(c: dict[str, Any]) -> bool:
    return c["state"] == "exited" and c["exit_code"] == 0 and c["restart_policy"] in ("no", "")


def probe_containers(ctx: Context) -> Area:
    try:
        by_service = ctx.containers()
    except ProbeError as exc:
        area = Area("containers")
        area.fail(exc.status, exc.args[0])
        return area
    entries = [e for es in by_service.values() for e in es]
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(entries)))) as pool:
        inspected = [c for c in pool.map(lambda e: _inspect(ctx, e), entries) if c is not None]
        if ctx.settings.include_stats:
            running = {full_id: c for full_id, c in inspected if c["state"] == "running"}
            # On the Docker host the cgroups give the figures in `stats_interval`; the daemon needs a second or more.
            local = _cgroup.sample(running, ctx.settings.stats_interval) if ctx.api.is_local else {}
            for full_id, figures in local.items():
                running[full_id].update(figures)
            rest = [i for i in running if i not in local]
            for full_id, figures in zip(rest, pool.map(lambda i: _stats(ctx, i), rest)):
                running[full_id].update(figures)
    containers = sorted((c for _id, c in inspected), key=lambda c: (c["service"], c["name"]))
    return evaluate_containers(containers, ctx.settings.services, ctx.settings.project)


def _inspect(ctx: Context, entry: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    try:
        doc = ctx.api.inspect(entry["Id"])
    except DockerError:
        doc = None
    return (doc["Id"], describe(doc)) if doc else None  # None: removed between list and inspect


def _stats(ctx: Context, container_id: str) -> dict[str, Any]:
    try:
        doc = ctx.api.stats(container_id)
    except DockerError:
        doc = None
    return stats_figures(doc) if doc else {}


# --- HTTP endpoints ------------------------------------------------------------------------------------
def default_endpoints(api_url: str | None, prometheus_url: str | None, alertmanager_url: str | None,
                      grafana_url: str | None) -> list[dict[str, Any]]:
    """The runbook's endpoints: API /health (down when failing) and /health/ready, Prometheus, Alertmanager,
    Grafana (degraded when failing; skipped when its URL is empty)."""
    out = []

    def add(name: str, base: str | None, path: str, area: str, severity: str) -> None:
        out.append({"name": name, "url": base.rstrip("/") + path if base else None, "area": area,
                    "severity": severity})

    add("api /health", api_url, "/health", "api", DOWN)
    add("api /health/ready", api_url, "/health/ready", "api", DEGRADED)
    add("prometheus", prometheus_url, "/-/healthy", "monitoring", DEGRADED)
    add("alertmanager", alertmanager_url, "/-/healthy", "monitoring", DEGRADED)
    add("grafana", grafana_url, "/api/health", "monitoring", DEGRADED)
    return out


def evaluate_endpoint(result: dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Findings (status, reason) of one endpoint's result (`_http.sample`)."""
    name = spec["name"]
    severity = spec.get("severity") or DOWN
    expected = spec.get("expect_status") or [200]
    latency_max = THRESHOLDS["api_latency_seconds_max"]
    attempts = result.get("attempts") or [result]
    bad = [a for a in attempts if a["error"] is not None or a["status_code"] not in expected]
    findings: list[tuple[str, str]] = []
    if len(bad) == len(attempts):
        findings.append((severity, f"{name}: {_failure(result)}"
                         + (f" ({len(bad)}/{len(attempts)} requests)" if len(attempts) > 1 else "")))
        return findings
    if bad and len(bad) / len(attempts) > THRESHOLDS["api_error_ratio_max"]:
        findings.append((severity, f"{name}: {len(bad)}/{len(attempts)} requests failed "
                                   f"(> {THRESHOLDS['api_error_ratio_max']:.0%}, HighErrorRate)"))
    times = [a["time_seconds"] for a in attempts if a not in bad]
    slow = _http.percentile(times, 95) if len(attempts) > 1 else result["time_seconds"]
    if slow is not None and slow > latency_max:
        what = "p95 " if len(attempts) > 1 else ""
        findings.append((DEGRADED, f"{name}: {what}{slow:.2f}s > {latency_max:g}s (HighAPILatency)"))
    return findings


def _failure(result: dict[str, Any]) -> str:
    if result["error"]:
        return result["error"]
    body = result.get("body")
    detail = body.get("reason") or body.get("error") if isinstance(body, dict) else None
    return f"HTTP {result['status_code']}" + (f": {detail}" if detail else "")


def evaluate_endpoints(name: str, results: list[dict[str, Any]]) -> Area:
    """Area verdict from endpoint results, each carrying its `spec` (name, url, severity, ...)."""
    configured = [r for r in results if r.get("url")]
    if not configured:
        return skipped(name, "no endpoint configured")
    area = Area(name)
    parts = []
    for r in results:
        if not r.get("url"):
            r["status"] = SKIPPED
            area.note(f"{r['name']}: not configured")
            parts.append(f"{r['name']} not configured")
            continue
        findings = evaluate_endpoint(r, r)
        r["status"] = worst([s for s, _text in findings] or [HEALTHY])
        r["reasons"] = [t for _status, t in findings]
        for status, text in findings:
            area.flag(status, text)
        code = r["status_code"] or r["error"]
        stats = r.get("time_stats")
        timing = f"p95 {_secs(stats['p95'])} of {r['samples']}" if stats else _secs(r["time_seconds"])
        parts.append(f"{r['name']} {code} ({timing})")
    area.figures = {"endpoints": results}
    area.headline = ", ".join(parts)
    return area


def probe_endpoints(settings: Settings, areas: Sequence[str]) -> dict[str, Area]:
    wanted = [e for e in settings.endpoints if (e.get("area") or "api") in areas]

    def one(spec: dict[str, Any]) -> dict[str, Any]:
        out = {"name": spec["name"], "url": spec.get("url"), "area": spec.get("area") or "api",
               "severity": spec.get("severity") or DOWN, "expect_status": spec.get("expect_status") or [200]}
        if not spec.get("url"):
            return out
        out.update(_http.sample(spec["url"], samples=int(spec.get("samples") or settings.http_samples),
                                interval=settings.http_interval, timeout=float(spec.get("timeout") or settings.timeout),
                                headers=spec.get("headers"), use_proxy=settings.use_proxy,
                                validate_certs=settings.validate_certs))
        return out

    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        results = list(pool.map(one, wanted))
    return {name: evaluate_endpoints(name, [r for r in results if r["area"] == name]) for name in areas}


# --- PostgreSQL and what is read from it ---------------------------------------------------------------
def db_queries(areas: Sequence[str], settings: Settings) -> list:
    queries = []
    if "postgres" in areas:
        queries.append(server_query(THRESHOLDS["long_running_query_seconds_max"]))
        if settings.slow_statements > 0:
            queries.append(slow_statements_query(settings.slow_statements))
    if "postgres" in areas or "scheduler" in areas:
        queries.append(tasks_query(THRESHOLDS["scheduler_stale_seconds"]))
    if "queue" in areas:
        queries.append(queue_query())
    if "workers" in areas:
        queries.append(workers_query(THRESHOLDS["worker_heartbeat_window_seconds"]))
    if "processing" in areas:
        queries.append(processing_query(settings.queue_depth_minutes))
    return queries


def db_connection(ctx: Context) -> Any:
    db = ctx.settings.db
    if (db.get("transport") or "docker") == "tcp":
        if not db.get("host"):
            raise ProbeError("db_transport=tcp needs db_host", UNKNOWN)
        return PsycopgConnection(db["host"], int(db.get("port") or 5432), db.get("name") or "orchestrator",
                                 db.get("user") or "orchestrator", db.get("password"), timeout=ctx.settings.timeout,
                                 sslmode=db.get("sslmode") or "prefer")
    container = ctx.exec_target(db.get("service") or "postgres", db.get("container"))
    return PsqlViaDocker(ctx.api, container, db.get("name") or "orchestrator", db.get("user") or "orchestrator",
                         password=db.get("password") if db.get("host") else None, host=db.get("host"),
                         port=db.get("port") if db.get("host") else None, timeout=ctx.settings.timeout)


def probe_database(ctx: Context, areas: Sequence[str]) -> dict[str, Area]:
    """All database areas from one batch (one round trip)."""
    queries = db_queries(areas, ctx.settings)
    try:
        connection = db_connection(ctx)
    except ProbeError as exc:
        batch = Batch({q.name: Result(error=exc.args[0]) for q in queries}, False, exc.args[0])
        return evaluate_database(batch, areas, unreachable_status=exc.status)
    batch = connection.run(queries)
    return evaluate_database(batch, areas, ctx.settings.expected_workers, ctx.settings.slow_statements > 0,
                             dead_workers=stopped_containers(ctx) if "workers" in areas else None)


def stopped_containers(ctx: Context) -> dict[str, str]:
    """Short ID and name -> state of the project's containers that are not running ({} if Docker cannot say).

    A worker's heartbeat names its host, which is its container's short ID by default: a heartbeat still within
    the window from a container that is not running is a worker that died without saying so (SIGKILL)."""
    try:
        by_service = ctx.containers()
    except ProbeError:
        return {}
    out = {}
    for entry in (e for entries in by_service.values() for e in entries):
        if entry.get("State") != "running":
            out[entry["Id"][:12]] = out[_name(entry)] = entry.get("State") or "?"
    return out


def evaluate_database(batch: Batch, areas: Sequence[str], expected_workers: int | None = None,
                      want_slow: bool = False, unreachable_status: str = DOWN,
                      dead_workers: dict[str, str] | None = None) -> dict[str, Area]:
    """Areas read from the database; when it is unreachable, postgres is down and the others unknown."""
    out: dict[str, Area] = {}
    for name in areas:
        if not batch.reachable:
            area = Area(name)
            if name == "postgres":
                area.fail(unreachable_status, f"database unreachable: {batch.error}")
                area.figures = {"reachable": False, "via": batch.server}
                area.headline = "unreachable"
            else:
                area.fail(UNKNOWN, "not assessed: database unreachable")
            out[name] = area
            continue
        if name == "postgres":
            out[name] = evaluate_postgres(batch.get("server"), batch.get("tasks"),
                                          batch.get("slow_statements") if want_slow else None, batch.server)
        elif name == "queue":
            out[name] = evaluate_queue(batch.get("queue"))
        elif name == "workers":
            out[name] = evaluate_workers(batch.get("workers"), expected_workers, dead_workers)
        elif name == "scheduler":
            out[name] = evaluate_scheduler(batch.get("tasks"))
        elif name == "processing":
            out[name] = evaluate_processing(batch.get("processing"))
    return out


def _query_failed(area: Area, result: Result) -> bool:
    if result.ok and isinstance(result.data, dict):
        return False
    area.fail(UNKNOWN, f"query failed: {result.error or 'no result'}")
    return True


def evaluate_postgres(server: Result, tasks: Result, slow: Result | None, via: str | None = None) -> Area:
    area = Area("postgres")
    if not server.ok:
        area.fail(DOWN, f"server query failed: {server.error}")
        area.figures = {"reachable": True, "via": via}
        return area
    s = dict(server.data)
    by_state = s.get("connections_by_state") or {}
    area.figures = dict(s, reachable=True, via=via)
    if tasks.ok and isinstance(tasks.data, dict):
        area.figures["active_tasks"] = tasks.data.get("active")
        area.figures["tasks_by_status"] = {k: tasks.data.get(k) for k in ("active", "paused", "disabled")}
    else:
        area.figures["active_tasks"] = None
        area.note(f"task counts unavailable: {tasks.error}")
    long_max = THRESHOLDS["long_running_query_seconds_max"]
    if s.get("long_running_queries"):
        area.flag(DEGRADED, f"{s['long_running_queries']} queries active for more than {long_max:g}s "
                            f"(longest {s.get('longest_query_seconds')}s, DatabaseSlowQueries)")
    if s.get("in_recovery"):
        area.note("server is in recovery (a standby): writes will fail")
    if s.get("max_connections"):
        area.figures["connections_used_ratio"] = ratio(s.get("connections_total") or 0, s["max_connections"])
    if slow is not None:
        area.figures["slow_statements"] = _evaluate_slow(area, slow)
    states = ", ".join(f"{n} {k}" for k, n in sorted(by_state.items(), key=lambda kv: -kv[1]))
    version = str(s.get("version") or "?").split(" ", maxsplit=1)[0]
    area.headline = (f"PostgreSQL {version}, {human_bytes(s.get('size_bytes'))}, "
                     f"{s.get('connections_total')}/{s.get('max_connections')} connections ({states or 'none'}), "
                     f"{area.figures.get('active_tasks')} active tasks")
    return area


def _evaluate_slow(area: Area, slow: Result) -> dict[str, Any]:
    if not slow.ok or not isinstance(slow.data, dict):
        area.note(f"slow statements unavailable: {slow.error}")
        return {"available": False, "reason": slow.error, "statements": []}
    data = dict(slow.data)
    if not data.get("available"):
        area.note(f"slow statements unavailable: {data.get('reason')}")
        return data
    mean_max = THRESHOLDS["slow_query_mean_ms_max"]
    slow_ones = [s for s in data.get("statements") or [] if (s.get("mean_ms") or 0) > mean_max]
    data["over_threshold"] = len(slow_ones)
    if slow_ones:
        worst_one = max(slow_ones, key=lambda s: s["mean_ms"])
        since = f", means since {data['since']}" if data.get("since") else ""
        area.flag(DEGRADED, f"{len(slow_ones)} statements average more than {mean_max:g} ms "
                            f"(worst {worst_one['mean_ms']:.0f} ms: {worst_one['query'][:60]}{since}, "
                            "DatabaseSlowQueries)")
    return data


def evaluate_queue(result: Result) -> Area:
    area = Area("queue")
    if _query_failed(area, result):
        return area
    q = dict(result.data)
    area.figures = q
    age_max = THRESHOLDS["queue_oldest_pending_seconds_max"]
    age = q.get("oldest_pending_age_seconds") or 0
    if age > age_max:
        area.flag(DEGRADED, f"backlog: {q.get('due_now')} due items, oldest waiting {age:.0f}s (> {age_max}s)")
    if q.get("expired_leases"):
        area.note(f"{q['expired_leases']} leases expired without a result (a worker died or hung); "
                  "they are claimable again")
    area.headline = (f"due now {q.get('due_now')}, locked {q.get('locked')}, future {q.get('future')}, "
                     f"retry {q.get('retry_wait')}, oldest pending {age:.0f}s")
    return area


def evaluate_workers(result: Result, expected: int | None, dead: dict[str, str] | None = None) -> Area:
    """Alive = heartbeat within the window, not cleanly stopped, and not from a container known to be stopped."""
    area = Area("workers")
    if _query_failed(area, result):
        return area
    w = dict(result.data)
    alive = int(w.get("alive") or 0)
    window = w.get("window_seconds")
    dead = dead or {}
    ghosts = []
    for worker in w.get("workers") or []:
        state = dead.get(worker.get("hostname") or "") or dead.get(worker.get("worker_id") or "")
        if worker.get("alive") and state:
            worker.update(alive=False, container_state=state)
            ghosts.append(worker["worker_id"])
    if ghosts:
        w["heartbeat_alive"] = alive
        alive -= len(ghosts)
        w["alive"] = alive
        area.note(f"{len(ghosts)} heartbeats within the window come from containers that are not running "
                  f"({', '.join(ghosts)}): not counted as alive")
    w["expected"] = expected
    w["alive_ratio"] = ratio(alive, expected) if expected else None
    area.figures = w
    min_ratio = THRESHOLDS["workers_alive_ratio_min"]
    if alive == 0:
        area.flag(DOWN, f"no worker heartbeat within {window}s "
                        f"(last {w.get('last_heartbeat_age_seconds')}s ago, NoActiveWorkers)")
    elif expected and alive / expected < min_ratio:
        area.flag(DEGRADED, f"{alive}/{expected} workers alive (< {min_ratio:.0%}, WorkerHealthDegraded)")
    elif expected and alive < expected:
        area.note(f"{alive} of {expected} expected workers alive")
    elif expected and alive > expected:
        area.note(f"{alive} workers alive, {expected} expected: scaled up, or heartbeats of replaced workers that "
                  f"have not aged out of the {window}s window yet")
    if w.get("stale"):
        area.note(f"{w['stale']} workers stopped heartbeating in the last hour without a clean stop")
    area.headline = (f"{alive}/{expected if expected else '?'} alive (heartbeat within {window}s), "
                     f"{w.get('stale')} stale, processed {w.get('processed_count_alive')}")
    return area


def evaluate_scheduler(result: Result) -> Area:
    area = Area("scheduler")
    if _query_failed(area, result):
        return area
    t = dict(result.data)
    keys = ("active", "overdue", "most_overdue_seconds", "last_queued_at", "last_queued_age_seconds")
    area.figures = {k: t.get(k) for k in keys}
    area.figures["active_tasks"] = area.figures.pop("active")
    stale = THRESHOLDS["scheduler_stale_seconds"]
    if t.get("overdue"):
        area.flag(DEGRADED, f"{t['overdue']} active tasks overdue by more than {stale}s "
                            f"(most {t.get('most_overdue_seconds')}s, SchedulerOffline)")
    age = t.get("last_queued_age_seconds")
    area.headline = (f"{t.get('active')} active tasks, {t.get('overdue')} overdue, "
                     + (f"last work queued {age}s ago" if age is not None else "nothing queued yet"))
    return area


def evaluate_processing(result: Result) -> Area:
    area = Area("processing")
    if _query_failed(area, result):
        return area
    p = dict(result.data)
    area.figures = p
    # No alert rule covers task failures; the API error ratio (HighErrorRate) is the closest canonical number.
    ratio_max = THRESHOLDS.get("task_error_ratio_max", THRESHOLDS["api_error_ratio_max"])
    err = float(p.get("error_ratio") or 0)
    if err > ratio_max:
        area.flag(DEGRADED, f"{err:.0%} of task runs failed in the last hour (> {ratio_max:.0%})")
    per_minute = p.get("per_minute") or []
    if per_minute:
        area.figures["created_per_minute_avg"] = round(sum(m["created"] for m in per_minute) / len(per_minute), 2)
    avg = p.get("avg_duration_seconds")
    area.headline = (f"last hour {p.get('completed')} completed"
                     + (f" (avg {float(avg):.3f}s)" if avg is not None else "")
                     + f", {p.get('failed')} failed ({err:.1%})")
    return area


# --- Redis ---------------------------------------------------------------------------------------------
def evaluate_redis(info: dict[str, Any] | None, error: str | None, error_status: str = DOWN) -> Area:
    area = Area("redis")
    if info is None:
        area.fail(error_status, f"redis unreachable: {error}")
        area.figures = {"ping": None}
        area.headline = "unreachable"
        return area
    keyspace = {k: v for k, v in info.items() if re.match(r"^db\d+$", k)}
    used, maxmem = info.get("used_memory"), info.get("maxmemory") or 0
    area.figures = {
        "ping": "PONG",
        "version": info.get("redis_version"),
        "role": info.get("role"),
        "uptime_seconds": info.get("uptime_in_seconds"),
        "connected_clients": info.get("connected_clients"),
        "used_memory_bytes": used,
        "maxmemory_bytes": maxmem,
        "memory_used_ratio": ratio(used or 0, maxmem) if maxmem else None,
        "keyspace": keyspace,
        "keys_total": sum(int(v.get("keys", 0)) for v in keyspace.values()),
        "rdb_last_bgsave_status": info.get("rdb_last_bgsave_status"),
        "aof_last_write_status": info.get("aof_last_write_status"),
        "loading": bool(info.get("loading")),
    }
    mem_max = THRESHOLDS["memory_used_ratio_max"]
    if maxmem and used and used / maxmem > mem_max:
        area.flag(DEGRADED, f"memory {used / maxmem:.0%} of maxmemory (> {mem_max:.0%})")
    for key in ("rdb_last_bgsave_status", "aof_last_write_status"):
        if info.get(key) not in (None, "ok"):
            area.flag(DEGRADED, f"{key} is {info.get(key)}: persistence is failing")
    if info.get("loading"):
        area.flag(DEGRADED, "loading its dataset")
    dbs = ", ".join(f"{k} {v.get('keys')} keys" for k, v in sorted(keyspace.items())) or "no keys"
    area.headline = f"PONG, Redis {info.get('redis_version')}, {dbs}, {human_bytes(used)} used"
    return area


def probe_redis(ctx: Context) -> Area:
    r = ctx.settings.redis
    try:
        if (r.get("transport") or "docker") == "tcp":
            if not r.get("host"):
                raise ProbeError("redis_transport=tcp needs redis_host", UNKNOWN)
            info = ping_info_via_tcp(r["host"], int(r.get("port") or 6379), r.get("password"),
                                     int(r.get("db") or 0), ctx.settings.timeout)[1]
        else:
            container = ctx.exec_target(r.get("service") or "redis", r.get("container"))
            info = ping_info_via_docker(ctx.api, container, r.get("password"), int(r.get("db") or 0),
                                        ctx.settings.timeout)[1]
    except ProbeError as exc:
        return evaluate_redis(None, exc.args[0], exc.status)
    except RedisError as exc:
        return evaluate_redis(None, str(exc))
    return evaluate_redis(info, None)


# --- host ----------------------------------------------------------------------------------------------
def evaluate_host(memory: dict[str, Any] | None, disks: list[dict[str, Any]], load: dict[str, Any],
                  errors: Sequence[str] = ()) -> Area:
    area = Area("host")
    disk_min = THRESHOLDS["disk_free_ratio_min"]
    mem_max = THRESHOLDS["memory_used_ratio_max"]
    for d in disks:
        if d["free_ratio"] is not None and d["free_ratio"] < disk_min:
            area.flag(DEGRADED, f"disk {d['path']}: {d['free_ratio']:.0%} free (< {disk_min:.0%}, DiskSpaceCritical)")
        if d.get("inodes_free_ratio") is not None and d["inodes_free_ratio"] < disk_min:
            area.flag(DEGRADED, f"disk {d['path']}: {d['inodes_free_ratio']:.0%} inodes free (< {disk_min:.0%})")
    if memory and memory.get("used_ratio") is not None and memory["used_ratio"] > mem_max:
        area.flag(DEGRADED, f"memory {memory['used_ratio']:.0%} used (> {mem_max:.0%}, MemoryUsageCritical)")
    for text in errors:
        area.note(text)
    area.figures = {"memory": memory, "disks": disks, "load": load}
    lowest = min(disks, key=lambda d: d["free_ratio"] if d["free_ratio"] is not None else 1) if disks else None
    area.headline = ", ".join(filter(None, [
        f"lowest disk {lowest['path']} {_pct(lowest['free_ratio'])} free" if lowest else "no disks read",
        f"memory {_pct(memory.get('used_ratio'))} used of {human_bytes(memory.get('total_bytes'))}" if memory else "",
        f"load {load.get('load_1m')} on {load.get('cpus')} cpus" if "load_1m" in load else "",
    ]))
    return area


def probe_host(ctx: Context) -> Area:
    errors = []
    try:
        memory = _host.memory()
    except OSError as exc:
        memory = None
        errors.append(f"memory unreadable: {exc}")
    paths = list(ctx.settings.disk_paths)
    try:
        root = ctx.api.info().get("DockerRootDir")
        if root:
            paths.append(root)
    except DockerError:
        pass
    disks, disk_errors = _host.disks(paths or ["/"])
    return evaluate_host(memory, disks, _host.load(), errors + disk_errors)


# --- logs ----------------------------------------------------------------------------------------------
def evaluate_logs(per_container: dict[str, dict[str, Any]], since_seconds: float, pattern: str,
                  errors: Sequence[str] = ()) -> Area:
    """Error lines are evidence, not a verdict: the area stays healthy and lists them (unknown if unreadable)."""
    area = Area("logs")
    total = sum(c["matches"] for c in per_container.values())
    for text in errors:
        area.note(text)
    if errors and not per_container:
        area.fail(UNKNOWN, "no log could be read")
    area.figures = {"since_seconds": since_seconds, "pattern": pattern, "error_lines": total,
                    "containers": per_container}
    minutes = since_seconds / 60
    window = f"{minutes:g}m" if since_seconds % 60 == 0 else f"{since_seconds:g}s"
    by = ", ".join(f"{name} {c['matches']}" for name, c in sorted(per_container.items()) if c["matches"])
    area.headline = f"{total} error lines in the last {window}" + (f" ({by})" if by else "")
    return area


def probe_logs(ctx: Context) -> Area:
    s = ctx.settings
    try:
        by_service = ctx.containers()
    except ProbeError as exc:
        area = Area("logs")
        area.fail(exc.status, exc.args[0])
        return area
    targets = [e for svc in s.log_services for e in by_service.get(svc, [])]
    regex = re.compile(s.log_pattern)
    since = int(time.time() - s.log_since)

    def one(entry: dict[str, Any]) -> tuple[str, dict[str, Any] | None, str | None]:
        name = _name(entry)
        try:
            lines = ctx.api.logs(entry["Id"], since, s.log_tail)
        except DockerError as exc:
            return name, None, f"{name}: {exc}"
        matched = [line.rstrip() for line in lines if regex.search(line)]
        return name, {"matches": len(matched), "lines_read": len(lines),
                      "last": matched[-s.log_lines:] if s.log_lines else []}, None

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        results = list(pool.map(one, targets))
    per_container = {n: r for n, r, _err in results if r is not None}
    return evaluate_logs(per_container, s.log_since, s.log_pattern, [e for _name, _res, e in results if e])


# --- all areas -----------------------------------------------------------------------------------------
def run(settings: Settings, areas: Sequence[str]) -> dict[str, Any]:
    """Probe the selected areas concurrently; the result of the system_health module."""
    started = time.monotonic()
    checked_at = utc_now()
    ctx = Context(settings)
    selected = [a for a in ALL_AREAS if a in areas]
    jobs: dict[str, Callable[[], Any]] = {}
    if "containers" in selected:
        jobs["containers"] = lambda: probe_containers(ctx)
    endpoint_areas = [a for a in ("api", "monitoring") if a in selected]
    if endpoint_areas:
        jobs["endpoints"] = lambda: probe_endpoints(settings, endpoint_areas)
    db_areas = [a for a in DB_AREAS if a in selected]
    if db_areas:
        jobs["database"] = lambda: probe_database(ctx, db_areas)
    if "redis" in selected:
        jobs["redis"] = lambda: probe_redis(ctx)
    if "host" in selected:
        jobs["host"] = lambda: probe_host(ctx)
    if "logs" in selected:
        jobs["logs"] = lambda: probe_logs(ctx)
    results: dict[str, Area] = {}
    timings: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = {name: pool.submit(_timed, fn) for name, fn in jobs.items()}
        for name, future in futures.items():
            value, seconds = future.result()
            timings[name] = seconds
            if isinstance(value, dict):
                results.update(value)
            else:
                results[value.name] = value
    ordered = {name: results[name] for name in selected if name in results}
    return assemble(ordered, checked_at, round(time.monotonic() - started, 3), timings)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.monotonic()
    value = fn()
    return value, round(time.monotonic() - t0, 3)


def assemble(areas: dict[str, Area], checked_at: str, duration: float,
             timings: dict[str, float] | None = None) -> dict[str, Any]:
    status = worst(a.status for a in areas.values()) if areas else UNKNOWN
    return {
        "status": status,
        "checked_at": checked_at,
        "duration_seconds": duration,
        "timings": timings or {},
        "areas": {name: a.as_dict() for name, a in areas.items()},
        "summary": [a.summary_line() for a in areas.values()],
        "down": [name for name, a in areas.items() if a.status == DOWN],
        "degraded": [name for name, a in areas.items() if a.status == DEGRADED],
        "unknown": [name for name, a in areas.items() if a.status == UNKNOWN],
        "thresholds": dict(THRESHOLDS),
    }


def utc_now() -> str:
    """The `checked_at` of every diagnostic result: UTC, ISO 8601, whole seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def single(area: Area, duration: float) -> dict[str, Any]:
    """Result of a one-area module: the area's figures and verdict at the top level."""
    out = area.as_dict()
    out["checked_at"] = utc_now()
    out["duration_seconds"] = round(duration, 3)
    return out
