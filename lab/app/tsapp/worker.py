"""Worker: claims due work with FOR UPDATE SKIP LOCKED and a locked_until lease, runs it, records task_run.

- A lease is renewed while the work runs; completion is fenced on (locked_by, attempts), so a worker
  that lost its lease records nothing and never overwrites the result of the worker that took over.
- A killed worker's lease simply expires and the row becomes claimable again.
- On SIGTERM the worker stops claiming, cancels what it runs and returns its leases at once.
- worker_heartbeat is renewed every few seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from datetime import UTC
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server

from .common import (
    create_pool,
    env_float,
    env_int,
    install_stop_handlers,
    instance_id,
    register_container_metrics,
    setup_logging,
    sleep_or_stop,
)

log = setup_logging("worker")

PROCESSED = Counter("taskscheduler_worker_processed_total", "Work items finished by outcome", ["outcome"])
IN_FLIGHT = Gauge("taskscheduler_worker_in_flight", "Work items running now")
LAST_HEARTBEAT = Gauge("taskscheduler_worker_last_heartbeat_timestamp_seconds", "Unix time of the last heartbeat")

CLAIM_SQL = """
WITH c AS (
    SELECT id FROM due_work
    WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now())
    ORDER BY run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE due_work d
SET locked_by = $1, locked_until = now() + make_interval(secs => $3), attempts = d.attempts + 1, status = 'running'
FROM c, task t
WHERE d.id = c.id AND t.id = d.task_id
RETURNING d.id, d.task_id, d.attempts, t.payload
"""

RENEW_SQL = """
UPDATE due_work SET locked_until = now() + make_interval(secs => $2)
WHERE locked_by = $1 AND status = 'running' AND id = ANY($3::bigint[])
"""

FINISH_SQL = """
UPDATE due_work
SET status = $4, finished_at = CASE WHEN $4 IN ('done', 'failed') THEN now() END,
    locked_until = CASE WHEN $4 IN ('done', 'failed') THEN 'infinity'::timestamptz
                        ELSE now() + make_interval(secs => $5) END,
    locked_by = CASE WHEN $4 IN ('done', 'failed') THEN locked_by END
WHERE id = $1 AND locked_by = $2 AND attempts = $3 AND status = 'running'
RETURNING id
"""

RELEASE_SQL = """
UPDATE due_work SET locked_until = NULL, locked_by = NULL, status = 'pending'
WHERE locked_by = $1 AND status = 'running'
"""

HEARTBEAT_SQL = """
INSERT INTO worker_heartbeat (worker_id, hostname, started_at, last_seen, processed_count, failed_count, status)
VALUES ($1, $2, $3, now(), $4, $5, $6)
ON CONFLICT (worker_id) DO UPDATE
SET last_seen = now(), processed_count = EXCLUDED.processed_count, failed_count = EXCLUDED.failed_count,
    status = EXCLUDED.status, hostname = EXCLUDED.hostname, started_at = EXCLUDED.started_at
"""


class Worker:
    def __init__(self) -> None:
        self.id = instance_id()
        self.lease = env_float("WORKER_LEASE_SECONDS", 15.0)
        self.concurrency = env_int("WORKER_CONCURRENCY", 4)
        self.poll = env_float("WORKER_POLL_SECONDS", 0.5)
        self.heartbeat_every = env_float("WORKER_HEARTBEAT_SECONDS", 3.0)
        self.max_attempts = env_int("WORKER_MAX_ATTEMPTS", 3)
        self.retry_backoff = env_float("WORKER_RETRY_BACKOFF_SECONDS", 5.0)
        self.processed = 0
        self.failed = 0
        self.started = None
        self.running: dict[int, asyncio.Task] = {}
        self.stop = asyncio.Event()
        self.pool = None

    async def heartbeat(self, status: str = "running") -> None:
        await self.pool.execute(HEARTBEAT_SQL, self.id, socket.gethostname(), self.started, self.processed,
                                self.failed, status)
        LAST_HEARTBEAT.set(time.time())

    async def heartbeat_loop(self) -> None:
        while not self.stop.is_set():
            try:
                await self.heartbeat()
                if self.running:
                    await self.pool.execute(RENEW_SQL, self.id, self.lease, list(self.running))
            except Exception as exc:  # noqa: BLE001
                log.error("heartbeat failed: %s: %s", type(exc).__name__, exc)
            await sleep_or_stop(self.stop, self.heartbeat_every)

    async def execute(self, payload: dict[str, Any]) -> None:
        """The 'work' of a task: wait duration_ms, then fail with probability fail_rate."""
        await asyncio.sleep(float(payload.get("duration_ms", 50)) / 1000.0)
        if random.random() < float(payload.get("fail_rate", 0.0)):
            raise RuntimeError(payload.get("error", "task failed (simulated)"))

    async def run_one(self, row) -> None:
        due_id, task_id, attempt = row["id"], row["task_id"], row["attempts"]
        payload = row["payload"]
        if isinstance(payload, str):
            payload = json.loads(payload)
        started = time.time()
        error = None
        try:
            await self.execute(payload)
        except asyncio.CancelledError:
            return  # shutting down: the lease is returned by release()
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc}"
        success = error is None
        status = "done" if success else ("failed" if attempt >= self.max_attempts else "pending")
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                kept = await conn.fetchval(FINISH_SQL, due_id, self.id, attempt, status, self.retry_backoff)
                if kept is None:
                    log.warning("lease on due_work %s lost before completion; result discarded", due_id)
                    PROCESSED.labels("lease_lost").inc()
                    return
                await conn.execute(
                    "INSERT INTO task_run (task_id, due_work_id, worker_id, attempt, started_at, finished_at, success, "
                    "error) VALUES ($1, $2, $3, $4, to_timestamp($5), now(), $6, $7)",
                    task_id, due_id, self.id, attempt, started, success, error)
        except Exception as exc:  # noqa: BLE001
            log.error("could not record result of due_work %s: %s: %s", due_id, type(exc).__name__, exc)
            PROCESSED.labels("record_error").inc()
            return
        if success:
            self.processed += 1
            PROCESSED.labels("success").inc()
        else:
            self.failed += 1
            PROCESSED.labels("failure").inc()
            log.error("task %s (due_work %s, attempt %s) failed: %s", task_id, due_id, attempt, error)

    async def claim_loop(self) -> None:
        while not self.stop.is_set():
            free = self.concurrency - len(self.running)
            claimed = []
            if free > 0:
                try:
                    claimed = await self.pool.fetch(CLAIM_SQL, self.id, free, self.lease)
                except Exception as exc:  # noqa: BLE001
                    log.error("claim failed: %s: %s", type(exc).__name__, exc)
                    await sleep_or_stop(self.stop, 1.0)
                    continue
            for row in claimed:
                task = asyncio.create_task(self.run_one(row))
                self.running[row["id"]] = task
                IN_FLIGHT.set(len(self.running))
                task.add_done_callback(lambda _t, i=row["id"]: (self.running.pop(i, None),
                                                                  IN_FLIGHT.set(len(self.running))))
            if not claimed:
                await sleep_or_stop(self.stop, self.poll)
            elif len(self.running) >= self.concurrency:
                await asyncio.wait(list(self.running.values()), return_when=asyncio.FIRST_COMPLETED, timeout=self.poll)

    async def release(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
        try:
            returned = await self.pool.execute(RELEASE_SQL, self.id)
            await self.heartbeat("stopped")
            log.info("returned leases on SIGTERM: %s", returned)
        except Exception as exc:  # noqa: BLE001
            log.error("could not return leases (they expire in %ss): %s", self.lease, exc)

    async def run(self) -> None:
        install_stop_handlers(self.stop)
        register_container_metrics()
        start_http_server(env_int("METRICS_PORT", 9102))
        self.pool = await create_pool(max_size=self.concurrency + 2)
        from datetime import datetime
        self.started = datetime.now(UTC)
        log.info("worker %s started: concurrency %s, lease %ss", self.id, self.concurrency, self.lease)
        hb = asyncio.create_task(self.heartbeat_loop())
        await self.claim_loop()
        await self.release()
        hb.cancel()
        await self.pool.close()
        log.info("worker %s stopped", self.id)


def main() -> None:
    asyncio.run(Worker().run())


if __name__ == "__main__":
    main()
