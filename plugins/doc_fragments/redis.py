# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a diagnostic module reaches Redis.
    DOCUMENTATION = r"""
options:
  redis_transport:
    description:
      - V(docker) sends C(PING) and C(INFO) to C(redis-cli) inside the Redis container (one C(docker exec)), as the
        runbook's C(docker exec redis redis-cli ping); V(tcp) speaks to Redis directly (no library needed).
    type: str
    choices: [docker, tcp]
    default: docker
  redis_service:
    description:
      - With O(redis_transport=docker), the service whose container runs Redis.
    type: str
    default: redis
  redis_container:
    description:
      - With O(redis_transport=docker), a container name or ID to use instead of looking up O(redis_service).
    type: str
  redis_host:
    description:
      - With O(redis_transport=tcp), the Redis host (required).
    type: str
  redis_port:
    description:
      - With O(redis_transport=tcp), the Redis port.
    type: int
    default: 6379
  redis_password:
    description:
      - Password (C(AUTH)); passed to C(redis-cli) in the environment (C(REDISCLI_AUTH)), never returned.
    type: str
  redis_db:
    description:
      - Database number selected before C(PING) and C(INFO).
    type: int
    default: 0
"""
