"""Unit tests for the filter taskscheduler.ops.deployments (plugins/filter/deployments.py): the deployment log that
respond_api_down's rollback reads, with torn and hand-edited lines."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.taskscheduler.ops.plugins.filter import deployments as flt

PATH = "/var/lib/tsops/deployments.jsonl"


def line(**fields: object) -> str:
    return json.dumps({"at": "2026-11-26T21:00:00Z", "service": "api", "previous_image": "app:1",
                       "new_image": "app:2", "deployed_by": "ci", **fields})


def test_good_log() -> None:
    text = "\n".join([line(new_image="app:1", previous_image="app:0"), line(service="worker"), line(), ""])
    out = flt.parse_deployments(text, "api", PATH)
    assert [d["new_image"] for d in out["deployments"]] == ["app:1", "app:2"]
    assert out["skipped"] == [] and out["unsure"] is False


@pytest.mark.parametrize("bad,error", [
    ('{"at": "2026-11-26T21:05:00Z", "service": "api", "new_im', "not JSON"),
    ("not json at all", "not JSON"),
    ("[1, 2]", "a JSON list, not a deployment object"),
    ('"api"', "a JSON str, not a deployment object"),
    ("null", "a JSON NoneType, not a deployment object"),
    ('{"service": 5}', "no 'service' string"),
    ('{"service": "api", "at": "yesterday"}', "'at' is not an ISO 8601 time"),
    ('{"service": "api", "at": 1764190800}', "'at' is not an ISO 8601 time"),
])
def test_bad_line_is_skipped_and_reported_with_file_and_line(bad: str, error: str) -> None:
    text = "\n".join([line(new_image="app:1", previous_image="app:0"), bad, line()])
    out = flt.parse_deployments(text, "api", PATH)
    assert [d["new_image"] for d in out["deployments"]] == ["app:1", "app:2"]
    [skipped] = out["skipped"]
    assert skipped["line"] == 2 and error in skipped["error"]
    assert skipped["message"].startswith(f"{PATH}:2: skipped, ")
    assert out["unsure"] is False, "a good deployment of the service follows the bad line"


def test_bad_last_line_makes_the_last_deployment_unsure() -> None:
    out = flt.parse_deployments(line() + "\n" + '{"at": "2026-11-26T21:05:00Z", "serv', "api", PATH)
    assert len(out["deployments"]) == 1 and out["unsure"] is True and out["skipped"][0]["line"] == 2
    other = flt.parse_deployments(line() + "\n" + line(service="worker") + "\n", "api", PATH)
    assert other["unsure"] is False


@pytest.mark.parametrize("text", [None, "", "\n\n"])
def test_empty_log(text: object) -> None:
    assert flt.parse_deployments(text, "api") == {"deployments": [], "skipped": [], "unsure": False,
                                                  "lines": len((text or "").split("\n"))}


def test_not_text_is_a_clear_error() -> None:
    with pytest.raises(AnsibleFilterError, match="expected the log's text, got dict"):
        flt.parse_deployments({"a": 1}, "api")


def test_registered_and_documented(repo_root: Path) -> None:
    assert flt.FilterModule().filters()["deployments"] is flt.parse_deployments
    doc = yaml.safe_load((repo_root / "plugins" / "filter" / "deployments.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == "deployments"
    rollback = (repo_root / "roles" / "respond_api_down" / "tasks" / "rollback.yml").read_text()
    assert "taskscheduler.ops.deployments(" in rollback and "map('from_json')" not in rollback


# ------------------------------------------------------------------------- respond_api_down/tasks/rollback.yml
RENDER = """
import json, sys, yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
init_plugin_loader([sys.argv[1]])
facts, until = json.loads(sys.stdin.read()), sys.argv[3]
for task in yaml.safe_load(open(sys.argv[2])):
    for name, expr in (task.get("ansible.builtin.set_fact") or {}).items():
        facts[name] = Templar(loader=DataLoader(), variables=facts).template(trust_as_template(expr))
    if until in facts:
        break
print(json.dumps({k: v for k, v in facts.items() if k.startswith("_respond")}, default=str))
"""


def rollback_facts(repo_root: Path, log: str, until: str) -> dict[str, Any]:
    """Render rollback.yml's set_fact tasks in order through Ansible's own templar (in a fresh interpreter, where
    the collection loader finds taskscheduler.ops), until ``until`` is set."""
    facts = {
        "__respond_api_down_deploy_log": {"content": base64.b64encode(log.encode()).decode()},
        "respond_api_down_service": "api", "respond_api_down_deployments_file": PATH,
        "respond_api_down_rollback": True, "respond_api_down_rollback_window_minutes": 30,
        "_respond_api_down_container": {"image": "app:2"}, "_respond_api_down_ready_after_restart": False,
    }
    rollback = repo_root / "roles" / "respond_api_down" / "tasks" / "rollback.yml"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(repo_root / "collections"))
    proc = subprocess.run([sys.executable, "-c", RENDER, str(repo_root / "collections"), str(rollback), until],
                          input=json.dumps(facts), capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_rollback_reads_a_log_with_a_torn_line(repo_root: Path) -> None:
    now = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log = "\n".join([line(new_image="app:1", previous_image="app:0"), '{"at": "2026-11-', line(at=now), ""])
    facts = rollback_facts(repo_root, log, "_respond_api_down_rollback_check")
    assert [d["new_image"] for d in facts["_respond_api_down_deployments"]] == ["app:1", "app:2"]
    assert facts["_respond_api_down_rollback_check"] == "ok"


def test_rollback_refuses_when_the_last_line_is_unreadable(repo_root: Path) -> None:
    now = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    facts = rollback_facts(repo_root, line(at=now) + "\n" + '{"at": "' + now + '", "service": "api", "new',
                           "_respond_api_down_rollback_check")
    check = str(facts["_respond_api_down_rollback_check"])
    assert check.startswith("the deployments file has unreadable lines") and f"{PATH}:2: skipped" in check
