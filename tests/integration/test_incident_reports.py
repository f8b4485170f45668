"""playbooks/post_incident.yml and playbooks/monthly_review.yml on a month of synthetic incident records (written by
the collection's own record code), through real ansible-playbook runs.

Proves: --check writes no report; the post-incident review follows the runbook's template with the incident's real
figures (summary, timeline table in order, what could be improved, action items); the monthly review counts by
alert and severity, compares with the previous month, gives time to acknowledge / resolve against the SLA per
severity and lists the breaches with the exact figures of the synthetic month, and draws a PNG chart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from incident_support import (
    DECEMBER_2026,
    NOVEMBER_2026,
    OCTOBER_2026,
    REPO,
    Playbook,
    collections_dir,
    write_synthetic,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def records(tmp_path: Path) -> dict[str, list[str]]:
    record_dir = tmp_path / "records"
    return {"oct": write_synthetic(record_dir, OCTOBER_2026, 2026, 10),
            "nov": write_synthetic(record_dir, NOVEMBER_2026, 2026, 11),
            "dec": write_synthetic(record_dir, DECEMBER_2026, 2026, 12)}


def test_post_incident_and_monthly_review(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                          records: dict[str, list[str]]) -> None:
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    reports = tmp_path / "reports"
    incident_id = records["nov"][4]  # TaskSchedulerAPIDown on the 17th: escalated twice, resolved after 35m
    settings = {"tsops_incident_dir": str(tmp_path / "records"), "tsops_report_dir": str(reports),
                "tsops_incident_id": incident_id, "monthly_review_month": "2026-11"}

    pb.run(REPO / "playbooks" / "post_incident.yml", settings, check=True)
    pb.run(REPO / "playbooks" / "monthly_review.yml", settings, check=True)
    assert not reports.exists() or not any(reports.iterdir()), "check mode must not write reports"

    # --- post-incident review
    pb.run(REPO / "playbooks" / "post_incident.yml", settings)
    review = (reports / f"{incident_id}-post-incident-review.md").read_text()
    expected = [
        f"# Post-Incident Review: {incident_id}",
        "- **Date/Time**: 2026-11-17T11:00:00+00:00 to 2026-11-17T11:35:00+00:00 (UTC)",
        "- **Duration**: 35m",
        "- **Severity**: P0",
        "- **Alert**: TaskSchedulerAPIDown - API service unavailable",
        "- **Services Affected**: api",
        "- **Customer Impact**: TaskSchedulerAPIDown impact",
        "- **SLA**: response met (2m of 5 min), resolution missed (35m of 30 min)",
        "- **Escalation**: level 3, Engineering Manager",
        "| Time | Event | Action Taken | Owner |\n|------|-------|-------------|-------|\n"
        "| 11:00 | TaskSchedulerAPIDown alert triggered | API service unavailable | Alertmanager |\n"
        "| 11:02 | Incident opened (P0, TaskSchedulerAPIDown) | Acknowledged | alice |\n"
        "| 11:03 | diagnose | diagnose: ok on node1 | bob |\n"
        "| 11:16 | Escalation: still down | escalated to level 2 (Technical Lead) |  |\n"
        "| 11:17 | Escalation: still down | escalated to level 3 (Engineering Manager) |  |\n"
        "| 11:35 | Service restored, incident resolved | fixed |  |\n",
        "**Technical Root Cause**: synthetic",
        "## What Went Well\n- Acknowledged in 2m (target 5 min)\n",
        "- Resolved after 35m, past the 30 minute resolution SLA",
        "- Escalated to Technical Lead at 11:16: still down",
        "**Contributing Factors**:\n- still down\n",
        "| prevent it | carol | 2026-12-31 | Open |",
    ]
    for text in expected:
        assert text in review, f"{text!r} missing from:\n{review}"

    # --- monthly review
    pb.run(REPO / "playbooks" / "monthly_review.yml", settings)
    report = (reports / "2026-11-incident-review.md").read_text()
    expected = [
        "# Monthly Incident Review: 2026-11",
        "- **Incidents**: 14 (13 resolved, 1 still open), +40.0% vs 2026-10 (10)",
        "- **By severity**: P0 7, P1 7, P2 0, P3 0",
        "- **Time to acknowledge**: mean 5.4 min, median 2.5 min",
        "- **Time to resolve**: mean 62.5 min, median 45.0 min",
        "- **SLA breaches**: 6 in 6 incidents",
        "- **Escalations**: 3 steps in 2 incidents",
        "- **Failed notifications**: 1",
        "| TaskSchedulerAPIDown | 6 | 6 | 0 | 0 | 0 |",
        "| HighAPILatency | 4 | 0 | 4 | 0 | 0 |",
        "| P0 | 7 | 5 | 2.0 / 8.0 | 1 | 30 | 25.0 / 50.0 | 2 | 57.1% |",
        "| P1 | 7 | 15 | 5.0 / 20.0 | 1 | 120 | 95.0 / 200.0 | 2 | 57.1% |",
        f"| {records['nov'][12]} | DiskSpaceCritical | P1 | resolution | 200.0 | 120 |",
        f"| {records['nov'][6]} | SecurityBreach | P0 | response | 8.0 | 5 |",
        "![Incidents by alert and time against the SLA](2026-11-incidents.png)",
    ]
    for text in expected:
        assert text in report, f"{text!r} missing from:\n{report}"
    assert "SchedulerOffline" not in report and "WorkerHealthDegraded" not in report, "other months excluded"
    assert report.count("| INC-202611") == 14 + 6  # all incidents + the breaches
    chart = (reports / "2026-11-incidents.png").read_bytes()
    assert chart[:8] == b"\x89PNG\r\n\x1a\n" and len(chart) > 20_000
