"""The taskscheduler.ops.alertmanager event source, served by aiohttp's real test server on loopback.

The server, its middleware and the authentication are the plugin's own, unmocked; requests go over TCP through
aiohttp's TestClient (or a raw socket where the client refuses to send a malformed header). Only the clock is
injected, to step through the deduplication window. That the source also works under the real ansible-rulebook is
proven by tests/integration/test_eda_source_rulebook.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

src = importlib.import_module("ansible_collections.taskscheduler.ops.extensions.eda.plugins.event_source.alertmanager")

TOKEN = "unit-test-token-3f9c"
SECRET = "unit-test-hmac-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# What Alertmanager 0.25 sends (webhook payload version 4): one group, one alert resolved and one still firing.
PAYLOAD: dict[str, Any] = {
    "receiver": "eda",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "TaskSchedulerDatabaseDown", "severity": "P0", "service": "postgres",
                       "instance": "postgres-exporter:9187", "job": "postgres"},
            "annotations": {"summary": "PostgreSQL connection failures: postgres-exporter:9187",
                            "playbook": "playbooks/respond_db_down.yml"},
            "startsAt": "2026-11-28T15:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=pg_up+%3D%3D+0",
            "fingerprint": "a1b2c3d4e5f60718",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "TaskSchedulerAPIDown", "severity": "P0", "service": "api",
                       "instance": "api:8080", "job": "api"},
            "annotations": {"summary": "API is down"},
            "startsAt": "2026-11-28T14:50:00.000Z",
            "endsAt": "2026-11-28T14:58:00.000Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D+%3D%3D+0",
            "fingerprint": "0f1e2d3c4b5a6978",
        },
    ],
    "groupLabels": {"alertname": "TaskSchedulerDatabaseDown"},
    "commonLabels": {"severity": "P0"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}:{alertname="TaskSchedulerDatabaseDown"}',
    "truncatedAlerts": 0,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(payload: Any = None) -> bytes:
    return json.dumps(PAYLOAD if payload is None else payload).encode()


def sign(data: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def serve(args: dict[str, Any], scenario: Callable[[TestClient, asyncio.Queue, Clock], Awaitable[Any]]) -> Any:
    """Run ``scenario(client, queue, clock)`` against the plugin's app on a real loopback server."""

    async def run() -> Any:
        queue: asyncio.Queue = asyncio.Queue()
        clock = Clock()
        app = src.make_app(queue, src.parse_settings(args), clock)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client, queue, clock)

    return asyncio.run(run())


def drain(queue: asyncio.Queue) -> list[dict[str, Any]]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def post(client: TestClient, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await client.post("/endpoint", data=data, headers={"Content-Type": "application/json", **(headers or {})})
    text = await resp.text()
    return resp.status, json.loads(text)


# ----------------------------------------------------------------------------------------------------- settings
def test_refuses_to_start_without_authentication():
    with pytest.raises(ValueError, match="refusing to start without authentication"):
        src.parse_settings({})
    with pytest.raises(ValueError, match="refusing to start"):  # an empty environment variable is no token
        src.parse_settings({"token": "", "hmac_secret": ""})
    assert src.parse_settings({"insecure_no_auth": True}).token is None
    assert src.parse_settings({"insecure_no_auth": "true"}).insecure_no_auth is True


@pytest.mark.parametrize("args,message", [
    ({"token": "t", "port": "http"}, "port must be a number"),
    ({"token": "t", "port": 70000}, "port must be at most 65535"),
    ({"token": "t", "max_body_bytes": 0}, "max_body_bytes must be at least 1"),
    ({"token": "t", "dedup_window": -1}, "dedup_window must be at least 0"),
    ({"token": "t", "path": "endpoint"}, "path must start with '/'"),
    ({"token": "t", "path": "/health"}, "must not be /health"),
    ({"token": "t", "instance_hosts": ["api"]}, "instance_hosts must be a mapping"),
    ({"token": "t", "tokn": "x"}, "unknown argument"),
    ({"token": "t", "insecure_no_auth": "maybe"}, "insecure_no_auth must be a boolean"),
])
def test_bad_settings_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        src.parse_settings(args)


def test_settings_never_show_the_secrets():
    settings = src.parse_settings({"token": TOKEN, "hmac_secret": SECRET, "port": "5001"})
    assert settings.port == 5001
    assert TOKEN not in repr(settings) and SECRET not in repr(settings)


def test_main_refuses_to_start_without_authentication():
    with pytest.raises(ValueError, match="refusing to start"):  # at once, not after serving for 5 s
        asyncio.run(asyncio.wait_for(src.main(asyncio.Queue(), {"port": 0}), 5))


def test_main_serves_until_cancelled():
    """main() itself (ansible-rulebook's entry point) listens on the port it is given and stops when cancelled."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def run() -> tuple[int, int, list]:
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(src.main(queue, {"port": port, "token": TOKEN}))
        async with ClientSession() as session:
            for _attempt in range(100):
                with contextlib.suppress(OSError):
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        health = resp.status
                    break
                await asyncio.sleep(0.05)
            async with session.post(f"http://127.0.0.1:{port}/endpoint", data=body(), headers=AUTH) as resp:
                posted = resp.status
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return health, posted, drain(queue)

    health, posted, events = asyncio.run(run())
    assert (health, posted, len(events)) == (200, 202, 2)
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))


# ------------------------------------------------------------------------------------------------------ accepted
def test_one_event_per_alert_with_its_own_status():
    async def scenario(client, queue, _clock):
        return await post(client, body(), AUTH), drain(queue)

    (status, answer), events = serve({"token": TOKEN}, scenario)
    assert status == 202
    assert answer == {"alerts": 2, "queued": 2, "duplicates": 0}
    assert [e["alert"]["status"] for e in events] == ["firing", "resolved"]  # the top level says "firing"
    db, api = events
    assert db["alert"]["labels"]["alertname"] == "TaskSchedulerDatabaseDown"
    assert db["alert"]["annotations"]["summary"].startswith("PostgreSQL connection failures")
    assert db["alert"]["fingerprint"] == "a1b2c3d4e5f60718"
    assert db["alert"]["startsAt"] == "2026-11-28T15:00:00.000Z"
    assert api["alert"]["endsAt"] == "2026-11-28T14:58:00.000Z"
    assert db["alertmanager"]["receiver"] == "eda"
    assert db["alertmanager"]["externalURL"] == "http://alertmanager:9093"
    assert db["alertmanager"]["groupKey"] == PAYLOAD["groupKey"]
    assert db["meta"]["hosts"] == ["postgres-exporter"] and api["meta"]["hosts"] == ["api"]
    assert "headers" not in db["meta"]  # the token never reaches the rulebook's variables


def test_meta_hosts_mapping_and_missing_instance():
    payload = copy.deepcopy(PAYLOAD)
    payload["alerts"][1]["labels"].pop("instance")
    payload["alerts"].append({"status": "firing", "labels": {"alertname": "X", "instance": "[::1]:9100"},
                              "fingerprint": "ff"})

    async def scenario(client, queue, _clock):
        await post(client, body(payload), AUTH)
        return drain(queue)

    events = serve({"token": TOKEN, "instance_hosts": {"postgres-exporter:9187": "db1", "::1": "lab"}}, scenario)
    assert events[0]["meta"]["hosts"] == ["db1"]  # whole label mapped
    assert "hosts" not in events[1]["meta"]  # no instance: no limit, the rulebook decides
    assert events[2]["meta"]["hosts"] == ["lab"]  # host part of an IPv6 instance, mapped


@pytest.mark.parametrize("instance,host", [
    ("api:8000", "api"), ("lab", "lab"), ("10.0.0.5:9100", "10.0.0.5"), ("[fe80::1]:9100", "fe80::1"),
    ("fe80::1", "fe80::1"), ("http://node1:9100/metrics", "node1"), ("", None), (None, None), (42, None),
])
def test_instance_host(instance, host):
    assert src.instance_host(instance, {}) == host


def test_fingerprint_made_from_labels_when_the_sender_has_none():
    a = src.fingerprint_of({"labels": {"b": "2", "a": "1"}})
    assert a == src.fingerprint_of({"labels": {"a": "1", "b": "2"}}) != src.fingerprint_of({"labels": {"a": "2"}})


# ------------------------------------------------------------------------------------------------------ rejected
@pytest.mark.parametrize("headers,reason", [
    ({}, "missing bearer token"),
    ({"Authorization": "Bearer wrong-token"}, "invalid bearer token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
    ({"Authorization": f"Basic {TOKEN}"}, "not a bearer token"),
    ({"Authorization": "Bearer"}, "not a bearer token"),
])
def test_401_without_the_token(headers, reason):
    async def scenario(client, queue, _clock):
        resp = await client.post("/endpoint", data=body(), headers=headers)
        return resp.status, resp.headers.get("WWW-Authenticate"), await resp.json(), drain(queue)

    status, challenge, answer, events = serve({"token": TOKEN}, scenario)
    assert (status, challenge, events) == (401, "Bearer", [])
    assert reason in answer["error"]


def test_401_on_a_garbled_authorization_header():
    """Non-ASCII bytes in the header (aiohttp's client refuses to send them, so a raw socket does): 401, no 500."""

    async def scenario(client, queue, _clock):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        data = body()
        writer.write(b"POST /endpoint HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3\x28" + TOKEN.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(data)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + data)
        await writer.drain()
        raw = await reader.read()
        writer.close()
        return raw, drain(queue)

    raw, events = serve({"token": TOKEN}, scenario)
    head, _blank, text = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head
    assert json.loads(text) == {"error": "malformed Authorization header"}
    assert events == []


def test_hmac_signature():
    data = body()

    async def scenario(client, queue, _clock):
        results = {}
        for name, headers in {
            "good": {"X-Hub-Signature-256": sign(data)},
            "bare hex": {"X-Hub-Signature-256": sign(data)[7:]},
            "upper hex": {"X-Hub-Signature-256": "sha256=" + sign(data)[7:].upper()},
            "wrong secret": {"X-Hub-Signature-256": sign(data, "other")},
            "other body": {"X-Hub-Signature-256": sign(data + b" ")},
            "missing": {},
            "not hex": {"X-Hub-Signature-256": "sha256=" + "zz" * 32},
        }.items():
            status, answer = await post(client, data, headers)
            results[name] = (status, answer.get("error"), len(drain(queue)))
            clock.now += 1000  # outside the dedup window, so every accepted post queues again
        return results

    clock = None

    async def with_clock(client, queue, c):
        nonlocal clock
        clock = c
        return await scenario(client, queue, c)

    results = serve({"hmac_secret": SECRET}, with_clock)
    assert results["good"] == (202, None, 2)
    assert results["bare hex"] == (202, None, 2)
    assert results["upper hex"] == (202, None, 2)
    assert results["wrong secret"] == (401, "signature does not match the body", 0)
    assert results["other body"] == (401, "signature does not match the body", 0)
    assert results["missing"] == (401, "missing signature header X-Hub-Signature-256", 0)
    assert results["not hex"] == (401, "malformed signature in X-Hub-Signature-256", 0)


def test_token_and_hmac_both_required_when_both_set():
    data = body()

    async def scenario(client, queue, _clock):
        only_token = await post(client, data, AUTH)
        only_sig = await post(client, data, {"X-Signature": sign(data)})
        both = await post(client, data, {**AUTH, "X-Signature": sign(data)})
        return only_token[0], only_sig[0], both[0], len(drain(queue))

    assert serve({"token": TOKEN, "hmac_secret": SECRET, "hmac_header": "X-Signature"}, scenario) == (401, 401, 202, 2)


@pytest.mark.parametrize("data,reason", [
    (b"{not json", "body is not valid JSON"),
    (b"", "body is not valid JSON"),
    (b"\xff\xfe", "body is not valid JSON"),
    (b"[" * 100000 + b"]" * 100000, "body is not valid JSON"),  # too deep for the parser: still a 400
    (b"[]", "payload is not a JSON object"),
    (b'{"receiver": "eda"}', "no 'alerts' list"),
    (b'{"alerts": {"status": "firing"}}', "no 'alerts' list"),
    (b'{"alerts": ["firing"]}', "alerts[0] is not an object"),
    (b'{"alerts": [{"status": "firing"}]}', "alerts[0] has no labels"),
    (b'{"alerts": [{"status": "firing", "labels": {}}]}', "alerts[0] has no labels"),
    (b'{"alerts": [{"status": "firing", "labels": "a=b"}]}', "alerts[0] has no labels"),
    (b'{"alerts": [{"status": "pending", "labels": {"a": "b"}}]}', "alerts[0] status is not firing or resolved"),
    (b'{"alerts": [{"status": "firing", "labels": {"a": "b"}, "annotations": []}]}', "annotations is not an object"),
])
def test_400_on_what_is_not_an_alertmanager_payload(data, reason):
    async def scenario(client, queue, _clock):
        return await post(client, data, AUTH), drain(queue)

    (status, answer), events = serve({"token": TOKEN}, scenario)
    assert (status, events) == (400, [])
    assert reason in answer["error"]


def test_400_names_the_bad_alert_and_queues_none_of_the_payload():
    payload = copy.deepcopy(PAYLOAD)
    payload["alerts"].append({"status": "firing"})

    async def scenario(client, queue, _clock):
        return await post(client, body(payload), AUTH), drain(queue)

    (status, answer), events = serve({"token": TOKEN}, scenario)
    assert (status, answer, events) == (400, {"error": "alerts[2] has no labels"}, [])


def test_413_over_the_size_limit():
    big = copy.deepcopy(PAYLOAD)
    big["commonAnnotations"] = {"padding": "x" * 5000}
    data = body(big)

    async def chunks():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    async def scenario(client, queue, _clock):
        with_length = await post(client, data, AUTH)
        chunked = await client.post("/endpoint", data=chunks(), headers=AUTH)  # no Content-Length
        small = await post(client, body(), AUTH)
        return with_length, (chunked.status, await chunked.json()), small[0], len(drain(queue))

    with_length, chunked, small, queued = serve({"token": TOKEN, "max_body_bytes": 4096}, scenario)
    assert with_length == (413, {"error": "body over 4096 bytes"})
    assert chunked[0] == 413
    assert (small, queued) == (202, 2)


def test_413_from_content_length_without_reading_the_body():
    """A declared 1 GB body is refused from its Content-Length at once; the server does not wait to read it."""

    async def scenario(client, queue, _clock):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(f"POST /endpoint HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)  # no body sent: only an early answer comes
        writer.close()
        return head, drain(queue)

    head, events = serve({"token": TOKEN}, scenario)
    assert head.startswith(b"HTTP/1.1 413") and events == []


def test_401_before_413_for_a_stranger():
    """Without the token a large body is not even read: 401, not 413."""

    async def scenario(client, _queue, _clock):
        return (await post(client, b"x" * 10000))[0]

    assert serve({"token": TOKEN, "max_body_bytes": 100}, scenario) == 401


def test_other_paths_and_methods_answer_json():
    async def scenario(client, _queue, _clock):
        nf = await client.post("/other", data=body(), headers=AUTH)
        na = await client.get("/endpoint", headers=AUTH)
        return nf.status, await nf.json(), na.status, await na.json()

    assert serve({"token": TOKEN}, scenario) == (404, {"error": "Not Found"}, 405, {"error": "Method Not Allowed"})


def test_500_is_safe_when_the_queue_fails():
    class BrokenQueue(asyncio.Queue):
        async def put(self, item: Any) -> None:
            raise RuntimeError("queue closed /secret/path")

    async def run() -> tuple[int, str]:
        app = src.make_app(BrokenQueue(), src.parse_settings({"token": TOKEN}))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            resp = await client.post("/endpoint", data=body(), headers=AUTH)
            return resp.status, await resp.text()

    status, text = asyncio.run(run())
    assert status == 500
    assert json.loads(text) == {"error": "internal error"}
    assert "Traceback" not in text and "secret" not in text


# -------------------------------------------------------------------------------------------------------- dedup
def test_an_exact_repeat_within_the_window_is_dropped():
    async def scenario(client, queue, clock):
        first = await post(client, body(), AUTH)
        clock.now += 10  # Alertmanager's group_interval re-send
        second = await post(client, body(), AUTH)
        clock.now += 300  # 310 s after the first: outside the 300 s window
        third = await post(client, body(), AUTH)
        return [first[1], second[1], third[1]], drain(queue)

    answers, events = serve({"token": TOKEN}, scenario)
    assert [a["queued"] for a in answers] == [2, 0, 2]
    assert answers[1] == {"alerts": 2, "queued": 0, "duplicates": 2}
    assert len(events) == 4


def test_firing_resolved_firing_is_not_a_repeat():
    def one(status: str, starts: str) -> bytes:
        alert = dict(PAYLOAD["alerts"][0], status=status, startsAt=starts)
        return body(dict(PAYLOAD, alerts=[alert]))

    async def scenario(client, queue, clock):
        queued = []
        for status, starts in [("firing", "T1"), ("firing", "T1"), ("resolved", "T1"), ("resolved", "T1"),
                               ("firing", "T1"),  # Alertmanager resolved it on endsAt, then Prometheus re-sent it
                               ("firing", "T2"), ("firing", "T3")]:  # T3: a new episode whose resolve was lost
            queued.append((await post(client, one(status, starts), AUTH))[1]["queued"])
            clock.now += 5
        return queued, [(e["alert"]["status"], e["alert"]["startsAt"]) for e in drain(queue)]

    queued, events = serve({"token": TOKEN}, scenario)
    assert queued == [1, 0, 1, 0, 1, 1, 1]
    assert events == [("firing", "T1"), ("resolved", "T1"), ("firing", "T1"), ("firing", "T2"), ("firing", "T3")]


def test_a_mixed_payload_drops_only_the_repeated_alert():
    async def scenario(client, queue, clock):
        await post(client, body(), AUTH)
        clock.now += 10
        payload = copy.deepcopy(PAYLOAD)
        payload["alerts"][0]["status"] = "resolved"  # the database alert resolved, the API alert is re-sent
        answer = (await post(client, body(payload), AUTH))[1]
        return answer, [(e["alert"]["labels"]["alertname"], e["alert"]["status"]) for e in drain(queue)]

    answer, events = serve({"token": TOKEN}, scenario)
    assert answer == {"alerts": 2, "queued": 1, "duplicates": 1}
    assert events[2:] == [("TaskSchedulerDatabaseDown", "resolved")]


def test_window_zero_keeps_every_repeat():
    async def scenario(client, queue, _clock):
        for _attempt in range(3):
            await post(client, body(), AUTH)
        return len(drain(queue))

    assert serve({"token": TOKEN, "dedup_window": 0}, scenario) == 6


def test_deduplicator_memory_is_bounded():
    dedup = src.Deduplicator(60)
    for i in range(5000):
        dedup.is_repeat({"fingerprint": str(i), "status": "firing"}, now=float(i))
    assert len(dedup._last) <= 1100


# ------------------------------------------------------------------------------------------- health and logging
def test_health_counts_accepted_rejected_and_duplicates():
    async def scenario(client, _queue, clock):
        await post(client, body(), AUTH)
        await post(client, body(), AUTH)  # repeat
        await post(client, body(), {"Authorization": "Bearer nope"})
        await post(client, b"{", AUTH)
        resp = await client.get("/health")  # no credentials needed
        return resp.status, await resp.json()

    status, health = serve({"token": TOKEN}, scenario)
    assert status == 200
    assert health["status"] == "up"
    assert {k: health[k] for k in ("requests_accepted", "requests_rejected", "alerts_received", "events_queued",
                                   "duplicates_dropped")} == {
        "requests_accepted": 2, "requests_rejected": 2, "alerts_received": 4, "events_queued": 2,
        "duplicates_dropped": 2}
    assert health["last_event_at"].endswith("Z") and health["started_at"].endswith("Z")
    assert health["last_rejection"]["status"] == 400
    assert TOKEN not in json.dumps(health)


def test_one_log_line_per_request_and_never_the_token(caplog):
    caplog.set_level(logging.INFO, logger=src.LOGGER_NAME)
    data = body()

    async def scenario(client, _queue, _clock):
        await post(client, data, AUTH)
        await post(client, data, {"Authorization": "Bearer wrong-" + TOKEN})
        await post(client, b"[]", AUTH)
        await client.get("/health")

    serve({"token": TOKEN}, scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == src.LOGGER_NAME]
    assert len(lines) == 3, lines  # the health probe logs at debug only
    accepted, unauthorised, malformed = lines
    assert accepted.startswith("alertmanager source: accepted remote=127.0.0.1 method=POST")
    assert 'path="/endpoint" status=202 reason="queued" alerts=2 queued=2 duplicates=0' in accepted
    assert 'status=401 reason="invalid bearer token" alerts=0' in unauthorised
    assert 'status=400 reason="payload is not a JSON object"' in malformed
    assert all(TOKEN not in line and "\n" not in line for line in lines)
    assert [r.levelno for r in caplog.records if r.name == src.LOGGER_NAME] == [
        logging.INFO, logging.WARNING, logging.WARNING]
