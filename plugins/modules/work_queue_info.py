#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: work_queue_info
short_description: Work queue, worker heartbeats, scheduling progress and task processing of the scheduler
version_added: 0.1.0
description:
  - The runbook's work queue, worker status, task processing rate and queue depth queries, corrected and read in
    one round trip, each as a section with its own verdict.
  - "RV(queue): due now (due and not validly leased: the workers' own claim condition), locked (a lease still
    running), waiting for a retry, future, expired leases and the age of the oldest due item. Unlike the runbook's
    C(COUNT(*) FROM due_work), finished rows (kept with C(locked_until = 'infinity')) count nowhere. The oldest due
    item waiting longer than the backlog threshold (300 s) is V(degraded)."
  - "RV(workers): heartbeats within the NoActiveWorkers window (120 s), stale workers (stopped heartbeating in the
    last hour without a clean stop), processed counts, alive / O(expected_workers). None alive is V(down)
    (NoActiveWorkers); below 50% of the expected is V(degraded) (WorkerHealthDegraded)."
  - "RV(scheduler): active tasks whose next run is overdue by more than the SchedulerOffline threshold (60 s),
    V(degraded) when there are any, and when work was last queued."
  - "RV(processing): completed and failed runs and their average and p95 duration in the last hour, the error
    ratio (V(degraded) above the HighErrorRate ratio) and work created / completed / failed per minute."
  - When the database is unreachable every section is V(unknown) and names why. Read-only; supports check mode.
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
  sections:
    description:
      - Sections to read.
    type: list
    elements: str
    choices: [queue, workers, scheduler, processing]
    default: [queue, workers, scheduler, processing]
  expected_workers:
    description:
      - Workers that should be alive (the inventory's C(tsops_expected_workers)); without it only "none alive" is
        judged.
    type: int
  queue_depth_minutes:
    description:
      - Minutes reported in RV(processing.per_minute).
    type: int
    default: 10
seealso:
  - module: taskscheduler.ops.system_health
  - module: taskscheduler.ops.postgres_info
"""

EXAMPLES = r"""
- name: Diagnose NoActiveWorkers (runbook worker failure response)
  taskscheduler.ops.work_queue_info:
    project: "{{ tsops_compose_project }}"
    sections: [queue, workers]
    expected_workers: "{{ tsops_expected_workers }}"
  register: work

- name: Report the backlog
  ansible.builtin.debug:
    msg: >-
      {{ work.queue.due_now }} items due, oldest waiting {{ work.queue.oldest_pending_age_seconds }}s,
      {{ work.workers.alive }} workers alive

- name: Processing rate for the last 30 minutes (runbook performance_check.sh)
  taskscheduler.ops.work_queue_info:
    project: "{{ tsops_compose_project }}"
    sections: [processing]
    queue_depth_minutes: 30
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: Worst verdict of the sections.
  returned: always
  type: str
  sample: down
reasons:
  description: Why the verdict is not V(healthy), each prefixed with its section.
  returned: always
  type: list
  elements: str
  sample: ["workers: no worker heartbeat within 120s (last 131.2s ago, NoActiveWorkers)"]
summary:
  description: One line per section.
  returned: always
  type: list
  elements: str
  sample: ["queue       HEALTHY  due now 0, locked 2, future 0, retry 0, oldest pending 0s"]
queue:
  description: The work queue (C(due_work)); with C(status), C(reasons), C(notes), C(error) and C(summary) like
    every section.
  returned: when selected
  type: dict
  contains:
    due_now:
      description: Due (C(run_at <= now())) and not validly leased.
      type: int
      sample: 0
    locked:
      description: Leased by a worker, lease not expired.
      type: int
      sample: 2
    retry_wait:
      description: Failed attempts waiting for their retry back-off.
      type: int
      sample: 0
    future:
      description: Not yet due.
      type: int
      sample: 0
    expired_leases:
      description: Running items whose lease expired (their worker died or hung); also counted in due now.
      type: int
      sample: 0
    unfinished:
      description: All pending and running items.
      type: int
      sample: 2
    oldest_due_at:
      description: C(run_at) of the oldest due item (the runbook's C(oldest_work)).
      type: str
      sample: null
    newest_due_at:
      description: C(run_at) of the newest due item (the runbook's C(newest_work)).
      type: str
      sample: null
    oldest_pending_age_seconds:
      description: How long the oldest due item has waited (0 when none).
      type: float
      sample: 0
workers:
  description: Worker heartbeats (C(worker_heartbeat)).
  returned: when selected
  type: dict
  contains:
    window_seconds:
      description: Heartbeat window of NoActiveWorkers.
      type: int
      sample: 120
    alive:
      description:
        - Workers with a heartbeat within the window, not cleanly stopped, and not sent from a container of the
          project that is known not to run (a worker killed without a clean stop keeps a fresh heartbeat for up to
          the window; its container says otherwise). A worker's host name is its container's short ID by default.
      type: int
      sample: 2
    heartbeat_alive:
      description: Workers alive by their heartbeat alone, when some of them were found dead by their container.
      type: int
      returned: when heartbeats from stopped containers were discounted
      sample: 2
    expected:
      description: O(expected_workers).
      type: int
      sample: 2
    alive_ratio:
      description: RV(workers.alive) / RV(workers.expected); null without O(expected_workers).
      type: float
      sample: 1.0
    stale:
      description: Workers whose heartbeat stopped in the last hour without a clean stop.
      type: int
      sample: 0
    stopped_last_hour:
      description: Workers that stopped cleanly in the last hour.
      type: int
      sample: 0
    known:
      description: Rows of C(worker_heartbeat).
      type: int
      sample: 6
    processed_count_alive:
      description: Sum of C(processed_count) of the alive workers.
      type: int
      sample: 5120
    failed_count_alive:
      description: Sum of C(failed_count) of the alive workers.
      type: int
      sample: 3
    last_heartbeat_at:
      description: Newest heartbeat.
      type: str
      sample: "2025-01-10T09:14:02.123+00:00"
    last_heartbeat_age_seconds:
      description: Its age.
      type: float
      sample: 0.8
    workers:
      description: Alive workers and those seen in the last hour, newest first (at most 20), with C(worker_id),
        C(hostname), C(status), C(alive), C(last_seen), C(age_seconds), C(processed_count), C(failed_count),
        C(started_at), and C(container_state) when its container was found not running.
      type: list
      elements: dict
scheduler:
  description: Scheduling progress.
  returned: when selected
  type: dict
  contains:
    active_tasks:
      description: Tasks with C(status = 'active').
      type: int
      sample: 12
    overdue:
      description: Active tasks whose next run is overdue by more than 60 s (SchedulerOffline).
      type: int
      sample: 0
    most_overdue_seconds:
      description: How overdue the most overdue active task is.
      type: float
      sample: 0
    last_queued_at:
      description: When the scheduler last created work.
      type: str
      sample: "2025-01-10T09:14:02.511+00:00"
    last_queued_age_seconds:
      description: Its age.
      type: float
      sample: 0.4
processing:
  description: Task runs (C(task_run)) of the last hour.
  returned: when selected
  type: dict
  contains:
    window_minutes:
      description: Always 60.
      type: int
      sample: 60
    completed:
      description: Successful runs (the runbook's C(completed_tasks)).
      type: int
      sample: 3540
    failed:
      description: Failed runs.
      type: int
      sample: 12
    running:
      description: Runs not finished.
      type: int
      sample: 0
    avg_duration_seconds:
      description: Average duration of the successful runs (the runbook's C(avg_duration_seconds)).
      type: float
      sample: 0.052
    p95_duration_seconds:
      description: 95th percentile of their durations.
      type: float
      sample: 0.061
    error_ratio:
      description: Failed / finished runs.
      type: float
      sample: 0.0034
    last_finished_at:
      description: When the last run finished.
      type: str
      sample: "2025-01-10T09:14:01.902+00:00"
    created_per_minute_avg:
      description: Average of C(created) over RV(processing.per_minute).
      type: float
      sample: 60.0
    per_minute:
      description: For each of the last O(queue_depth_minutes) minutes, newest first, C(minute), C(created) (the
        runbook's C(work_items_created)), C(completed), C(failed).
      type: list
      elements: dict
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    run_module,
    work_queue_info,
)


def main() -> None:
    sections = ["queue", "workers", "scheduler", "processing"]
    argument_spec = dict(
        CONNECTION_ARGS,
        sections={"type": "list", "elements": "str", "choices": sections, "default": sections},
        expected_workers={"type": "int"},
        queue_depth_minutes={"type": "int", "default": 10},
    )
    run_module(argument_spec, work_queue_info, "work_queue_info")


if __name__ == "__main__":
    main()
