"""Helpers for the incident-lifecycle integration tests: real ansible-playbook runs and real loopback receivers.

* ``Playbook``: runs ``ansible-playbook`` (a subprocess) with the collection loaded from this work tree, against a
  localhost inventory, and returns the process (stdout, rc).
* ``HTTPReceiver``: an HTTP server on 127.0.0.1 (random free port) that stores every request and answers with a
  status code the test chooses per path (Slack-compatible webhook, SMS/phone gateway).
* ``SMTPSink``: a real SMTP server (aiosmtpd) on 127.0.0.1 (random free port) that keeps each message.
* ``alertmanager_url()``: the lab's Alertmanager, or a failure naming why it is not there.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import Lab

REPO = Path(__file__).resolve().parents[2]


def collections_dir(base: Path) -> Path:
    """``base/ansible_collections/taskscheduler/ops`` -> this work tree (independent of the ignored collections/)."""
    link = base / "ansible_collections" / "taskscheduler" / "ops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)
    return base


def ansible_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Playbook:
    """Write and run playbooks with ansible-playbook against localhost."""

    def __init__(self, workdir: Path, collections: Path, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.collections = collections
        self.extra_env = extra_env or {}
        self.inventory = workdir / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_CONFIG=str(self.workdir / "none.cfg"),  # no repository ansible.cfg (its lab inventory)
            ANSIBLE_LOCAL_TEMP=str(self.workdir / ".ansible-tmp"),
            ANSIBLE_HOME=str(self.workdir / ".ansible"),
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_DEPRECATION_WARNINGS="0",
            ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        )
        env.update(self.extra_env)
        return env

    def run(self, playbook: str | Path | list[dict[str, Any]], extra_vars: dict[str, Any] | None = None,
            check: bool = False, diff: bool = False, timeout: float = 300, expect_rc: int | None = 0,
            inventory: Path | None = None) -> subprocess.CompletedProcess:
        if isinstance(playbook, list):
            path = self.workdir / f"play-{time.monotonic_ns()}.yml"
            path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        else:
            path = Path(playbook)
        args = [ansible_bin("ansible-playbook"), "-i", str(inventory or self.inventory), str(path)]
        if extra_vars:
            vars_file = self.workdir / f"vars-{time.monotonic_ns()}.json"
            vars_file.write_text(json.dumps(extra_vars))
            args += ["-e", f"@{vars_file}"]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        proc = subprocess.run(args, cwd=self.workdir, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if expect_rc is not None and proc.returncode != expect_rc:
            raise AssertionError(f"ansible-playbook rc={proc.returncode} (expected {expect_rc})\n"
                                 f"--- stdout\n{proc.stdout[-12000:]}\n--- stderr\n{proc.stderr[-4000:]}")
        return proc


def recap(proc: subprocess.CompletedProcess, host: str = "localhost") -> dict[str, int]:
    """The PLAY RECAP counters of ``host``: ok, changed, unreachable, failed, skipped, rescued, ignored."""
    for line in proc.stdout.splitlines():
        if line.startswith(host) and "ok=" in line:
            return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}
    raise AssertionError(f"no PLAY RECAP line for {host}:\n{proc.stdout[-3000:]}")


# ------------------------------------------------------------------------------------------------ HTTP receiver
class HTTPReceiver:
    """Stores each request as {method, path, headers, body, json}; ``status[path]`` sets the reply code."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    parsed = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    parsed = None
                receiver.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "body": raw.decode("utf-8", "replace"), "json": parsed})
                code = receiver.status.get(self.path, 200)
                body = b"ok" if code < 400 else b"gateway says no"
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = do_GET = _handle  # noqa: N815 - http.server's method names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------------- SMTP
class SMTPSink:
    """A real SMTP server on loopback (aiosmtpd); ``messages`` holds parsed email.message.EmailMessage objects."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.envelopes: list[dict[str, Any]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
                sink.envelopes.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos)})
                sink.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                              policy=email.policy.default))
                return "250 Message accepted for delivery"

        self.port = free_port()  # aiosmtpd's start-up probe connects to the port it was given, so not 0
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def text_body(msg: Any) -> str:
    """The text/plain body of a (possibly multipart) message, decoded."""
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------ Alertmanager
def alertmanager_url() -> str:
    """The lab's Alertmanager (LAB_ALERTMANAGER_PORT from the LAB_INSTANCE lab's .env, default 9093), or fail saying
    why: integration tests run against a lab that is up (`make integration` starts it), so a missing Alertmanager is
    a failure, never a skip (tests/integration/README.md, "Skips")."""
    port = "9093"
    env_file = Lab().env_file
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("LAB_ALERTMANAGER_PORT="):
                port = line.split("=", 1)[1].strip() or port
    url = os.environ.get("TSOPS_ALERTMANAGER_URL", f"http://127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(url + "/api/v2/status", timeout=3) as resp:
            json.loads(resp.read())
    except (OSError, ValueError) as exc:
        pytest.fail(f"the lab's Alertmanager is not up at {url} ({exc}); `make lab-up` or `make integration` "
                    "starts it")
    return url


def am_get(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + "/api/v2" + path, timeout=5) as resp:
        return json.loads(resp.read())


def am_expire(url: str, silence_id: str) -> None:
    req = urllib.request.Request(f"{url}/api/v2/silence/{silence_id}", method="DELETE")
    with contextlib.suppress(OSError):
        urllib.request.urlopen(req, timeout=5).read()


# --------------------------------------------------------------------------------------------- synthetic records
# (alert, day of month, hh:mm, minutes to acknowledge, minutes to resolve or None if still open, escalations,
#  failed notifications). November 2026 has 14 incidents: 7 P0 and 7 P1, 6 SLA breaches in 6 incidents.
NOVEMBER_2026 = [
    ("TaskSchedulerAPIDown", 2, "03:10", 2, 10, 0, 0),
    ("TaskSchedulerAPIDown", 5, "14:00", 2, 20, 0, 0),
    ("TaskSchedulerAPIDown", 9, "23:50", 2, 25, 0, 0),   # resolved after midnight
    ("TaskSchedulerAPIDown", 12, "08:30", 2, 28, 0, 1),
    ("TaskSchedulerAPIDown", 17, "11:00", 2, 35, 2, 0),  # resolution breach (30)
    ("TaskSchedulerAPIDown", 21, "16:45", 2, 50, 0, 0),  # resolution breach
    ("SecurityBreach", 13, "02:00", 8, 20, 1, 0),        # response breach (5)
    ("HighAPILatency", 3, "10:00", 20, 60, 0, 0),        # response breach (15)
    ("HighAPILatency", 8, "10:00", 5, 90, 0, 0),
    ("HighAPILatency", 15, "10:00", 10, 100, 0, 0),
    ("HighAPILatency", 22, "10:00", 14, 130, 0, 0),      # resolution breach (120)
    ("DiskSpaceCritical", 6, "04:00", 3, 45, 0, 0),
    ("DiskSpaceCritical", 26, "04:00", 3, 200, 0, 0),    # resolution breach
    ("MemoryUsageCritical", 30, "23:00", 1, None, 0, 0),  # still open at the end of the month, within SLA
]
OCTOBER_2026 = [("WorkerHealthDegraded", day, "12:00", 5, 30, 0, 0) for day in range(1, 11)]
DECEMBER_2026 = [("SchedulerOffline", 1, "00:00", 1, 5, 0, 0)]


def _appender(entries: list[dict]) -> Any:
    def add(entry: dict) -> None:
        entry["seq"] = len(entries) + 1
        entries.append(entry)

    return add


def write_synthetic(record_dir: Path, rows: list[tuple], year: int, month: int) -> list[str]:
    """Write incident records for ``rows`` with the collection's own record code; returns the ids."""
    import datetime as dt

    from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident as rec

    store = rec.IncidentStore(str(record_dir))
    ids = []
    for n, (alert, day, hhmm, tta, ttr, escalations, failed) in enumerate(rows):
        hour, minute = map(int, hhmm.split(":"))
        start = dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)
        incident_id = f"INC-{start:%Y%m%d-%H%M}-{n:02d}"
        entries: list[dict] = []
        add = _appender(entries)
        add(rec.open_entry(alert=alert, incident_id=incident_id, started_at=start,
                           now=start + dt.timedelta(minutes=tta), commander="alice", impact=f"{alert} impact"))
        add(rec.action_entry(step="diagnose", actor="bob", host="node1", now=start + dt.timedelta(minutes=tta + 1)))
        for k in range(escalations):
            add(rec.escalation_entry(entries, reasons=["still down"], now=start + dt.timedelta(minutes=16 + k)))
        for _attempt in range(failed):
            add(rec.notification_entry(channel="email", ok=False, error="refused",
                                       now=start + dt.timedelta(minutes=tta)))
        if ttr is not None:
            add(rec.close_entry(entries, root_cause="synthetic", resolution=["fixed"],
                                now=start + dt.timedelta(minutes=ttr),
                                action_items=[{"action": "prevent it", "owner": "carol", "due": "2026-12-31"}]))
        store.transact(incident_id, lambda existing, e=entries: [] if existing else [dict(x) for x in e])
        ids.append(incident_id)
    return ids
