"""A small client for the lab, used by integration tests and benchmarks.

It drives the real lab through its own control script (lab/scripts/lab.sh), the Docker CLI and HTTP.
LAB_INSTANCE selects a lab other than the default one (see lab/README.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "lab"
LAB_SH = LAB_DIR / "scripts" / "lab.sh"


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _sep, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


class Lab:
    def __init__(self, instance: str | None = None, port_offset: int | None = None,
                 bind_address: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.instance = instance or os.environ.get("LAB_INSTANCE", "tsops")
        self.port_offset = port_offset
        self.bind_address = bind_address
        self.extra_env = dict(extra_env or {})
        if self.instance == "tsops":
            self.state_dir = LAB_DIR / ".state"
            self.env_file = LAB_DIR / ".env"
            self.inventory = LAB_DIR / "inventory.yml"
        else:
            self.state_dir = LAB_DIR / ".state" / "instances" / self.instance
            self.env_file = self.state_dir / ".env"
            self.inventory = self.state_dir / "inventory.yml"

    # --- control -------------------------------------------------------------------------------
    def script(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        env = dict(os.environ, LAB_INSTANCE=self.instance, **self.extra_env)
        if self.port_offset is not None:
            env["LAB_PORT_OFFSET"] = str(self.port_offset)
        if self.bind_address is not None:
            env["LAB_BIND_ADDRESS"] = self.bind_address
        return subprocess.run([str(LAB_SH), *args], env=env, check=check, timeout=timeout,
                              capture_output=True, text=True)

    def up(self) -> None:
        proc = self.script("up", check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"lab up failed:\n{proc.stdout}\n{proc.stderr}")

    @contextlib.contextmanager
    def running(self, wipe: bool = False) -> Iterator[Lab]:
        """Up for the duration of a `with` block, and down (or wiped) afterwards whatever happens, also when `up`
        itself fails: a half-started instance is never left behind."""
        try:
            self.up()
            yield self
        finally:
            self.script("wipe" if wipe else "down", check=False)

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.script("compose", *args, check=check, timeout=timeout)

    @property
    def env(self) -> dict[str, str]:
        return read_env_file(self.env_file)

    def url(self, what: str) -> str:
        port = self.env[f"LAB_{what.upper()}_PORT"]
        host = self.env.get("LAB_BIND_ADDRESS", "127.0.0.1")
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"

    @property
    def token(self) -> str:
        return self.env["LAB_API_TOKEN"]

    # --- containers ----------------------------------------------------------------------------
    def containers(self, service: str, all_states: bool = False) -> list[str]:
        args = ["docker", "ps", "-q", "--no-trunc",
                "--filter", f"label=com.docker.compose.project={self.instance}",
                "--filter", f"label=com.docker.compose.service={service}"]
        if all_states:
            args.append("-a")
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        return sorted(out.split())

    def container(self, service: str) -> str:
        ids = self.containers(service)
        if not ids:
            raise RuntimeError(f"no running container for service {service}")
        return ids[0]

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=timeout)

    def psql(self, sql: str, timeout: float = 60) -> str:
        """Run SQL as orchestrator inside the postgres container; unaligned, tuples only."""
        proc = self.docker("exec", "-i", self.container("postgres"), "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                           "-U", "orchestrator", "-d", "orchestrator", "-At", "-c", sql, timeout=timeout)
        return proc.stdout.strip()

    def scalar(self, sql: str) -> int:
        return int(self.psql(sql) or 0)

    # --- HTTP ----------------------------------------------------------------------------------
    def http(self, method: str, path: str, body: Any = None, token: str | None = "default",
             base: str | None = None, timeout: float = 10) -> tuple[int, Any]:
        url = (base or self.url("api")) + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token == "default":
            token = self.token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def status_of(self, path: str, **kw: Any) -> int:
        try:
            return self.http("GET", path, token=None, **kw)[0]
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0


def wait_until(fn: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll fn until it returns a truthy value; that value is returned. TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - polled conditions may fail while services restart
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
