#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_logs_info
short_description: Recent ERROR, FATAL and CRITICAL lines of the services' logs
version_added: 0.1.0
description:
  - The runbook's C(docker logs api --since 15m | grep -E "(ERROR|FATAL|CRITICAL)" | tail -5), for every container
    of every service in O(log_services) (stopped containers too, their last words are often the cause), all at
    the same time.
  - Log lines are evidence, not a verdict; the result is V(healthy) unless no log could be read (V(unknown)).
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
  log_since:
    description:
      - How far back to read (C(docker logs --since)), as V(90s), V(15m), V(2h), V(1d) or seconds.
    type: str
    default: 15m
  log_lines:
    description:
      - Matching lines to return per container (the newest).
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
      - Python regular expression of the lines reported.
    type: str
    default: \b(ERROR|FATAL|CRITICAL|PANIC)\b
seealso:
  - module: taskscheduler.ops.system_health
  - module: taskscheduler.ops.container_info
"""

EXAMPLES = r"""
- name: Errors of the API in the last 15 minutes (runbook TaskSchedulerAPIDown)
  taskscheduler.ops.service_logs_info:
    project: "{{ tsops_compose_project }}"
    log_services: [api]
  register: api_logs

- name: The last 30 minutes of PostgreSQL, every FATAL and PANIC line up to 50
  taskscheduler.ops.service_logs_info:
    project: "{{ tsops_compose_project }}"
    log_services: [postgres]
    log_since: 30m
    log_pattern: (FATAL|PANIC)
    log_lines: 50
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: V(healthy), or V(unknown) when no log could be read.
  returned: always
  type: str
  sample: healthy
reasons:
  description: Why the verdict is not V(healthy).
  returned: always
  type: list
  elements: str
  sample: []
notes:
  description: Containers whose logs could not be read.
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
  description: One line with the verdict and the number of matching lines per container.
  returned: always
  type: str
  sample: "logs        HEALTHY  3 error lines in the last 15m (tsops-postgres-1 3)"
since_seconds:
  description: O(log_since) in seconds.
  returned: success
  type: float
  sample: 900
pattern:
  description: O(log_pattern).
  returned: success
  type: str
  sample: \b(ERROR|FATAL|CRITICAL|PANIC)\b
error_lines:
  description: Matching lines in all containers.
  returned: success
  type: int
  sample: 3
containers:
  description: By container name, C(matches) (matching lines), C(lines_read) and C(last) (the newest O(log_lines)
    matching lines).
  returned: success
  type: dict
  sample:
    tsops-postgres-1:
      matches: 3
      lines_read: 40
      last: ["2025-01-10 09:01:12.061 UTC [27] orchestrator@orchestrator FATAL:  the database system is starting up"]
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    LOG_ARGS,
    run_module,
    service_logs_info,
)


def main() -> None:
    run_module(dict(CONNECTION_ARGS, **LOG_ARGS), service_logs_info, "service_logs_info")


if __name__ == "__main__":
    main()
