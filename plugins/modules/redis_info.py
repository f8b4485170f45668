#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_info
short_description: Ping, keyspace, memory and persistence of Redis
version_added: 0.1.0
description:
  - The runbook's C(docker exec redis redis-cli ping) and C(redis-cli info keyspace), in one round trip
    (C(PING) and C(INFO) on the standard input of one C(redis-cli)), or over TCP.
  - No C(PONG) is V(down). Memory above the MemoryUsageCritical share of C(maxmemory), failing persistence
    (C(rdb_last_bgsave_status), C(aof_last_write_status)) or loading the dataset is V(degraded).
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
attributes:
  check_mode:
    details: Only sends C(PING) and C(INFO); the result is the same as in a normal run.
seealso:
  - module: taskscheduler.ops.system_health
  - module: community.general.redis_info
"""

EXAMPLES = r"""
- name: Redis through docker exec (runbook TaskSchedulerAPIDown diagnosis)
  taskscheduler.ops.redis_info:
    project: "{{ tsops_compose_project }}"
  register: redis

- name: Redis over TCP with a password
  taskscheduler.ops.redis_info:
    redis_transport: tcp
    redis_host: 10.0.0.13
    redis_password: "{{ vault_redis_password }}"
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
  sample: ["redis unreachable: redis-cli in container 1c2d...: Could not connect to Redis at 127.0.0.1:6379"]
notes:
  description: Observations that do not change the verdict.
  returned: always
  type: list
  elements: str
  sample: []
error:
  description: Why Redis could not be read, else null.
  returned: always
  type: str
  sample: null
summary:
  description: One line with the verdict and key figures.
  returned: always
  type: str
  sample: "redis       HEALTHY  PONG, Redis 7.0.15, db0 2 keys, 1.1 MiB used"
ping:
  description: V(PONG), or null when Redis did not answer.
  returned: always
  type: str
  sample: PONG
version:
  description: C(redis_version).
  returned: when reachable
  type: str
  sample: 7.0.15
role:
  description: V(master) or V(slave).
  returned: when reachable
  type: str
  sample: master
uptime_seconds:
  description: C(uptime_in_seconds).
  returned: when reachable
  type: int
  sample: 3600
connected_clients:
  description: C(connected_clients).
  returned: when reachable
  type: int
  sample: 4
used_memory_bytes:
  description: C(used_memory).
  returned: when reachable
  type: int
  sample: 1180000
maxmemory_bytes:
  description: C(maxmemory) (0 = unlimited).
  returned: when reachable
  type: int
  sample: 0
memory_used_ratio:
  description: RV(used_memory_bytes) / RV(maxmemory_bytes); null when unlimited.
  returned: when reachable
  type: float
  sample: null
keyspace:
  description: The C(info keyspace) section, by database.
  returned: when reachable
  type: dict
  sample: {db0: {keys: 2, expires: 2, avg_ttl: 82974}}
keys_total:
  description: Keys in all databases.
  returned: when reachable
  type: int
  sample: 2
rdb_last_bgsave_status:
  description: Result of the last RDB save (V(ok) or V(err)).
  returned: when reachable
  type: str
  sample: ok
aof_last_write_status:
  description: Result of the last AOF write (V(ok) or V(err)).
  returned: when reachable
  type: str
  sample: ok
loading:
  description: Whether Redis is still loading its dataset.
  returned: when reachable
  type: bool
  sample: false
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    redis_info,
    run_module,
)


def main() -> None:
    run_module(dict(CONNECTION_ARGS), redis_info, "redis_info")


if __name__ == "__main__":
    main()
