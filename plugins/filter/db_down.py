# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the database-down responder: does this reading of the system call for it, and if not, what does?

``db_down_triage`` reads one ``taskscheduler.ops.system_health`` result (areas containers, postgres, api) and
decides whether TaskSchedulerDatabaseDown is what is wrong. The responder acts only when PostgreSQL does not
accept connections (its container is not running, or no session can be opened), or when an operator forces it;
anything else (a slow database, an API down on a working database) is named with the alert that fits, and the
responder changes nothing. Documented for ``ansible-doc -t filter`` in ``db_down_triage.yml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

ALERT = "TaskSchedulerDatabaseDown"


def _area(reading: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    area = (reading.get("areas") or {}).get(name)
    return area if isinstance(area, Mapping) else {}


def _reasons(area: Mapping[str, Any]) -> str:
    return "; ".join(str(r) for r in area.get("reasons") or []) or "no findings"


def _container(reading: Mapping[str, Any], service: str) -> Mapping[str, Any] | None:
    for entry in _area(reading, "containers").get("containers") or []:
        if isinstance(entry, Mapping) and entry.get("service") == service:
            return entry
    return None


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise AnsibleFilterError(f"taskscheduler.ops.db_down_triage: {what}={value!r} is not a boolean")


def _overload(reading: Mapping[str, Any], per_cpu: float) -> str | None:
    """'load 136.6 on 2 cpus' when the host's 1-minute load per CPU is above `per_cpu`, else None."""
    load = _area(reading, "host").get("load")
    if not isinstance(load, Mapping):
        return None
    try:
        one, cpus = float(load.get("load_1m")), max(1, int(load.get("cpus") or 1))
    except (TypeError, ValueError):
        return None
    return f"load {one:g} on {cpus} cpus" if one / cpus > per_cpu else None


def db_down_triage(reading: Any, force: Any = False, service: str = "postgres",
                   overload_per_cpu: float = 4.0) -> dict[str, Any]:
    """The responder's decision from a system_health result.

    Returns ``respond`` (act), ``assessed`` (the reading could tell), ``fits`` (the alert that fits the findings,
    None when nothing is wrong), ``reason`` (one sentence for the operator and the record), ``forced``,
    ``db_accepts_connections`` and ``container`` (the database container's entry, ``{}`` if none was seen).
    """
    if not isinstance(reading, Mapping) or not isinstance(reading.get("areas"), Mapping):
        raise AnsibleFilterError("taskscheduler.ops.db_down_triage: expects the result of "
                                 "taskscheduler.ops.system_health (a dict with 'areas'), got "
                                 f"{type(reading).__name__}")
    forced = _bool(force, "force")
    pg = _area(reading, "postgres")
    api = _area(reading, "api")
    entry = _container(reading, service)
    state = (entry or {}).get("state")
    pg_status = pg.get("status") or "unknown"
    accepts = bool(pg.get("reachable")) and state in (None, "running")
    out: dict[str, Any] = {"forced": forced, "db_accepts_connections": accepts, "container": dict(entry or {}),
                           "postgres_status": pg_status, "api_status": api.get("status") or "unknown"}

    def verdict(respond: bool, fits: str | None, reason: str, assessed: bool = True) -> dict[str, Any]:
        if forced and not respond:
            reason = f"forced by the operator although: {reason}"
        return dict(out, respond=respond or forced, fits=fits, reason=reason, assessed=assessed)

    if entry is not None and state != "running":
        return verdict(True, ALERT, f"the {service} container is {state or 'in an unknown state'}, not running")
    if not pg:
        return verdict(False, None, "the reading has no postgres area: nothing can be decided", assessed=False)
    if not pg.get("reachable"):
        if pg_status == "unknown":
            # The probe itself could not run (Docker unreachable, no container found, a bad setting).
            return verdict(False, None, f"PostgreSQL could not be assessed: {_reasons(pg)}", assessed=False)
        overload = _overload(reading, float(overload_per_cpu))
        if overload and "timed out" in _reasons(pg):
            # A probe that timed out on an overloaded host cannot tell a hung server from a busy machine.
            return verdict(False, None, f"PostgreSQL did not answer in time ({_reasons(pg)}) but the host is "
                                        f"overloaded ({overload}): a hung server cannot be told from a busy host",
                           assessed=False)
        return verdict(True, ALERT, f"PostgreSQL does not accept connections: {_reasons(pg)}")
    if pg_status == "down":
        return verdict(False, "DatabaseSlowQueries",
                       f"PostgreSQL accepts connections but its queries fail ({_reasons(pg)}): not "
                       f"{ALERT}; look for long or blocked statements")
    if pg_status == "degraded":
        return verdict(False, "DatabaseSlowQueries",
                       f"PostgreSQL accepts connections and is slow ({_reasons(pg)}): not {ALERT}")
    api_status = api.get("status")
    if api_status == "down":
        return verdict(False, "TaskSchedulerAPIDown",
                       f"PostgreSQL accepts connections and is healthy, the API is down ({_reasons(api)})")
    if api_status == "degraded":
        return verdict(False, "HighAPILatency",
                       f"PostgreSQL accepts connections and is healthy, the API is degraded ({_reasons(api)})")
    return verdict(False, None, "PostgreSQL accepts connections and is healthy, and so is the API: nothing to do")


class FilterModule:
    """taskscheduler.ops database-down filters."""

    def filters(self) -> dict[str, Any]:
        return {"db_down_triage": db_down_triage}
