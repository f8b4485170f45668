# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-rulebook event source: Alertmanager's webhook, authenticated, one event per alert.

Pure functions decide (``parse_settings``, ``evaluate_auth``, ``evaluate_signature``, ``evaluate_payload``,
``alert_events``, ``instance_host``, ``Deduplicator``); ``make_app`` wires them into an aiohttp application and
``main`` serves it for ansible-rulebook. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhooks, authenticated, as one event per alert
version_added: 0.1.0
description:
  - An ansible-rulebook event source (C(taskscheduler.ops.alertmanager)) that receives Alertmanager's webhook
    (payload version 4) on O(host):O(port)O(path) and puts one event per alert on the queue.
  - Every POST must carry the bearer token O(token) and/or an HMAC-SHA256 signature of the raw body made with
    O(hmac_secret) in header O(hmac_header) (C(sha256=<hex>) or bare hex). Both are compared in constant time.
    When both are configured both are required. Without either the source refuses to start unless
    O(insecure_no_auth=true).
  - Answers 202 with the number of events queued; 401 without valid credentials; 400 on malformed JSON or a
    payload that is not Alertmanager's; 413 over O(max_body_bytes); 404/405 elsewhere. Error bodies are one JSON
    line C({"error": "..."}), never a traceback. C(GET /health) answers 200 with counters (no credentials needed).
  - Each event carries the alert's own status (a grouped payload mixes firing and resolved alerts), and
    C(meta.hosts) from the host part of the C(instance) label, mapped through O(instance_hosts); ansible-rulebook
    uses C(meta.hosts) as the limit of the job an action starts.
  - An exact repeat of an alert (same fingerprint, status and startsAt) within O(dedup_window) seconds of the
    one let through is dropped, so Alertmanager's re-sends (every repeat_interval and whenever its group changes)
    start nothing. Firing, then resolved, then firing again is never a repeat.
  - Logs one line per webhook request (remote address, path, status, reason, number of alerts); never the
    token, the signature or the body.
options:
  host:
    description: Address to listen on. V(0.0.0.0) listens on every interface.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port to listen on.
    type: int
    default: 5000
  path:
    description: URL path of the webhook (Alertmanager's C(webhook_configs[].url) path).
    type: str
    default: /endpoint
  token:
    description:
      - Bearer token every request must carry (C(Authorization: Bearer <token>)), as Alertmanager's
        C(http_config.authorization) sends it. Keep it in a vault or an environment variable.
    type: str
  hmac_secret:
    description: Secret of the HMAC-SHA256 signature of the raw request body that every request must carry.
    type: str
  hmac_header:
    description: Header that carries the HMAC signature, C(sha256=<hex>) or bare hex.
    type: str
    default: X-Hub-Signature-256
  insecure_no_auth:
    description: Accept unauthenticated requests. Only for a throw-away test on loopback.
    type: bool
    default: false
  max_body_bytes:
    description: Largest request body accepted; larger ones get 413 without being read.
    type: int
    default: 1048576
  dedup_window:
    description: Seconds during which an exact repeat of an alert is dropped; V(0) lets every repeat through.
    type: float
    default: 300
  instance_hosts:
    description:
      - Maps the C(instance) label (whole value, or its host part) to an inventory host name for C(meta.hosts).
        Without a match the host part of the label is used.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Respond to the lab's alerts
  hosts: all
  sources:
    - taskscheduler.ops.alertmanager:
        host: 0.0.0.0
        port: 5001
        token: "{{ EDA_WEBHOOK_TOKEN }}"
        instance_hosts:
          api: lab
          postgres: lab
  rules:
    - name: A firing alert
      condition: event.alert.status == "firing"
      action:
        debug:
          msg: "{{ event.alert.labels.alertname }} on {{ event.meta.hosts }}"
"""

LOGGER_NAME = "taskscheduler.ops.alertmanager"
ALERT_STATUSES = ("firing", "resolved")
GROUP_KEYS = ("receiver", "status", "externalURL", "groupKey", "groupLabels", "commonLabels",
              "commonAnnotations", "truncatedAlerts", "version")
HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Per request: (reason, number of alerts, extra log fields) for the access line, set by the webhook handler.
LOG_FIELDS = web.RequestKey("taskscheduler_ops_log", tuple)
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5000,
    "path": "/endpoint",
    "token": None,
    "hmac_secret": None,
    "hmac_header": "X-Hub-Signature-256",
    "insecure_no_auth": False,
    "max_body_bytes": 1024 * 1024,
    "dedup_window": 300.0,
    "instance_hosts": {},
}


class Rejected(Exception):
    """A request refused with an HTTP status and a reason that is safe to show and log."""

    def __init__(self, status: int, reason: str, alerts: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.alerts = alerts


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    path: str
    token: bytes | None = field(repr=False)
    hmac_secret: bytes | None = field(repr=False)
    hmac_header: str
    insecure_no_auth: bool
    max_body_bytes: int
    dedup_window: float
    instance_hosts: dict[str, str]


# --------------------------------------------------------------------------------------------- pure decisions
def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise ValueError(f"alertmanager source: {name} must be a boolean, got {value!r}")


def _as_number(name: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"alertmanager source: {name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"alertmanager source: {name} must be at least {minimum}, got {value!r}")
    return number


def _secret(value: Any) -> bytes | None:
    """A configured secret as bytes; empty or unset (e.g. an empty environment variable) is None."""
    if value is None:
        return None
    text = str(value)
    return text.encode("utf-8") if text else None


def parse_settings(args: Mapping[str, Any]) -> Settings:
    """Validate the source's arguments (as ansible-rulebook passes them); ValueError names what is wrong."""
    if not isinstance(args, Mapping):
        raise ValueError("alertmanager source: arguments must be a mapping")
    unknown = sorted(set(args) - set(DEFAULTS) - {"eda_feedback_queue"})
    if unknown:
        raise ValueError(f"alertmanager source: unknown argument(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(DEFAULTS))}")
    raw = {**DEFAULTS, **{k: v for k, v in args.items() if v is not None}}
    path = str(raw["path"])
    if not path.startswith("/") or path == "/health":
        raise ValueError(f"alertmanager source: path must start with '/' and must not be /health, got {path!r}")
    mapping = raw["instance_hosts"]
    if not isinstance(mapping, Mapping):
        raise ValueError("alertmanager source: instance_hosts must be a mapping of instance label -> host")
    header = str(raw["hmac_header"]).strip()
    if not header:
        raise ValueError("alertmanager source: hmac_header must not be empty")
    settings = Settings(
        host=str(raw["host"]),
        port=_as_number("port", raw["port"], int, 0),
        path=path,
        token=_secret(raw["token"]),
        hmac_secret=_secret(raw["hmac_secret"]),
        hmac_header=header,
        insecure_no_auth=_as_bool("insecure_no_auth", raw["insecure_no_auth"]),
        max_body_bytes=_as_number("max_body_bytes", raw["max_body_bytes"], int, 1),
        dedup_window=_as_number("dedup_window", raw["dedup_window"], float, 0),
        instance_hosts={str(k): str(v) for k, v in mapping.items()},
    )
    if settings.port > 65535:
        raise ValueError(f"alertmanager source: port must be at most 65535, got {settings.port}")
    if settings.token is None and settings.hmac_secret is None and not settings.insecure_no_auth:
        raise ValueError("alertmanager source: refusing to start without authentication: set token and/or "
                         "hmac_secret (or insecure_no_auth: true for a throw-away test on loopback)")
    return settings


def evaluate_auth(token: bytes | None, authorization: str | None) -> str | None:
    """Why the Authorization header does not carry the bearer ``token``, or None when it does (or none is set)."""
    if token is None:
        return None
    if not authorization:
        return "missing bearer token"
    try:
        raw = authorization.encode("ascii")
    except UnicodeEncodeError:
        return "malformed Authorization header"
    scheme, _space, credentials = raw.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not credentials.strip():
        return "Authorization is not a bearer token"
    if not hmac.compare_digest(credentials.strip(), token):
        return "invalid bearer token"
    return None


def evaluate_signature(secret: bytes | None, header_name: str, signature: str | None, body: bytes) -> str | None:
    """Why ``signature`` is not the HMAC-SHA256 of ``body`` under ``secret``, or None when it is (or none is set)."""
    if secret is None:
        return None
    if not signature:
        return f"missing signature header {header_name}"
    value = signature.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    if not HEX_SHA256.fullmatch(value):
        return f"malformed signature in {header_name}"
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(value.lower().encode("ascii"), expected.encode("ascii")):
        return "signature does not match the body"
    return None


def evaluate_payload(body: bytes) -> dict[str, Any]:
    """The decoded Alertmanager webhook payload; Rejected(400) saying what is wrong otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "payload is not a JSON object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise Rejected(400, "not an Alertmanager payload: no 'alerts' list")
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise Rejected(400, f"alerts[{index}] is not an object", len(alerts))
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise Rejected(400, f"alerts[{index}] has no labels", len(alerts))
        if alert.get("status") not in ALERT_STATUSES:
            raise Rejected(400, f"alerts[{index}] status is not firing or resolved", len(alerts))
        for key in ("annotations",):
            if key in alert and not isinstance(alert[key], dict):
                raise Rejected(400, f"alerts[{index}].{key} is not an object", len(alerts))
    return payload


def instance_host(instance: Any, mapping: Mapping[str, str]) -> str | None:
    """Inventory host of an ``instance`` label: the mapped name, else its host part (no scheme, port or path)."""
    if not isinstance(instance, str) or not instance.strip():
        return None
    instance = instance.strip()
    if instance in mapping:
        return mapping[instance]
    rest = instance.split("://", 1)[1] if "://" in instance else instance
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):  # [ipv6]:port
        host = rest[1:].split("]", 1)[0]
    elif rest.count(":") == 1:  # host:port
        host = rest.split(":", 1)[0]
    else:  # bare host name or IPv6 address
        host = rest
    if not host:
        return None
    return mapping.get(host, host)


def fingerprint_of(alert: Mapping[str, Any]) -> str:
    """Alertmanager's fingerprint, or (for a sender that sends none) a stable hash of the labels."""
    given = alert.get("fingerprint")
    if isinstance(given, str) and given:
        return given
    labels = json.dumps(alert.get("labels", {}), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(labels.encode("utf-8")).hexdigest()[:16]


def alert_events(payload: Mapping[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """One event per alert of a validated payload, each with its own status, the group and meta.hosts."""
    group = {key: payload[key] for key in GROUP_KEYS if key in payload}
    events = []
    for alert in payload["alerts"]:
        labels = alert["labels"]
        event_alert = {
            "status": alert["status"],
            "labels": labels,
            "annotations": alert.get("annotations") or {},
            "fingerprint": fingerprint_of(alert),
            "startsAt": alert.get("startsAt"),
            "endsAt": alert.get("endsAt"),
            "generatorURL": alert.get("generatorURL"),
        }
        meta: dict[str, Any] = {"endpoint": settings.path}
        host = instance_host(labels.get("instance"), settings.instance_hosts)
        if host is not None:
            meta["hosts"] = [host]
        events.append({"alert": event_alert, "alertmanager": group, "meta": meta})
    return events


class Deduplicator:
    """Drops an exact repeat (same fingerprint, status and startsAt) within ``window`` seconds of the last one let
    through. Keyed by fingerprint, so firing -> resolved -> firing always passes; a new firing episode also has a
    new startsAt, so it passes even if the resolved notification was never sent."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._last: dict[str, tuple[str, Any, float]] = {}

    def is_repeat(self, alert: Mapping[str, Any], now: float) -> bool:
        """True to drop ``alert``; otherwise records it as the latest of its fingerprint."""
        if self.window <= 0:
            return False
        self._prune(now)
        key = alert["fingerprint"]
        state = (alert["status"], alert.get("startsAt"))
        last = self._last.get(key)
        if last is not None and last[:2] == state and now - last[2] < self.window:
            return True
        self._last[key] = (*state, now)
        return False

    def _prune(self, now: float) -> None:
        if len(self._last) > 1024:
            self._last = {k: v for k, v in self._last.items() if now - v[2] < self.window}


# ----------------------------------------------------------------------------------------------------- server
def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _log_line(request: web.Request, status: int, reason: str, alerts: int, **extra: int) -> str:
    verdict = "accepted" if status < 300 else "rejected"
    fields = [f"{verdict}", f"remote={request.remote or '-'}", f"method={request.method}",
              f"path={json.dumps(request.path)}", f"status={status}", f"reason={json.dumps(reason)}",
              f"alerts={alerts}"]
    fields += [f"{key}={value}" for key, value in extra.items()]
    return "alertmanager source: " + " ".join(fields)


def make_app(queue: Any, settings: Settings, clock: Callable[[], float] = time.monotonic) -> web.Application:
    """The aiohttp application: POST ``settings.path`` (the webhook) and GET /health."""
    logger = logging.getLogger(LOGGER_NAME)
    dedup = Deduplicator(settings.dedup_window)
    counters = {"requests_accepted": 0, "requests_rejected": 0, "alerts_received": 0, "events_queued": 0,
                "duplicates_dropped": 0}
    state: dict[str, Any] = {"started_at": _utc_now(), "last_event_at": None, "last_rejection": None}

    async def webhook(request: web.Request) -> web.Response:
        reason = evaluate_auth(settings.token, request.headers.get("Authorization"))
        if reason:
            raise Rejected(401, reason)
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            raise Rejected(413, f"body over {settings.max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Rejected(413, f"body over {settings.max_body_bytes} bytes") from None
        reason = evaluate_signature(settings.hmac_secret, settings.hmac_header,
                                    request.headers.get(settings.hmac_header), body)
        if reason:
            raise Rejected(401, reason)
        payload = evaluate_payload(body)
        events = alert_events(payload, settings)
        now = clock()
        fresh = [event for event in events if not dedup.is_repeat(event["alert"], now)]
        for event in fresh:
            await queue.put(event)
        counters["alerts_received"] += len(events)
        counters["events_queued"] += len(fresh)
        counters["duplicates_dropped"] += len(events) - len(fresh)
        if fresh:
            state["last_event_at"] = _utc_now()
        counts = {"queued": len(fresh), "duplicates": len(events) - len(fresh)}
        request[LOG_FIELDS] = ("queued" if fresh else "all duplicates", len(events), counts)
        return web.json_response({"alerts": len(events), **counts}, status=202)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "up", **state, **counters})

    @web.middleware
    async def guard(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Every answer passes here: errors become one JSON line, webhook requests one log line."""
        extra: dict[str, int] = {}
        try:
            response = await handler(request)
            reason, alerts, extra = request.get(LOG_FIELDS, ("ok", 0, {}))
        except Rejected as exc:
            reason, alerts = exc.reason, exc.alerts
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 and settings.token else None
            response = web.json_response({"error": reason}, status=exc.status, headers=headers)
        except web.HTTPException as exc:  # router: 404 unknown path, 405 wrong method; aiohttp's own 413
            reason, alerts = exc.reason, 0
            response = web.json_response({"error": reason}, status=exc.status)
        except Exception as exc:  # noqa: BLE001 - the one failure path: a safe 500, the type in the log only
            reason, alerts = f"internal error ({type(exc).__name__})", 0
            response = web.json_response({"error": "internal error"}, status=500)
        if request.path == "/health" and response.status == 200:
            logger.debug(_log_line(request, response.status, reason, alerts))
            return response
        if response.status < 300:
            counters["requests_accepted"] += 1
            logger.info(_log_line(request, response.status, reason, alerts, **extra))
        else:
            counters["requests_rejected"] += 1
            state["last_rejection"] = {"at": _utc_now(), "status": response.status, "reason": reason}
            logger.warning(_log_line(request, response.status, reason, alerts))
        return response

    app = web.Application(middlewares=[guard], client_max_size=settings.max_body_bytes)
    app.router.add_post(settings.path, webhook)
    app.router.add_get("/health", health)
    return app


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """ansible-rulebook's entry point: serve until the source is cancelled."""
    settings = parse_settings(args)
    logger = logging.getLogger(LOGGER_NAME)
    runner = web.AppRunner(make_app(queue, settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        auth = " + ".join(name for name, on in (("bearer token", settings.token), ("HMAC", settings.hmac_secret))
                          if on) or "NONE (insecure_no_auth)"
        logger.info("alertmanager source: listening on http://%s:%s%s (auth: %s, dedup window %ss)",
                    settings.host, settings.port, settings.path, auth, settings.dedup_window)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":

    class PrintQueue(asyncio.Queue[Any]):
        """Prints events instead of queueing them: ``python alertmanager.py`` for a manual try-out."""

        async def put(self, item: Any) -> None:
            print(json.dumps(item))

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(PrintQueue(), {"insecure_no_auth": True}))
