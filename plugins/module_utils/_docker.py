# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Docker access for the diagnostic modules, needing nothing but the Docker daemon on the host:

* the Engine API over its socket (``unix:///var/run/docker.sock`` or ``tcp://host:port``) for listing,
  inspecting, ``docker stats --no-stream`` figures and logs: structured JSON, no CLI output to parse, and one
  connection per thread so containers are read concurrently;
* the ``docker`` CLI for ``docker exec`` (psql, redis-cli), exactly as the runbook does.

Containers of a service are found by the compose labels (``com.docker.compose.project`` and
``com.docker.compose.service``) and, failing that, by a container literally named like the service
(``api``, ``postgres``: production hosts with ``container_name``), with an optional ``-N`` replica suffix.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"


class DockerError(Exception):
    """The daemon could not be reached or refused a request; the message names the host and the remedy."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DockerApi:
    """A minimal Docker Engine API client; safe to share between threads (one connection per request)."""

    def __init__(self, host: str | None = None, timeout: float = 10.0, cli: str = "docker") -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self.timeout = timeout
        self.cli = cli
        parsed = urllib.parse.urlparse(self.host)
        if parsed.scheme == "unix":
            self._unix_path: str | None = parsed.path
            self._netloc = ""
        elif parsed.scheme in ("tcp", "http"):
            self._unix_path = None
            self._netloc = parsed.netloc
        else:
            raise DockerError(f"docker_host {self.host!r}: only unix:// and plain tcp:// daemons are supported; "
                              "run the module on the Docker host itself (delegate_to) for ssh:// or TLS daemons")

    @property
    def is_local(self) -> bool:
        """Whether the daemon is on this host (a unix socket): its containers' cgroups are readable here."""
        return self._unix_path is not None

    # --- Engine API ----------------------------------------------------------------------------
    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self._unix_path is not None:
            return _UnixHTTPConnection(self._unix_path, timeout or self.timeout)
        return http.client.HTTPConnection(self._netloc, timeout=timeout or self.timeout)

    def request(self, path: str, query: dict[str, Any] | None = None,
                timeout: float | None = None) -> tuple[int, bytes]:
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        conn = self._connection(timeout)
        try:
            conn.request("GET", url, headers={"Host": "docker"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DockerError(f"Docker daemon at {self.host} unreachable ({type(exc).__name__}: {exc}); "
                              "is Docker running and may this user use it (root or group docker)?") from exc
        finally:
            conn.close()

    def get_json(self, path: str, query: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        status, body = self.request(path, query, timeout)
        if status == 404:
            return None
        if status >= 400:
            raise DockerError(f"Docker API GET {path}: HTTP {status}: {_api_message(body)}")
        return json.loads(body.decode("utf-8")) if body else None

    def list_containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return self.get_json("/containers/json", {"all": "1", "filters": json.dumps(filters)}) or []

    def inspect(self, container: str) -> dict[str, Any] | None:
        return self.get_json(f"/containers/{urllib.parse.quote(container)}/json")

    def stats(self, container: str) -> dict[str, Any] | None:
        """One ``docker stats --no-stream`` sample: the daemon waits for two readings about a second apart."""
        return self.get_json(f"/containers/{urllib.parse.quote(container)}/stats", {"stream": "0"},
                             timeout=self.timeout + 5)

    def logs(self, container: str, since: int, tail: int) -> list[str]:
        """Lines of stdout and stderr since a Unix time, as ``docker logs --since`` (newest `tail` at most)."""
        status, body = self.request(f"/containers/{urllib.parse.quote(container)}/logs",
                                    {"stdout": "1", "stderr": "1", "since": str(since), "tail": str(tail)})
        if status >= 400:
            raise DockerError(f"docker logs {container}: HTTP {status}: {_api_message(body)}")
        return demux_log_stream(body).splitlines()

    def info(self) -> dict[str, Any]:
        return self.get_json("/info") or {}

    # --- CLI -----------------------------------------------------------------------------------
    def exec(self, container: str, argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
             timeout: float | None = None) -> subprocess.CompletedProcess:
        """``docker exec [-i] [-e NAME] container argv...``.

        Values of `env` travel in the environment of the docker CLI (``-e NAME`` without a value), never on
        its command line, so secrets do not show in ``ps``.
        """
        cmd = [self.cli, "exec"]
        if stdin is not None:
            cmd.append("-i")
        proc_env = dict(os.environ, DOCKER_HOST=self.host)
        for name, value in (env or {}).items():
            cmd += ["-e", name]
            proc_env[name] = value
        cmd.append(container)
        cmd += argv
        try:
            # Not AnsibleModule.run_command: it has no timeout, and a hung docker exec must not hang the check.
            return subprocess.run(  # pylint: disable=ansible-bad-function
                cmd, input=stdin, capture_output=True, text=True, env=proc_env, timeout=timeout or self.timeout,
                check=False)
        except FileNotFoundError as exc:
            raise DockerError(f"docker CLI {self.cli!r} not found on this host: install docker-ce-cli / docker.io "
                              "or set docker_cli") from exc
        except subprocess.TimeoutExpired as exc:
            raise DockerError(f"docker exec {container} {argv[0]} timed out after {exc.timeout}s") from exc


def _api_message(body: bytes) -> str:
    try:
        return str(json.loads(body.decode("utf-8")).get("message", "")).strip()
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:200].strip()


def demux_log_stream(data: bytes) -> str:
    """Decode a log stream: multiplexed 8-byte-header frames (no TTY) or raw bytes (TTY)."""
    if len(data) < 8 or data[0] not in (0, 1, 2) or data[1:4] != b"\x00\x00\x00":
        return data.decode("utf-8", "replace")
    out = []
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        out.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size
    return b"".join(out).decode("utf-8", "replace")


# --- containers of services --------------------------------------------------------------------------
def find_containers(api: DockerApi, project: str | None, services: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Containers (Engine API list entries) of the compose project, by service.

    Every container of the project is returned (other services too); a wanted service without a
    labelled container is looked up by name (``api``, ``api-1``) as on hosts using ``container_name``.
    """
    by_service: dict[str, list[dict[str, Any]]] = {}
    if project:
        for entry in api.list_containers({"label": [f"{PROJECT_LABEL}={project}"]}):
            service = (entry.get("Labels") or {}).get(SERVICE_LABEL) or container_name(entry)
            by_service.setdefault(service, []).append(entry)
    for service in services:
        if by_service.get(service):
            continue
        wanted = re.compile(rf"^/{re.escape(service)}(-[0-9]+)?$")
        found = [e for e in api.list_containers({"name": [service]})
                 if any(wanted.match(n) for n in e.get("Names") or [])]
        if found:
            by_service[service] = found
    for entries in by_service.values():
        entries.sort(key=container_name)
    return by_service


def container_name(entry: dict[str, Any]) -> str:
    names = entry.get("Names") or [entry.get("Name") or entry.get("Id", "")[:12]]
    return names[0].lstrip("/")


def pick_running(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The first running container of a service (for docker exec), else None."""
    for entry in entries or []:
        if entry.get("State") == "running":
            return entry
    return None


def describe(inspect: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The figures of ``docker ps``/``docker inspect`` the health check reports, from an inspect document."""
    state = inspect.get("State") or {}
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    started = parse_docker_time(state.get("StartedAt"))
    running = state.get("Status") == "running"
    now = time.time() if now is None else now
    return {
        "name": (inspect.get("Name") or "").lstrip("/"),
        "id": (inspect.get("Id") or "")[:12],
        "service": labels.get(SERVICE_LABEL) or (inspect.get("Name") or "").lstrip("/"),
        "image": (inspect.get("Config") or {}).get("Image"),
        "state": state.get("Status"),
        "health": (state.get("Health") or {}).get("Status", "none"),
        "restart_count": inspect.get("RestartCount", 0),
        "exit_code": state.get("ExitCode"),
        "oom_killed": bool(state.get("OOMKilled")),
        "started_at": state.get("StartedAt") if started else None,
        "uptime_seconds": round(now - started, 1) if running and started else None,
        "restart_policy": ((inspect.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no",
    }


def parse_docker_time(value: str | None) -> float | None:
    """Docker's RFC 3339 nanosecond timestamps ("2024-05-01T10:00:00.123456789Z") as Unix time; None when unset."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return None
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3)
    offset = 0 if tz == "Z" else (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=timezone.utc).timestamp() - offset + frac


def stats_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """CPU % and memory of one stats sample, computed as ``docker stats`` does."""
    cpu = stats.get("cpu_stats") or {}
    pre = stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_percent = round(cpu_delta / sys_delta * online * 100.0, 2) if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    usage = mem.get("usage")
    if usage is not None:
        # cgroup v2 reports inactive_file, v1 total_inactive_file: both are page cache docker stats leaves out.
        cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
        usage = max(usage - cache, 0) if cache < usage else usage
    limit = mem.get("limit")
    return {
        "cpu_percent": cpu_percent,
        "memory_bytes": usage,
        "memory_limit_bytes": limit,
        "memory_percent": round(usage / limit * 100.0, 2) if usage is not None and limit else None,
        "pids": (stats.get("pids_stats") or {}).get("current"),
    }


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: str | int | float) -> float:
    """'15m', '90s', '2h', '1d' or a number of seconds, as seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    m = _SINCE.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
