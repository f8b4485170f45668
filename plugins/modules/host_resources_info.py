#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_resources_info
short_description: Disk free per mount, memory and load of the Docker host
version_added: 0.1.0
description:
  - The runbook's C(df -h), C(df -h /var/lib/docker/volumes/) and C(free -h), read from C(/proc) and C(statvfs).
  - The Docker daemon (O(docker_host)) is asked for its root directory, whose file system is always checked; a daemon
    that does not answer is not an error.
  - Every data file system (ext4, xfs, btrfs, zfs, nfs, ...; not tmpfs, overlay or other pseudo file systems) is
    reported once, plus the file systems of O(disk_paths) and of the Docker root directory.
  - A file system with less free space (or free inodes) than the DiskSpaceCritical share, or memory use above the
    MemoryUsageCritical share, is V(degraded).
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
  platform:
    platforms: linux
options:
  disk_paths:
    description:
      - Paths whose file systems are checked besides the data mounts; a path on a file system already reported is
        listed in its RV(disks[].also).
    type: list
    elements: path
    default: []
seealso:
  - module: taskscheduler.ops.system_health
  - module: ansible.builtin.setup
"""

EXAMPLES = r"""
- name: Disk and memory of the Docker host (runbook DiskSpaceCritical / MemoryUsageCritical)
  taskscheduler.ops.host_resources_info:
    disk_paths: [/var/lib/docker/volumes]
  register: host

- name: Show the fullest file system
  ansible.builtin.debug:
    msg: "{{ host.disks | sort(attribute='free_ratio') | first }}"
"""

RETURN = r"""
extends_documentation_fragment:
  - taskscheduler.ops.diagnostics
status:
  description: Verdict, V(healthy) or V(degraded).
  returned: always
  type: str
  sample: healthy
reasons:
  description: Why the verdict is not V(healthy).
  returned: always
  type: list
  elements: str
  sample: ["disk /var/lib/docker: 7% free (< 10%, DiskSpaceCritical)"]
notes:
  description: Paths that could not be read.
  returned: always
  type: list
  elements: str
  sample: []
error:
  description: Always null.
  returned: always
  type: str
  sample: null
summary:
  description: One line with the verdict and key figures.
  returned: always
  type: str
  sample: "host        HEALTHY  lowest disk / 30% free, memory 7% used of 23.5 GiB, load 0.41 on 2 cpus"
disks:
  description: One entry per file system.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The first path seen on the file system (its mount point for a data mount).
      type: str
      sample: /
    also:
      description: Other checked paths on the same file system (e.g. the Docker root directory).
      type: list
      elements: str
      returned: when there are any
      sample: [/var/lib/docker]
    total_bytes:
      description: Size.
      type: int
      sample: 270553174016
    used_bytes:
      description: Used space.
      type: int
      sample: 27179909120
    free_bytes:
      description: Space available to unprivileged users (C(df)'s Avail).
      type: int
      sample: 81764384768
    free_ratio:
      description: RV(disks[].free_bytes) / RV(disks[].total_bytes).
      type: float
      sample: 0.3022
    inodes_free_ratio:
      description: Free inodes / inodes (null when the file system has no fixed inode count).
      type: float
      sample: 0.9676
memory:
  description: From C(/proc/meminfo).
  returned: always
  type: dict
  contains:
    total_bytes:
      description: C(MemTotal).
      type: int
      sample: 25276059648
    available_bytes:
      description: C(MemAvailable).
      type: int
      sample: 23633000000
    used_bytes:
      description: Total less available.
      type: int
      sample: 1643059648
    used_ratio:
      description: Used / total.
      type: float
      sample: 0.065
    swap_total_bytes:
      description: C(SwapTotal).
      type: int
      sample: 0
    swap_used_bytes:
      description: Swap in use.
      type: int
      sample: 0
load:
  description: C(cpus) and the load averages C(load_1m), C(load_5m), C(load_15m).
  returned: always
  type: dict
  sample: {cpus: 2, load_1m: 0.41, load_5m: 0.52, load_15m: 0.6}
"""

from ansible_collections.taskscheduler.ops.plugins.module_utils._diag_module import (
    CONNECTION_ARGS,
    host_resources_info,
    run_module,
)


def main() -> None:
    run_module(dict(CONNECTION_ARGS, disk_paths=dict(type="list", elements="path", default=[])), host_resources_info,
               "host_resources_info")


if __name__ == "__main__":
    main()
