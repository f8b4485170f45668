# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Redis access of the diagnostic modules: ``PING`` and ``INFO`` in one round trip, either through
``docker exec -i <redis container> redis-cli`` (commands on stdin, as the runbook's ``docker exec redis
redis-cli ping``) or over TCP with a few lines of RESP (standard library only).
"""

from __future__ import annotations

import socket
from typing import Any

from ._docker import DockerApi, DockerError


class RedisError(Exception):
    """Redis did not answer PING with PONG; the message says why."""


def parse_info(text: str) -> dict[str, Any]:
    """``INFO`` output as a dict; numbers converted, ``dbN`` keyspace lines as dicts."""
    out: dict[str, Any] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _sep, value = line.partition(":")
        if key.startswith("db") and key[2:].isdigit() and "=" in value:
            out[key] = {k: _number(v) for k, _sep, v in (p.partition("=") for p in value.split(","))}
        else:
            out[key] = _number(value)
    return out


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def split_cli_output(stdout: str) -> tuple[str, str]:
    """redis-cli's answers to ``PING`` and ``INFO`` read from stdin: (first line, the rest)."""
    text = stdout.replace("\r\n", "\n")
    first, _sep, rest = text.partition("\n")
    return first.strip(), rest


def ping_info_via_docker(api: DockerApi, container: str, password: str | None = None, db: int = 0,
                         timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
    argv = ["redis-cli", "-n", str(int(db))]
    env = {"REDISCLI_AUTH": password} if password else None
    try:
        proc = api.exec(container, argv, stdin="PING\nINFO\n", env=env, timeout=timeout)
    except DockerError as exc:
        raise RedisError(str(exc)) from exc
    pong, rest = split_cli_output(proc.stdout)
    if proc.returncode != 0 or pong != "PONG":
        detail = " ".join((proc.stderr.strip() or pong or f"redis-cli exited {proc.returncode}").split())
        raise RedisError(f"redis-cli in container {container}: {detail}"[:500])
    return pong, parse_info(rest)


class _Resp:
    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def read(self) -> Any:
        line = self.file.readline()
        if not line:
            raise RedisError("connection closed by the server")
        kind, body = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RedisError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            return [self.read() for _item in range(int(body))]
        raise RedisError(f"unexpected reply {line[:40]!r}")


def _command(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def ping_info_via_tcp(host: str, port: int, password: str | None = None, db: int = 0,
                      timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise RedisError(f"Redis at {host}:{port} unreachable: {exc}") from exc
    try:
        request = b""
        if password:
            request += _command("AUTH", password)
        if db:
            request += _command("SELECT", str(int(db)))
        sock.sendall(request + _command("PING") + _command("INFO"))
        reader = _Resp(sock)
        if password:
            reader.read()
        if db:
            reader.read()
        pong = reader.read()
        info = reader.read()
    except (OSError, ValueError) as exc:
        raise RedisError(f"Redis at {host}:{port}: {exc}") from exc
    finally:
        sock.close()
    if pong != "PONG":
        raise RedisError(f"Redis at {host}:{port} answered {pong!r} to PING")
    return pong, parse_info(info or "")
