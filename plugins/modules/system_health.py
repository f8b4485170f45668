#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: system_health
short_description: Health of the whole task scheduling system in one call (the runbook's health_check.sh)
version_added: 0.1.0
description:
  - Looks at everything the runbook's C(health_check.sh) and C(performance_check.sh) look at, concurrently, and
    returns for each area its raw figures and a verdict against the thresholds of the alert rules.
  - "Areas: V(containers) (state, health, restarts, uptime, CPU and memory of the compose project's containers),
    V(api) (C(/health), C(/health/ready)), V(monitoring) (Prometheus, Alertmanager, Grafana), V(postgres)
    (reachable, version, size, connections by state, active tasks, optionally the slowest statements),
    V(redis) (ping, keyspace, memory), V(queue) (due now, locked, future, oldest pending age), V(workers)
    (heartbeats, stale workers, processed counts, alive/expected), V(scheduler) (overdue active tasks),
    V(processing) (runs and average duration in the last hour, error ratio, work per minute), V(host) (disk free
    per mount, memory, load) and V(logs) (recent ERROR/FATAL/CRITICAL lines of the services)."
  - "Verdicts: V(healthy); V(degraded) for a P1 condition of the runbook (HighAPILatency, DatabaseSlowQueries,
    WorkerHealthDegraded, SchedulerOffline, DiskSpaceCritical, MemoryUsageCritical) or a queue backlog;
    V(down) for a P0 condition (TaskSchedulerAPIDown, TaskSchedulerDatabaseDown, NoActiveWorkers, HighErrorRate)
    or a core service without a running container; V(unknown) when an area could not be assessed (for example the
    database it is read from is down); V(skipped) when not selected or not configured. Each non-healthy area
    names its reasons."
  - A component that is down never makes the module fail; it becomes that area's verdict and the other areas are
    still reported. The module fails only on invalid parameters or an internal error.
  - All database areas are read in one round trip (one C(docker exec ... psql) or one TCP session); Redis is one
    more; HTTP endpoints, Docker and /proc are read at the same time in threads. The wall time is about the
    slowest probe, usually the CPU sample of the containers (O(stats_interval), O(include_stats)).
  - Read-only; supports check mode.
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
options:
  areas:
    description:
      - Areas to check; the others are left out of the result.
    type: list
    elements: str
    choices: [containers, api, monitoring, postgres, redis, queue, workers, scheduler, processing, host, logs]
    default: [containers, api, monitoring, postgres, redis, queue, workers, scheduler, processing, host, logs]
  api_url:
    description:
      - Base URL of the API (the inventory's C(tsops_api_url)); C(/health) failing is V(down), C(/health/ready)
        failing (HTTP 503 with its C(reason)) is V(degraded).
    type: str
  prometheus_url:
    description:
      - Base URL of Prometheus; C(/-/healthy) is probed. Failing is V(degraded) (monitoring is blind, the system
        may still run).
    type: str
  alertmanager_url:
    description:
      - Base URL of Alertmanager; C(/-/healthy) is probed. Failing is V(degraded).
    type: str
  grafana_url:
    description:
      - Base URL of Grafana; C(/api/health) is probed. When empty the endpoint is reported as not configured.
    type: str
  endpoints:
    description:
      - More HTTP endpoints, probed like the ones above.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Label of the endpoint in the results.
        type: str
        required: true
      url:
        description: Full URL; when empty the endpoint is reported as not configured.
        type: str
      area:
        description: Area whose verdict the endpoint counts in.
        type: str
        choices: [api, monitoring]
        default: api
      severity:
        description: Verdict of the area when the endpoint fails.
        type: str
        choices: [down, degraded]
        default: down
      expect_status:
        description: Status codes that count as success.
        type: list
        elements: int
        default: [200]
      timeout:
        description: Seconds to wait for this endpoint; default O(timeout).
        type: float
      samples:
        description: Number of requests; default O(http_samples).
        type: int
      headers:
        description: Request headers.
        type: dict
        default: {}
  http_samples:
    description:
      - Requests per endpoint (the performance check's C(for i in {1..5}; do curl ...)). With more than one,
        the result has each attempt and min/avg/p95/max times; latency is judged on the p95 and failures on their
        ratio (HighErrorRate above 10%).
    type: int
    default: 1
  http_interval:
    description:
      - Seconds between the requests of one endpoint.
    type: float
    default: 0
  expected_workers:
    description:
      - Workers that should be alive (the inventory's C(tsops_expected_workers)). Below 50% alive is
        WorkerHealthDegraded (V(degraded)); none alive is NoActiveWorkers (V(down)) whatever this is.
    type: int
  slow_statements:
    description:
      - How many of the statements with the highest total execution time to report from C(pg_stat_statements)
        (V(0) = none). A statement averaging more than the DatabaseSlowQueries threshold degrades V(postgres).
        Without the extension the result says C(available=false) and why.
    type: int
    default: 0
  queue_depth_minutes:
    description:
      - Minutes of work created / completed / failed per minute reported by V(processing).
    type: int
    default: 10
  include_stats:
    description:
      - Sample CPU and memory of the running containers (C(docker stats --no-stream)). The Docker daemon takes
        about a second for the CPU sample; V(false) saves that.
    type: bool
    default: true
  stats_interval:
    description:
      - Seconds between the two CPU readings taken from the containers' cgroups when the module runs on the Docker
        host (a V(unix://) O(docker_host)). Containers whose cgroup cannot be read are sampled by the Docker daemon,
        which takes about a second.
    type: float
    default: 0.5
  log_since:
    description:
      - How far back to read the services' logs (C(docker logs --since)), as V(90s), V(15m), V(2h).
    type: str
    default: 15m
  log_lines:
    description:
      - Matching log lines to return per container (the newest).
    type: int
    default: 5
  log_tail:
    description:
      - Log lines read per container at most (the newest).
    type: int
    default: 5000
  log_services:
    description:
      - Services whose logs are read; default O(services).
    type: list
    elements: str
  log_pattern:
    description:
      - Python regular expression of the log lines reported.
    type: str
    default: \b(ERROR|FATAL|CRITICAL|PANIC)\b
  disk_paths:
    description:
      - Paths whose file systems are checked besides every data mount and the Docker root directory.
    type: list
    elements: path
    default: []
notes:
  - Thresholds are the collection's canonical ones (the same as its alert rules), not options.
  - Log lines are evidence, not a verdict; the V(logs) area is V(healthy) unless no log could be read.
seealso:
  - module: taskscheduler.ops.container_info
  - module: taskscheduler.ops.http_check
  - module: taskscheduler.ops.postgres_info
  - module: taskscheduler.ops.redis_info
  - module: taskscheduler.ops.work_queue_info
  - module: taskscheduler.ops.host_resources_info
  - module: taskscheduler.ops.service_logs_info
"""

EXAMPLES = r"""
- name: Check the whole system (runbook health_check.sh --full-system)
  taskscheduler.ops.system_health:
    project: "{{ tsops_compose_project }}"
    api_url: "{{ tsops_api_url }}"
    prometheus_url: "{{ tsops_prometheus_url }}"
    alertmanager_url: "{{ tsops_alertmanager_url }}"
    expected_workers: "{{ tsops_expected_workers }}"
  register: health

- name: Fail when anything is down
  ansible.builtin.assert:
    that: health.down | length == 0
    fail_msg: "{{ health.summary }}"

- name: Performance figures (runbook performance_check.sh)
  taskscheduler.ops.system_health:
    project: tsops
    areas: [api, postgres, processing, containers]
    api_url: http://127.0.0.1:8080
    http_samples: 5
    slow_statements: 5
    queue_depth_minutes: 30

- name: One set of connection options for every diagnostic module (the action group)
  module_defaults:
    group/taskscheduler.ops.diagnostics:
      project: "{{ tsops_compose_project }}"
      db_password: "{{ tsops_db_password }}"
      timeout: 5
  block:
    - name: Queue and workers
      taskscheduler.ops.work_queue_info:
        sections: [queue, workers]
    - name: Whole system
      taskscheduler.ops.system_health:
        api_url: "{{ tsops_api_url }}"

- name: A database reached over the network
  taskscheduler.ops.system_health:
    areas: [postgres, queue, workers]
    db_transport: tcp
    db_host: db.example.internal
    db_password: "{{ vault_db_password }}"
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: Overall verdict, the worst of the areas (skipped < healthy < unknown < degraded < down).
  returned: always
  type: str
  sample: down
checked_at:
  description: When the check started (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2025-01-10T09:14:03+00:00"
timings:
  description: Wall time of each probe (C(containers), C(endpoints), C(database), C(redis), C(host), C(logs)).
  returned: always
  type: dict
  sample: {containers: 1.05, database: 0.14, endpoints: 0.01}
summary:
  description: One line per area, "area STATUS key figures | reasons".
  returned: always
  type: list
  elements: str
  sample:
    - "api         DOWN     api /health connection refused (0.001s) | api /health: connection refused"
    - "workers     HEALTHY  2/2 alive (heartbeat within 120s), 0 stale, processed 5120"
down:
  description: Names of the areas that are V(down).
  returned: always
  type: list
  elements: str
  sample: [api, containers]
degraded:
  description: Names of the areas that are V(degraded).
  returned: always
  type: list
  elements: str
  sample: []
unknown:
  description: Names of the areas that could not be assessed.
  returned: always
  type: list
  elements: str
  sample: []
thresholds:
  description: The canonical alert thresholds the verdicts were judged against (the collection's one table).
  returned: always
  type: dict
  sample: {api_latency_seconds_max: 2.0, workers_alive_ratio_min: 0.5, disk_free_ratio_min: 0.1}
areas:
  description:
    - Figures and verdict of each selected area, by name. Every area has C(status), C(reasons) (why it is not
      healthy), C(notes) (observations that do not change the verdict), C(error) (why its probe failed, or null)
      and C(summary) (its line of RV(summary)).
    - The other keys of an area are those returned by the module of the same area
      (M(taskscheduler.ops.container_info) for V(containers), M(taskscheduler.ops.http_check) for V(api) and
      V(monitoring) under C(endpoints), M(taskscheduler.ops.postgres_info) for V(postgres),
      M(taskscheduler.ops.redis_info) for V(redis), the sections of M(taskscheduler.ops.work_queue_info) for
      V(queue), V(workers), V(scheduler) and V(processing), M(taskscheduler.ops.host_resources_info) for V(host),
      M(taskscheduler.ops.service_logs_info) for V(logs)).
  returned: always
  type: dict
  contains:
    containers:
      description: Containers of the compose project.
      returned: when selected
      type: dict
    api:
      description: The API's endpoints.
      returned: when selected
      type: dict
    monitoring:
      description: Prometheus, Alertmanager and Grafana endpoints.
      returned: when selected
      type: dict
    postgres:
      description: The PostgreSQL server and database.
      returned: when selected
      type: dict
    redis:
      description: Redis.
      returned: when selected
      type: dict
    queue:
      description: The work queue (C(due_work)).
      returned: when selected
      type: dict
    workers:
      description: Worker heartbeats.
      returned: when selected
      type: dict
    scheduler:
      description: Scheduling progress of active tasks.
      returned: when selected
      type: dict
    processing:
      description: Task runs of the last hour and work per minute.
      returned: when selected
      type: dict
    host:
      description: Disks, memory and load of the managed host.
      returned: when selected
      type: dict
    logs:
      description: Recent error lines of the services.
      returned: when selected
      type: dict
  sample:
    queue:
      status: degraded
      reasons: ["backlog: 200 due items, oldest waiting 612s (> 300s)"]
      notes: []
      error: null
      summary: "queue       DEGRADED due now 200, locked 0, future 0, retry 0, oldest pending 612s | backlog: ..."
      due_now: 200
      locked: 0
      future: 0
      retry_wait: 0
      expired_leases: 0
      unfinished: 200
      oldest_due_at: "2025-01-10T09:03:51.112+00:00"
      newest_due_at: "2025-01-10T09:13:59.002+00:00"
      oldest_pending_age_seconds: 612.3
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    ENDPOINTS_ARG,
    LOG_ARGS,
    run_module,
)
from ansible_collections.taskscheduler.ops.plugins.module_utils._probes import (
    ALL_AREAS,
    Settings,
    default_endpoints,
    run,
)


def check(params: dict) -> dict:
    params = dict(params)
    params["endpoints"] = default_endpoints(params["api_url"], params["prometheus_url"], params["alertmanager_url"],
                                            params["grafana_url"]) + list(params["endpoints"])
    return run(Settings(params), params["areas"])


def main() -> None:
    argument_spec = dict(
        CONNECTION_ARGS, **LOG_ARGS,
        areas={"type": "list", "elements": "str", "choices": list(ALL_AREAS), "default": list(ALL_AREAS)},
        api_url={"type": "str"},
        prometheus_url={"type": "str"},
        alertmanager_url={"type": "str"},
        grafana_url={"type": "str"},
        endpoints=ENDPOINTS_ARG,
        http_samples={"type": "int", "default": 1},
        http_interval={"type": "float", "default": 0.0},
        expected_workers={"type": "int"},
        slow_statements={"type": "int", "default": 0},
        queue_depth_minutes={"type": "int", "default": 10},
        include_stats={"type": "bool", "default": True},
        stats_interval={"type": "float", "default": 0.5},
        disk_paths={"type": "list", "elements": "path", "default": []},
    )
    run_module(argument_spec, check, "system_health")


if __name__ == "__main__":
    main()
