"""HTTP API of the lab: health, readiness, Prometheus metrics and a small task API with bearer-token auth.

Redis carries the per-client rate limiter and a short cache of task listings, so a Redis outage has
visible effects: readiness fails and task API calls answer 503.
Every failed authentication and every mutating call is written to audit_log.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, Info, generate_latest

from . import VERSION
from .common import create_pool, env, env_float, env_int, register_container_metrics, secret_equals, setup_logging

log = setup_logging("api")

REQUESTS = Counter("http_requests_total", "HTTP requests by method, route and status", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency by route", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0),
)
AUTH_FAILURES = Counter("taskscheduler_auth_failures_total", "Failed authentications by reason", ["reason"])
AUTH_FAILURE_REASONS = ("missing_token", "invalid_token", "revoked_token")
DB_UP = Gauge("taskscheduler_db_up", "1 when the last PostgreSQL check succeeded")
REDIS_UP = Gauge("taskscheduler_redis_up", "1 when the last Redis check succeeded")
BUILD = Info("taskscheduler_build", "Version of the running API")

# Plain string keys: Debian bookworm ships aiohttp 3.8, before web.AppKey.
POOL = "pool"
REDIS = "redis"
TOKENS = "tokens"
REVOKED = "revoked"


class DependencyDown(Exception):
    """A backing service (PostgreSQL, Redis) failed; answered with 503."""

    def __init__(self, service: str, exc: BaseException) -> None:
        super().__init__(f"{service} unavailable: {type(exc).__name__}: {exc}")
        self.service = service


def parse_tokens(spec: str) -> dict[str, str]:
    """'name:token,name2:token2' -> {token: name}."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, _, token = item.partition(":")
        if token:
            out[token] = name
    return out


def client_addr(request: web.Request) -> str | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[0] if peer else None


async def audit(request: web.Request, actor: str, action: str, outcome: str, target: str | None = None,
                detail: dict[str, Any] | None = None) -> None:
    try:
        await request.app[POOL].execute(
            "INSERT INTO audit_log (actor, action, target, source_addr, outcome, detail) "
            "VALUES ($1, $2, $3, $4::inet, $5, $6::jsonb)",
            actor, action, target, client_addr(request), outcome, json.dumps(detail or {}),
        )
    except Exception as exc:  # noqa: BLE001 - the request itself must still be answered
        log.error("audit write failed (%s %s %s): %s", actor, action, outcome, exc)


def route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except DependencyDown as exc:
        status = 503
        log.error("%s %s -> 503: %s", request.method, request.path, exc)
        return web.json_response({"error": str(exc)}, status=503)
    except Exception as exc:
        log.exception("%s %s -> 500: %s", request.method, request.path, exc)
        return web.json_response({"error": "internal error"}, status=500)
    finally:
        route = route_name(request)
        REQUESTS.labels(request.method, route, str(status)).inc()
        LATENCY.labels(request.method, route).observe(time.perf_counter() - start)


@web.middleware
async def release_fault_middleware(request: web.Request, handler):
    """A deliberately broken release (TSAPP_RELEASE_FAULT=errors) fails every task API call."""
    if os.environ.get("TSAPP_RELEASE_FAULT") == "errors" and request.path.startswith("/api/"):
        raise RuntimeError("release fault: errors")
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler):
    if not request.path.startswith("/api/"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    reason = None
    actor = "anonymous"
    if not token:
        reason = "missing_token"
    else:
        name = next((n for t, n in request.app[TOKENS].items() if secret_equals(token, t)), None)
        revoked = next((n for t, n in request.app[REVOKED].items() if secret_equals(token, t)), None)
        if revoked is not None:
            reason, actor = "revoked_token", revoked
        elif name is None:
            reason = "invalid_token"
        else:
            request["actor"] = name
    if reason:
        AUTH_FAILURES.labels(reason).inc()
        log.warning("authentication failed from %s on %s %s: %s", client_addr(request), request.method,
                    request.path, reason)
        await audit(request, actor, "auth.failed", "denied", target=request.path, detail={"reason": reason})
        raise web.HTTPUnauthorized(text=json.dumps({"error": reason}), content_type="application/json",
                                   headers={"WWW-Authenticate": "Bearer"})
    await rate_limit(request)
    return await handler(request)


async def rate_limit(request: web.Request) -> None:
    limit = env_int("API_RATE_LIMIT_PER_MINUTE", 6000)
    key = f"ratelimit:{client_addr(request)}:{int(time.time() // 60)}"
    try:
        r = request.app[REDIS]
        async with r.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(key).expire(key, 120).execute()
    except Exception as exc:
        REDIS_UP.set(0)
        raise DependencyDown("redis", exc) from exc
    if count > limit:
        raise web.HTTPTooManyRequests(text=json.dumps({"error": "rate limit exceeded"}),
                                      content_type="application/json")


async def db_call(request: web.Request, method: str, query: str, *args: Any):
    try:
        result = await getattr(request.app[POOL], method)(query, *args)
        DB_UP.set(1)
        return result
    except (TimeoutError, OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.InterfaceError) as exc:
        DB_UP.set(0)
        raise DependencyDown("postgres", exc) from exc


def task_json(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    for k in ("next_run_at", "created_at", "updated_at"):
        if out.get(k) is not None:
            out[k] = out[k].isoformat()
    if isinstance(out.get("payload"), str):
        out["payload"] = json.loads(out["payload"])
    return out


TASK_COLUMNS = "id, name, status, interval_seconds, next_run_at, payload, created_at, updated_at"


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": VERSION})


async def ready(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    timeout = env_float("READY_CHECK_TIMEOUT", 2.0)

    async def check_db() -> None:
        try:
            await asyncio.wait_for(request.app[POOL].fetchval("SELECT 1"), timeout)
            checks["postgres"] = "ok"
            DB_UP.set(1)
        except Exception as exc:  # noqa: BLE001
            checks["postgres"] = f"error: {type(exc).__name__}: {exc}".strip()
            DB_UP.set(0)

    async def check_redis() -> None:
        try:
            await asyncio.wait_for(request.app[REDIS].ping(), timeout)
            checks["redis"] = "ok"
            REDIS_UP.set(1)
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {type(exc).__name__}: {exc}".strip()
            REDIS_UP.set(0)

    await asyncio.gather(check_db(), check_redis())
    ok = all(v == "ok" for v in checks.values())
    if os.environ.get("TSAPP_RELEASE_FAULT") == "unready":
        ok, checks["release"] = False, "error: release fault"
    body = {"status": "ready" if ok else "unavailable", "checks": checks, "version": VERSION}
    if not ok:
        body["reason"] = "; ".join(f"{k} {v}" for k, v in checks.items() if v != "ok")
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def list_tasks(request: web.Request) -> web.Response:
    status = request.query.get("status")
    limit = min(int(request.query.get("limit", "100")), 1000)
    cache_key = f"tasks:{status}:{limit}"
    r = request.app[REDIS]
    try:
        cached = await r.get(cache_key)
    except Exception as exc:
        raise DependencyDown("redis", exc) from exc
    if cached:
        return web.Response(body=cached, content_type="application/json", headers={"X-Cache": "hit"})
    if status:
        rows = await db_call(request, "fetch",
                             f"SELECT {TASK_COLUMNS} FROM task WHERE status = $1 ORDER BY id LIMIT $2", status, limit)
    else:
        rows = await db_call(request, "fetch", f"SELECT {TASK_COLUMNS} FROM task ORDER BY id LIMIT $1", limit)
    body = json.dumps({"tasks": [task_json(r_) for r_ in rows]})
    try:
        await r.set(cache_key, body, ex=2)
    except Exception as exc:
        raise DependencyDown("redis", exc) from exc
    return web.Response(text=body, content_type="application/json", headers={"X-Cache": "miss"})


async def get_task(request: web.Request) -> web.Response:
    row = await db_call(request, "fetchrow", f"SELECT {TASK_COLUMNS} FROM task WHERE id = $1",
                        int(request.match_info["id"]))
    if row is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such task"}), content_type="application/json")
    return web.json_response(task_json(row))


async def create_task(request: web.Request) -> web.Response:
    actor = request["actor"]
    try:
        body = await request.json()
        name = str(body["name"])
        interval = int(body.get("interval_seconds", 60))
        payload = body.get("payload", {})
        status = body.get("status", "active")
        if interval <= 0 or status not in ("active", "paused") or not isinstance(payload, dict):
            raise ValueError("interval_seconds must be > 0, status active|paused, payload an object")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        await audit(request, actor, "task.create", "error", detail={"error": str(exc)})
        raise web.HTTPBadRequest(text=json.dumps({"error": f"bad request: {exc}"}),
                                 content_type="application/json") from exc
    try:
        row = await db_call(
            request, "fetchrow",
            f"INSERT INTO task (name, interval_seconds, payload, status) VALUES ($1, $2, $3::jsonb, $4) "
            f"RETURNING {TASK_COLUMNS}", name, interval, json.dumps(payload), status)
    except asyncpg.UniqueViolationError as exc:
        await audit(request, actor, "task.create", "error", target=name, detail={"error": "name exists"})
        raise web.HTTPConflict(text=json.dumps({"error": "a task with this name exists"}),
                               content_type="application/json") from exc
    await audit(request, actor, "task.create", "success", target=f"task/{row['id']}", detail={"name": name})
    return web.json_response(task_json(row), status=201)


async def set_status(request: web.Request, status: str, action: str) -> web.Response:
    task_id = int(request.match_info["id"])
    row = await db_call(
        request, "fetchrow",
        f"UPDATE task SET status = $2, updated_at = now(), "
        f"next_run_at = CASE WHEN $2 = 'active' THEN greatest(next_run_at, now()) ELSE next_run_at END "
        f"WHERE id = $1 RETURNING {TASK_COLUMNS}", task_id, status)
    if row is None:
        await audit(request, request["actor"], action, "error", target=f"task/{task_id}",
                    detail={"error": "no such task"})
        raise web.HTTPNotFound(text=json.dumps({"error": "no such task"}), content_type="application/json")
    await audit(request, request["actor"], action, "success", target=f"task/{task_id}")
    return web.json_response(task_json(row))


async def pause_task(request: web.Request) -> web.Response:
    return await set_status(request, "paused", "task.pause")


async def resume_task(request: web.Request) -> web.Response:
    return await set_status(request, "active", "task.resume")


async def trigger_task(request: web.Request) -> web.Response:
    """Queue one run of a task now, whatever its schedule."""
    task_id = int(request.match_info["id"])
    row = await db_call(request, "fetchrow",
                        "INSERT INTO due_work (task_id, run_at) SELECT id, now() FROM task WHERE id = $1 "
                        "RETURNING id, run_at", task_id)
    if row is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such task"}), content_type="application/json")
    await audit(request, request["actor"], "task.trigger", "success", target=f"task/{task_id}",
                detail={"due_work_id": row["id"]})
    return web.json_response({"due_work_id": row["id"], "run_at": row["run_at"].isoformat()}, status=202)


async def list_runs(request: web.Request) -> web.Response:
    limit = min(int(request.query.get("limit", "50")), 1000)
    rows = await db_call(
        request, "fetch",
        "SELECT id, task_id, due_work_id, worker_id, attempt, started_at, finished_at, success, error "
        "FROM task_run WHERE ($1::bigint IS NULL OR task_id = $1) ORDER BY id DESC LIMIT $2",
        int(request.query["task_id"]) if "task_id" in request.query else None, limit)
    runs = []
    for r in rows:
        d = dict(r)
        for k in ("started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] else None
        runs.append(d)
    return web.json_response({"runs": runs})


async def on_startup(app: web.Application) -> None:
    if os.environ.get("TSAPP_RELEASE_FAULT") == "crash":
        log.critical("release fault: crash at start-up")
        raise SystemExit(3)
    app[POOL] = await create_pool(max_size=env_int("DB_POOL_SIZE", 10))
    app[REDIS] = aioredis.from_url(env("REDIS_URL", "redis://redis:6379/0"), socket_timeout=2.0,
                                   socket_connect_timeout=2.0)
    log.info("api %s listening on :%s", VERSION, env("API_PORT", "8080"))


async def on_cleanup(app: web.Application) -> None:
    await app[POOL].close()
    await app[REDIS].close()


def make_app() -> web.Application:
    app = web.Application(middlewares=[metrics_middleware, release_fault_middleware, auth_middleware])
    app[TOKENS] = parse_tokens(env("API_TOKENS", ""))
    app[REVOKED] = parse_tokens(env("API_REVOKED_TOKENS", ""))
    BUILD.info({"version": VERSION})
    # Every reason exists from the start at 0, so the first failure of a kind is an increase that rate() and
    # increase() see (SecurityBreach fires on a single use of a revoked token).
    for reason in AUTH_FAILURE_REASONS:
        AUTH_FAILURES.labels(reason)
    DB_UP.set(0)
    REDIS_UP.set(0)
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/tasks", list_tasks)
    app.router.add_post("/api/v1/tasks", create_task)
    app.router.add_get("/api/v1/tasks/{id:\\d+}", get_task)
    app.router.add_post("/api/v1/tasks/{id:\\d+}/pause", pause_task)
    app.router.add_post("/api/v1/tasks/{id:\\d+}/resume", resume_task)
    app.router.add_post("/api/v1/tasks/{id:\\d+}/trigger", trigger_task)
    app.router.add_get("/api/v1/runs", list_runs)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main() -> None:
    register_container_metrics()
    web.run_app(make_app(), host="0.0.0.0", port=env_int("API_PORT", 8080), access_log=None,
                handle_signals=True, print=None)


if __name__ == "__main__":
    main()
