"""Scheduler: turns active tasks that are due into due_work rows, once per tick.

Only one scheduler acts at a time (transaction-level advisory lock), so it can be scaled for
availability. A scheduler that was offline does not flood the queue with missed runs: each due task
gets one row and its next run moves to the next slot after now.

At start it seeds the lab's default workload (tsapp.workload; LAB_WORKLOAD=off switches it off), retried on each
tick until the database answers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from prometheus_client import Counter, Gauge, start_http_server

from . import workload
from .common import (
    create_pool,
    env_float,
    env_int,
    install_stop_handlers,
    register_container_metrics,
    setup_logging,
    sleep_or_stop,
)

log = setup_logging("scheduler")

LAST_TICK = Gauge("taskscheduler_scheduler_last_tick_timestamp_seconds", "Unix time of the last successful tick")
TICKS = Counter("taskscheduler_scheduler_ticks_total", "Scheduler ticks by outcome", ["outcome"])
CREATED = Counter("taskscheduler_scheduler_due_work_created_total", "due_work rows created")
LEADER = Gauge("taskscheduler_scheduler_leader", "1 when this scheduler held the lock on its last tick")

ADVISORY_LOCK = 0x7A5C  # any constant shared by all schedulers

TICK_SQL = """
WITH due AS (
    SELECT id, next_run_at, interval_seconds
    FROM task
    WHERE status = 'active' AND next_run_at <= now()
    ORDER BY next_run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), queued AS (
    INSERT INTO due_work (task_id, run_at)
    SELECT id, next_run_at FROM due
    RETURNING task_id
)
UPDATE task t
SET next_run_at = CASE
        WHEN d.next_run_at + make_interval(secs => d.interval_seconds) > now()
        THEN d.next_run_at + make_interval(secs => d.interval_seconds)
        ELSE now() + make_interval(secs => d.interval_seconds)
    END,
    updated_at = now()
FROM due d
WHERE t.id = d.id AND t.id IN (SELECT task_id FROM queued)
RETURNING t.id
"""


async def tick(pool, batch: int) -> int:
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ADVISORY_LOCK):
            LEADER.set(0)
            return 0
        LEADER.set(1)
        rows = await conn.fetch(TICK_SQL, batch)
        return len(rows)


async def seed_workload(pool, enabled: bool) -> bool:
    """Seed (or switch off) the default workload; False when it must be tried again on the next tick."""
    try:
        async with pool.acquire() as conn:
            log.info("%s", await workload.apply(conn, enabled))
        return True
    except Exception as exc:  # noqa: BLE001 - retried on the next tick; ticking goes on regardless
        log.warning("default workload not applied yet: %s: %s", type(exc).__name__, exc)
        return False


async def run(workload_on: bool) -> None:
    stop = asyncio.Event()
    install_stop_handlers(stop)
    register_container_metrics()
    start_http_server(env_int("METRICS_PORT", 9101))
    pool = await create_pool(max_size=2)
    interval = env_float("SCHEDULER_TICK_SECONDS", 1.0)
    batch = env_int("SCHEDULER_BATCH", 1000)
    failing = False
    workload_pending = True
    log.info("scheduler started, tick every %ss", interval)
    while not stop.is_set():
        try:
            if workload_pending:
                workload_pending = not await seed_workload(pool, workload_on)
            n = await tick(pool, batch)
            LAST_TICK.set(time.time())
            TICKS.labels("ok").inc()
            if n:
                CREATED.inc(n)
                log.debug("queued %d due_work rows", n)
            if failing:
                log.info("scheduler recovered: database reachable again")
                failing = False
        except Exception as exc:  # noqa: BLE001 - a failed tick is logged and retried
            TICKS.labels("error").inc()
            log.error("scheduler tick failed: %s: %s", type(exc).__name__, exc)
            failing = True
        await sleep_or_stop(stop, interval)
    await pool.close()
    log.info("scheduler stopped")


def main() -> None:
    try:
        workload_on = workload.parse_switch(os.environ.get("LAB_WORKLOAD"))
    except ValueError as exc:
        log.critical("bad setting: %s", exc)
        sys.exit(2)
    asyncio.run(run(workload_on))


if __name__ == "__main__":
    main()
