"""Configuration, logging and database helpers shared by every lab process."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

import asyncpg


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


def database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    user = env("POSTGRES_USER", "orchestrator")
    password = env("POSTGRES_PASSWORD", "orchestrator_pw")
    host = env("POSTGRES_HOST", "postgres")
    port = env("POSTGRES_PORT", "5432")
    db = env("POSTGRES_DB", "orchestrator")
    return f"postgresql://{user}:{password}@{host}:{port}/{db}"


def setup_logging(component: str) -> logging.Logger:
    """Plain text lines with the level spelled out, so `docker logs X | grep ERROR` works as in the runbook."""
    logging.basicConfig(
        stream=sys.stdout,
        level=env("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s {component} %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return logging.getLogger(component)


CGROUP_ROOT = "/sys/fs/cgroup"
UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a number near 2**63


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def container_memory(root: str = CGROUP_ROOT) -> tuple[int | None, int | None]:
    """(working set, limit) of this container's memory cgroup in bytes, as `docker stats` computes them:
    usage minus inactive page cache. The limit is None when the container has none. cgroup v2 and v1."""
    if _read_int(f"{root}/memory.current") is not None or _read_int(f"{root}/memory.max") is not None:
        usage = _read_int(f"{root}/memory.current")
        limit = _read_int(f"{root}/memory.max")  # "max" (no limit) is not a number
        inactive = _stat_value(f"{root}/memory.stat", "inactive_file")
    else:
        usage = _read_int(f"{root}/memory/memory.usage_in_bytes")
        limit = _read_int(f"{root}/memory/memory.limit_in_bytes")
        inactive = _stat_value(f"{root}/memory/memory.stat", "total_inactive_file")
    if limit is not None and limit >= UNLIMITED:
        limit = None
    working_set = None if usage is None else max(usage - inactive, 0)
    return working_set, limit


class ContainerMemoryCollector:
    """Prometheus collector: this container's memory working set and limit (MemoryUsageCritical in the lab)."""

    def __init__(self, root: str = CGROUP_ROOT) -> None:
        self.root = root

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        working_set, limit = container_memory(self.root)
        if working_set is not None:
            yield GaugeMetricFamily("taskscheduler_container_memory_working_set_bytes",
                                    "Memory in use by this container (usage minus inactive page cache)",
                                    value=working_set)
        if limit is not None:
            yield GaugeMetricFamily("taskscheduler_container_memory_limit_bytes",
                                    "Memory limit of this container (absent when it has none)", value=limit)


def register_container_metrics() -> None:
    """Add the container memory collector to the default registry (once per process)."""
    from prometheus_client import REGISTRY

    REGISTRY.register(ContainerMemoryCollector())


def secret_equals(given: str, expected: str) -> bool:
    """Constant-time comparison of a credential from a request with the expected one.

    hmac.compare_digest refuses str with non-ASCII characters (TypeError, a 500 to the client), and aiohttp hands
    header bytes over as str (invalid UTF-8 as surrogates): both sides are compared as bytes instead, so any header
    is simply a mismatch.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def instance_id() -> str:
    return os.environ.get("WORKER_ID") or socket.gethostname()


async def create_pool(max_size: int = 10) -> asyncpg.Pool:
    """A pool that opens no connection up front, so a process starts even while PostgreSQL is down."""
    return await asyncpg.create_pool(
        database_url(), min_size=0, max_size=max_size, command_timeout=env_float("DB_COMMAND_TIMEOUT", 10.0),
        timeout=env_float("DB_CONNECT_TIMEOUT", 3.0),
    )


def install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True when stop was requested meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False


async def retry_forever(log: logging.Logger, what: str, fn: Callable[[], Awaitable[None]], stop: asyncio.Event,
                        delay: float = 1.0) -> None:
    """Run fn until it succeeds or stop is set, logging each failure at ERROR level."""
    while not stop.is_set():
        try:
            await fn()
            return
        except Exception as exc:  # noqa: BLE001 - every failure is logged and retried
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
            await sleep_or_stop(stop, delay)
