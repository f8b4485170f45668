#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: emergency backup of the scheduler's database, hashed and proved restorable."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_backup
short_description: Emergency C(pg_dump -Fc) of the scheduler database through docker exec, hashed and verified
version_added: 0.1.0
description:
  - The runbook's emergency backup (C(docker exec postgres pg_dump ...)) made safe to rely on. The dump is taken
    inside the database container in custom format and streamed to O(dest) on the Docker host, its SHA-256 is
    written beside it (C(<file>.sha256), C(sha256sum) format), and with O(verify=true) it is proved restorable
    (C(pg_restore --list), then a full restore into a scratch database of the same server, whose row counts are
    returned; the scratch database is always dropped).
  - Needs only Docker on the host. Run it before any restart of a database that still answers.
  - Backups are never overwritten or deleted; each run writes a new file.
author:
  - Taskscheduler Ops Team (@taskscheduler-ops)
attributes:
  check_mode:
    support: full
    description: Finds the container and reports the file it would write; dumps nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the result lists the file written.
  idempotent:
    support: none
    description: Every run takes a new backup, by design.
options:
  compose_project:
    description: Compose project of the system (the inventory's C(tsops_compose_project)).
    type: str
  service:
    description: Compose service of the database; also the container name looked for without labels.
    type: str
    default: postgres
  container:
    description: Container name or id to use instead of looking the service up.
    type: str
  docker_host:
    description: Docker daemon to talk to.
    type: str
    default: unix:///var/run/docker.sock
  docker_cli:
    description: The docker CLI used for C(docker exec).
    type: str
    default: docker
  db_name:
    description: Database to dump.
    type: str
    default: orchestrator
  db_user:
    description: Role that dumps (over the container's local socket).
    type: str
    default: orchestrator
  db_password:
    description: Password of O(db_user), when the container's local connections need one.
    type: str
  admin_user:
    description: Role allowed to create and drop the scratch database used by O(verify).
    type: str
    default: postgres
  dest:
    description: Directory on the Docker host for the backup (created C(0700) if missing).
    type: path
    required: true
  name:
    description: File name; default C(emergency_backup_<db>_<UTC YYYYmmdd_HHMMSS>.dump).
    type: str
  verify:
    description: Prove the backup restorable by restoring it into a scratch database.
    type: bool
    default: true
notes:
  - "A file that exists already is never overwritten: the module fails instead."
seealso:
  - module: community.postgresql.postgresql_db
    description: C(state=dump) when the database is reached over TCP with client tools on the host.
"""

EXAMPLES = r"""
- name: Emergency backup before restarting PostgreSQL
  taskscheduler.ops.postgres_backup:
    compose_project: "{{ tsops_compose_project }}"
    dest: /var/backups/taskscheduler
  register: backup

- name: Record where it is
  ansible.builtin.debug:
    msg: "{{ backup.path }} sha256={{ backup.sha256 }} restored={{ backup.verified }}"
"""

RETURN = r"""
path:
  description: The backup file.
  returned: always (in check mode, the file it would write)
  type: str
  sample: /var/backups/taskscheduler/emergency_backup_orchestrator_20261126_213000.dump
container:
  description: The database container used.
  returned: always
  type: str
sha256:
  description: SHA-256 of the backup file (also in C(<path>.sha256)).
  returned: success, not in check mode
  type: str
size_bytes:
  description: Size of the backup file.
  returned: success, not in check mode
  type: int
verified:
  description: Whether a full restore into a scratch database succeeded.
  returned: success, not in check mode
  type: bool
verify:
  description: Verification facts.
  returned: when O(verify=true), not in check mode
  type: dict
  contains:
    toc_entries:
      description: Entries in the archive's table of contents.
      type: int
    scratch_database:
      description: Name of the scratch database (dropped afterwards).
      type: str
    restored:
      description: The restore succeeded.
      type: bool
    restored_rows:
      description: Rows per table in the restored copy.
      type: dict
dump_seconds:
  description: Time taken by the dump.
  returned: success, not in check mode
  type: float
duration_seconds:
  description: Time taken by dump, hash and verification.
  returned: success, not in check mode
  type: float
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._backup import BackupError, DockerPostgres, take_backup
from ansible_collections.taskscheduler.ops.plugins.module_utils._docker import (
    DockerApi,
    DockerError,
    container_name,
    find_containers,
    pick_running,
)


def resolve_container(params: dict) -> str:
    if params["container"]:
        return params["container"]
    api = DockerApi(params["docker_host"], cli=params["docker_cli"])
    entries = find_containers(api, params["compose_project"], [params["service"]]).get(params["service"])
    running = pick_running(entries)
    if running is None:
        state = ", ".join(f"{container_name(e)}: {e.get('State')}" for e in entries or []) or "no container"
        raise BackupError(f"no running container for service {params['service']!r} ({state}): the database does "
                          "not answer, so no backup can be taken; start it or restore from the last good backup")
    return container_name(running)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            compose_project=dict(type="str"),
            service=dict(type="str", default="postgres"),
            container=dict(type="str"),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            docker_cli=dict(type="str", default="docker"),
            db_name=dict(type="str", default="orchestrator"),
            db_user=dict(type="str", default="orchestrator"),
            db_password=dict(type="str", no_log=True),
            admin_user=dict(type="str", default="postgres"),
            dest=dict(type="path", required=True),
            name=dict(type="str"),
            verify=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"] or f"emergency_backup_{p['db_name']}_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}.dump"
    path = os.path.join(p["dest"], name)
    try:
        container = resolve_container(p)
        if os.path.exists(path):
            raise BackupError(f"{path} exists already; backups are never overwritten (choose another name)")
        if module.check_mode:
            module.exit_json(changed=True, path=path, container=container)
        pg = DockerPostgres(lambda argv, env: module.run_command(argv, environ_update=env), p["docker_cli"],
                            p["docker_host"], container, p["db_password"])
        result = take_backup(pg, p["db_name"], p["db_user"], p["admin_user"], p["dest"], name, p["verify"])
    except (BackupError, DockerError, OSError) as exc:
        module.fail_json(msg=f"backup of {p['db_name']} failed: {exc}", path=path)
    if p["verify"] and not result["verified"]:
        module.fail_json(msg=f"backup {result['path']} was written but is NOT proved restorable: "
                             f"{result['verify']['error']}", changed=True, container=container, **result)
    module.exit_json(changed=True, container=container, **result)


if __name__ == "__main__":
    main()
