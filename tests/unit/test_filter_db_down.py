"""Unit tests for the database-down responder's decision (plugins/filter/db_down.py).

The readings have the shape of ``taskscheduler.ops.system_health`` results (areas containers, postgres, api) as
read from the lab: healthy, PostgreSQL stopped, running but refusing connections, slow (DatabaseSlowQueries),
API down on a working database.
"""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.taskscheduler.ops.plugins.filter import db_down as flt

HEALTHY = {
    "status": "healthy",
    "areas": {
        "containers": {"status": "healthy", "reasons": [],
                       "containers": [{"name": "tsops-postgres-1", "service": "postgres", "state": "running"},
                                      {"name": "tsops-api-1", "service": "api", "state": "running"}]},
        "postgres": {"status": "healthy", "reachable": True, "reasons": []},
        "api": {"status": "healthy", "reasons": []},
        "host": {"status": "healthy", "reasons": [], "load": {"cpus": 2, "load_1m": 0.8}},
    },
}


def reading(**changes) -> dict:
    """HEALTHY with area fields replaced: reading(postgres={'status': 'degraded'}, container_state='exited')."""
    out = copy.deepcopy(HEALTHY)
    state = changes.pop("container_state", None)
    if state is not None:
        out["areas"]["containers"]["containers"][0]["state"] = state
    for area, fields in changes.items():
        out["areas"][area].update(fields)
    return out


def test_a_stopped_database_is_responded_to():
    d = flt.db_down_triage(reading(container_state="exited",
                                   postgres={"status": "down", "reachable": False,
                                             "reasons": ["no running container for service 'postgres'"]},
                                   api={"status": "down"}))
    assert d["respond"] is True and d["fits"] == "TaskSchedulerDatabaseDown" and d["assessed"] is True
    assert "container is exited" in d["reason"] and d["container"]["state"] == "exited"


def test_a_running_database_that_refuses_connections_is_responded_to():
    d = flt.db_down_triage(reading(postgres={"status": "down", "reachable": False,
                                             "reasons": ["database unreachable: the database system is "
                                                         "shutting down"]}))
    assert d["respond"] is True and d["fits"] == "TaskSchedulerDatabaseDown"
    assert "does not accept connections: database unreachable" in d["reason"]
    assert d["db_accepts_connections"] is False


def test_a_slow_database_is_not_database_down():
    d = flt.db_down_triage(reading(postgres={"status": "degraded", "reasons": [
        "1 queries active for more than 30s (longest 41s, DatabaseSlowQueries)"]}))
    assert d["respond"] is False and d["fits"] == "DatabaseSlowQueries" and d["assessed"] is True
    assert "accepts connections and is slow" in d["reason"]


def test_failing_queries_on_an_answering_database_are_not_database_down():
    d = flt.db_down_triage(reading(postgres={"status": "down", "reachable": True,
                                             "reasons": ["server query failed: canceling statement due to "
                                                         "statement timeout"]}))
    assert d["respond"] is False and d["fits"] == "DatabaseSlowQueries"


def test_an_api_down_on_a_working_database_names_the_api_alert():
    d = flt.db_down_triage(reading(api={"status": "down", "reasons": ["/health: connection refused"]}))
    assert d["respond"] is False and d["fits"] == "TaskSchedulerAPIDown"
    assert "/health: connection refused" in d["reason"]


def test_a_slow_api_names_high_latency():
    d = flt.db_down_triage(reading(api={"status": "degraded", "reasons": ["p95 2.5s > 2s (HighAPILatency)"]}))
    assert d["respond"] is False and d["fits"] == "HighAPILatency"


def test_a_healthy_system_needs_nothing():
    d = flt.db_down_triage(HEALTHY)
    assert d == {"respond": False, "assessed": True, "fits": None, "forced": False, "db_accepts_connections": True,
                 "container": HEALTHY["areas"]["containers"]["containers"][0], "postgres_status": "healthy",
                 "api_status": "healthy",
                 "reason": "PostgreSQL accepts connections and is healthy, and so is the API: nothing to do"}


@pytest.mark.parametrize("force", [True, "true", "yes"])
def test_force_responds_and_still_says_what_was_seen(force):
    d = flt.db_down_triage(reading(postgres={"status": "degraded", "reasons": ["slow"]}), force)
    assert d["respond"] is True and d["forced"] is True and d["fits"] == "DatabaseSlowQueries"
    assert d["reason"].startswith("forced by the operator although: PostgreSQL accepts connections and is slow")


def test_a_probe_timeout_on_an_overloaded_host_is_not_taken_for_a_dead_database():
    timeout = {"status": "down", "reachable": False,
               "reasons": ["database unreachable: docker exec tsops-postgres-1 psql timed out after 15.0s"]}
    d = flt.db_down_triage(reading(postgres=timeout, host={"load": {"cpus": 2, "load_1m": 136.58}}))
    assert d["respond"] is False and d["assessed"] is False
    assert "overloaded (load 136.58 on 2 cpus)" in d["reason"]
    assert flt.db_down_triage(reading(postgres=timeout))["respond"] is True, "a quiet host: the server is hung"
    refused = {"status": "down", "reachable": False, "reasons": ["database unreachable: connection refused"]}
    assert flt.db_down_triage(reading(postgres=refused, host={"load": {"cpus": 2, "load_1m": 136.58}}))["respond"]


def test_an_unassessable_database_is_not_reported_as_healthy():
    d = flt.db_down_triage(reading(postgres={"status": "unknown", "reachable": False,
                                             "reasons": ["Docker daemon at unix:///x unreachable"]}))
    assert d["respond"] is False and d["assessed"] is False
    assert "could not be assessed: Docker daemon" in d["reason"]


def test_another_service_name_is_honoured():
    r = reading()
    r["areas"]["containers"]["containers"].append({"name": "db-1", "service": "db", "state": "exited"})
    assert flt.db_down_triage(r, False, "db")["respond"] is True
    assert flt.db_down_triage(r, False, "postgres")["respond"] is False


@pytest.mark.parametrize("bad", [None, "down", [], {"status": "down"}])
def test_a_reading_that_is_not_a_system_health_result_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match=r"expects the result of taskscheduler\.ops\.system_health"):
        flt.db_down_triage(bad)


def test_a_force_that_is_not_a_boolean_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"force='maybe' is not a boolean"):
        flt.db_down_triage(HEALTHY, "maybe")


def test_filter_module_exposes_the_filter():
    assert flt.FilterModule().filters()["db_down_triage"] is flt.db_down_triage
