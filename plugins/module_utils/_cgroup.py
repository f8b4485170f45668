# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

``docker stats --no-stream`` figures read straight from the containers' cgroups, when the module runs on the
Docker host: the same numbers the daemon computes (CPU time over wall time, memory less inactive page cache,
processes), from two readings `interval` apart instead of the daemon's two samples a second apart or more.
Containers whose cgroup is not found (another cgroup layout, a remote daemon, rootless Docker) are left to the
Engine API (_docker.DockerApi.stats).

Layouts: cgroup v2 with the systemd driver (``system.slice/docker-<id>.scope``) or the cgroupfs driver
(``docker/<id>``), and cgroup v1 with either (``cpuacct/...``, ``memory/...``, ``pids/...``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

ROOT = "/sys/fs/cgroup"
_UNLIMITED = 1 << 60  # v1 reports "no limit" as a page-aligned 2^63-ish number


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _stat_value(text: str | None, key: str) -> int | None:
    for line in (text or "").splitlines():
        name, _sep, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


class ContainerCgroup:
    """Where one container's counters live, or `found` False."""

    def __init__(self, container_id: str, root: str = ROOT) -> None:
        self.id = container_id
        self.v2: str | None = None
        self.cpu: str | None = None
        self.memory: str | None = None
        self.pids: str | None = None
        for rel in (f"system.slice/docker-{container_id}.scope", f"docker/{container_id}"):
            path = os.path.join(root, rel)
            if os.path.exists(os.path.join(path, "cpu.stat")) and os.path.exists(os.path.join(path, "memory.current")):
                self.v2 = path
                return
        for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
            for controller in ("cpuacct", "cpu,cpuacct"):
                path = os.path.join(root, controller, rel)
                if self.cpu is None and os.path.exists(os.path.join(path, "cpuacct.usage")):
                    self.cpu = path
            path = os.path.join(root, "memory", rel)
            if self.memory is None and os.path.exists(os.path.join(path, "memory.usage_in_bytes")):
                self.memory = path
            path = os.path.join(root, "pids", rel)
            if self.pids is None and os.path.exists(os.path.join(path, "pids.current")):
                self.pids = path

    @property
    def found(self) -> bool:
        return self.v2 is not None or (self.cpu is not None and self.memory is not None)

    def cpu_ns(self) -> int | None:
        if self.v2:
            usec = _stat_value(_read(os.path.join(self.v2, "cpu.stat")), "usage_usec")
            return usec * 1000 if usec is not None else None
        text = _read(os.path.join(self.cpu, "cpuacct.usage")) if self.cpu else None
        return int(text) if text and text.isdigit() else None

    def memory_figures(self, host_memory: int | None) -> dict[str, Any]:
        if self.v2:
            usage_text = _read(os.path.join(self.v2, "memory.current"))
            limit_text = _read(os.path.join(self.v2, "memory.max"))
            cache = _stat_value(_read(os.path.join(self.v2, "memory.stat")), "inactive_file") or 0
            pids_text = _read(os.path.join(self.v2, "pids.current"))
        else:
            usage_text = _read(os.path.join(self.memory, "memory.usage_in_bytes"))
            limit_text = _read(os.path.join(self.memory, "memory.limit_in_bytes"))
            stat = _read(os.path.join(self.memory, "memory.stat"))
            cache = _stat_value(stat, "total_inactive_file")
            cache = cache if cache is not None else (_stat_value(stat, "inactive_file") or 0)
            pids_text = _read(os.path.join(self.pids, "pids.current")) if self.pids else None
        usage = int(usage_text) if usage_text and usage_text.isdigit() else None
        if usage is not None and cache < usage:
            usage -= cache
        limit = int(limit_text) if limit_text and limit_text.isdigit() else None
        if limit is None or limit >= _UNLIMITED:
            limit = host_memory  # like docker stats: no limit shows the host's memory
        return {
            "memory_bytes": usage,
            "memory_limit_bytes": limit,
            "memory_percent": round(usage / limit * 100.0, 2) if usage is not None and limit else None,
            "pids": int(pids_text) if pids_text and pids_text.isdigit() else None,
        }


def host_memory_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    text = _read(meminfo)
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def sample(container_ids: Iterable[str], interval: float = 0.5, root: str = ROOT) -> dict[str, dict[str, Any]]:
    """CPU % (100 = one CPU, as docker stats) and memory of the containers whose cgroup is found, by full ID."""
    groups = [g for g in (ContainerCgroup(cid, root) for cid in container_ids) if g.found]
    if not groups:
        return {}
    first = {g.id: g.cpu_ns() for g in groups}
    t0 = time.monotonic()
    time.sleep(interval)
    wall_ns = (time.monotonic() - t0) * 1e9
    host_memory = host_memory_bytes()
    out = {}
    for g in groups:
        now, before = g.cpu_ns(), first[g.id]
        cpu = round(max(now - before, 0) / wall_ns * 100.0, 2) if now is not None and before is not None else None
        out[g.id] = dict(g.memory_figures(host_memory), cpu_percent=cpu)
    return out
