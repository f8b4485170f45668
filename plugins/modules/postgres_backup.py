#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: emergency backup of the scheduler's database, hashed and proved restorable."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_backup
short_description: Emergency C(pg_dump -Fc) of the scheduler database through docker exec, bounded, hashed, verified
version_added: 0.1.0
description:
  - The runbook's emergency backup (C(docker exec postgres pg_dump ...)) made safe to rely on during an incident.
  - First the database is asked its size (C(pg_database_size), with a connect and a statement timeout) and O(dest)
    must have that much free space (times O(space_factor)); otherwise nothing is written.
  - C(pg_dump -Fc --lock-wait-timeout) runs in the database container and writes to its stdout, which the module
    streams into C(<name>.partial) on the Docker host (nothing passes through the container's C(/tmp) or memory),
    renamed to O(name) once complete. The whole dump has a deadline (O(timeout)); a database that answers but is
    wedged (a session holding an C(ACCESS EXCLUSIVE) lock, an I/O stall) makes the module fail within it, the dump
    killed (the C(docker exec) client and the dump's server backend) and the partial file removed, so that a
    restart is never held up by the backup.
  - Its SHA-256 is written beside it (C(<file>.sha256), C(sha256sum) format) and, with O(verify=list) (default),
    C(pg_restore --list) reads the archive's table of contents from the host file; O(verify=restore) also restores
    it into a scratch database of the same server and returns its row counts (the scratch database is always
    dropped). That full proof takes longer, so run it after the incident with O(src).
  - With O(src) nothing is dumped; an existing backup is checked against its recorded SHA-256 and verified.
  - Needs only Docker on the host. Backups are never overwritten or deleted; each run writes a new file.
author:
  - Taskscheduler Ops Team (@taskscheduler-ops)
attributes:
  check_mode:
    support: full
    description: Finds the container and reports the file it would write (or verify); dumps nothing.
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
    description: >-
      Role allowed to create and drop the scratch database of O(verify=restore), and to end the server backend of
      a dump killed at its deadline.
    type: str
    default: postgres
  dest:
    description: Directory on the Docker host for the backup (created C(0700) if missing). Required unless O(src).
    type: path
  name:
    description: File name; default C(emergency_backup_<db>_<UTC YYYYmmdd_HHMMSS>.dump).
    type: str
  src:
    description:
      - An existing backup file to check (SHA-256 against C(<src>.sha256)) and verify instead of dumping, e.g. the
        full restore proof of an emergency backup once the incident is over.
    type: path
  verify:
    description:
      - C(list) reads the archive's table of contents with C(pg_restore --list) (seconds; proves it complete and
        readable).
      - C(restore) also restores it into a scratch database and counts its rows (takes about as long as the dump;
        keep it off an incident's critical path).
      - C(none) only hashes it.
    type: str
    choices: [none, list, restore]
    default: list
  timeout:
    description:
      - Seconds the dump may take in all. When they pass, the dump is killed, the partial file removed and the
        module fails, saying so.
      - The size query, each verification step and the clean-up have deadlines of their own (O(connect_timeout)
        plus 55 s, the restore O(timeout)).
    type: int
    default: 300
  lock_wait_timeout:
    description:
      - Seconds C(pg_dump) waits for the shared lock of each table (C(--lock-wait-timeout)); a session holding an
        C(ACCESS EXCLUSIVE) lock longer makes the dump fail at once with the name of the table.
    type: int
    default: 10
  connect_timeout:
    description: Seconds to wait for a connection (C(PGCONNECT_TIMEOUT)) before deciding the database does not answer.
    type: int
    default: 5
  space_factor:
    description:
      - Free space needed in O(dest), as a multiple of the database's size on disk (C(pg_database_size)). A
        compressed custom-format dump is usually much smaller, so C(1.0) is a safe estimate; C(0) skips the check.
    type: float
    default: 1.0
notes:
  - "A file that exists already is never overwritten: the module fails instead."
  - "On failure the result still carries C(path) and, when the dump hit its deadline, C(timed_out=true)."
seealso:
  - module: community.postgresql.postgresql_db
    description: C(state=dump) when the database is reached over TCP with client tools on the host.
"""

EXAMPLES = r"""
- name: Emergency backup before restarting PostgreSQL (gives up after 60 s rather than delay the restart)
  taskscheduler.ops.postgres_backup:
    compose_project: "{{ tsops_compose_project }}"
    dest: /var/backups/taskscheduler
    timeout: 60
  register: backup
  ignore_errors: true

- name: Record where it is
  ansible.builtin.debug:
    msg: "{{ backup.path }} sha256={{ backup.sha256 | default('none') }} listed={{ backup.verified | default(false) }}"

- name: After the incident, prove the backup restorable (full restore into a scratch database)
  taskscheduler.ops.postgres_backup:
    compose_project: "{{ tsops_compose_project }}"
    src: "{{ backup.path }}"
    verify: restore
"""

RETURN = r"""
path:
  description: The backup file.
  returned: always (in check mode, the file it would write)
  type: str
  sample: /var/backups/taskscheduler/emergency_backup_orchestrator_20261126_213000.dump
container:
  description: The database container used.
  returned: success
  type: str
sha256:
  description: SHA-256 of the backup file (also in C(<path>.sha256)).
  returned: success, not in check mode
  type: str
size_bytes:
  description: Size of the backup file.
  returned: success, not in check mode
  type: int
space:
  description: The free-space check (C(database_size_bytes), C(free_bytes), C(needed_bytes), C(enough)).
  returned: success when a dump was taken, not in check mode
  type: dict
verified:
  description: Whether the verification asked for by O(verify) succeeded (false with O(verify=none)).
  returned: success, not in check mode
  type: bool
verify_mode:
  description: The O(verify) used.
  returned: success, not in check mode
  type: str
verify:
  description: Verification facts.
  returned: when O(verify) is not C(none), not in check mode
  type: dict
  contains:
    ok:
      description: The verification succeeded.
      type: bool
    toc_entries:
      description: Entries in the archive's table of contents.
      type: int
    error:
      description: Why the verification failed.
      type: str
    scratch_database:
      description: Name of the scratch database (dropped afterwards), with O(verify=restore).
      type: str
    restored:
      description: A full restore succeeded (O(verify=restore)).
      type: bool
    restored_rows:
      description: Rows per table in the restored copy (O(verify=restore)).
      type: dict
timed_out:
  description: The dump was killed at its deadline (O(timeout)); no backup was written.
  returned: failure
  type: bool
dump_seconds:
  description: Time taken by the size check and the dump.
  returned: success when a dump was taken, not in check mode
  type: float
duration_seconds:
  description: Time taken by the module's work (dump, hash and verification).
  returned: success, not in check mode
  type: float
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._backup import (
    VERIFY_MODES,
    BackupError,
    BackupTimeout,
    DockerPostgres,
    run_process,
    take_backup,
    validate_options,
    verify_existing,
)
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
            dest=dict(type="path"),
            name=dict(type="str"),
            src=dict(type="path"),
            verify=dict(type="str", default="list", choices=list(VERIFY_MODES)),
            timeout=dict(type="int", default=300),
            lock_wait_timeout=dict(type="int", default=10),
            connect_timeout=dict(type="int", default=5),
            space_factor=dict(type="float", default=1.0),
        ),
        required_one_of=[("dest", "src")],
        mutually_exclusive=[("dest", "src"), ("name", "src")],
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"] or f"emergency_backup_{p['db_name']}_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}.dump"
    path = p["src"] or os.path.join(p["dest"], name)
    try:
        validate_options(p["name"], p["timeout"], p["lock_wait_timeout"], p["connect_timeout"], p["space_factor"],
                         p["verify"])
        container = resolve_container(p)
        if not p["src"] and os.path.exists(path):
            raise BackupError(f"{path} exists already; backups are never overwritten (choose another name)")
        if module.check_mode:
            module.exit_json(changed=not p["src"], path=path, container=container)
        pg = DockerPostgres(run_process, p["docker_cli"], p["docker_host"], container, p["db_password"],
                            connect_timeout=p["connect_timeout"], step_timeout=p["connect_timeout"] + 55)
        if p["src"]:
            result = verify_existing(pg, p["src"], p["db_name"], p["admin_user"], p["verify"], p["timeout"])
        else:
            result = take_backup(pg, p["db_name"], p["db_user"], p["admin_user"], p["dest"], name, p["verify"],
                                 timeout=p["timeout"], lock_wait_timeout=p["lock_wait_timeout"],
                                 space_factor=p["space_factor"])
    except (BackupError, DockerError, OSError) as exc:
        module.fail_json(msg=f"backup of {p['db_name']} failed: {exc}", path=path,
                         timed_out=isinstance(exc, BackupTimeout))
    changed = not p["src"]
    if p["verify"] != "none" and not result["verified"]:
        module.fail_json(msg=f"backup {result['path']} is NOT verified ({p['verify']}): {result['verify']['error']}",
                         changed=changed, container=container, **result)
    module.exit_json(changed=changed, container=container, **result)


if __name__ == "__main__":
    main()
