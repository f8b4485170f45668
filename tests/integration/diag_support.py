"""Helpers of the diagnostics integration tests (test_health_check*.py, test_diag*.py): real ansible-playbook runs
against the lab's generated inventory, their JSON reports, and the faults the runbook's incidents are made of."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import Lab

REPO = Path(__file__).resolve().parents[2]


def ansible_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    markdown: str | None

    def host(self, name: str = "lab") -> dict[str, Any]:
        assert self.report is not None, f"no JSON report written\n{self.stdout}\n{self.stderr}"
        return self.report["hosts"][name]

    def area(self, area: str, host: str = "lab") -> dict[str, Any]:
        return self.host(host)["areas"][area]

    def statuses(self, host: str = "lab") -> dict[str, str]:
        return {name: a["status"] for name, a in self.host(host)["areas"].items()}

    def explain(self) -> str:
        tail = "\n".join(self.stdout.splitlines()[-60:])
        return f"rc={self.rc}\n{tail}\n{self.stderr[-2000:]}"


def run_playbook(lab: Lab, playbook: str | Path, report_dir: Path, *args: str, timeout: float = 300,
                 inventory: Path | None = None) -> Run:
    """ansible-playbook against the lab's inventory (or `inventory`) with the reports in `report_dir` (empty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    path = Path(playbook)
    if not path.is_absolute():
        path = REPO / path
    report_var = "performance_check_report_dir" if "performance" in path.name else "health_check_report_dir"
    cmd = [ansible_bin("ansible-playbook"), "-i", str(inventory or lab.inventory), str(path), "-e",
           f"{report_var}={report_dir}",
           *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    jsons = sorted(report_dir.glob("*.json"))
    mds = sorted(report_dir.glob("*.md"))
    assert len(jsons) <= 1 and len(mds) <= 1, f"one report per run expected, got {jsons} {mds}"
    return Run(proc.returncode, proc.stdout, proc.stderr,
               json.loads(jsons[0].read_text()) if jsons else None, mds[0].read_text() if mds else None)


def container_states(lab: Lab) -> dict[str, str]:
    """name -> state of every container of the lab's project."""
    out = lab.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={lab.instance}",
                     "--format", "{{.Names}} {{.State}}").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def make_backlog(lab: Lab, count: int, minutes_overdue: int, finished: int = 0, leased: int = 0,
                 future: int = 0) -> str:
    """A paused task with `count` due_work rows overdue by `minutes_overdue`, plus `finished` rows done long ago
    (``locked_until = 'infinity'``, as the workers leave them), `leased` rows a (fictitious) worker holds a lease on
    and `future` rows not due yet; returns the task's name.

    Paused, so the scheduler adds nothing; deleting the task (``drop_backlog``) deletes its rows (ON DELETE CASCADE).
    """
    name = f"diag-backlog-{uuid.uuid4().hex[:10]}"
    task = f"(SELECT id FROM task WHERE name = '{name}')"
    lab.psql(f"INSERT INTO task (name, status, interval_seconds) VALUES ('{name}', 'paused', 3600)")
    lab.psql(f"INSERT INTO due_work (task_id, run_at) SELECT {task}, now() - make_interval(mins => "
             f"{int(minutes_overdue)}) - g * interval '1 second' FROM generate_series(1, {int(count)}) g")
    if finished:
        lab.psql(f"INSERT INTO due_work (task_id, run_at, status, locked_until, locked_by, attempts, finished_at) "
                 f"SELECT {task}, now() - interval '2 hours', 'done', 'infinity', 'w0', 1, now() - interval '1 hour' "
                 f"FROM generate_series(1, {int(finished)})")
    if leased:
        lab.psql(f"INSERT INTO due_work (task_id, run_at, status, locked_until, locked_by, attempts) "
                 f"SELECT {task}, now() - interval '1 minute', 'running', now() + interval '10 minutes', 'ghost', 1 "
                 f"FROM generate_series(1, {int(leased)})")
    if future:
        lab.psql(f"INSERT INTO due_work (task_id, run_at) SELECT {task}, now() + interval '1 hour' "
                 f"FROM generate_series(1, {int(future)})")
    return name


def drop_backlog(lab: Lab, name: str) -> None:
    lab.psql(f"DELETE FROM task WHERE name = '{name}'")
