"""Configuration, logging and database helpers shared by every lab process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Awaitable, Callable

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
    except asyncio.TimeoutError:
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
