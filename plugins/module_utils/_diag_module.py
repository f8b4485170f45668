# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

What every diagnostic module shares: the argument specs behind the doc fragments
(``taskscheduler.ops.compose``, ``taskscheduler.ops.database``, ``taskscheduler.ops.redis``,
``taskscheduler.ops.http_options``) and the one way a
module runs: read-only (check mode supported, ``changed`` always false), a down component is a verdict and
not a failure, and the module fails only on invalid parameters or an internal error, in one place.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Iterable
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule

from ._docker import parse_duration
from ._probes import (
    ALL_AREAS,
    CORE_SERVICES,
    DB_AREAS,
    Context,
    Settings,
    probe_containers,
    probe_database,
    probe_endpoints,
    probe_host,
    probe_logs,
    probe_redis,
    single,
    utc_now,
)
from ._verdict import Area, worst

COMPOSE_ARGS: dict[str, Any] = {
    "project": {"type": "str"},
    "services": {"type": "list", "elements": "str", "default": list(CORE_SERVICES)},
    "docker_host": {"type": "str"},
    "docker_cli": {"type": "str", "default": "docker"},
    "timeout": {"type": "float", "default": 10.0},
}

DATABASE_ARGS: dict[str, Any] = {
    "db_transport": {"type": "str", "choices": ["docker", "tcp"], "default": "docker"},
    "db_service": {"type": "str", "default": "postgres"},
    "db_container": {"type": "str"},
    "db_host": {"type": "str"},
    "db_port": {"type": "int", "default": 5432},
    "db_name": {"type": "str", "default": "orchestrator"},
    "db_user": {"type": "str", "default": "orchestrator"},
    "db_password": {"type": "str", "no_log": True},
    "db_sslmode": {"type": "str", "default": "prefer",
                   "choices": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]},
}

REDIS_ARGS: dict[str, Any] = {
    "redis_transport": {"type": "str", "choices": ["docker", "tcp"], "default": "docker"},
    "redis_service": {"type": "str", "default": "redis"},
    "redis_container": {"type": "str"},
    "redis_host": {"type": "str"},
    "redis_port": {"type": "int", "default": 6379},
    "redis_password": {"type": "str", "no_log": True},
    "redis_db": {"type": "int", "default": 0},
}

HTTP_ARGS: dict[str, Any] = {
    "use_proxy": {"type": "bool", "default": True},
    "validate_certs": {"type": "bool", "default": True},
}

# Every diagnostic module accepts all of these (using those it needs), so that one module_defaults entry for
# group/taskscheduler.ops.diagnostics (meta/runtime.yml) serves them all.
CONNECTION_ARGS: dict[str, Any] = {**COMPOSE_ARGS, **DATABASE_ARGS, **REDIS_ARGS, **HTTP_ARGS}

ENDPOINT_OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "url": {"type": "str"},
    "area": {"type": "str", "choices": ["api", "monitoring"], "default": "api"},
    "severity": {"type": "str", "choices": ["down", "degraded"], "default": "down"},
    "expect_status": {"type": "list", "elements": "int", "default": [200]},
    "timeout": {"type": "float"},
    "samples": {"type": "int"},
    "headers": {"type": "dict", "default": {}},
}

ENDPOINTS_ARG: dict[str, Any] = {"type": "list", "elements": "dict", "default": [], "options": ENDPOINT_OPTIONS}

LOG_ARGS: dict[str, Any] = {
    "log_since": {"type": "str", "default": "15m"},
    "log_lines": {"type": "int", "default": 5},
    "log_tail": {"type": "int", "default": 5000},
    "log_services": {"type": "list", "elements": "str"},
    "log_pattern": {"type": "str", "default": r"\b(ERROR|FATAL|CRITICAL|PANIC)\b"},
}


class InvalidInput(ValueError):
    """A parameter value the module cannot use; reported as such, without a traceback."""


def validate(params: dict[str, Any]) -> None:
    """Checks the argument spec cannot express; raise InvalidInput naming the parameter."""
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("timeout", lambda v: v > 0, "must be > 0"),
        ("stats_interval", lambda v: 0.05 <= v <= 10, "must be between 0.05 and 10 seconds"),
        ("http_samples", lambda v: 1 <= v <= 1000, "must be between 1 and 1000"),
        ("http_interval", lambda v: 0 <= v <= 60, "must be between 0 and 60 seconds"),
        ("slow_statements", lambda v: 0 <= v <= 100, "must be between 0 (off) and 100"),
        ("queue_depth_minutes", lambda v: 1 <= v <= 1440, "must be between 1 and 1440"),
        ("expected_workers", lambda v: v >= 0, "must be >= 0"),
        ("log_lines", lambda v: 0 <= v <= 1000, "must be between 0 and 1000"),
        ("log_tail", lambda v: 1 <= v <= 100000, "must be between 1 and 100000"),
    ]
    for name, ok, text in checks:
        if params.get(name) is not None and not ok(params[name]):
            raise InvalidInput(f"{name} {text}, got {params[name]!r}")
    if params.get("log_since") is not None:
        try:
            parse_duration(params["log_since"])
        except ValueError as exc:
            raise InvalidInput(f"log_since: {exc}") from exc
    if params.get("log_pattern") is not None:
        try:
            re.compile(params["log_pattern"])
        except re.error as exc:
            raise InvalidInput(f"log_pattern is not a valid regular expression: {exc}") from exc
    for area in params.get("areas") or []:
        if area not in ALL_AREAS:  # pragma: no cover - the argument spec's choices catch it first
            raise InvalidInput(f"unknown area {area!r}")
    for key in ("db_transport", "redis_transport"):
        host = key.split("_", maxsplit=1)[0] + "_host"
        if params.get(key) == "tcp" and not params.get(host):
            raise InvalidInput(f"{key}=tcp needs {host}")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (no_log parameter value) replaced, longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def run_module(argument_spec: dict[str, Any], body: Callable[[dict[str, Any]], dict[str, Any]],
               name: str, **kwargs: Any) -> None:
    """Build the AnsibleModule, run `body(params)` and exit: the one failure path of every diagnostic module."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **kwargs)
    started = time.monotonic()
    try:
        validate(module.params)
        result = body(module.params)
    except InvalidInput as exc:
        module.fail_json(msg=f"{name}: invalid parameters: {exc}")
    except Exception as exc:  # noqa: BLE001 - the one catch-all: report, with a traceback, never crash
        # Scrubbed here: fail_json does not mask no_log values inside exception details.
        module.fail_json(msg=scrub(f"{name}: internal error ({type(exc).__name__}: {exc}); please report it with "
                                   "the traceback (run with -vvv)", module.no_log_values),
                         exception=scrub(traceback.format_exc(), module.no_log_values))
    result.setdefault("duration_seconds", round(time.monotonic() - started, 3))
    module.exit_json(changed=False, **result)


# --- bodies of the one-area modules: parameters in, result out ---------------------------------------------
def _timed_single(fn: Callable[[], Area]) -> dict[str, Any]:
    started = time.monotonic()
    area = fn()
    return single(area, time.monotonic() - started)


def container_info(params: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(Settings(params))
    return _timed_single(lambda: probe_containers(ctx))


def postgres_info(params: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(Settings(params))
    return _timed_single(lambda: probe_database(ctx, ["postgres"])["postgres"])


def redis_info(params: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(Settings(params))
    return _timed_single(lambda: probe_redis(ctx))


def host_resources_info(params: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(Settings(params))
    return _timed_single(lambda: probe_host(ctx))


def service_logs_info(params: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(Settings(params))
    return _timed_single(lambda: probe_logs(ctx))


def http_check(params: dict[str, Any]) -> dict[str, Any]:
    """All endpoints, whatever their area; one verdict over them."""
    started = time.monotonic()
    checked_at = utc_now()
    settings = Settings(params)
    areas = sorted({e.get("area") or "api" for e in settings.endpoints})
    results = probe_endpoints(settings, areas)
    endpoints = [e for name in areas for e in results[name].figures.get("endpoints", [])]
    status = worst(a.status for a in results.values())
    return {
        "status": status,
        "reasons": [r for a in results.values() for r in a.reasons],
        "notes": [n for a in results.values() for n in a.notes],
        "error": None,
        "summary": [a.summary_line() for a in results.values()],
        "endpoints": endpoints,
        "checked_at": checked_at,
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def work_queue_info(params: dict[str, Any]) -> dict[str, Any]:
    """Queue, workers, scheduler and processing from one database round trip, each as a section."""
    started = time.monotonic()
    checked_at = utc_now()
    ctx = Context(Settings(params))
    sections = [s for s in DB_AREAS if s in params["sections"]]
    results = probe_database(ctx, sections)
    out: dict[str, Any] = {name: area.as_dict() for name, area in results.items()}
    out.update(
        status=worst(a.status for a in results.values()),
        reasons=[f"{name}: {r}" for name, a in results.items() for r in a.reasons],
        summary=[a.summary_line() for a in results.values()],
        checked_at=checked_at,
        duration_seconds=round(time.monotonic() - started, 3),
    )
    return out
