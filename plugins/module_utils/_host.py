# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Host resources of the managed host, read from /proc and statvfs (the runbook's ``df -h`` and ``free -h``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

# File systems that hold data; pseudo and per-container file systems (proc, tmpfs, overlay, ...) are left out.
DATA_FSTYPES = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "vfat", "exfat", "ntfs", "ntfs3",
    "nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "fuseblk", "lvm2",
})
_SKIP_PREFIXES = ("/proc", "/sys", "/dev", "/run", "/snap", "/var/lib/docker/overlay2", "/var/lib/docker/containers")


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def memory(meminfo_path: str = "/proc/meminfo") -> dict[str, Any]:
    with open(meminfo_path, encoding="ascii") as fh:
        info = parse_meminfo(fh.read())
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
    swap_total = info.get("SwapTotal", 0)
    return {
        "total_bytes": total,
        "available_bytes": available,
        "used_bytes": total - available,
        "used_ratio": round((total - available) / total, 4) if total else None,
        "swap_total_bytes": swap_total,
        "swap_used_bytes": swap_total - info.get("SwapFree", 0),
    }


def parse_mounts(text: str) -> list[tuple[str, str, str]]:
    """(device, mount point, fs type) of /proc/mounts, octal escapes (\\040) decoded."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[0], _unescape(parts[1]), parts[2]))
    return out


def _unescape(path: str) -> str:
    return path.encode("ascii", "replace").decode("unicode_escape") if "\\" in path else path


def data_mounts(mounts: Iterable[tuple[str, str, str]]) -> list[str]:
    return [mp for _device, mp, fstype in mounts
            if fstype in DATA_FSTYPES and not any(mp == p or mp.startswith(p + "/") for p in _SKIP_PREFIXES)]


def disk(path: str) -> dict[str, Any]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize  # what non-root users can still write, as df's "Avail"
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return {
        "path": path,
        "total_bytes": total,
        "used_bytes": used,
        "free_bytes": free,
        "free_ratio": round(free / total, 4) if total else None,
        "inodes_free_ratio": round(st.f_favail / st.f_files, 4) if st.f_files else None,
        "device": os.stat(path).st_dev,
    }


def disks(paths: Iterable[str], mounts_path: str = "/proc/mounts") -> tuple[list[dict[str, Any]], list[str]]:
    """Free space of every data mount, then of `paths`: one entry per file system, named by the first path seen on
    it (mount points first), the other paths on it under ``also``; plus the paths that could not be read."""
    try:
        with open(mounts_path, encoding="utf-8", errors="replace") as fh:
            candidates = data_mounts(parse_mounts(fh.read()))
    except OSError:
        candidates = ["/"]
    by_device: dict[int, dict[str, Any]] = {}
    errors = []
    for path in candidates + [p for p in paths if p not in candidates]:
        try:
            entry = disk(path)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        device = entry.pop("device")
        if device in by_device:
            by_device[device].setdefault("also", []).append(path)
        else:
            by_device[device] = entry
    return list(by_device.values()), errors


def load() -> dict[str, Any]:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return {"cpus": os.cpu_count()}
    return {"cpus": os.cpu_count(), "load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}
