"""Unit tests of the diagnostic modules' shell: argument specs match their documentation, the one failure path
(invalid parameters vs internal error, secrets never echoed), read-only results, and the action group."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.taskscheduler.ops.plugins.module_utils import _diag_module, _probes
from ansible_collections.taskscheduler.ops.plugins.module_utils._verdict import DOWN, Area

REPO = Path(__file__).resolve().parents[2]
MODULES = ["system_health", "container_info", "http_check", "postgres_info", "redis_info", "work_queue_info",
           "host_resources_info", "service_logs_info"]
FRAGMENTS = {"taskscheduler.ops.compose": "compose", "taskscheduler.ops.database": "database",
             "taskscheduler.ops.redis": "redis", "taskscheduler.ops.http_options": "http_options"}


def load(name: str):
    return importlib.import_module(f"ansible_collections.taskscheduler.ops.plugins.modules.{name}")


def documented_options(module) -> dict[str, Any]:
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc.get("options") or {})
    for ref in doc.get("extends_documentation_fragment", []):
        if ref in FRAGMENTS:
            frag = importlib.import_module(
                f"ansible_collections.taskscheduler.ops.plugins.doc_fragments.{FRAGMENTS[ref]}")
            options.update(yaml.safe_load(frag.ModuleDocFragment.DOCUMENTATION)["options"])
    return options


def run_main(module, args: dict[str, Any], monkeypatch, capsys) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def rendered_docs(tmp_path_factory) -> dict[str, Any]:
    """The modules' documentation as ansible-doc renders it, doc fragments (options, attributes, notes, RETURN)
    merged."""
    base = tmp_path_factory.mktemp("docs")
    link = base / "ansible_collections" / "taskscheduler" / "ops"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    ansible_doc = shutil.which("ansible-doc") or str(Path(sys.executable).parent / "ansible-doc")
    proc = subprocess.run([ansible_doc, "--json", "-t", "module", *[f"taskscheduler.ops.{m}" for m in MODULES]],
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(base), ANSIBLE_NOCOLOR="1"),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name.rsplit(".", 1)[1]: value for name, value in json.loads(proc.stdout).items()}


@pytest.mark.parametrize("name", MODULES)
def test_documentation_is_complete(name, rendered_docs):
    module = load(name)
    doc = rendered_docs[name]["doc"]
    returns = rendered_docs[name]["return"]
    assert doc["module"] == name and doc["version_added"] == "0.1.0"
    # from the diagnostics fragment, or the module's own where it differs
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["check_mode"]["details"].endswith("the result is the same as in a normal run.")
    assert doc["attributes"]["check_mode"]["description"]  # from ansible.builtin.action_common_attributes
    assert doc["attributes"]["action_group"]["membership"] == ["taskscheduler.ops.diagnostics"]
    assert doc["attributes"]["diff_mode"]["support"] == "none"
    assert doc["attributes"]["platform"]["platforms"] == ("linux" if name == "host_resources_info" else "posix")
    assert any("group/taskscheduler.ops.diagnostics" in note for note in doc["notes"])
    assert {"status", "checked_at", "duration_seconds"} <= set(returns), sorted(returns)
    assert yaml.safe_load(module.EXAMPLES) and yaml.safe_load(module.RETURN)["status"]
    tasks = yaml.safe_load(module.EXAMPLES)
    for task in tasks + [t for block in tasks for t in block.get("block", [])]:
        keywords = ("name", "register", "when", "block", "module_defaults")
        assert all("." in key for key in task if key not in keywords), task  # FQCNs


@pytest.mark.parametrize("name", MODULES)
def test_argument_spec_matches_documentation(name, monkeypatch):
    module = load(name)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(module, "run_module", lambda spec, body, mod_name: seen.update(spec=spec, name=mod_name))
    module.main()
    assert seen["name"] == name
    documented = documented_options(module)
    assert set(seen["spec"]) == set(documented)
    for key, spec in seen["spec"].items():
        doc = documented[key]
        assert spec.get("type", "str") == doc.get("type", "str"), key
        assert spec.get("default") == doc.get("default"), key
        assert spec.get("choices") == doc.get("choices"), key
        assert bool(spec.get("no_log")) == key.endswith("password"), key


def test_action_group_lists_every_diagnostic_module(repo_root: Path):
    runtime = yaml.safe_load((repo_root / "meta" / "runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["diagnostics"]) == sorted(MODULES)


def test_invalid_parameters_fail_without_traceback(monkeypatch, capsys):
    out = run_main(load("work_queue_info"), {"queue_depth_minutes": 0}, monkeypatch, capsys)
    assert out["failed"] and out["msg"] == ("work_queue_info: invalid parameters: queue_depth_minutes must be "
                                            "between 1 and 1440, got 0")
    assert "exception" not in out


@pytest.mark.parametrize("args,msg", [
    ({"log_since": "a while"}, "log_since: not a duration"),
    ({"log_pattern": "(ERROR"}, "log_pattern is not a valid regular expression"),
    ({"db_transport": "tcp"}, "db_transport=tcp needs db_host"),
])
def test_more_invalid_parameters(args, msg, monkeypatch, capsys):
    out = run_main(load("system_health"), args, monkeypatch, capsys)
    assert out["failed"] and msg in out["msg"]


def test_internal_error_is_reported_without_the_secret(monkeypatch, capsys):
    def boom(params):
        raise RuntimeError(f"unexpected with {params['db_password']}")

    module = load("postgres_info")
    monkeypatch.setattr(module, "postgres_info", boom)
    out = run_main(module, {"db_password": "hunter2-secret"}, monkeypatch, capsys)
    assert out["failed"] and out["msg"].startswith("postgres_info: internal error (RuntimeError: unexpected with ")
    assert "hunter2-secret" not in json.dumps(out)


def test_down_component_is_a_result_not_a_failure_and_read_only(monkeypatch, capsys):
    def database(ctx, areas):
        a = Area("postgres")
        a.fail(DOWN, "database unreachable: no container of service 'postgres'")
        return {"postgres": a}

    monkeypatch.setattr(_probes, "probe_database", database)
    out = run_main(load("system_health"), {"areas": ["postgres"], "_ansible_check_mode": True,
                                           "db_password": "pw-not-shown"}, monkeypatch, capsys)
    assert not out.get("failed") and out["changed"] is False
    assert out["status"] == DOWN and out["down"] == ["postgres"]
    assert out["areas"]["postgres"]["reasons"] == ["database unreachable: no container of service 'postgres'"]
    assert "pw-not-shown" not in json.dumps(out)


def test_work_queue_sections(monkeypatch, capsys):
    def database(ctx, areas):
        out = {}
        for name in areas:
            out[name] = Area(name)
        out["workers"].flag(DOWN, "no worker heartbeat within 120s")
        return out

    monkeypatch.setattr(_diag_module, "probe_database", database)
    out = run_main(load("work_queue_info"), {"sections": ["workers", "queue"]}, monkeypatch, capsys)
    assert out["status"] == DOWN and set(out) >= {"queue", "workers"} and "processing" not in out
    assert out["checked_at"].endswith("+00:00") and out["duration_seconds"] >= 0
    assert out["reasons"] == ["workers: no worker heartbeat within 120s"]
