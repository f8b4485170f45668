"""Benchmark: `ansible-playbook playbooks/health_check.yml` vs the runbook's health_check.sh, side by side.

Both run against the same lab (LAB_INSTANCE, default `tsops`), alternately, ROUNDS times after one warm-up round
each; every wall time is printed, then the medians and the ratio ours / shell. It also counts what each reports:
the shell script's output lines and the figures (leaf values) of our JSON report, and whether each gives a verdict.

    .venv/bin/python bench/health_check_vs_shell.py [--rounds 5] [--json out.json]

bench/runbook_health_check.sh is the runbook's script with compose's container names (and overridable base URLs,
defaulting to the runbook's localhost:8080 / 9090 / 3000). Target: our playbook no slower while reporting more.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from lab import Lab  # noqa: E402


def leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(leaves(v) for v in value) or 1
    return 1


def cpu_seconds() -> float:
    """CPU time (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_shell(lab: Lab) -> tuple[float, dict[str, Any]]:
    env = dict(os.environ, COMPOSE_PROJECT_NAME=lab.instance, API_URL=lab.url("api"),
               PROMETHEUS_URL=lab.url("prometheus"))
    c0, t0 = cpu_seconds(), time.perf_counter()
    proc = subprocess.run(["bash", str(REPO / "bench" / "runbook_health_check.sh")], env=env,
                          capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return wall, {"rc": proc.returncode, "output_lines": len(lines), "verdict": None, "cpu_seconds": round(cpu, 2)}


def run_playbook(lab: Lab, ansible_playbook: str) -> tuple[float, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    with tempfile.TemporaryDirectory(prefix="bench-hc-") as reports:
        c0, t0 = cpu_seconds(), time.perf_counter()
        proc = subprocess.run([ansible_playbook, "-i", str(lab.inventory), str(REPO / "playbooks" / "health_check.yml"),
                               "-e", f"health_check_report_dir={reports}"], cwd=REPO, env=env,
                              capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        report_file = next(Path(reports).glob("*.json"), None)
        report = json.loads(report_file.read_text()) if report_file else {}
    host = next(iter(report.get("hosts", {}).values()), {})
    return wall, {"rc": proc.returncode, "figures": leaves(host.get("areas", {})), "verdict": report.get("status"),
                  "areas": len(host.get("areas", {})), "module_seconds": host.get("duration_seconds"),
                  "cpu_seconds": round(cpu, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    lab = Lab()
    ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
    print(f"lab instance {lab.instance}, {args.rounds} rounds after one warm-up each; load before: "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    run_shell(lab)
    run_playbook(lab, ansible_playbook)
    shell_times, ours_times = [], []
    shell_info: dict[str, Any] = {}
    ours_info: dict[str, Any] = {}
    for i in range(1, args.rounds + 1):
        s, shell_info = run_shell(lab)
        o, ours_info = run_playbook(lab, ansible_playbook)
        shell_times.append(s)
        ours_times.append(o)
        print(f"round {i}: health_check.sh {s:6.2f}s (cpu {shell_info['cpu_seconds']:.2f}s)   health_check.yml "
              f"{o:6.2f}s (cpu {ours_info['cpu_seconds']:.2f}s, module {ours_info['module_seconds']}s, verdict "
              f"{ours_info['verdict']}, rc {ours_info['rc']})   ratio {o / s:5.2f}")
    shell_med, ours_med = statistics.median(shell_times), statistics.median(ours_times)
    ratio = ours_med / shell_med
    print(f"median: health_check.sh {shell_med:.2f}s, health_check.yml {ours_med:.2f}s; "
          f"ratio ours/shell {ratio:.2f} ({'no slower' if ratio <= 1.0 else 'SLOWER'})")
    print(f"reports: health_check.sh {shell_info['output_lines']} lines of text, no verdict, exit {shell_info['rc']}; "
          f"health_check.yml {ours_info['areas']} areas with verdicts, {ours_info['figures']} figures in JSON "
          f"+ Markdown, exit {ours_info['rc']} ({ours_info['verdict']})")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "instance": lab.instance, "rounds": args.rounds, "shell_seconds": shell_times,
            "playbook_seconds": ours_times, "shell_median": shell_med, "playbook_median": ours_med,
            "ratio": ratio, "shell": shell_info, "playbook": ours_info}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
