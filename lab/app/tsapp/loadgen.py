"""Bounded load generator: realistic traffic on the API for a fixed time, then a summary and exit.

Bounds: LOADGEN_DURATION_SECONDS (<= 3600), LOADGEN_RPS (<= 200), LOADGEN_MAX_TASKS tasks created at most.
Prints one JSON summary line at the end (requests, statuses, p50/p95 latency).
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp

from .common import env, env_float, env_int, setup_logging

log = setup_logging("loadgen")


async def run() -> dict:
    base = env("LOADGEN_TARGET", "http://api:8080").rstrip("/")
    token = env("LOADGEN_TOKEN", "")
    duration = min(env_float("LOADGEN_DURATION_SECONDS", 60.0), 3600.0)
    rps = min(env_float("LOADGEN_RPS", 5.0), 200.0)
    max_tasks = env_int("LOADGEN_MAX_TASKS", 20)
    bad_ratio = env_float("LOADGEN_BAD_TOKEN_RATIO", 0.0)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    created: list[int] = []
    deadline = time.monotonic() + duration
    timeout = aiohttp.ClientTimeout(total=10)
    run_id = f"{int(time.time())}-{random.randint(0, 9999)}"

    async with aiohttp.ClientSession(timeout=timeout) as s:
        async def call(method: str, path: str, **kw) -> None:
            hdrs = {"Authorization": "Bearer not-a-valid-token"} if random.random() < bad_ratio else headers
            t0 = time.perf_counter()
            try:
                async with s.request(method, base + path, headers=hdrs, **kw) as r:
                    body = await r.read()
                    key = str(r.status)
                    if method == "POST" and path == "/api/v1/tasks" and r.status == 201:
                        created.append(json.loads(body)["id"])
            except Exception as exc:  # noqa: BLE001
                key = type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1

        async def one() -> None:
            roll = random.random()
            if roll < 0.3:
                await call("GET", "/health")
            elif roll < 0.65:
                await call("GET", "/api/v1/tasks")
            elif roll < 0.8 and created:
                await call("GET", f"/api/v1/tasks/{random.choice(created)}")
            elif roll < 0.9:
                await call("GET", "/api/v1/runs?limit=10")
            elif len(created) < max_tasks:
                await call("POST", "/api/v1/tasks", json={
                    "name": f"loadgen-{run_id}-{len(created)}", "interval_seconds": random.choice([2, 5, 10]),
                    "payload": {"duration_ms": random.choice([20, 50, 100])}})
            elif created:
                await call("POST", f"/api/v1/tasks/{random.choice(created)}/trigger")

        pending: set[asyncio.Task] = set()
        interval = 1.0 / rps
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            t = asyncio.create_task(one())
            pending.add(t)
            t.add_done_callback(pending.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if pending:
            await asyncio.wait(pending, timeout=15)
        # leave no schedule running after the load: pause what this run created
        for task_id in created:
            try:
                async with s.post(f"{base}/api/v1/tasks/{task_id}/pause", headers=headers):
                    pass
            except Exception:  # noqa: BLE001
                pass

    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 4) if latencies else 0.0

    summary = {"requests": len(latencies), "duration_seconds": duration, "statuses": statuses,
               "p50_seconds": pct(0.5), "p95_seconds": pct(0.95), "tasks_created": len(created)}
    print(json.dumps(summary), flush=True)
    return summary


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
