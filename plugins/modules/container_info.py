#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_info
short_description: State, health, restarts, uptime, CPU and memory of the system's containers
version_added: 0.1.0
description:
  - The runbook's C(docker ps | grep -E "(api|postgres|redis|scheduler|worker)") and C(docker stats --no-stream)
    for the containers of a compose project, as structured figures with a verdict.
  - A core service (O(services)) without a container, or with none running, is V(down); some of its replicas not
    running is V(degraded). Any container that is unhealthy, restarting, or above the MemoryUsageCritical share of
    its memory limit makes the result V(degraded); other containers of the project that are not running too
    (except finished one-shot containers that exited 0).
  - Talks to the Docker Engine API on the host; needs nothing but Docker. Read-only; supports check mode.
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
  include_stats:
    description:
      - Sample CPU and memory of the running containers (C(docker stats --no-stream)); the daemon needs about a
        second for the CPU sample.
    type: bool
    default: true
  stats_interval:
    description:
      - Seconds between the two CPU readings taken from the containers' cgroups when the module runs on the Docker
        host (a V(unix://) O(docker_host)). Containers whose cgroup cannot be read are sampled by the Docker daemon,
        which takes about a second.
    type: float
    default: 0.5
seealso:
  - module: taskscheduler.ops.system_health
  - module: community.docker.docker_container_info
"""

EXAMPLES = r"""
- name: Containers of the lab's compose project
  taskscheduler.ops.container_info:
    project: "{{ tsops_compose_project }}"
  register: containers

- name: Show the workers' containers
  ansible.builtin.debug:
    msg: "{{ containers.containers | selectattr('service', 'equalto', 'worker') | map(attribute='name') }}"

- name: Production host whose compose file sets container_name (api, postgres, ...)
  taskscheduler.ops.container_info:
    include_stats: false
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: Verdict, V(healthy), V(degraded), V(down) or V(unknown) (Docker unreachable).
  returned: always
  type: str
  sample: down
reasons:
  description: Why the verdict is not V(healthy).
  returned: always
  type: list
  elements: str
  sample: ["worker: 0/2 running (tsops-worker-1 exited exit 0, tsops-worker-2 exited exit 0)"]
notes:
  description: Observations that do not change the verdict.
  returned: always
  type: list
  elements: str
  sample: []
error:
  description: Why Docker could not be read, else null.
  returned: always
  type: str
  sample: null
summary:
  description: One line with the verdict and the key figures.
  returned: always
  type: str
  sample: "containers  HEALTHY  12/12 running, 0 unhealthy, 0 restarts; cpu 9.4%, mem 251.0 MiB"
project:
  description: The compose project looked at.
  returned: success
  type: str
  sample: tsops
containers:
  description: Every container of the project (and of the core services found by name).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
      sample: tsops-api-1
    id:
      description: Short container ID.
      type: str
      sample: 0123456789ab
    service:
      description: Compose service (or the container name when it has no compose labels).
      type: str
      sample: api
    image:
      description: Image of the container.
      type: str
      sample: tsops-lab/app:1.0.0
    state:
      description: V(running), V(exited), V(restarting), V(paused), V(created) or V(dead).
      type: str
      sample: running
    health:
      description: Health check status, V(healthy), V(unhealthy), V(starting) or V(none).
      type: str
      sample: healthy
    restart_count:
      description: Restarts by the restart policy since the container was created.
      type: int
      sample: 0
    exit_code:
      description: Exit code of the last run.
      type: int
      sample: 0
    oom_killed:
      description: Whether the last run was killed for lack of memory.
      type: bool
      sample: false
    started_at:
      description: Start of the current or last run.
      type: str
      sample: "2025-01-10T08:59:41.123456789Z"
    uptime_seconds:
      description: Seconds since start when running, else null.
      type: float
      sample: 862.4
    restart_policy:
      description: Restart policy name.
      type: str
      sample: unless-stopped
    cpu_percent:
      description: CPU use as C(docker stats) shows it (100 = one CPU). Running containers, with O(include_stats).
      type: float
      sample: 1.52
    memory_bytes:
      description: Memory use without page cache, as C(docker stats).
      type: int
      sample: 40771584
    memory_limit_bytes:
      description: Memory limit (the host's memory when unlimited).
      type: int
      sample: 25276059648
    memory_percent:
      description: Memory use in percent of the limit.
      type: float
      sample: 0.16
    pids:
      description: Number of processes.
      type: int
      sample: 3
services:
  description: Running and total containers per service.
  returned: success
  type: dict
  sample: {api: {running: 1, total: 1}, worker: {running: 2, total: 2}}
running:
  description: Running containers.
  returned: success
  type: int
  sample: 12
total:
  description: All containers.
  returned: success
  type: int
  sample: 12
restarts:
  description: Sum of the restart counts.
  returned: success
  type: int
  sample: 0
cpu_percent_total:
  description: Sum of the running containers' CPU percentages.
  returned: success
  type: float
  sample: 9.4
memory_bytes_total:
  description: Sum of the running containers' memory use.
  returned: success
  type: int
  sample: 263192576
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    container_info,
    run_module,
)


def main() -> None:
    run_module(dict(CONNECTION_ARGS, include_stats=dict(type="bool", default=True),
                    stats_interval=dict(type="float", default=0.5)), container_info, "container_info")


if __name__ == "__main__":
    main()
