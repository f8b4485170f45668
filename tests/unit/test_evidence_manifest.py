"""evidence_manifest: temporary files never sealed, sealed evidence checked against the control node's hashes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.taskscheduler.ops.plugins.modules import evidence_manifest as em


def run_module(args: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        em.main()
    return json.loads(out.getvalue())


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    (tmp_path / "01_containers_inspect.json").write_text("[]")
    (tmp_path / "04_connections_host.txt").write_text("LISTEN 0 4096 *:8080")
    return tmp_path


@pytest.mark.parametrize("name", ["05_network.pcap.part", "07_db.dump.partial", "x.tmp", "03_conn.txt.incomplete",
                                  "05_network.pcap.20261128T151200Z.part"])
def test_temporary_files_are_never_sealed(evidence: Path, name: str) -> None:
    (evidence / name).write_text("half written")
    res = run_module({"path": str(evidence), "incident_id": "INC-1"})
    assert res["changed"] is True
    assert name not in [f["name"] for f in res["files"]] and res["skipped_files"] == [name]
    assert name not in (evidence / "MANIFEST.sha256").read_text()
    assert os.access(evidence / name, os.W_OK)  # left as it is for whoever writes it
    # once finished under its final name it is sealed by the next run
    (evidence / name).rename(evidence / "late.txt")
    again = run_module({"path": str(evidence), "incident_id": "INC-1"})
    assert again["added"] == ["late.txt"] and again["skipped_files"] == []


def test_a_failed_attempt_kept_under_its_own_name_is_sealed(evidence: Path) -> None:
    (evidence / "03_conn.txt.failed-20261128T151200Z").write_text("partial output of a failed capture")
    res = run_module({"path": str(evidence)})
    assert "03_conn.txt.failed-20261128T151200Z" in res["added"]


def test_sealed_file_overwritten_fails_and_rewrites_nothing(evidence: Path) -> None:
    run_module({"path": str(evidence)})
    target = evidence / "04_connections_host.txt"
    os.chmod(target, 0o644)
    target.write_text("tampered")
    before = (evidence / "manifest.json").read_text()
    res = run_module({"path": str(evidence)})
    assert res["failed"] is True and res["mismatched"] == ["04_connections_host.txt"]
    assert (evidence / "manifest.json").read_text() == before


def test_verified_against_control_node_hashes_catches_a_rewritten_manifest(evidence: Path) -> None:
    sealed = run_module({"path": str(evidence), "incident_id": "INC-1"})
    kept = [{"name": f["name"], "sha256": f["sha256"]} for f in sealed["files"]]
    assert run_module({"path": str(evidence), "state": "verified", "expected": kept}).get("failed") is None
    # The same host rewrites a file AND its manifest: the manifest alone would say all is well.
    for name in ("04_connections_host.txt", "manifest.json", "MANIFEST.sha256"):
        os.chmod(evidence / name, 0o644)
    (evidence / "04_connections_host.txt").write_text("nothing to see")
    (evidence / "manifest.json").unlink()
    (evidence / "MANIFEST.sha256").unlink()
    run_module({"path": str(evidence), "incident_id": "INC-1"})
    assert run_module({"path": str(evidence), "state": "verified"}).get("failed") is None
    res = run_module({"path": str(evidence), "state": "verified", "expected": kept})
    assert res["failed"] is True
    assert res["mismatched"] == ["04_connections_host.txt"] and res["unrecorded"] == ["04_connections_host.txt"]
    assert "control node" in res["msg"]


def test_verified_expected_file_missing(evidence: Path) -> None:
    run_module({"path": str(evidence)})
    res = run_module({"path": str(evidence), "state": "verified", "expected": {"gone.pcap": sha("x")}})
    assert res["failed"] is True and res["missing"] == ["gone.pcap"] and res["unrecorded"] == ["gone.pcap"]


@pytest.mark.parametrize("expected", ["abc", [{"name": "a"}], {"a": "not-a-hash"}, [1, 2]])
def test_bad_expected_is_a_clear_error(evidence: Path, expected: Any) -> None:
    run_module({"path": str(evidence)})
    res = run_module({"path": str(evidence), "state": "verified", "expected": expected})
    assert res["failed"] is True and res["msg"].startswith("expected:")
    assert "Traceback" not in json.dumps(res)


def test_corrupt_manifest_is_a_clear_error(evidence: Path) -> None:
    (evidence / "manifest.json").write_text('{"files": [')
    res = run_module({"path": str(evidence)})
    assert res["failed"] is True and "cannot be read as a manifest" in res["msg"]
    assert (evidence / "manifest.json").read_text() == '{"files": ['


def test_expected_only_with_verified(evidence: Path) -> None:
    res = run_module({"path": str(evidence), "expected": {"a": sha("a")}})
    assert res["failed"] is True and "state=verified" in res["msg"]


def test_pure_evaluations() -> None:
    assert em.evaluate_new(["a", "b.part", "c"], {"a": {}}, em.TEMPORARY_SUFFIXES) == (["c"], ["b.part"])
    assert em.evaluate_recorded({"a": "1", "b": "2"}, {"a": "1", "b": None}) == ([], ["b"])
    assert em.evaluate_unrecorded({"a": "1", "b": "2"}, {"a": "1", "b": "3"}) == ["b"]
    assert em.normalize_expected([{"name": "a", "sha256": "A" * 64}]) == {"a": "a" * 64}
