#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: SHA-256 manifest of collected evidence, files made read-only, and its verification."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence_manifest
short_description: Hash collected evidence into a SHA-256 manifest, make it read-only, or verify it
version_added: 0.1.0
description:
  - Seals a directory of evidence (security incident captures, backups). Every file is hashed into
    C(MANIFEST.sha256) (in C(sha256sum -c) format) and C(manifest.json) (UTC time, host, collector, incident, tool
    versions, and per file its SHA-256, size and modification time), and made read-only.
  - Files added later are appended to the manifest. A file whose content no longer matches its recorded hash makes
    the module fail (evidence must not change), and nothing is rewritten.
  - Files with a temporary suffix (O(temporary_suffixes), e.g. a capture still being written or left by an
    interrupted run) are never sealed; they are reported in RV(skipped_files).
  - O(state=verified) only checks every recorded hash and reports mismatches and missing files. With O(expected) it
    checks the files against hashes kept elsewhere (the control node's copy in the incident record) as well, so that
    evidence rewritten together with its manifest on the same host is caught.
author:
  - Taskscheduler Ops Team (@taskscheduler-ops)
attributes:
  check_mode:
    support: full
    description: Hashes and reports what it would record; writes and changes no permission.
  diff_mode:
    support: none
    description: The result lists the files added.
  idempotent:
    support: full
    description: A second run on the same files changes nothing.
options:
  path:
    description: The evidence directory.
    type: path
    required: true
  state:
    description: C(present) seals the directory, C(verified) checks it.
    type: str
    choices: [present, verified]
    default: present
  incident_id:
    description: Incident the evidence belongs to.
    type: str
  collector:
    description: Who or what collected it (person, playbook, AWX job).
    type: str
    default: taskscheduler.ops
  host:
    description: Host the evidence was collected on; default this host's name.
    type: str
  tool_versions:
    description: Versions of the tools used (docker, tcpdump, pg_dump, ...), recorded in the manifest.
    type: dict
    default: {}
  readonly:
    description: Make sealed files and the manifests read-only (C(0444)).
    type: bool
    default: true
  temporary_suffixes:
    description: File name endings of temporary files, never sealed (O(state=present)).
    type: list
    elements: str
    default: [.part, .partial, .tmp, .incomplete]
    version_added: 0.2.0
  expected:
    description:
      - O(state=verified) only. Hashes kept apart from this host, as a list of C({name, sha256}) (the RV(files) of
        an earlier run, e.g. from the incident record on the control node) or a dict of name to SHA-256. Every file
        named must exist with that hash, and the host's manifest must record the same hash.
    type: raw
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Seal the evidence of a security incident
  taskscheduler.ops.evidence_manifest:
    path: /var/lib/tsops/evidence/INC-20261126-211500-securitybreach
    incident_id: INC-20261126-211500-securitybreach
    collector: "{{ awx_user_name | default(lookup('env', 'USER')) }}"
    tool_versions:
      docker: "{{ docker_version.stdout }}"

- name: Prove nothing changed since
  taskscheduler.ops.evidence_manifest:
    path: /var/lib/tsops/evidence/INC-20261126-211500-securitybreach
    state: verified

- name: Prove it against the hashes kept on the control node (the seal's files in the incident record)
  taskscheduler.ops.evidence_manifest:
    path: /var/lib/tsops/evidence/INC-20261126-211500-securitybreach
    state: verified
    expected: "{{ seal_entry.details.files }}"
"""

RETURN = r"""
files:
  description: Every file of the manifest with its hash, size and modification time (UTC).
  returned: always
  type: list
  elements: dict
added:
  description: Files added to the manifest by this run.
  returned: O(state=present)
  type: list
  elements: str
mismatched:
  description: Files whose content no longer matches the manifest.
  returned: always
  type: list
  elements: str
missing:
  description: Files in the manifest that no longer exist.
  returned: always
  type: list
  elements: str
manifest:
  description: Path of C(manifest.json).
  returned: always
  type: str
skipped_files:
  description: Files left out because of a temporary suffix (never sealed).
  returned: O(state=present)
  type: list
  elements: str
  version_added: 0.2.0
unrecorded:
  description: Files named in O(expected) that the host's manifest does not record, or records with another hash.
  returned: when O(expected) is given
  type: list
  elements: str
  version_added: 0.2.0
"""

import hashlib
import json
import os
import socket
import stat
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.basic import AnsibleModule

MANIFEST_JSON = "manifest.json"
MANIFEST_SUM = "MANIFEST.sha256"
TEMPORARY_SUFFIXES = [".part", ".partial", ".tmp", ".incomplete"]


class EvidenceError(ValueError):
    """Bad input: reported with fail_json, never a traceback."""


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_temporary(name: str, suffixes: list[str]) -> bool:
    return any(name.endswith(s) for s in suffixes if s)


def evidence_files(root: str) -> list[str]:
    out = []
    for base, _dirs, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(base, name), root)
            if rel not in (MANIFEST_JSON, MANIFEST_SUM) and not os.path.islink(os.path.join(root, rel)):
                out.append(rel)
    return sorted(out)


def load(root: str) -> dict:
    path = os.path.join(root, MANIFEST_JSON)
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{path} cannot be read as a manifest ({exc}); nothing was rewritten") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files", []), list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("sha256"), str)
            for f in doc.get("files", [])):
        raise EvidenceError(f"{path} is not a manifest (files must be a list of {{name, sha256}}); nothing was "
                            "rewritten")
    return doc


def normalize_expected(expected: Any) -> dict[str, str]:
    """name -> sha256 from a dict, or a list of {name, sha256} (the module's own ``files``)."""
    if expected in (None, "", [], {}):
        return {}
    if isinstance(expected, Mapping):
        pairs = list(expected.items())
    elif isinstance(expected, list):
        pairs = []
        for item in expected:
            if not isinstance(item, Mapping) or "name" not in item or "sha256" not in item:
                raise EvidenceError(f"expected: every entry needs name and sha256, got {item!r}"[:300])
            pairs.append((item["name"], item["sha256"]))
    else:
        raise EvidenceError(f"expected: a list of {{name, sha256}} or a dict of name to SHA-256, got "
                            f"{type(expected).__name__}")
    out = {}
    for name, digest in pairs:
        text = str(digest).strip().lower()
        if not isinstance(name, str) or not name or len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise EvidenceError(f"expected: {name!r} needs a SHA-256 (64 hex digits), got {digest!r}"[:300])
        out[name] = text
    return out


def evaluate_recorded(recorded: dict[str, str], actual: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(mismatched, missing): recorded name -> hash against actual name -> hash (None: the file is gone)."""
    mismatched = sorted(n for n, h in recorded.items() if actual.get(n) is not None and actual[n] != h)
    missing = sorted(n for n in recorded if actual.get(n) is None)
    return mismatched, missing


def evaluate_unrecorded(expected: dict[str, str], recorded: dict[str, str]) -> list[str]:
    """Files the control node knows that the host's manifest does not record with the same hash."""
    return sorted(n for n, h in expected.items() if recorded.get(n) != h)


def evaluate_new(on_disk: list[str], recorded: dict[str, Any], suffixes: list[str]) -> tuple[list[str], list[str]]:
    """(to seal, skipped): files not in the manifest yet, and those left out for a temporary suffix."""
    new = [n for n in on_disk if n not in recorded]
    return [n for n in new if not is_temporary(n, suffixes)], [n for n in new if is_temporary(n, suffixes)]


def probe_hashes(root: str, names: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        full = os.path.join(root, name)
        out[name] = sha256(full) if os.path.isfile(full) else None
    return out


def write_readonly(path: str, text: str, readonly: bool) -> None:
    if os.path.exists(path):
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    if readonly:
        os.chmod(path, 0o444)


def verify(module: AnsibleModule, root: str, manifest: dict, expected: dict[str, str]) -> None:
    recorded = {f["name"]: f for f in manifest.get("files", [])}
    hashes = {n: f["sha256"] for n, f in recorded.items()}
    actual = probe_hashes(root, sorted(set(hashes) | set(expected)))
    mismatched, missing = evaluate_recorded(hashes, actual)
    result: dict[str, Any] = dict(changed=False, manifest=os.path.join(root, MANIFEST_JSON),
                                  files=list(recorded.values()))
    problems = []
    if expected:
        bad, gone = evaluate_recorded(expected, actual)
        mismatched, missing = sorted(set(mismatched) | set(bad)), sorted(set(missing) | set(gone))
        result["unrecorded"] = evaluate_unrecorded(expected, hashes)
        if result["unrecorded"]:
            problems.append(f"the manifest on this host disagrees with the hashes kept on the control node for "
                            f"{result['unrecorded']}")
    result.update(mismatched=mismatched, missing=missing)
    if not manifest:
        module.fail_json(msg=f"no {MANIFEST_JSON} in {root}: the evidence was never sealed", **result)
    if mismatched or missing:
        problems.insert(0, f"changed {mismatched}, missing {missing}")
    if problems:
        module.fail_json(msg=f"evidence in {root} does not match "
                             f"{'the hashes kept on the control node and ' if expected else ''}its manifest: "
                             + "; ".join(problems), **result)
    module.exit_json(**result)


def seal(module: AnsibleModule, root: str, manifest: dict) -> None:
    p = module.params
    recorded = {f["name"]: f for f in manifest.get("files", [])}
    mismatched, missing = evaluate_recorded({n: f["sha256"] for n, f in recorded.items()},
                                            probe_hashes(root, sorted(recorded)))
    result: dict[str, Any] = dict(changed=False, manifest=os.path.join(root, MANIFEST_JSON), mismatched=mismatched,
                                  missing=missing)
    added, skipped = evaluate_new(evidence_files(root), recorded, p["temporary_suffixes"])
    result["skipped_files"] = skipped
    if mismatched or missing:
        module.fail_json(msg=f"evidence in {root} changed since it was sealed (changed {mismatched}, missing "
                             f"{missing}); nothing was rewritten", **result)
    now = datetime.now(timezone.utc).timestamp()
    for name in added:
        full = os.path.join(root, name)
        st = os.stat(full)
        recorded[name] = {"name": name, "sha256": sha256(full), "size": st.st_size, "mtime": utc(st.st_mtime),
                          "sealed_at": utc(now)}
    files = sorted(recorded.values(), key=lambda f: f["name"])
    result.update(files=files, added=added)
    if not added:
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    doc = {
        "incident_id": p["incident_id"] or manifest.get("incident_id"),
        "created_at": manifest.get("created_at") or utc(now),
        "updated_at": utc(now),
        "host": p["host"] or manifest.get("host") or socket.gethostname(),
        "collector": p["collector"],
        "tool_versions": {**manifest.get("tool_versions", {}), **p["tool_versions"]},
        "files": files,
    }
    try:
        if p["readonly"]:
            for name in added:
                os.chmod(os.path.join(root, name), 0o444)
        write_readonly(os.path.join(root, MANIFEST_SUM), "".join(f"{f['sha256']}  {f['name']}\n" for f in files),
                       p["readonly"])
        write_readonly(os.path.join(root, MANIFEST_JSON), json.dumps(doc, indent=2, sort_keys=True) + "\n",
                       p["readonly"])
    except OSError as exc:
        module.fail_json(msg=f"could not seal {root}: {exc}", **result)
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "verified"], default="present"),
            incident_id=dict(type="str"),
            collector=dict(type="str", default="taskscheduler.ops"),
            host=dict(type="str"),
            tool_versions=dict(type="dict", default={}),
            readonly=dict(type="bool", default=True),
            temporary_suffixes=dict(type="list", elements="str", default=list(TEMPORARY_SUFFIXES)),
            expected=dict(type="raw"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    root = p["path"]
    if not os.path.isdir(root):
        module.fail_json(msg=f"evidence directory {root} does not exist")
    try:
        if p["expected"] not in (None, "", [], {}) and p["state"] != "verified":
            raise EvidenceError("expected is for state=verified only")
        expected = normalize_expected(p["expected"])
        manifest = load(root)
    except EvidenceError as exc:
        module.fail_json(msg=str(exc))
    if p["state"] == "verified":
        verify(module, root, manifest, expected)
    seal(module, root, manifest)


if __name__ == "__main__":
    main()
