"""How busy the HOST was with other work while a test measured the lab: judged from host figures, never from the
system under test (the API's own errors and latency are what the tests exist to judge).

Over a window, from the kernel's own counters:
* /proc/stat: CPU time busy (not idle, not iowait) and stolen by the hypervisor, as cores and as a fraction;
* the lab instance's containers' CPU time (cgroup v1 cpuacct.usage or cgroup v2 cpu.stat usage_usec), sampled so a
  container that leaves during the window (`compose run --rm`) still counts;
* other work = busy cores - the lab's cores: what the rest of the machine (other labs, builds, a disk hog) used;
* /proc/pressure/cpu `some` (share of the window in which a runnable task waited) and the load average per core,
  reported for the record (they include the lab itself, so they do not decide).

The host was overloaded when other work used more than OTHER_WORK_MAX of the CPUs, or when the hypervisor stole
more than STEAL_MAX of the CPU time. When the lab's cgroups cannot be read, only steal decides (and the figures say
so).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

OTHER_WORK_MAX = 0.5  # other work on more than half the CPUs: the lab got less than it needs to be judged alone
STEAL_MAX = 0.2  # a fifth of the CPU time taken by the hypervisor
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # jiffies (USER_HZ) not idle and not iowait
    total: int
    steal: int


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice.
    guest time is already counted in user/nice, so it is not added again."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]] + [0] * 10
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            total = user + nice + system + idle + iowait + irq + softirq + steal
            return CpuTimes(busy=user + nice + system + irq + softirq + steal, total=total, steal=steal)
    raise ValueError("no aggregate `cpu` line in /proc/stat")


def parse_pressure_total(text: str) -> int | None:
    """The `some` line's total (microseconds a runnable task waited for a CPU) of /proc/pressure/cpu."""
    for line in text.splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                key, _sep, value = item.partition("=")
                if key == "total":
                    return int(value)
    return None


def container_cpu_ns(container_id: str, root: Path = CGROUP_ROOT) -> int | None:
    """CPU time (ns) of one container from its cgroup (v1 cpuacct, v2 systemd or cgroupfs driver), or None."""
    v1 = [root / "cpuacct" / "docker" / container_id / "cpuacct.usage",
          root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage"]
    for path in v1:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    v2 = [root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat",
          root / "docker" / container_id / "cpu.stat"]
    for path in v2:
        try:
            for line in path.read_text().splitlines():
                key, _sep, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) * 1000
        except (OSError, ValueError):
            continue
    return None


@dataclass
class HostFigures:
    seconds: float
    cpus: int
    busy_cores: float
    steal_fraction: float
    lab_cores: float | None  # None: the lab's cgroups could not be read
    pressure_some: float | None  # share of the window with a runnable task waiting (includes the lab)
    load_per_core: float  # 1-minute load average at the end, per CPU (includes the lab)

    @property
    def other_cores(self) -> float | None:
        return None if self.lab_cores is None else max(0.0, self.busy_cores - self.lab_cores)

    @property
    def overloaded(self) -> bool:
        other = self.other_cores
        return self.steal_fraction > STEAL_MAX or (other is not None and other > OTHER_WORK_MAX * self.cpus)

    def describe(self) -> str:
        other = "unknown (lab cgroups unreadable)" if self.other_cores is None else f"{self.other_cores:.2f}"
        lab = "unknown" if self.lab_cores is None else f"{self.lab_cores:.2f}"
        psi = "n/a" if self.pressure_some is None else f"{self.pressure_some:.0%}"
        verdict = "OVERLOADED by other work" if self.overloaded else "not overloaded by other work"
        return (f"host over {self.seconds:.0f}s on {self.cpus} CPUs: busy {self.busy_cores:.2f} cores, lab "
                f"{lab}, other work {other} (max {OTHER_WORK_MAX * self.cpus:.1f}), steal {self.steal_fraction:.1%} "
                f"(max {STEAL_MAX:.0%}), cpu pressure {psi}, load/core {self.load_per_core:.2f}: {verdict}")


def figures_between(start: CpuTimes, end: CpuTimes, seconds: float, cpus: int, lab_ns: int | None,
                    pressure_us: int | None, load_per_core: float) -> HostFigures:
    """Pure: the figures of a window from the counters at its two ends."""
    total = max(1, end.total - start.total)
    busy_fraction = (end.busy - start.busy) / total
    steal_fraction = (end.steal - start.steal) / total
    seconds = max(seconds, 1e-6)
    return HostFigures(seconds=seconds, cpus=cpus, busy_cores=busy_fraction * cpus, steal_fraction=steal_fraction,
                       lab_cores=None if lab_ns is None else lab_ns / 1e9 / seconds,
                       pressure_some=None if pressure_us is None else min(1.0, pressure_us / 1e6 / seconds),
                       load_per_core=load_per_core)


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


@dataclass
class HostMonitor:
    """Measures a window: start(), sample() now and then (every few seconds), stop() -> HostFigures."""

    instance: str
    started: float = 0.0
    cpu_start: CpuTimes | None = None
    pressure_start: int | None = None
    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    readable: bool = True

    def lab_containers(self) -> list[str]:
        proc = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter",
                               f"label=com.docker.compose.project={self.instance}"],
                              capture_output=True, text=True, timeout=30, check=False)
        return proc.stdout.split() if proc.returncode == 0 else []

    def sample(self, initial: bool = False) -> None:
        for cid in self.lab_containers():
            ns = container_cpu_ns(cid)
            if ns is None:
                self.readable = False
                continue
            # a container first seen after the start (the load generator) counts from its creation
            self.first.setdefault(cid, ns if initial else 0)
            self.last[cid] = ns

    def start(self) -> None:
        self.started = time.monotonic()
        self.cpu_start = parse_proc_stat(Path("/proc/stat").read_text())
        self.pressure_start = parse_pressure_total(read_text("/proc/pressure/cpu") or "")
        self.sample(initial=True)

    def stop(self) -> HostFigures:
        self.sample()
        seconds = time.monotonic() - self.started
        end = parse_proc_stat(Path("/proc/stat").read_text())
        pressure_end = parse_pressure_total(read_text("/proc/pressure/cpu") or "")
        pressure = (pressure_end - self.pressure_start
                    if pressure_end is not None and self.pressure_start is not None else None)
        lab_ns = sum(self.last[c] - self.first[c] for c in self.last) if self.readable and self.last else None
        cpus = os.cpu_count() or 1
        assert self.cpu_start is not None, "HostMonitor.stop() before start()"
        return figures_between(self.cpu_start, end, seconds, cpus, lab_ns, pressure, os.getloadavg()[0] / cpus)


def measure(instance: str, seconds: float, interval: float = 5.0) -> HostFigures:
    """The figures of the next `seconds`."""
    monitor = HostMonitor(instance)
    monitor.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        monitor.sample()
    return monitor.stop()


def wait_for_calm(instance: str, timeout: float, window: float = 15.0) -> tuple[bool, list[HostFigures]]:
    """Measure windows until one is not overloaded by other work, at most `timeout` seconds: (calm, windows)."""
    windows: list[HostFigures] = []
    deadline = time.monotonic() + timeout
    while True:
        windows.append(measure(instance, window))
        if not windows[-1].overloaded:
            return True, windows
        if time.monotonic() + window > deadline:
            return False, windows


# --- the verdict of "a healthy lab under load fires nothing" ---------------------------------------------------------
ERROR_RATE_MAX = 0.01  # more than 1 % of the load generator's requests failed: the API is not healthy
P95_MAX_SECONDS = 2.0  # the HighAPILatency threshold


def load_problems(summary: dict, min_requests: int, alerts_seen: list[str], notified: list[dict]) -> list[str]:
    """Pure: what was wrong in one run of the load generator against the lab (empty: healthy and quiet)."""
    problems: list[str] = []
    requests = int(summary.get("requests") or 0)
    failed = sum(n for s, n in (summary.get("statuses") or {}).items() if str(s)[:1] not in "234")
    if requests < min_requests:
        problems.append(f"only {requests} requests (expected more than {min_requests})")
    if requests and failed / requests > ERROR_RATE_MAX:
        problems.append(f"{failed} of {requests} requests failed (max {ERROR_RATE_MAX:.0%})")
    p95 = summary.get("p95_seconds")
    if p95 is None or p95 > P95_MAX_SECONDS:
        problems.append(f"p95 latency {p95}s (max {P95_MAX_SECONDS}s)")
    firing = sorted(a for a in alerts_seen if a.endswith("/firing"))
    if firing:
        problems.append(f"alerts fired: {firing}")
    if notified:
        problems.append(f"{len(notified)} firing notification(s) reached the receiver")
    return problems


def decide(problems: list[str], figures: HostFigures, attempt: int, attempts: int) -> str:
    """Pure: "pass" when nothing was wrong; "retry" when something was but the host was overloaded by other work
    and an attempt is left; otherwise "fail". Never a skip: an unhealthy API on a calm host is the regression the
    test exists to catch, and a host that stays overloaded is reported with its figures."""
    if not problems:
        return "pass"
    if figures.overloaded and attempt < attempts:
        return "retry"
    return "fail"
