"""The role alert_rules renders valid rules for the runbook's twelve alerts, and the lab's copy is that rendering.

The template is rendered by Ansible itself (the role, in a throw-away play on localhost), once with the production
defaults and once with the lab's values (lab/prometheus/alert_rules.vars.yml). Then:
* both pass `promtool check rules` (promtool from PATH, else the lab's monitoring image; skipped, with the reason,
  only when neither exists);
* the lab rendering is byte-for-byte the committed lab/prometheus/rules/taskscheduler.yml, so the two cannot drift;
* names, severities (the runbook's, from _incident_policy), labels, annotations and `for:` are what they should be;
* `promtool test rules` drives the lab rules with synthetic series: each alert fires for its cause and not for the
  neighbouring states that must not page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from ansible_collections.taskscheduler.ops.plugins.module_utils._incident_policy import DEFAULT_SEVERITY_MAP

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "alert_rules"
LAB_VARS = REPO / "lab" / "prometheus" / "alert_rules.vars.yml"
LAB_RULES = REPO / "lab" / "prometheus" / "rules" / "taskscheduler.yml"
MONITORING_IMAGE = "tsops-lab/monitoring:latest"

PLAY = """
- name: Render the alert rules twice
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Production defaults
      ansible.builtin.include_role:
        name: taskscheduler.ops.alert_rules
      vars:
        alert_rules_dest: "{out}/production.yml"
        alert_rules_owner: ""
        alert_rules_group: ""
        alert_rules_validate: false
        alert_rules_reload: never
    - name: The lab's values
      ansible.builtin.include_vars:
        file: "{lab_vars}"
    - name: Lab
      ansible.builtin.include_role:
        name: taskscheduler.ops.alert_rules
      vars:
        alert_rules_dest: "{out}/lab.yml"
        alert_rules_owner: ""
        alert_rules_group: ""
        alert_rules_validate: false
        alert_rules_reload: never
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("alert_rules")
    link = out / "collections" / "ansible_collections" / "taskscheduler" / "ops"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    (out / "play.yml").write_text(PLAY.format(out=out, lab_vars=LAB_VARS))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(out / "collections"), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    playbook = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    proc = subprocess.run([playbook, "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                           str(out / "play.yml")], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return {"production": out / "production.yml", "lab": out / "lab.yml"}


def promtool_argv(workdir: Path) -> list[str]:
    """promtool on PATH, else inside the lab's monitoring image with `workdir` mounted at the same path."""
    if shutil.which("promtool"):
        return ["promtool"]
    if shutil.which("docker") and subprocess.run(["docker", "image", "inspect", MONITORING_IMAGE],
                                                 capture_output=True, check=False).returncode == 0:
        return ["docker", "run", "--rm", "--network", "none", "-v", f"{workdir}:{workdir}", "-w", str(workdir),
                "--entrypoint", "promtool", MONITORING_IMAGE]
    pytest.skip(f"promtool unavailable: not on PATH and no {MONITORING_IMAGE} image (make lab-images builds it); "
                "tests/integration/test_alerts.py checks the rules inside the running lab instead")


def rules_of(path: Path) -> list[dict]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


@pytest.mark.parametrize("variant", ["production", "lab"])
def test_promtool_check_rules_passes(rendered, variant):
    path = rendered[variant]
    proc = subprocess.run([*promtool_argv(path.parent), "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules_of(path))} rules found" in proc.stdout, proc.stdout


def test_lab_rules_are_the_template_rendered_with_the_lab_values(rendered):
    assert LAB_RULES.read_text() == rendered["lab"].read_text(), (
        f"{LAB_RULES} differs from the template rendered with {LAB_VARS}: run "
        "`ansible-playbook playbooks/alert_rules.yml` against the lab (or copy the rendering) and commit it")


@pytest.mark.parametrize("variant", ["production", "lab"])
def test_the_twelve_alerts_with_runbook_severities_labels_and_annotations(rendered, variant):
    rules = rules_of(rendered[variant])
    assert {r["alert"] for r in rules} == set(DEFAULT_SEVERITY_MAP)
    docs = (REPO / "docs" / "alerts.md").read_text()
    for r in rules:
        assert r["labels"]["severity"] == DEFAULT_SEVERITY_MAP[r["alert"]], r["alert"]
        assert r["labels"]["service"], r["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert r["annotations"].get(key), f"{r['alert']}: no {key}"
        anchor = r["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == r["alert"].lower() and f"## {r['alert']}\n" in docs, f"docs/alerts.md has no {r['alert']}"
    # the lab leaves the host's memory alone: only the memory-limited containers are watched
    kinds = {r["labels"].get("kind") for r in rules if r["alert"] == "MemoryUsageCritical"}
    assert kinds == ({"container"} if variant == "lab" else {"host", "container"})


def test_production_for_durations_are_the_defaults(rendered):
    fors = defaults()["alert_rules_for"]
    for r in rules_of(rendered["production"]):
        expected = fors[r["alert"]]
        assert r.get("for", "0s") == f"{expected}s", r["alert"]


def test_production_thresholds_appear_in_the_expressions(rendered):
    d = defaults()
    exprs = {(r["alert"], r["labels"].get("kind")): r["expr"] for r in rules_of(rendered["production"])}
    assert f"> {d['alert_rules_api_error_ratio_max']}" in exprs[("HighErrorRate", None)]
    assert "[300s]" in exprs[("HighErrorRate", None)]
    assert f"> {d['alert_rules_api_latency_seconds_max']}" in exprs[("HighAPILatency", None)]
    assert f"< {d['alert_rules_disk_free_ratio_min']}" in exprs[("DiskSpaceCritical", None)]
    assert f"> {d['alert_rules_memory_used_ratio_max']}" in exprs[("MemoryUsageCritical", "host")]
    assert f"> {d['alert_rules_slow_query_mean_ms_max']}" in exprs[("DatabaseSlowQueries", "slow_statements")]
    long_running = exprs[("DatabaseSlowQueries", "long_running_query")]
    assert f"> {d['alert_rules_long_running_query_seconds_max']}" in long_running
    assert f") / 2 < {d['alert_rules_workers_alive_ratio_min']}" in exprs[("WorkerHealthDegraded", None)]
    assert f"< {d['alert_rules_worker_heartbeat_window_seconds']})" in exprs[("NoActiveWorkers", None)]
    assert f"> {d['alert_rules_scheduler_stale_seconds']}" in exprs[("SchedulerOffline", None)]


# promtool unit tests of the lab rules (5 s evaluation in the lab; promtool evaluates every `interval`).
PROMTOOL_TESTS = """
rule_files: [lab-no-annotations.yml]
evaluation_interval: 5s
tests:
  # three workers expected: all alive or two alive (67%) -> nothing; one alive (33%) -> WorkerHealthDegraded;
  # none -> NoActiveWorkers only
  - interval: 5s
    input_series:
      - series: 'pg_up{job="postgres"}'
        values: '1x40'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="a"}'
        values: '1x40'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="b"}'
        values: '3x40'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="c"}'
        values: '1x4 20x36'
    alert_rule_test:
      - {eval_time: 60s, alertname: WorkerHealthDegraded, exp_alerts: []}
      - {eval_time: 60s, alertname: NoActiveWorkers, exp_alerts: []}
  - interval: 5s
    input_series:
      - series: 'pg_up{job="postgres"}'
        values: '1x40'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="a"}'
        values: '1x40'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="b"}'
        values: '1x4 20x36'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="c"}'
        values: '1x4 20x36'
    alert_rule_test:
      - eval_time: 60s
        alertname: WorkerHealthDegraded
        exp_alerts:
          - exp_labels: {severity: P1, service: worker}
      - {eval_time: 60s, alertname: NoActiveWorkers, exp_alerts: []}
  - interval: 5s
    input_series:
      - series: 'pg_up{job="postgres"}'
        values: '1x40'
      - series: 'taskscheduler_worker_heartbeat_age_seconds{job="postgres",worker_id="a"}'
        values: '1x4 20x36'
    alert_rule_test:
      - eval_time: 60s
        alertname: NoActiveWorkers
        exp_alerts:
          - exp_labels: {severity: P0, service: worker}
      - {eval_time: 60s, alertname: WorkerHealthDegraded, exp_alerts: []}
  # the database is down: that is TaskSchedulerDatabaseDown, not "no workers"
  - interval: 5s
    input_series:
      - series: 'pg_up{job="postgres",instance="pgx:9187"}'
        values: '0x40'
    alert_rule_test:
      - {eval_time: 60s, alertname: NoActiveWorkers, exp_alerts: []}
      - eval_time: 60s
        alertname: TaskSchedulerDatabaseDown
        exp_alerts:
          - exp_labels: {severity: P0, service: postgres, job: postgres, instance: "pgx:9187"}
  # the scheduler stops ticking (and then its target disappears): SchedulerOffline after 15 s without a tick
  - interval: 5s
    input_series:
      - series: 'taskscheduler_scheduler_last_tick_timestamp_seconds{job="scheduler",instance="s:9101"}'
        values: '0+5x6 _x20'
      - series: 'up{job="scheduler",instance="s:9101"}'
        values: '1x6 0x20'
    alert_rule_test:
      - {eval_time: 30s, alertname: SchedulerOffline, exp_alerts: []}
      - eval_time: 60s
        alertname: SchedulerOffline
        exp_alerts:
          - exp_labels: {severity: P1, service: scheduler, job: scheduler}
  # 8% errors does not page, 20% does (for 15 s)
  - interval: 5s
    input_series:
      - series: 'http_requests_total{job="api",route="/api/v1/tasks",status="200"}'
        values: '0+92x20'
      - series: 'http_requests_total{job="api",route="/api/v1/tasks",status="503"}'
        values: '0+8x10 80+20x10'
      - series: 'http_requests_total{job="api",route="/metrics",status="200"}'
        values: '0+1000x20'
    alert_rule_test:
      - {eval_time: 45s, alertname: HighErrorRate, exp_alerts: []}
      - eval_time: 100s
        alertname: HighErrorRate
        exp_alerts:
          - exp_labels: {severity: P0, service: api, job: api}
  # a single use of the revoked token fires at once; invalid tokens below the burst size do not
  - interval: 5s
    input_series:
      - series: 'taskscheduler_auth_failures_total{job="api",reason="revoked_token"}'
        values: '0x5 1x20'
      - series: 'taskscheduler_auth_failures_total{job="api",reason="invalid_token"}'
        values: '0+1x20'
    alert_rule_test:
      - eval_time: 30s
        alertname: SecurityBreach
        exp_alerts:
          - exp_labels: {severity: P0, service: api, job: api, kind: revoked_credential}
      - {eval_time: 90s, alertname: SecurityBreach, exp_alerts: []}
  # the lab's own disk at 5% free; host filesystems are not looked at
  - interval: 5s
    input_series:
      - series: 'node_filesystem_avail_bytes{job="node",instance="labdisk:9100",mountpoint="/srv/labdisk"}'
        values: '5x10'
      - series: 'node_filesystem_size_bytes{job="node",instance="labdisk:9100",mountpoint="/srv/labdisk"}'
        values: '100x10'
      - series: 'node_filesystem_readonly{job="node",instance="labdisk:9100",mountpoint="/srv/labdisk"}'
        values: '0x10'
      - series: 'node_filesystem_avail_bytes{job="node",instance="node-exporter:9100",mountpoint="/"}'
        values: '1x10'
      - series: 'node_filesystem_size_bytes{job="node",instance="node-exporter:9100",mountpoint="/"}'
        values: '100x10'
      - series: 'node_filesystem_readonly{job="node",instance="node-exporter:9100",mountpoint="/"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 30s
        alertname: DiskSpaceCritical
        exp_alerts:
          - exp_labels: {severity: P1, service: host, job: node, instance: "labdisk:9100", mountpoint: /srv/labdisk}
"""


def test_promtool_unit_tests_of_the_lab_rules(rendered):
    workdir = rendered["lab"].parent
    # promtool compares annotations too when a test names none: these tests are about expressions and labels
    doc = yaml.safe_load(rendered["lab"].read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (workdir / "lab-no-annotations.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (workdir / "rules_test.yml").write_text(textwrap.dedent(PROMTOOL_TESTS))
    proc = subprocess.run([*promtool_argv(workdir), "test", "rules", str(workdir / "rules_test.yml")],
                          capture_output=True, text=True, timeout=120, cwd=workdir, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
