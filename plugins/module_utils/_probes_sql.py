# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

The SQL of the diagnostic checks: each a single SELECT returning one JSON document (see _pg.Query), so a
whole health check reads the database in one round trip. Numbers interpolated here are validated ints.

Differences from the runbook's queries, on purpose:

* work queue: the runbook's ``COUNT(*) FROM due_work`` counts finished history as "due now" and
  ``locked_until IS NOT NULL`` counts finished rows (``locked_until = 'infinity'``) as "locked". Here due
  means due and not validly leased (the workers' own claim condition), locked means a lease still running,
  and the scan is restricted to unfinished rows through the (locked_until, run_at) index;
* pg_stat_statements: ``total_time`` was renamed ``total_exec_time`` in PostgreSQL 13; both are handled, and
  an absent or not preloaded extension gives ``available: false`` with the reason instead of an error.
"""

from __future__ import annotations

from ._pg import Query

SERVER = """
SELECT json_build_object(
  'version', current_setting('server_version'),
  'version_full', version(),
  'server_version_num', current_setting('server_version_num')::int,
  'database', current_database(),
  'size_bytes', pg_database_size(current_database()),
  'uptime_seconds', round(extract(epoch FROM now() - pg_postmaster_start_time()))::bigint,
  'in_recovery', pg_is_in_recovery(),
  'max_connections', current_setting('max_connections')::int,
  'connections_total', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
  'connections_by_state', (
    SELECT coalesce(json_object_agg(st, n), '{}'::json) FROM (
      SELECT coalesce(state, 'unknown') AS st, count(*) AS n FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend' GROUP BY 1) s),
  'long_running_queries', (
    SELECT count(*) FROM pg_stat_activity
    WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND now() - query_start > make_interval(secs => %(long_running)d)),
  'longest_query_seconds', (
    SELECT coalesce(round(extract(epoch FROM max(now() - query_start))::numeric, 3), 0) FROM pg_stat_activity
    WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()),
  'waiting_on_locks', (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock')
)
"""

TASKS = """
SELECT json_build_object(
  'active', count(*) FILTER (WHERE status = 'active'),
  'paused', count(*) FILTER (WHERE status = 'paused'),
  'disabled', count(*) FILTER (WHERE status = 'disabled'),
  'total', count(*),
  'overdue', count(*) FILTER (WHERE status = 'active' AND next_run_at < now() - make_interval(secs => %(stale)d)),
  'most_overdue_seconds', coalesce(round(extract(epoch FROM now() - min(next_run_at)
                            FILTER (WHERE status = 'active' AND next_run_at < now()))::numeric, 1), 0),
  'last_queued_at', (SELECT max(created_at) FROM due_work),
  'last_queued_age_seconds', (SELECT round(extract(epoch FROM now() - max(created_at))::numeric, 1) FROM due_work)
) FROM task
"""

_DUE = "run_at <= now() AND (locked_until IS NULL OR locked_until < now())"

QUEUE = f"""
SELECT json_build_object(
  'due_now', count(*) FILTER (WHERE {_DUE}),
  'locked', count(*) FILTER (WHERE status = 'running' AND locked_until >= now()),
  'retry_wait', count(*) FILTER (WHERE status = 'pending' AND run_at <= now() AND locked_until >= now()),
  'future', count(*) FILTER (WHERE run_at > now() AND (locked_until IS NULL OR locked_until < now())),
  'expired_leases', count(*) FILTER (WHERE status = 'running' AND locked_until < now()),
  'unfinished', count(*),
  'oldest_due_at', min(run_at) FILTER (WHERE {_DUE}),
  'newest_due_at', max(run_at) FILTER (WHERE {_DUE}),
  'oldest_pending_age_seconds',
      coalesce(round(extract(epoch FROM now() - min(run_at) FILTER (WHERE {_DUE}))::numeric, 1), 0)
) FROM due_work
WHERE (locked_until IS NULL OR locked_until < 'infinity') AND status IN ('pending', 'running')
"""

WORKERS = """
WITH hb AS (
  SELECT worker_id, hostname, status, started_at, last_seen, processed_count, failed_count,
         round(extract(epoch FROM now() - last_seen)::numeric, 1) AS age_seconds,
         status <> 'stopped' AND last_seen > now() - make_interval(secs => %(window)d) AS alive
  FROM worker_heartbeat
)
SELECT json_build_object(
  'window_seconds', %(window)d,
  'alive', count(*) FILTER (WHERE alive),
  'stale', count(*) FILTER (WHERE NOT alive AND status <> 'stopped' AND last_seen > now() - interval '1 hour'),
  'stopped_last_hour', count(*) FILTER (WHERE status = 'stopped' AND last_seen > now() - interval '1 hour'),
  'known', count(*),
  'processed_count_alive', coalesce(sum(processed_count) FILTER (WHERE alive), 0),
  'failed_count_alive', coalesce(sum(failed_count) FILTER (WHERE alive), 0),
  'last_heartbeat_at', max(last_seen),
  'last_heartbeat_age_seconds', round(extract(epoch FROM now() - max(last_seen))::numeric, 1),
  'workers', (SELECT coalesce(json_agg(w ORDER BY w.last_seen DESC), '[]'::json) FROM (
      SELECT worker_id, hostname, status, alive, last_seen, age_seconds, processed_count, failed_count, started_at
      FROM hb WHERE alive OR last_seen > now() - interval '1 hour'
      ORDER BY last_seen DESC LIMIT %(limit)d) w)
) FROM hb
"""

PROCESSING = """
SELECT json_build_object(
  'window_minutes', 60,
  'completed', count(*) FILTER (WHERE success),
  'failed', count(*) FILTER (WHERE success = false),
  'running', count(*) FILTER (WHERE finished_at IS NULL),
  'avg_duration_seconds',
      round((avg(extract(epoch FROM finished_at - started_at)) FILTER (WHERE success))::numeric, 3),
  'p95_duration_seconds',
      round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
             FILTER (WHERE success))::numeric, 3),
  'error_ratio', CASE WHEN count(*) FILTER (WHERE finished_at IS NOT NULL) > 0
      THEN round(count(*) FILTER (WHERE success = false)::numeric / count(*) FILTER (WHERE finished_at IS NOT NULL), 4)
      ELSE 0 END,
  'last_finished_at', max(finished_at),
  'per_minute', (
    SELECT coalesce(json_agg(json_build_object('minute', m.minute, 'created', coalesce(c.n, 0),
                    'completed', coalesce(r.ok, 0), 'failed', coalesce(r.bad, 0)) ORDER BY m.minute DESC), '[]'::json)
    FROM generate_series(date_trunc('minute', now()) - make_interval(mins => %(minutes)d - 1),
                         date_trunc('minute', now()), interval '1 minute') AS m(minute)
    LEFT JOIN (SELECT date_trunc('minute', created_at) AS minute, count(*) AS n FROM due_work
               WHERE created_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)d - 1)
               GROUP BY 1) c ON c.minute = m.minute
    LEFT JOIN (SELECT date_trunc('minute', finished_at) AS minute, count(*) FILTER (WHERE success) AS ok,
                      count(*) FILTER (WHERE success = false) AS bad FROM task_run
               WHERE started_at >= now() - make_interval(mins => %(minutes)d + 60)
                 AND finished_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)d - 1)
               GROUP BY 1) r ON r.minute = m.minute)
) FROM task_run
WHERE started_at > now() - interval '1 hour'
"""

_PSS_LOADED = ("to_regclass('pg_stat_statements') IS NOT NULL "
               "AND current_setting('shared_preload_libraries', true) ~ 'pg_stat_statements'")
_PSS_COLUMN = ("EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('pg_stat_statements') "
               "AND attname = '%s' AND NOT attisdropped)")
# pg_stat_statements 1.9 (PostgreSQL 14) and later: when the statistics were last reset, i.e. since when the means run.
_PSS_INFO = "coalesce(has_table_privilege(to_regclass('pg_stat_statements_info')::oid, 'SELECT'), false)"
_SINCE = "(SELECT stats_reset FROM pg_stat_statements_info)"

_SLOW = """
SELECT json_build_object('available', true, 'source', 'pg_stat_statements.%(total)s', 'since', %(since)s,
  'statements', coalesce(json_agg(s ORDER BY s.total_ms DESC), '[]'::json)) FROM (
  SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), %(max_len)d) AS query, queryid::text AS queryid, calls,
         round(%(total)s::numeric, 3) AS total_ms,
         round((%(total)s / nullif(calls, 0))::numeric, 3) AS mean_ms,
         round(rows::numeric / nullif(calls, 0), 2) AS avg_rows
  FROM pg_stat_statements
  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  ORDER BY %(total)s DESC LIMIT %(top)d) s
"""

_SLOW_ABSENT = """
SELECT json_build_object('available', false, 'statements', '[]'::json, 'reason', CASE
  WHEN to_regclass('pg_stat_statements') IS NULL
    THEN 'extension pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)'
  WHEN coalesce(current_setting('shared_preload_libraries', true), '') !~ 'pg_stat_statements'
    THEN 'pg_stat_statements is not in shared_preload_libraries (or this role may not read that setting)'
  ELSE 'pg_stat_statements has neither total_exec_time nor total_time' END)
"""


def _int(value: int, low: int, high: int, what: str) -> int:
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {value!r}")
    return number


def server_query(long_running_seconds: float) -> Query:
    return Query("server", SERVER % {"long_running": _int(round(long_running_seconds), 0, 86400, "long running")})


def tasks_query(stale_seconds: float) -> Query:
    return Query("tasks", TASKS % {"stale": _int(round(stale_seconds), 0, 86400, "scheduler stale seconds")})


def queue_query() -> Query:
    return Query("queue", QUEUE)


def workers_query(window_seconds: float, limit: int = 20) -> Query:
    return Query("workers", WORKERS % {"window": _int(round(window_seconds), 1, 86400, "heartbeat window"),
                                       "limit": _int(limit, 1, 1000, "worker list limit")})


def processing_query(minutes: int) -> Query:
    return Query("processing", PROCESSING % {"minutes": _int(minutes, 1, 1440, "queue_depth_minutes")})


def slow_statements_query(top: int, max_query_length: int = 300) -> Query:
    params = {"top": _int(top, 1, 100, "slow_statements"), "max_len": _int(max_query_length, 20, 10000, "length")}
    cases = [(_PSS_LOADED + " AND " + _PSS_COLUMN % "total_exec_time" + " AND " + _PSS_INFO,
              _SLOW % dict(params, total="total_exec_time", since=_SINCE))]
    cases += [(_PSS_LOADED + " AND " + _PSS_COLUMN % column, _SLOW % dict(params, total=column, since="NULL"))
              for column in ("total_exec_time", "total_time")]
    return Query("slow_statements", _SLOW_ABSENT, cases)
