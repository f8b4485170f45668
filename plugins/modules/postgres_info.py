#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_info
short_description: Reachability, version, size, connections, active tasks and slow statements of PostgreSQL
version_added: 0.1.0
description:
  - The runbook's database diagnosis (C(pg_isready), C(SELECT version()), C(pg_database_size), connections by state
    from C(pg_stat_activity), active tasks) and the performance check's top statements from C(pg_stat_statements),
    in one round trip.
  - C(pg_stat_statements) columns are read as C(total_exec_time) (PostgreSQL 13 and later) or C(total_time)
    (older); when the extension is not installed or not preloaded, RV(slow_statements.available) is false and
    RV(slow_statements.reason) says why, and the rest is reported as usual.
  - Unreachable is V(down) (TaskSchedulerDatabaseDown). Queries active for longer than the DatabaseSlowQueries
    threshold, or statements averaging more than its mean time, are V(degraded).
  - Read-only session; supports check mode.
author:
  - taskscheduler.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - taskscheduler.ops.compose
  - taskscheduler.ops.database
  - taskscheduler.ops.redis
  - taskscheduler.ops.http_options
  - taskscheduler.ops.diagnostics
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    details: Only reads, in a read-only session; the result is the same as in a normal run.
options:
  slow_statements:
    description:
      - How many statements with the highest total execution time to return from C(pg_stat_statements)
        (V(0) = none).
    type: int
    default: 5
seealso:
  - module: taskscheduler.ops.system_health
  - module: taskscheduler.ops.work_queue_info
  - module: community.postgresql.postgresql_info
"""

EXAMPLES = r"""
- name: Database diagnosis through docker exec (runbook TaskSchedulerDatabaseDown)
  taskscheduler.ops.postgres_info:
    project: "{{ tsops_compose_project }}"
  register: db

- name: Stop when the database does not answer
  ansible.builtin.fail:
    msg: "{{ db.reasons | join('; ') }}"
  when: not db.reachable

- name: Top 10 statements over TCP
  taskscheduler.ops.postgres_info:
    db_transport: tcp
    db_host: 10.0.0.12
    db_password: "{{ tsops_db_password }}"
    slow_statements: 10
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: Verdict, V(healthy), V(degraded) or V(down) (V(unknown) when Docker could not be asked).
  returned: always
  type: str
  sample: healthy
reasons:
  description: Why the verdict is not V(healthy).
  returned: always
  type: list
  elements: str
  sample: ["database unreachable: service 'postgres' has no running container (tsops-postgres-1 exited exit 0)"]
notes:
  description: Observations that do not change the verdict (e.g. pg_stat_statements not available).
  returned: always
  type: list
  elements: str
  sample: []
error:
  description: Why the database could not be read, else null.
  returned: always
  type: str
  sample: null
summary:
  description: One line with the verdict and key figures.
  returned: always
  type: str
  sample: "postgres    HEALTHY  PostgreSQL 15.18, 9.2 MiB, 8/100 connections (7 idle, 1 active), 12 active tasks"
reachable:
  description: Whether a session could be opened (C(pg_isready)).
  returned: always
  type: bool
  sample: true
via:
  description: How the database was reached.
  returned: always
  type: str
  sample: psql in container 3f2a9c...
version:
  description: C(server_version).
  returned: when reachable
  type: str
  sample: 15.18 (Debian 15.18-0+deb12u1)
version_full:
  description: C(SELECT version()).
  returned: when reachable
  type: str
  sample: PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, ...
server_version_num:
  description: C(server_version_num).
  returned: when reachable
  type: int
  sample: 150018
database:
  description: Database connected to.
  returned: when reachable
  type: str
  sample: orchestrator
size_bytes:
  description: C(pg_database_size) of the database.
  returned: when reachable
  type: int
  sample: 9650291
uptime_seconds:
  description: Seconds since the server started.
  returned: when reachable
  type: int
  sample: 86400
in_recovery:
  description: Whether the server is a standby in recovery.
  returned: when reachable
  type: bool
  sample: false
max_connections:
  description: C(max_connections).
  returned: when reachable
  type: int
  sample: 100
connections_total:
  description: Client connections to the server (all databases).
  returned: when reachable
  type: int
  sample: 8
connections_used_ratio:
  description: RV(connections_total) / RV(max_connections).
  returned: when reachable
  type: float
  sample: 0.08
connections_by_state:
  description: Client connections to the database by C(state) (the runbook's C(GROUP BY state)).
  returned: when reachable
  type: dict
  sample: {active: 1, idle: 7}
long_running_queries:
  description: Queries active for longer than the DatabaseSlowQueries threshold (30 s).
  returned: when reachable
  type: int
  sample: 0
longest_query_seconds:
  description: Age of the oldest active query (other than this one).
  returned: when reachable
  type: float
  sample: 0.003
waiting_on_locks:
  description: Sessions waiting for a lock.
  returned: when reachable
  type: int
  sample: 0
active_tasks:
  description: Tasks with C(status = 'active') (the runbook's C(active_tasks)); null if the table could not be read.
  returned: when reachable
  type: int
  sample: 12
tasks_by_status:
  description: Tasks by status.
  returned: when reachable
  type: dict
  sample: {active: 12, paused: 1, disabled: 0}
slow_statements:
  description: Top statements of C(pg_stat_statements) by total execution time.
  returned: when reachable and O(slow_statements) > 0
  type: dict
  contains:
    available:
      description: Whether C(pg_stat_statements) could be read.
      type: bool
      sample: true
    reason:
      description: Why not, when not available.
      type: str
      returned: when not available
      sample: extension pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)
    source:
      description: The column ranked by.
      type: str
      returned: when available
      sample: pg_stat_statements.total_exec_time
    since:
      description:
        - When the statistics were last reset (C(pg_stat_statements_info.stats_reset)); the means are cumulative
          since then. Null on C(pg_stat_statements) older than 1.9 (PostgreSQL 14) or without the privilege to read it.
      type: str
      returned: when available
      sample: "2026-11-27T00:12:03.511+00:00"
    over_threshold:
      description: Statements whose mean time is above the DatabaseSlowQueries threshold (1000 ms).
      type: int
      returned: when available
      sample: 0
    statements:
      description: C(query) (normalised, shortened), C(queryid), C(calls), C(total_ms), C(mean_ms), C(avg_rows).
      type: list
      elements: dict
      sample:
        - {query: "UPDATE due_work SET locked_until = now() + ...", queryid: "-668064588", calls: 1043,
           total_ms: 123.4, mean_ms: 0.118, avg_rows: 1.0}
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    postgres_info,
    run_module,
)


def main() -> None:
    run_module(dict(CONNECTION_ARGS, slow_statements=dict(type="int", default=5)), postgres_info, "postgres_info")


if __name__ == "__main__":
    main()
