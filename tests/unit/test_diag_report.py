"""Unit tests of the check reports (_report, module health_report): JSON shape, Markdown content, files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.taskscheduler.ops.plugins.module_utils import _report
from ansible_collections.taskscheduler.ops.plugins.modules import health_report

WHEN = datetime(2025, 1, 10, 9, 14, 3, tzinfo=UTC)
THRESHOLDS = {"api_latency_seconds_max": 2.0, "api_error_ratio_max": 0.1, "queue_oldest_pending_seconds_max": 300,
              "slow_query_mean_ms_max": 1000.0, "long_running_query_seconds_max": 30.0, "scheduler_stale_seconds": 60}


def area(status: str, summary: str, reasons: list[str] | None = None, **figures) -> dict:
    return dict(figures, status=status, reasons=reasons or [], notes=[], error=None, summary=summary)


RESULT = {
    "changed": False,
    "invocation": {"module_args": {"db_password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}},
    "status": "down",
    "checked_at": "2025-01-10T09:14:01+00:00",
    "duration_seconds": 1.02,
    "thresholds": THRESHOLDS,
    "areas": {
        "api": area("down", "api         DOWN     api /health connection refused (0.001s) | api /health: conn...",
                    ["api /health: connection refused"],
                    endpoints=[{"name": "api /health", "url": "http://x/health", "status_code": 0,
                                "time_seconds": 0.001, "error": "connection refused", "samples": 1, "status": "down"},
                               {"name": "grafana", "url": None, "status": "skipped"}]),
        "postgres": area("healthy", "postgres    HEALTHY  PostgreSQL 15.18, 8.0 MiB", version="15.18",
                         version_full="PostgreSQL 15.18", database="orchestrator", size_bytes=8 * 2**20,
                         connections_by_state={"idle": 7, "active": 1}, active_tasks=3,
                         slow_statements={"available": False, "reason": "extension pg_stat_statements is not installed",
                                          "statements": []}),
        "queue": area("degraded", "queue       DEGRADED due now 200 | backlog", ["backlog: 200 due items"],
                      due_now=200, locked=0, retry_wait=0, future=0, expired_leases=0,
                      oldest_pending_age_seconds=612.3, oldest_due_at="2025-01-10T09:03:51+00:00"),
        "logs": area("healthy", "logs        HEALTHY  1 error lines", since_seconds=900, error_lines=1,
                     containers={"tsops-api-1": {"matches": 1, "lines_read": 9, "last": ["ERROR a|b ``` c"]}}),
    },
}


def test_build_drops_invocation_and_ranks_hosts():
    report = _report.build({"lab": RESULT, "db2": {}, "w3": {"failed": True, "msg": "boom"}}, "health_check",
                           "Health check", ["down", "unknown"], WHEN)
    assert report["status"] == "down" and report["generated_at"] == "2025-01-10T09:14:03+00:00"
    assert "invocation" not in report["hosts"]["lab"] and "changed" not in report["hosts"]["lab"]
    assert report["hosts"]["db2"] == {"failed": True, "msg": "not checked (unreachable or skipped)",
                                      "status": "unknown"}
    assert report["hosts"]["w3"]["status"] == "unknown"


def test_markdown():
    md = _report.markdown(_report.build({"lab": RESULT}, "health_check", "Health check", ["down"], WHEN))
    lines = md.splitlines()
    assert lines[0] == "# Health check: DOWN"
    assert "The play fails when an area is down." in md
    assert "| api | **down** | api /health connection refused (0.001s) | api /health: connection refused |" in lines
    assert "| queue | **degraded** | due now 200 | backlog: 200 due items |" in lines
    assert "| api /health | http://x/health | connection refused | 0.001 | 1 | - | **down** |" in lines
    assert "| grafana | not configured | - | - | - | - | skipped |" in lines
    assert "| 200 | 0 | 0 | 0 | 0 | 612.3 | 2025-01-10T09:03:51+00:00 |" in lines
    assert "pg_stat_statements is not available: extension pg_stat_statements is not installed" in lines
    assert "- connections: None of None; by state: active 1, idle 7" in lines
    # Log lines stay in a code block that they cannot close.
    assert "ERROR a|b ''' c" in lines
    # Sections follow the overview's order.
    assert md.index("### HTTP endpoints") < md.index("### PostgreSQL") < md.index("### Work queue") < md.index(
        "### Recent errors")


def test_markdown_failed_host():
    report = _report.build({"w3": {"failed": True, "msg": "boom"}}, "performance_check", "Performance check", [],
                           WHEN)
    md = _report.markdown(report)
    assert md.startswith("# Performance check: UNKNOWN")
    assert "## w3: CHECK FAILED\n\nThe check could not run: boom" in md and "area is never" in md


def test_write_files(tmp_path: Path):
    report = _report.build({"lab": RESULT}, "health_check", "Health check", ["down"], WHEN)
    paths = _report.write(report, str(tmp_path / "new" / "dir"), ["json", "markdown"])
    assert paths == {"json": str(tmp_path / "new/dir/health_check-20250110T091403Z.json"),
                     "markdown": str(tmp_path / "new/dir/health_check-20250110T091403Z.md")}
    assert json.loads(Path(paths["json"]).read_text())["hosts"]["lab"]["areas"]["queue"]["due_now"] == 200
    assert Path(paths["markdown"]).read_text().startswith("# Health check: DOWN")
    assert oct(Path(paths["json"]).stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in (tmp_path / "new/dir").iterdir()) == [
        "health_check-20250110T091403Z.json", "health_check-20250110T091403Z.md"]  # no temporary files left


def run_module(args: dict, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        health_report.main()
    return json.loads(capsys.readouterr().out)


def test_module_writes_and_check_mode_does_not(tmp_path: Path, capsys):
    out = run_module({"results": {"lab": RESULT}, "dest": str(tmp_path / "r"), "_ansible_check_mode": True}, capsys)
    assert out["changed"] is False and out["markdown_path"].endswith(".md") and not (tmp_path / "r").exists()
    out = run_module({"results": {"lab": RESULT}, "dest": str(tmp_path / "r"), "formats": ["json"],
                      "name": "performance_check"}, capsys)
    assert out["changed"] is True and out["status"] == "down" and out["hosts"] == {"lab": "down"}
    assert out["markdown_path"] is None and Path(out["json_path"]).name.startswith("performance_check-")
    assert [p.suffix for p in (tmp_path / "r").iterdir()] == [".json"]


def test_module_unwritable_dest(tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_module({"results": {"lab": RESULT}, "dest": str(blocker / "sub")}, capsys)
    assert out["failed"] and out["msg"].startswith(f"health_report: cannot write the reports into {blocker}/sub")


def test_module_documentation():
    import yaml

    doc = yaml.safe_load(health_report.DOCUMENTATION)
    assert doc["module"] == "health_report" and doc["version_added"] == "0.1.0"
    assert set(doc["options"]) == {"results", "dest", "name", "title", "fail_on", "formats"}
    assert yaml.safe_load(health_report.EXAMPLES) and yaml.safe_load(health_report.RETURN)["json_path"]
