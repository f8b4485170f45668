"""Every molecule scenario (molecule/<scenario>, one per incident) against the lab.

A scenario injects the real fault (prepare), runs the response in check mode (nothing may change), runs it
(converge), runs it again (idempotence: nothing may change), proves recovery with nothing lost (verify) and
brings the lab back. The measured time from playbook start to healthy is read from the incident record.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from lab import REPO, Lab

SCENARIOS = sorted(p.name for p in (REPO / "molecule").iterdir()
                   if (p / "molecule.yml").exists() and p.name != "shared")

# Scenarios that need a lab of their own: the security breach is proven from clients outside the host's loopback,
# so its lab publishes the API on every address of the host (an instance of its own, taken down afterwards).
OWN_LAB = {"respond_security_breach": {"instance": "tsops-sec", "port_offset": 400, "bind_address": "0.0.0.0"}}


def time_to_healthy(lab: Lab, incident_id: str) -> list[float]:
    path = lab.state_dir / "incidents" / f"{incident_id}.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        details = json.loads(line).get("details") or {}
        if isinstance(details, dict) and "time_to_healthy_seconds" in details:
            out.append(float(details["time_to_healthy_seconds"]))
    return out


@pytest.mark.timeout(1300)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(lab: Lab, scenario: str):
    own = OWN_LAB.get(scenario)
    # An own lab is taken down whatever happens, also when its `up` fails (a half-started instance stays otherwise).
    with Lab(**own).running() if own else contextlib.nullcontext(lab) as target:
        run_scenario(target, scenario)


def run_scenario(lab: Lab, scenario: str) -> None:
    incident_id = f"MOL-{scenario}-{int(time.time())}"
    env = dict(os.environ, LAB_INVENTORY=str(lab.inventory), MOLECULE_INCIDENT_ID=incident_id, ANSIBLE_FORCE_COLOR="0",
               PY_COLORS="0", NO_COLOR="1")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    t0 = time.monotonic()
    proc = subprocess.run(["molecule", "test", "-s", scenario], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    elapsed = time.monotonic() - t0
    log = Path(REPO / "tests" / "output" / f"molecule-{scenario}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"molecule test -s {scenario} failed (log: {log}):\n{proc.stdout[-6000:]}"
    healthy = time_to_healthy(lab, incident_id)
    print(f"\nMOLECULE {scenario}: {elapsed:.0f}s; time from playbook start to healthy: "
          f"{', '.join(f'{t:.1f}s' for t in healthy) or 'not recorded'}")
