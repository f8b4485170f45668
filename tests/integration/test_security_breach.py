"""playbooks/respond_security_breach.yml and lift_lockdown.yml against the real lab: a green run means handled.

- An operator's confirmation contains a breach the audit log cannot show (a stolen VALID token: no failed login).
- An audit log that cannot be read fails the run with the reason and changes nothing; never "nothing to do".
- A re-run never overwrites what an earlier attempt sealed (each attempt keeps a failed capture under its own
  name), temporary files are never sealed, and the evidence still verifies.

Run against a lab of your own: LAB_INSTANCE=<yours> python -m pytest tests/integration/test_security_breach.py.
Every test lifts whatever lockdown it applied (unpause, rules of the lab's API port removed), also on failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from diag_support import ansible_bin

from lab import REPO, Lab, wait_until

FAST = ["-e", "respond_security_breach_tcpdump=false", "-e", "respond_security_breach_db_dump_verify=false",
        "-e", "respond_security_breach_notify=false"]


def playbook(lab: Lab, name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(REPO / "playbooks" / name),
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\n--- stdout (tail)\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-2000:]}"


def inventory_vars(lab: Lab) -> dict:
    return yaml.safe_load(lab.inventory.read_text())["all"]["vars"]


def api_port(lab: Lab) -> int:
    return int(inventory_vars(lab)["tsops_api_url"].rsplit(":", 1)[1].split("/")[0])


def lockdown_rules(lab: Lab) -> list[str]:
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if re.search(f'tsops-lockdown tcp/{api_port(lab)}[" ]', ln)]


def paused(lab: Lab) -> bool:
    return lab.docker("inspect", "-f", "{{.State.Paused}}", lab.container("api")).stdout.strip() == "true"


def record(lab: Lab, incident_id: str) -> list[dict]:
    path = Path(inventory_vars(lab)["tsops_incident_dir"]) / f"{incident_id}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def step(entries: list[dict], name: str) -> dict:
    found = [e for e in entries if e.get("step") == name]
    assert found, f"no step {name!r} in {[e.get('step') for e in entries]}"
    return found[-1]


@pytest.fixture
def lab_released(lab: Lab) -> Iterator[Lab]:
    """The lab; afterwards the API is unpaused and no lockdown rule of its port is left, whatever happened."""
    yield lab
    lab.docker("unpause", lab.container("api"), check=False)
    for rule in lockdown_rules(lab):
        subprocess.run(["iptables", "-w", "-D", *shlex.split(rule)[1:]], check=False)
    assert lockdown_rules(lab) == []


def no_failed_logins_for(lab: Lab, minutes: int) -> None:
    sql = (f"SELECT count(*) FROM audit_log WHERE action = 'auth.failed' AND at > now() - interval '{minutes} "
           "minutes'")
    wait_until(lambda: lab.scalar(sql) == 0, timeout=minutes * 60 + 30, interval=5,
               what=f"no failed authentication in audit_log for {minutes} minute(s)")


def test_confirmed_breach_without_failed_logins_is_contained(lab_released: Lab) -> None:
    lab = lab_released
    no_failed_logins_for(lab, 1)
    incident = f"IT-sec-confirmed-{uuid.uuid4().hex[:8]}"
    proc = playbook(lab, "respond_security_breach.yml", "-e", f"incident_id={incident}",
                    "-e", "respond_security_breach_confirm_lockdown=true",
                    "-e", "respond_security_breach_window_minutes=1", *FAST)
    assert proc.returncode == 0, explain(proc)
    assert "nothing to do" not in proc.stdout, explain(proc)
    assert paused(lab) and len(lockdown_rules(lab)) >= 2, explain(proc)
    entries = record(lab, incident)
    triage = step(entries, "breach indicators in audit_log")["details"]
    assert triage["breach_indicators_found"] is False and triage["audit_log_readable"] is True
    assert triage["triggers"] == ["lockdown confirmed by an operator"]
    assert step(entries, "block external access to the API port (DOCKER-USER + INPUT)")["result"] == "changed"
    assert step(entries, "pause the API")["result"] == "changed"
    # A second run leaves the contained system alone.
    again = playbook(lab, "respond_security_breach.yml", "-e", f"incident_id={incident}",
                     "-e", "respond_security_breach_confirm_lockdown=true", *FAST)
    assert again.returncode == 0 and "already contained, evidence sealed: nothing to do" in again.stdout, \
        explain(again)
    # The lift checks the evidence against the control node's hashes and sets no SecurityBreach silence.
    lift = playbook(lab, "lift_lockdown.yml", "-e", f"incident_id={incident}")
    assert lift.returncode == 0, explain(lift)
    assert not paused(lab) and lockdown_rules(lab) == []
    entries = record(lab, incident)
    checked = step(entries, "lift lockdown - evidence still matches its manifest")["details"]
    assert int(checked["checked_against_control_node"]) > 0
    assert not [e for e in entries if str(e.get("step", "")).startswith("silence alert")], "no silence by default"


def test_unreadable_audit_log_fails_with_the_reason_and_changes_nothing(lab_released: Lab) -> None:
    lab = lab_released
    incident = f"IT-sec-unreadable-{uuid.uuid4().hex[:8]}"
    proc = playbook(lab, "respond_security_breach.yml", "-e", f"incident_id={incident}",
                    "-e", "respond_security_breach_db_name=no_such_db", *FAST)
    assert proc.returncode != 0, explain(proc)
    assert "audit_log could not be read" in proc.stdout, explain(proc)
    assert "no_such_db" in proc.stdout and "does not exist" in proc.stdout, explain(proc)
    assert "no breach indicators, nothing to do" not in proc.stdout
    assert record(lab, incident) == [] and not paused(lab) and lockdown_rules(lab) == []


def test_rerun_keeps_sealed_evidence(lab_released: Lab) -> None:
    """Two attempts whose audit log captures fail: the first attempt's sealed files are never touched."""
    lab = lab_released
    incident = f"IT-sec-rerun-{uuid.uuid4().hex[:8]}"
    evidence = Path(inventory_vars(lab)["tsops_evidence_dir"]) / incident / "lab"
    args = ["-e", f"incident_id={incident}", "-e", "respond_security_breach_force=true",
            "-e", "respond_security_breach_db_name=no_such_db", *FAST]
    first = playbook(lab, "respond_security_breach.yml", *args)
    # Not green: captures failed (escalated), containment awaits confirmation, the audit log could not be read.
    assert first.returncode != 0 and (evidence / "manifest.json").exists(), explain(first)
    manifest = json.loads((evidence / "manifest.json").read_text())
    sealed = {f["name"]: f["sha256"] for f in manifest["files"]}
    failed_first = [n for n in sealed if n.startswith("08_audit_log.csv.failed-")]
    assert len(failed_first) == 1, sealed
    stats = {n: (evidence / n).stat() for n in sealed}

    second = playbook(lab, "respond_security_breach.yml", *args)
    assert second.returncode != 0 and "changed since it was sealed" not in second.stdout, explain(second)
    names = sorted(p.name for p in evidence.iterdir())
    assert not [n for n in names if n.endswith((".part", ".partial", ".tmp", ".incomplete"))], names
    after = json.loads((evidence / "manifest.json").read_text())
    kept = {f["name"]: f["sha256"] for f in after["files"]}
    for name, digest in sealed.items():  # every file of the first attempt: same hash, same inode, same mtime
        st = (evidence / name).stat()
        assert kept[name] == digest and (st.st_ino, st.st_mtime_ns) == (stats[name].st_ino, stats[name].st_mtime_ns)
    assert len([n for n in kept if n.startswith("08_audit_log.csv.failed-")]) == 2, kept
    verify = subprocess.run(["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=evidence, capture_output=True,
                            text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
