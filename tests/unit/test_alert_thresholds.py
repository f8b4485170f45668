"""The alert rules' thresholds are the canonical table's (plugins/module_utils/_thresholds.py).

The role alert_rules keeps its thresholds as defaults (so that they show in argument_specs and can be overridden per
inventory); this test fails as soon as a default and the table disagree, or the table gains a key nobody maps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.taskscheduler.ops.plugins.module_utils._thresholds import THRESHOLDS

ROLE = Path(__file__).resolve().parents[2] / "roles" / "alert_rules"

# table key -> role default (a dotted path reads into a dict default)
MAPPING = {
    "api_error_ratio_max": "alert_rules_api_error_ratio_max",
    "api_error_for_seconds": "alert_rules_for.HighErrorRate",
    "api_latency_seconds_max": "alert_rules_api_latency_seconds_max",
    "worker_heartbeat_window_seconds": "alert_rules_worker_heartbeat_window_seconds",
    "workers_alive_ratio_min": "alert_rules_workers_alive_ratio_min",
    "scheduler_stale_seconds": "alert_rules_scheduler_stale_seconds",
    "slow_query_mean_ms_max": "alert_rules_slow_query_mean_ms_max",
    "long_running_query_seconds_max": "alert_rules_long_running_query_seconds_max",
    "disk_free_ratio_min": "alert_rules_disk_free_ratio_min",
    "memory_used_ratio_max": "alert_rules_memory_used_ratio_max",
    # proposed for the table (SecurityBreach's burst size); compared once the table has it
    "auth_failures_per_minute_max": "alert_rules_auth_failures_per_minute_max",
}
# Keys of the table that no alert rule uses (each with the reason).
NOT_ALERT_THRESHOLDS = {
    "queue_oldest_pending_seconds_max": "queue backlog is a diagnostic verdict (degraded), not an alert",
}


def role_defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def lookup(defaults: dict, path: str):
    value = defaults
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("key,default", sorted(MAPPING.items()))
def test_role_default_equals_the_canonical_threshold(key, default):
    if key not in THRESHOLDS:
        pytest.skip(f"{key} is not in _thresholds.py yet (proposed to its owner); the role's default stands alone")
    value = lookup(role_defaults(), default)
    assert value == THRESHOLDS[key], f"{default} = {value!r} but _thresholds.THRESHOLDS[{key!r}] = {THRESHOLDS[key]!r}"
    assert type(value) is type(THRESHOLDS[key]) or {type(value), type(THRESHOLDS[key])} <= {int, float}


def test_every_canonical_threshold_is_mapped_or_excluded():
    unmapped = set(THRESHOLDS) - set(MAPPING) - set(NOT_ALERT_THRESHOLDS)
    assert not unmapped, f"new thresholds in _thresholds.py with no role default: {sorted(unmapped)}"


def test_argument_specs_state_the_same_defaults():
    defaults = role_defaults()
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(specs) == set(defaults), f"only in defaults: {set(defaults) - set(specs)}, " \
                                        f"only in specs: {set(specs) - set(defaults)}"
    for name, spec in specs.items():
        if "default" in spec:
            assert spec["default"] == defaults[name], name
        else:  # templated defaults (inventory variables) are described, not repeated
            assert "{{" in str(defaults[name]), f"{name}: give its default in argument_specs"
