"""The lab's default workload: a few small recurring tasks, so that a lab that was just started is a working system.

They are ordinary rows of `task` that the scheduler turns into due_work and the workers run, like any user's task.
The scheduler seeds them at start (LAB_WORKLOAD=on, the default) or switches them off (LAB_WORKLOAD=off):

- on:  each task is created if missing; one that was switched off before ('disabled') is made active again.
       A task an operator paused stays paused, and a task that exists is otherwise left as it is.
- off: the workload tasks are set 'disabled' (history is kept; nothing else is touched).

The load is small and bounded: four tasks, about 0.3 runs a second in all, each run 20-200 ms of simulated work
that never fails, so it can make no alert fire on a healthy lab (error rate, latency, slow queries, disk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NAME_PREFIX = "lab-workload-"
ON_VALUES = ("on", "true", "yes", "1")
OFF_VALUES = ("off", "false", "no", "0")


@dataclass(frozen=True)
class WorkloadTask:
    name: str
    interval_seconds: int
    duration_ms: int

    def payload(self) -> str:
        return json.dumps({"duration_ms": self.duration_ms, "fail_rate": 0, "workload": "lab"})


TASKS: tuple[WorkloadTask, ...] = (
    WorkloadTask(f"{NAME_PREFIX}5s", 5, 20),
    WorkloadTask(f"{NAME_PREFIX}15s", 15, 50),
    WorkloadTask(f"{NAME_PREFIX}30s", 30, 100),
    WorkloadTask(f"{NAME_PREFIX}60s", 60, 200),
)

# One round trip each. Only scalar parameters of built-in types: an array of jsonb would make asyncpg introspect
# the type first, a query that takes more than the command timeout on a busy host.
SEED_SQL = """
WITH wanted (name, interval_seconds, payload) AS (
    VALUES {rows}
), created AS (
    INSERT INTO task (name, interval_seconds, payload, status)
    SELECT name, interval_seconds, payload, 'active' FROM wanted
    ON CONFLICT (name) DO NOTHING
    RETURNING name
), reenabled AS (
    UPDATE task t SET status = 'active', next_run_at = greatest(t.next_run_at, now()), updated_at = now()
    FROM wanted w
    WHERE t.name = w.name AND t.status = 'disabled'
    RETURNING t.name
)
SELECT (SELECT count(*) FROM created) AS created, (SELECT count(*) FROM reenabled) AS reenabled
"""

DISABLE_SQL = """
WITH disabled AS (
    UPDATE task SET status = 'disabled', updated_at = now()
    WHERE name IN ({names}) AND status <> 'disabled'
    RETURNING id
)
SELECT count(*) FROM disabled
"""


def parse_switch(value: str | None) -> bool:
    """LAB_WORKLOAD -> enabled? Unset or empty means on; anything unknown is a clear error."""
    text = (value or "on").strip().lower()
    if text in ON_VALUES:
        return True
    if text in OFF_VALUES:
        return False
    raise ValueError(f"LAB_WORKLOAD={value!r}: expected on or off")


def seed_statement(tasks: tuple[WorkloadTask, ...] = TASKS) -> tuple[str, list[str | int]]:
    """SEED_SQL with one VALUES row of placeholders per task, and the flat parameter list."""
    rows = ", ".join(f"(${3 * i + 1}::text, ${3 * i + 2}::int, ${3 * i + 3}::jsonb)" for i in range(len(tasks)))
    args: list[str | int] = []
    for t in tasks:
        args += [t.name, t.interval_seconds, t.payload()]
    return SEED_SQL.format(rows=rows), args


def disable_statement(tasks: tuple[WorkloadTask, ...] = TASKS) -> tuple[str, list[str]]:
    names = ", ".join(f"${i + 1}::text" for i in range(len(tasks)))
    return DISABLE_SQL.format(names=names), [t.name for t in tasks]


def runs_per_minute(tasks: tuple[WorkloadTask, ...] = TASKS) -> float:
    return sum(60.0 / t.interval_seconds for t in tasks)


async def apply(conn, enabled: bool) -> str:
    """Seed or switch off the workload in one statement; returns a line for the log."""
    if enabled:
        sql, args = seed_statement()
        row = await conn.fetchrow(sql, *args)
        return (f"workload on: {len(TASKS)} recurring tasks (~{runs_per_minute():.0f} runs/min), "
                f"{row['created']} created, {row['reenabled']} re-enabled")
    sql, args = disable_statement()
    n = await conn.fetchval(sql, *args)
    return f"workload off (LAB_WORKLOAD): {n} workload tasks disabled"
