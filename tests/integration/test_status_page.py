"""The status page: generated from real incident records by real ansible-playbook runs, rendered by headless
Chromium with JavaScript switched off.

Proves: opening a P0 with the status page channel configured writes the page (notify -> status_page) with the public
opening notice and records the delivery; playbooks/status_page.yml regenerates it from the records; in the browser
the banner says "Major outage", the api row is a major outage while the others are operational, the open incident
shows its latest public update, the resolved incident is in the history, user text is escaped (no injected
script), nothing internal (step names and results, hosts, errors, impact notes, root causes) is on the page, and
the page needs no JavaScript; status.json says the same; --check writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from incident_support import REPO, Playbook, collections_dir

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# JavaScript off for pages through the profile's content settings (--blink-settings=scriptEnabled=false also
# stops headless Chromium's own --dump-dom / --screenshot from working).
NO_JAVASCRIPT = {"profile": {"default_content_setting_values": {"javascript": 2}}}


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and apt-get cannot install it here (needs root and apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        proc = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True,
                              text=True, timeout=1200, check=False)
    assert proc.returncode == 0, f"apt-get install chromium failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return shutil.which("chromium") or "/usr/bin/chromium"


def browse(chromium: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile in which JavaScript is switched off."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        (Path(profile) / "Default").mkdir()
        (Path(profile) / "Default" / "Preferences").write_text(json.dumps(NO_JAVASCRIPT))
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=180, check=False)


def test_browser_runs_without_javascript(tmp_path: Path, chromium: str) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text("<p id='x'>static</p><script>document.getElementById('x').textContent='scripted'</script>")
    dom = browse(chromium, probe.as_uri(), "--dump-dom")
    assert '<p id="x">static</p>' in dom.stdout, dom.stdout + dom.stderr[-1000:]


def record_args(extra: dict[str, Any]) -> dict[str, Any]:
    base = {"record_dir": "{{ tsops_incident_dir }}", "log_dir": "{{ tsops_incident_log_dir }}"}
    base.update(extra)
    return base


def play(page_dir: Path) -> list[dict[str, Any]]:
    now = dt.datetime.now(tz=dt.UTC)
    two_days = (now - dt.timedelta(days=2)).isoformat(timespec="seconds")
    two_days_later = (now - dt.timedelta(days=2) + dt.timedelta(minutes=47)).isoformat(timespec="seconds")
    return [{"name": "incidents", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "An incident resolved two days ago", "taskscheduler.ops.incident_record": record_args({
            "state": "open", "id": "INC-disk", "alert": "DiskSpaceCritical", "started_at": two_days,
            "timestamp": two_days})},
        {"name": "Its resolution", "taskscheduler.ops.incident_record": record_args({
            "state": "close", "id": "INC-disk", "root_cause": "WAL archive filled the volume",
            "timestamp": two_days_later})},
        {"name": "Open a P0 (notify writes the status page)",
         "ansible.builtin.include_role": {"name": "taskscheduler.ops.incident_open"},
         "vars": {"incident_open_alertname": "TaskSchedulerAPIDown", "incident_open_id": "INC-api",
                  "incident_open_impact": "Clients get 502 <script>document.title='pwned'</script>"}},
        {"name": "Internal step (never on the public page)", "taskscheduler.ops.incident_record": record_args({
            "id": "INC-api", "step": "restart api container", "result": "failed", "host": "db-primary-7.internal",
            "details": {"error": "OOMKilled on 10.20.30.40"}, "update": "restart on db-primary-7.internal failed"})},
        {"name": "Public update", "taskscheduler.ops.incident_record": record_args({
            "id": "INC-api", "step": "post public update", "result": "info", "status": "monitoring", "public": True,
            "update": "API restarted, error rate falling <script>document.title='pwned'</script>"})},
        {"name": "Regenerate the page", "ansible.builtin.include_role": {"name": "taskscheduler.ops.status_page"}},
    ]}]


def test_status_page_in_headless_chromium(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                          chromium: str) -> None:
    pb = Playbook(tmp_path, collections_dir(tmp_path_factory.mktemp("collections")))
    page_dir = tmp_path / "www"
    settings = {"tsops_incident_dir": str(tmp_path / "records"), "tsops_incident_log_dir": str(tmp_path / "log"),
                "tsops_status_page_dir": str(page_dir)}

    pb.run(play(page_dir), settings, check=True)
    assert not page_dir.exists(), "check mode must not write the page"

    pb.run(play(page_dir), settings)
    api_record = [json.loads(x) for x in (tmp_path / "records" / "INC-api.jsonl").read_text().splitlines()]
    [note] = [e for e in api_record if e["type"] == "notification"]
    assert (note["channel"], note["ok"]) == ("status_page", True)

    # the standalone playbook regenerates the same page from the records
    pb.run(REPO / "playbooks" / "status_page.yml", settings)
    html = (page_dir / "index.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html

    dom = browse(chromium, (page_dir / "index.html").as_uri(), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert 'id="overall"' in text and ">Major outage</div>" in text
    assert 'id="service-api" data-status="major_outage"' in text
    for name in ("scheduler", "worker", "postgres", "redis"):
        assert f'id="service-{name}" data-status="operational"' in text
    assert 'id="incident-INC-api"' in text and "P0 · API service unavailable" in text
    assert "Latest update" in text and "API restarted, error rate falling" in text
    assert "Status: <strong>Monitoring</strong>" in text
    assert "document.title" in text and "<title>Task Scheduling System status: Major outage</title>" in text
    history = text.split('id="history"')[1]
    assert "P1 · &lt;10% disk space remaining · resolved" in history and "(47m)" in history
    for internal in ("WAL archive", "502", "db-primary-7", "10.20.30.40", "OOMKilled", "restart api container",
                     "failed"):
        assert internal not in text and internal not in (page_dir / "status.json").read_text(), internal

    shot = tmp_path / "status.png"
    proc = browse(chromium, (page_dir / "index.html").as_uri(), f"--screenshot={shot}", "--window-size=1024,900")
    assert proc.returncode == 0 and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = json.loads((page_dir / "status.json").read_text())
    assert data["overall"]["status"] == "major_outage"
    assert [i["id"] for i in data["open_incidents"]] == ["INC-api"] and [i["id"] for i in data["history"]] == [
        "INC-disk"]
