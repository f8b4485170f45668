"""Unit tests for alertmanager_silence against a tiny fake Alertmanager API v2 on loopback.

The fake only mimics what the logic depends on (list, get, create/update, expire); the behaviour against the real
Alertmanager 0.25 of the lab is proven by tests/integration/test_incident_silence.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import socket
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.taskscheduler.ops.plugins.module_utils import _alertmanager as am
from ansible_collections.taskscheduler.ops.plugins.modules import alertmanager_silence

UTC = dt.UTC


class FakeAlertmanager:
    """Silences kept in memory; requests logged as (method, path, headers, body)."""

    def __init__(self) -> None:
        self.silences: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                return body

            def do_GET(self) -> None:
                self._record()
                if self.path == "/api/v2/silences":
                    self._reply(200, [fake.view(s) for s in fake.silences.values()])
                elif self.path.startswith("/api/v2/silence/"):
                    sid = self.path.rsplit("/", 1)[1]
                    self._reply(200, fake.view(fake.silences[sid])) if sid in fake.silences else self._reply(404)
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self._record()
                if self.path != "/api/v2/silences":
                    self._reply(404)
                    return
                sid = body.get("id")
                old = fake.silences.get(sid) if sid else None
                if old and fake.state(old) == "active" and old["startsAt"] == body["startsAt"] \
                        and old["matchers"] == body["matchers"]:
                    old.update(endsAt=body["endsAt"], comment=body["comment"], createdBy=body["createdBy"])
                    self._reply(200, {"silenceID": sid})
                    return
                if old:
                    old["endsAt"] = am.fmt_time(fake.now())
                new = dict(body, id=str(uuid.uuid4()))
                fake.silences[new["id"]] = new
                self._reply(200, {"silenceID": new["id"]})

            def do_DELETE(self) -> None:
                self._record()
                sid = self.path.rsplit("/", 1)[1]
                if sid not in fake.silences:
                    self._reply(404)
                    return
                fake.silences[sid]["endsAt"] = am.fmt_time(fake.now())
                fake.silences[sid]["expired"] = True
                self._reply(200)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(tz=UTC)

    def state(self, s: dict[str, Any]) -> str:
        if s.get("expired") or am.parse_time(s["endsAt"]) <= self.now():
            return "expired"
        return "pending" if am.parse_time(s["startsAt"]) > self.now() else "active"

    def view(self, s: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in s.items() if k != "expired"}
        out["status"] = {"state": self.state(s)}
        out["updatedAt"] = am.fmt_time(self.now())
        return out

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _h, _b in self.requests if m in ("POST", "DELETE")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Any:
    server = FakeAlertmanager()
    yield server
    server.close()


def quick_open(url: str, data: bytes | None = None, method: str = "GET", headers: dict[str, str] | None = None,
               timeout: int = 10, **_ignored: Any) -> Any:
    """urllib without open_url's per-call TLS context set-up (0.1 s each); the module tests use open_url itself."""
    return urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers or {}),
                                  timeout=timeout)


def client(fake: FakeAlertmanager, **kwargs: Any) -> am.AlertmanagerClient:
    return am.AlertmanagerClient(fake.url, opener=quick_open, **kwargs)


def ensure(fake: FakeAlertmanager, **kwargs: Any) -> dict[str, Any]:
    return am.ensure_silence(client(fake), **kwargs)


API_DOWN = [{"name": "alertname", "value": "TaskSchedulerAPIDown"}]


# -------------------------------------------------------------------------------------------------------- logic
def test_create_then_second_run_is_unchanged(fake: FakeAlertmanager) -> None:
    first = ensure(fake, matchers=API_DOWN, duration="30m", comment="Post-incident silence for INC-1")
    assert first["changed"] is True and first["action"] == "created"
    assert first["silence"]["state"] == "active" and first["silence"]["comment"] == "Post-incident silence for INC-1"
    ends = am.parse_time(first["silence"]["endsAt"])
    assert dt.timedelta(minutes=29) < ends - dt.datetime.now(tz=UTC) <= dt.timedelta(minutes=30)
    second = ensure(fake, matchers=API_DOWN, duration="30m", comment="Post-incident silence for INC-1")
    assert second == {**second, "changed": False, "action": "unchanged", "silence_id": first["silence_id"]}
    assert len(fake.silences) == 1 and len(fake.writes()) == 1


def test_longer_duration_extends_in_place(fake: FakeAlertmanager) -> None:
    first = ensure(fake, matchers=API_DOWN, duration="30m")
    longer = ensure(fake, matchers=API_DOWN, duration="2h", comment="longer")
    assert longer["action"] == "extended" and longer["silence_id"] == first["silence_id"]
    assert longer["replaced"] is False
    assert am.parse_time(longer["silence"]["endsAt"]) > am.parse_time(first["silence"]["endsAt"])
    assert longer["silence"]["startsAt"] == first["silence"]["startsAt"]
    assert len(fake.silences) == 1
    # the update carried the id and the original start (what Alertmanager needs to update in place)
    post = [b for m, _p, _h, b in fake.requests if m == "POST"][-1]
    assert post["id"] == first["silence_id"] and post["startsAt"] == first["silence"]["startsAt"]
    # a shorter wish does not shorten it
    assert ensure(fake, matchers=API_DOWN, duration="10m")["action"] == "unchanged"


def test_matcher_order_and_shorthand_do_not_matter(fake: FakeAlertmanager) -> None:
    a = ensure(fake, matchers=[{"name": "instance", "value": "api:8080"}, *API_DOWN])
    b = ensure(fake, matchers={"alertname": "TaskSchedulerAPIDown", "instance": "api:8080"})
    assert b["action"] == "unchanged" and b["silence_id"] == a["silence_id"]


def test_different_matchers_get_their_own_silence(fake: FakeAlertmanager) -> None:
    ensure(fake, matchers=API_DOWN)
    other = ensure(fake, matchers=[*API_DOWN, {"name": "instance", "value": "api-.*", "is_regex": True}])
    assert other["action"] == "created" and len(fake.silences) == 2
    assert {"name": "instance", "value": "api-.*", "isRegex": True, "isEqual": True} in other["silence"]["matchers"]


def test_expired_silence_is_not_reused(fake: FakeAlertmanager) -> None:
    first = ensure(fake, matchers=API_DOWN)
    ensure(fake, state="absent", silence_id=first["silence_id"])
    again = ensure(fake, matchers=API_DOWN)
    assert again["action"] == "created" and again["silence_id"] != first["silence_id"]


def test_check_mode_writes_nothing(fake: FakeAlertmanager) -> None:
    res = ensure(fake, matchers=API_DOWN, check_mode=True)
    assert res["changed"] is True and res["action"] == "created" and res["silence_id"] is None
    assert fake.writes() == [] and fake.silences == {}
    real = ensure(fake, matchers=API_DOWN)
    res = ensure(fake, matchers=API_DOWN, duration="3h", check_mode=True)
    assert res["action"] == "extended" and res["silence_id"] == real["silence_id"]
    assert len(fake.writes()) == 1
    res = ensure(fake, state="absent", matchers=API_DOWN, check_mode=True)
    assert res["action"] == "expired" and len(fake.writes()) == 1


def test_absent_by_matchers_and_idempotent(fake: FakeAlertmanager) -> None:
    ensure(fake, matchers=API_DOWN)
    gone = ensure(fake, state="absent", matchers=API_DOWN)
    assert gone["changed"] is True and gone["action"] == "expired" and len(gone["expired_ids"]) == 1
    again = ensure(fake, state="absent", matchers=API_DOWN)
    assert again["changed"] is False and again["action"] == "absent"
    assert ensure(fake, state="absent", silence_id="no-such-id")["changed"] is False


def test_duplicates_reported_latest_one_extended(fake: FakeAlertmanager) -> None:
    now = dt.datetime.now(tz=UTC)
    for minutes in (5, 10):
        sid = str(uuid.uuid4())
        fake.silences[sid] = {"id": sid, "matchers": am.normalize_matchers(API_DOWN), "createdBy": "v1 script",
                              "comment": "old", "startsAt": am.fmt_time(now - dt.timedelta(minutes=1)),
                              "endsAt": am.fmt_time(now + dt.timedelta(minutes=minutes))}
    latest = max(fake.silences.values(), key=lambda s: s["endsAt"])["id"]
    res = ensure(fake, matchers=API_DOWN, duration="30m")
    assert res["action"] == "extended" and res["silence_id"] == latest and len(res["duplicates"]) == 1


def test_ends_at_in_the_past_rejected(fake: FakeAlertmanager) -> None:
    with pytest.raises(ValueError, match="not in the future"):
        ensure(fake, matchers=API_DOWN, ends_at="2000-01-01T00:00:00Z")


def test_bad_regex_rejected() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        am.normalize_matchers([{"name": "instance", "value": "([", "is_regex": True}])


@pytest.mark.parametrize("value,seconds", [("30m", 1800), (30, 1800), ("2h", 7200), ("90s", 90), ("1d", 86400),
                                           ("15", 900)])
def test_parse_duration(value: Any, seconds: int) -> None:
    assert am.parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["soon", "-5m", "0", True])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        am.parse_duration(value)


# -------------------------------------------------------------------------------------------------------- errors
def test_connection_refused_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = am.AlertmanagerClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(am.AlertmanagerError) as err:
        client.silences()
    assert f"127.0.0.1:{port}/api/v2/silences" in str(err.value) and "tsops_alertmanager_url" in str(err.value)


def test_404_hints_at_api_v2(fake: FakeAlertmanager) -> None:
    with pytest.raises(am.AlertmanagerError, match="API v2"):
        client(fake).call("GET", "/nope")


def test_url_with_api_suffix_and_auth_headers(fake: FakeAlertmanager) -> None:
    client = am.AlertmanagerClient(fake.url + "/api/v2/", bearer_token="s3cret")
    client.silences()
    assert fake.requests[-1][1] == "/api/v2/silences"
    assert fake.requests[-1][2]["Authorization"] == "Bearer s3cret"


# -------------------------------------------------------------------------------------------------------- module
def run_module(args: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        alertmanager_silence.main()
    return json.loads(out.getvalue())


def test_module_create_extend_expire_with_diff(fake: FakeAlertmanager) -> None:
    args = {"url": fake.url, "alertname": "NoActiveWorkers", "duration": "30m", "bearer_token": "tok3n",
            "comment": "Post-incident silence for INC-2", "_ansible_diff": True}
    created = run_module(args)
    assert created["changed"] is True and created["action"] == "created"
    assert created["diff"]["before"] == {} and created["diff"]["after"]["id"] == created["silence_id"]
    assert "tok3n" not in json.dumps(created)
    assert run_module(args)["changed"] is False
    extended = run_module(dict(args, duration="1h"))
    assert extended["action"] == "extended" and extended["silence_id"] == created["silence_id"]
    expired = run_module({"url": fake.url, "state": "absent", "silence_id": created["silence_id"]})
    assert expired["changed"] is True and expired["expired_ids"] == [created["silence_id"]]


def test_module_fails_cleanly_when_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = run_module({"url": f"http://127.0.0.1:{port}", "alertname": "X", "timeout": 2})
    assert res["failed"] is True and res["msg"].startswith("alertmanager_silence: GET http://127.0.0.1:")


def test_module_requires_a_target() -> None:
    res = run_module({"url": "http://127.0.0.1:1"})
    assert res["failed"] is True and "matchers" in res["msg"]
