# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a diagnostic module reaches the PostgreSQL database of the task scheduler.
    DOCUMENTATION = r"""
options:
  db_transport:
    description:
      - V(docker) runs C(psql) inside the database container with C(docker exec), as the runbook does; nothing
        needs to be installed on the host. All queries of a module run go in one C(psql) session (one round trip).
      - V(tcp) connects over the network with psycopg 3, which must be importable by the module's Python
        on the managed host.
      - Either way the session is read-only (C(default_transaction_read_only)) and each statement is limited to
        O(timeout) seconds.
    type: str
    choices: [docker, tcp]
    default: docker
  db_service:
    description:
      - With O(db_transport=docker), the service whose container runs PostgreSQL.
    type: str
    default: postgres
  db_container:
    description:
      - With O(db_transport=docker), a container name or ID to use instead of looking up O(db_service).
    type: str
  db_host:
    description:
      - With O(db_transport=tcp), the database host (required).
      - With O(db_transport=docker), the host C(psql) connects to inside the container; by default the local socket,
        where the role of O(db_user) needs no password (the runbook's C(docker exec postgres psql -U orchestrator)).
    type: str
  db_port:
    description:
      - Port of PostgreSQL on O(db_host).
    type: int
    default: 5432
  db_name:
    description:
      - Database of the task scheduler.
    type: str
    default: orchestrator
  db_user:
    description:
      - Role to connect as. Figures of other sessions need the C(pg_monitor) role (or a superuser).
    type: str
    default: orchestrator
  db_password:
    description:
      - Password of O(db_user) for O(db_transport=tcp), or for O(db_host) inside the container. Passed to C(psql) in
        the environment (never on a command line) and never returned.
    type: str
  db_sslmode:
    description:
      - libpq C(sslmode) of a O(db_transport=tcp) connection.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
    default: prefer
"""
