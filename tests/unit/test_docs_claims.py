"""README, galaxy.yml and the docs claim only what exists.

* docs/alerts.md has a table of the twelve alerts with their response playbooks and whether each exists; it must
  name the same alert -> playbook pairs and severities as the committed lab rules, and its "exists" column must be
  what is on disk.
* Every `playbooks/<name>.yml` that README.md or a page under docs/ names exists, unless that table lists it as
  "not yet".
* Event-Driven Ansible, AWX and installed schedules are claimed in galaxy.yml only once the collection ships them.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS_DOC = REPO / "docs" / "alerts.md"
LAB_RULES = REPO / "lab" / "prometheus" / "rules" / "taskscheduler.yml"
ROW = re.compile(r"^\| (\w+) \| (P[01]) \| `(playbooks/[a-z_]+\.yml)` \| (yes|not yet) \|$")


def doc_table() -> dict[str, tuple[str, str, bool]]:
    rows = {}
    for line in ALERTS_DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[m[1]] = (m[2], m[3], m[4] == "yes")
    return rows


def rule_playbooks() -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for group in yaml.safe_load(LAB_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                out.setdefault(rule["alert"], set()).add((rule["labels"]["severity"], rule["annotations"]["playbook"]))
    return out


def test_alert_table_matches_the_rules():
    table = doc_table()
    rules = rule_playbooks()
    assert len(rules) == 12
    assert set(table) == set(rules), "docs/alerts.md's playbook table and the alert rules name different alerts"
    for alert, pairs in rules.items():
        severity, playbook, _exists = table[alert]
        assert pairs == {(severity, playbook)}, \
            f"{alert}: rules say {pairs}, docs/alerts.md says {(severity, playbook)}"


def test_alert_table_says_which_playbooks_exist():
    for alert, (_severity, playbook, exists) in doc_table().items():
        on_disk = (REPO / playbook).is_file()
        assert exists == on_disk, (f"docs/alerts.md says {playbook} ({alert}) "
                                   f"{'exists' if exists else 'does not exist yet'}, but on disk it "
                                   f"{'does' if on_disk else 'does not'}")


def test_docs_name_only_playbooks_that_exist():
    missing_ok = {playbook for _s, playbook, exists in doc_table().values() if not exists}
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    wrong = []
    for page in pages:
        for playbook in sorted(set(re.findall(r"playbooks/[a-z_]+\.yml", page.read_text()))):
            if not (REPO / playbook).is_file() and playbook not in missing_ok:
                wrong.append(f"{page.relative_to(REPO)}: {playbook}")
    assert not wrong, "docs name playbooks that do not exist: " + ", ".join(wrong)


def test_galaxy_claims_only_what_ships():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    words = (galaxy["description"] + " " + " ".join(galaxy.get("tags", []))).lower()
    if not (REPO / "extensions" / "eda" / "rulebooks").is_dir():
        assert not re.search(r"\beda\b|rulebook|event-driven", words), "galaxy.yml claims EDA rulebooks"
    if not (REPO / "awx").exists() and not list((REPO / "playbooks").glob("awx*")):
        assert "awx" not in words and "tower" not in words, "galaxy.yml claims AWX/Tower content"
