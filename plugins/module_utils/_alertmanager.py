"""PRIVATE to the collection: a small Alertmanager API v2 client and the silence logic of alertmanager_silence.

Not a public API: anything here may change without notice. Use the ``taskscheduler.ops.alertmanager_silence``
module. Only API v2 (``/api/v2``) is used: v1 was removed in Alertmanager 0.27.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

UTC = _dt.timezone.utc  # module_utils support Python 3.9 (no datetime.UTC)
DEFAULT_URL = "http://127.0.0.1:9093"
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def alertmanager_argument_spec() -> dict[str, Any]:
    """Connection options shared by modules that talk to Alertmanager (doc fragment taskscheduler.ops.alertmanager)."""
    return {
        "url": {"type": "str", "default": DEFAULT_URL, "aliases": ["alertmanager_url"]},
        "timeout": {"type": "int", "default": 10},
        "validate_certs": {"type": "bool", "default": True},
        "bearer_token": {"type": "str", "no_log": True},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
    }


class AlertmanagerError(Exception):
    """An API call failed; the message names the endpoint and what to check."""


# --------------------------------------------------------------------------------------------------------- time
def parse_time(value: str) -> _dt.datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Go trims trailing zeros (".27Z") and Alertmanager sends nanoseconds: Python < 3.11 wants 3 or 6 digits.
    text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    dt = _dt.datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def fmt_time(dt: _dt.datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_duration(value: Any) -> _dt.timedelta:
    """``30`` or ``"30m"`` -> 30 minutes; ``"2h"``, ``"90s"``, ``"1d"``; a bare number means minutes."""
    if isinstance(value, bool):
        raise ValueError("duration: expected minutes or a string like 30m, 2h")
    if isinstance(value, (int, float)):
        seconds = float(value) * 60
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"duration {value!r}: expected minutes or a number with s, m, h, d or w (e.g. 30m)")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return _dt.timedelta(seconds=seconds)


# ------------------------------------------------------------------------------------------------------- client
class AlertmanagerClient:
    """JSON over HTTP to ``<url>/api/v2``; ``opener`` is ``open_url``-compatible (tests may pass another)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        timeout: int = 10,
        validate_certs: bool = True,
        bearer_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        opener: Callable[..., Any] = open_url,
    ) -> None:
        self.base = url.rstrip("/")
        if self.base.endswith("/api/v2"):
            self.base = self.base[: -len("/api/v2")]
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if bearer_token:
            self.headers["Authorization"] = f"Bearer {bearer_token}"
        self.username = username
        self.password = password
        self.opener = opener

    def call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base}/api/v2{path}"
        data = json.dumps(body).encode() if body is not None else None
        try:
            resp = self.opener(
                url, data=data, method=method, headers=self.headers, timeout=self.timeout,
                validate_certs=self.validate_certs, url_username=self.username, url_password=self.password,
                force_basic_auth=bool(self.username),
            )
            raw = resp.read()
        except HTTPError as exc:
            detail = ""
            try:
                detail = exc.read().decode("utf-8", "replace").strip()[:500]
            except Exception:  # noqa: BLE001 - the body is only a hint
                detail = ""
            hint = " (is this Alertmanager >= 0.16 with API v2?)" if exc.code == 404 else ""
            raise AlertmanagerError(f"{method} {url} returned HTTP {exc.code}{hint}: {detail or exc.reason}") from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertmanagerError(
                f"{method} {url} failed: {reason}. Is Alertmanager running there? Check url / tsops_alertmanager_url"
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise AlertmanagerError(f"{method} {url} did not return JSON (is this Alertmanager?)") from None

    def silences(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/silences") or [])

    def silence(self, silence_id: str) -> dict[str, Any]:
        return self.call("GET", f"/silence/{silence_id}")

    def post_silence(self, body: Mapping[str, Any]) -> str:
        result = self.call("POST", "/silences", dict(body)) or {}
        return result.get("silenceID", "")

    def expire(self, silence_id: str) -> None:
        self.call("DELETE", f"/silence/{silence_id}")

    def alerts(self, active: bool = True, silenced: bool = False, inhibited: bool = False) -> list[dict[str, Any]]:
        flags = f"?active={str(active).lower()}&silenced={str(silenced).lower()}&inhibited={str(inhibited).lower()}"
        return list(self.call("GET", "/alerts" + flags) or [])


# ----------------------------------------------------------------------------------------------------- matchers
def normalize_matchers(matchers: Any) -> list[dict[str, Any]]:
    """Matchers as Alertmanager v2 wants them, sorted; accepts ``{name: value}`` or a list of matcher dicts."""
    if isinstance(matchers, Mapping):
        matchers = [{"name": k, "value": v} for k, v in matchers.items()]
    if not matchers:
        raise ValueError("matchers: at least one matcher is required (e.g. alertname=TaskSchedulerAPIDown)")
    out = []
    for m in matchers:
        if not isinstance(m, Mapping) or not m.get("name"):
            raise ValueError(f"matcher {m!r}: expected a mapping with name and value")
        is_regex = bool(m.get("is_regex", m.get("isRegex", False)))
        value = str(m.get("value", ""))
        if is_regex:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {m['name']}: bad regular expression {value!r}: {exc}") from None
        out.append({"name": str(m["name"]), "value": value, "isRegex": is_regex,
                    "isEqual": bool(m.get("is_equal", m.get("isEqual", True)))})
    return sorted(out, key=lambda m: (m["name"], m["value"], m["isRegex"], m["isEqual"]))


def matcher_key(matchers: Any) -> tuple:
    return tuple((m["name"], m["value"], bool(m.get("isRegex")), bool(m.get("isEqual", True)))
                 for m in normalize_matchers(matchers))


def _state(silence: Mapping[str, Any]) -> str:
    return (silence.get("status") or {}).get("state", "")


def equivalent(silences: list[dict[str, Any]], matchers: Any, states: tuple[str, ...] = ("active",)
               ) -> list[dict[str, Any]]:
    """Silences with exactly these matchers in one of ``states``, latest end first."""
    key = matcher_key(matchers)
    found = [s for s in silences if _state(s) in states and matcher_key(s.get("matchers") or []) == key]
    return sorted(found, key=lambda s: s.get("endsAt", ""), reverse=True)


def public(silence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not silence:
        return None
    return {
        "id": silence.get("id"),
        "state": _state(silence),
        "matchers": normalize_matchers(silence.get("matchers") or []),
        "startsAt": silence.get("startsAt"),
        "endsAt": silence.get("endsAt"),
        "createdBy": silence.get("createdBy"),
        "comment": silence.get("comment"),
    }


# ------------------------------------------------------------------------------------------------------ ensure
def ensure_silence(
    client: AlertmanagerClient,
    *,
    state: str = "present",
    matchers: Any = None,
    silence_id: str | None = None,
    duration: Any = "30m",
    ends_at: str | None = None,
    comment: str = "",
    created_by: str = "taskscheduler.ops",
    min_extension: Any = "1m",
    check_mode: bool = False,
    now: _dt.datetime | None = None,
) -> dict[str, Any]:
    """Create, extend or expire a silence. Returns ``{changed, action, silence_id, silence, previous, ...}``.

    present: an active silence with the same matchers ending at or after the wanted end (less ``min_extension``)
    is left alone; one ending earlier is extended in place (same id, same start); otherwise a new one is created.
    absent: expire the silence ``silence_id``, or every active/pending silence with these matchers."""
    current = (now or _dt.datetime.now(tz=UTC)).astimezone(UTC)
    all_silences = client.silences()
    by_id = {s.get("id"): s for s in all_silences}

    if state == "absent":
        if silence_id:
            targets = [by_id[silence_id]] if silence_id in by_id and _state(by_id[silence_id]) != "expired" else []
        else:
            targets = equivalent(all_silences, matchers, ("active", "pending"))
        if not check_mode:
            for silence in targets:
                client.expire(silence["id"])
        return {
            "changed": bool(targets),
            "action": "expired" if targets else "absent",
            "silence_id": targets[0]["id"] if targets else silence_id,
            "expired_ids": [s["id"] for s in targets],
            "silence": None,
            "previous": public(targets[0]) if targets else None,
            "duplicates": [],
        }

    if silence_id and matchers is None:
        if silence_id not in by_id:
            raise AlertmanagerError(f"silence {silence_id} not found at {client.base}")
        matchers = by_id[silence_id].get("matchers") or []
    wanted_matchers = normalize_matchers(matchers)
    end = parse_time(ends_at) if ends_at else current + parse_duration(duration)
    if end <= current:
        raise ValueError(f"ends_at {fmt_time(end)} is not in the future")
    slack = parse_duration(min_extension) if min_extension not in (None, "", 0, "0") else _dt.timedelta(0)

    candidates = equivalent(all_silences, wanted_matchers)
    if silence_id:
        candidates = [s for s in candidates if s.get("id") == silence_id] or candidates
    existing = candidates[0] if candidates else None
    duplicates = [s["id"] for s in candidates[1:]]

    if existing is not None and parse_time(existing["endsAt"]) + slack >= end:
        return {"changed": False, "action": "unchanged", "silence_id": existing["id"], "silence": public(existing),
                "previous": public(existing), "duplicates": duplicates}

    body: dict[str, Any] = {
        "matchers": wanted_matchers,
        "startsAt": existing["startsAt"] if existing else fmt_time(current),
        "endsAt": fmt_time(end),
        "createdBy": created_by or (existing or {}).get("createdBy") or "taskscheduler.ops",
        "comment": comment or (existing or {}).get("comment") or "silenced by taskscheduler.ops",
    }
    if existing is not None:
        body["id"] = existing["id"]
    action = "extended" if existing is not None else "created"
    if check_mode:
        after = dict(body, id=existing["id"] if existing else None,
                     status={"state": "active"})
        return {"changed": True, "action": action, "silence_id": after["id"], "silence": public(after),
                "previous": public(existing), "duplicates": duplicates}
    new_id = client.post_silence(body)
    if not new_id:
        raise AlertmanagerError(f"POST {client.base}/api/v2/silences returned no silenceID")
    after = client.silence(new_id)
    return {"changed": True, "action": action, "silence_id": new_id, "silence": public(after),
            "previous": public(existing), "duplicates": duplicates,
            "replaced": bool(existing is not None and new_id != existing["id"])}
