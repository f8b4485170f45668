"""Decisions of the SecurityBreach responder (taskscheduler.ops.respond_security_breach), tested in Python.

The role's task files only wire these: where the triage window starts, whether a host is contained, what the
triage decides, and whether the containment held. Each filter has ``<name>.yml`` beside this file for
``ansible-doc -t filter taskscheduler.ops.<name>``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.taskscheduler.ops.plugins.module_utils import _incident_policy as policy


class BreachError(ValueError):
    """Bad input to a breach filter."""


def _wrap(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (BreachError, policy.PolicyError) as exc:
            raise AnsibleFilterError(f"taskscheduler.ops.{func.__name__}: {exc}") from None

    return wrapper


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0", ""):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise BreachError(f"{name}: expected a boolean, got {value!r}")


def _number(value: Any, name: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise BreachError(f"{name}: expected a number, got {value!r}") from None
    if number < 0:
        raise BreachError(f"{name}: must not be negative, got {value!r}")
    return number


def _alert_starts_at(alert: Any) -> _dt.datetime | None:
    """startsAt of the first firing alert of an alert or webhook payload; None when there is none."""
    if not isinstance(alert, Mapping) or not alert:
        return None
    first: Any = alert
    alerts = alert.get("alerts")
    if isinstance(alerts, list):
        objects = [a for a in alerts if isinstance(a, Mapping)]
        firing = [a for a in objects if a.get("status", "firing") == "firing"]
        first = (firing or objects or [{}])[0]
    starts_at = first.get("startsAt") if isinstance(first, Mapping) else None
    if not starts_at or str(starts_at).startswith("0001-"):  # absent, or Go's zero time
        return None
    return policy.parse_time(starts_at, "alert startsAt")


# ----------------------------------------------------------------------------------------------------- window
@_wrap
def breach_window(alert: Any = None, minutes: Any = 5, lead_seconds: Any = 60, now: Any = None) -> dict[str, Any]:
    """Where the triage reads audit_log from: the alert's startsAt (less the rule's rate window), else now - N min.

    Returns ``since`` (ISO 8601 UTC), ``source`` (``alert`` or ``minutes``), ``minutes`` (the window's length, at
    least 1) and ``label`` (for the timeline).
    """
    mins = _number(minutes, "minutes")
    lead = _number(lead_seconds, "lead_seconds")
    current = policy.parse_time(now, "now") if now not in (None, "") else policy.now_utc()
    starts = _alert_starts_at(alert)
    if starts is not None:
        since = min(starts - _dt.timedelta(seconds=lead), current)
        source = "alert"
        label = f"since the alert started ({policy.iso(starts)}, less {lead:g} s)"
    else:
        since = current - _dt.timedelta(minutes=mins)
        source = "minutes"
        label = f"last {mins:g} minutes"
    length = max((current - since).total_seconds() / 60.0, 1.0)
    return {"since": policy.iso(since), "source": source, "minutes": round(length, 2), "label": label}


# ------------------------------------------------------------------------------------------------ host state
def _in_place(result: Any) -> bool:
    """One check-mode result of docker_port_lockdown: nothing would change and some rule stands."""
    if not isinstance(result, Mapping) or result.get("failed") or result.get("skipped"):
        return False
    diff = result.get("diff")
    if not isinstance(diff, Mapping):
        return False
    before, after = str(diff.get("before", "")).strip(), str(diff.get("after", "")).strip()
    return bool(before) and before == after


@_wrap
def breach_firewall_in_place(probe: Any) -> bool:
    """Whether the lockdown rules of every port stand, from the check-mode probe (a registered loop result)."""
    results = probe.get("results") if isinstance(probe, Mapping) else probe
    if not isinstance(results, list) or not results:
        return False
    return all(_in_place(r) for r in results)


@_wrap
def breach_host_contained(probe: Any, containers: Any, pause_api: Any = True, api_host: Any = True) -> bool:
    """A host is contained when it is no API host, or its firewall is in place and its API paused (if pausing)."""
    if not _bool(api_host, "api_host"):
        return True
    if not breach_firewall_in_place(probe):
        return False
    if not _bool(pause_api, "pause_api"):
        return True
    if not isinstance(containers, list):
        raise BreachError(f"containers: expected a list, got {type(containers).__name__}")
    return bool(containers) and all(isinstance(c, Mapping) and c.get("paused") for c in containers)


# ---------------------------------------------------------------------------------------------------- triage
def _reading(result: Any) -> tuple[dict[str, Any] | None, str]:
    """Indicators from the registered psql result, or None and why they could not be read."""
    if not isinstance(result, Mapping) or not result:
        return None, "the audit log was not read"
    if result.get("skipped"):
        return None, "no database host in the inventory to read audit_log on"
    rc = result.get("rc")
    err = str(result.get("stderr") or result.get("msg") or "").strip()
    if rc not in (0, None) or result.get("failed"):
        return None, f"psql exited {rc}: {err[:300] or 'no message'}"
    out = str(result.get("stdout") or "").strip()
    try:
        doc = json.loads(out)
    except ValueError:
        return None, f"psql returned no indicator document: {out[:200]!r}{' (' + err[:200] + ')' if err else ''}"
    if not isinstance(doc, Mapping) or not isinstance(doc.get("failed"), int):
        return None, f"psql returned no indicator document: {out[:200]!r}"
    return dict(doc), ""


def _all(values: Any, name: str) -> bool:
    if isinstance(values, bool):
        return values
    if not isinstance(values, list) or not values:
        return False
    return all(_bool(v, name) for v in values)


@_wrap
def breach_triage(
    reading: Any,
    threshold_per_minute: Any = 30,
    confirmed: Any = False,
    forced: Any = False,
    alert: Any = None,
    contained: Any = False,
    sealed: Any = False,
    breach_confirmed: Any = False,
) -> dict[str, Any]:
    """What the triage decides.

    ``reading`` is the registered result of the audit_log query (rc, stdout, stderr, or skipped). A breach is seen
    when a revoked credential was used or the failed authentications of the busiest minute exceed the threshold.
    An operator's confirmation (of the lockdown or of the breach), ``force`` and an alert payload each start the
    response whatever the audit log says (a stolen valid token leaves no failed login). The response is not
    needed when every host is contained and its evidence sealed already. An unreadable audit log is never
    "nothing to do": ``fail`` says why.
    """
    threshold = _number(threshold_per_minute, "threshold_per_minute")
    indicators, error = _reading(reading)
    readable = indicators is not None
    ind = indicators or {}
    revoked = int(ind.get("revoked") or 0)
    peak = int(ind.get("peak_per_minute") or 0)
    seen = readable and (revoked > 0 or peak > threshold)
    triggers = []
    if seen:
        triggers.append("breach indicators in audit_log")
    if _bool(confirmed, "confirmed"):
        triggers.append("lockdown confirmed by an operator")
    if _bool(breach_confirmed, "breach_confirmed"):
        triggers.append("breach confirmed by the security officer")
    if _bool(forced, "forced"):
        triggers.append("forced")
    if isinstance(alert, Mapping) and alert:
        triggers.append("alert")
    elif alert not in (None, "", {}, []):
        raise BreachError(f"alert: expected an Alertmanager alert or webhook payload (a dict), got {alert!r}")
    done = _all(contained, "contained") and _all(sealed, "sealed")
    respond = bool(triggers) and not done
    if readable:
        found = (f"{ind.get('failed', 0)} failed authentications ({revoked} with a revoked credential, at most "
                 f"{peak} in one minute; threshold {threshold:g})")
    else:
        found = f"audit_log could not be read: {error}"
    if done:
        outcome = "already contained, evidence sealed: nothing to do (lift it with playbooks/lift_lockdown.yml)"
    elif respond:
        outcome = "responding (" + ", ".join(triggers) + ")"
    elif readable:
        outcome = ("no breach indicators, nothing to do (respond_security_breach_force=true or "
                   "respond_security_breach_confirm_lockdown=true responds anyway)")
    else:
        outcome = "cannot triage"
    fail = ""
    if not readable:
        fail = (f"triage incomplete: audit_log could not be read ({error}); a breach cannot be ruled out"
                + ("; containment and evidence went ahead" if respond else
                   ("" if done else "; nothing was changed: fix the database access, or respond without the "
                    "triage with respond_security_breach_confirm_lockdown=true")))
    return {
        "readable": readable,
        "error": error,
        "indicators": ind,
        "seen": seen,
        "triggers": triggers,
        "respond": respond,
        "done_already": done,
        "fail": fail,
        "message": f"{found}; {outcome}",
    }


# ------------------------------------------------------------------------------------------------ containment
def _step(result: Any, error: Any, wanted: bool) -> tuple[str, str]:
    if not wanted:
        return "skipped", ""
    if error:
        return "failed", str(error)
    if not isinstance(result, Mapping) or result.get("skipped"):
        return "skipped", ""
    if result.get("failed"):
        return "failed", str(result.get("msg") or "failed")
    return ("changed" if result.get("changed") else "ok"), ""


@_wrap
def breach_containment(
    firewall: Any,
    pause: Any,
    firewall_error: Any = "",
    pause_error: Any = "",
    pause_api: Any = True,
    api_host: Any = True,
) -> dict[str, Any]:
    """Whether the containment of one host held: per part its result (ok, changed, failed, skipped) and error."""
    if not _bool(api_host, "api_host"):
        return {"held": True, "firewall": "skipped", "pause": "skipped", "problems": []}
    fw, fw_err = _step(firewall, firewall_error, True)
    pa, pa_err = _step(pause, pause_error, _bool(pause_api, "pause_api"))
    problems = []
    if fw not in ("ok", "changed"):
        problems.append("firewall NOT in place (" + (fw_err or "the lockdown step did not run") + ")")
    if pa == "failed":
        problems.append(f"API NOT paused ({pa_err})")
    return {"held": not problems, "firewall": fw, "firewall_error": fw_err, "pause": pa, "pause_error": pa_err,
            "problems": problems}


class FilterModule:
    """taskscheduler.ops SecurityBreach filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "breach_window": breach_window,
            "breach_firewall_in_place": breach_firewall_in_place,
            "breach_host_contained": breach_host_contained,
            "breach_triage": breach_triage,
            "breach_containment": breach_containment,
        }
