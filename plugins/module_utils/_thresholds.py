# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

The one source of the thresholds behind the runbook's alerts. The alert rules (role alert_rules)
and the diagnostic verdicts (modules) both use these numbers, so a check and the alert it mirrors
always agree; a unit test compares this table with the role's defaults.
"""

from __future__ import annotations

THRESHOLDS = {
    # HighErrorRate (P0): more than 10% of API responses are 5xx, sustained 5 minutes.
    "api_error_ratio_max": 0.10,
    "api_error_for_seconds": 300,
    # SecurityBreach (P0): a burst of failed authentications (any use of a revoked credential fires at once).
    "auth_failures_per_minute_max": 30,
    # HighAPILatency (P1): API response time above 2 seconds (p95 over the window).
    "api_latency_seconds_max": 2.0,
    # NoActiveWorkers (P0): no worker heartbeat within the window.
    "worker_heartbeat_window_seconds": 120,
    # WorkerHealthDegraded (P1): fewer than 50% of the expected workers alive.
    "workers_alive_ratio_min": 0.5,
    # SchedulerOffline (P1): no scheduling progress for this long.
    "scheduler_stale_seconds": 60,
    # DatabaseSlowQueries (P1): mean execution time of a statement above this (pg_stat_statements),
    # or an active query running longer than this.
    "slow_query_mean_ms_max": 1000.0,
    "long_running_query_seconds_max": 30.0,
    # DiskSpaceCritical (P1): less than 10% free.
    "disk_free_ratio_min": 0.10,
    # MemoryUsageCritical (P1): more than 90% used.
    "memory_used_ratio_max": 0.90,
    # Work queue backlog: the oldest due, unleased item waited longer than this (degraded, not an alert).
    "queue_oldest_pending_seconds_max": 300,
}
