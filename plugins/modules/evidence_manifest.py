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
  - O(state=verified) only checks every recorded hash and reports mismatches and missing files.
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
"""

import hashlib
import json
import os
import socket
import stat
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

MANIFEST_JSON = "manifest.json"
MANIFEST_SUM = "MANIFEST.sha256"


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_readonly(path: str, text: str, readonly: bool) -> None:
    if os.path.exists(path):
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    if readonly:
        os.chmod(path, 0o444)


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
        ),
        supports_check_mode=True,
    )
    p = module.params
    root = p["path"]
    if not os.path.isdir(root):
        module.fail_json(msg=f"evidence directory {root} does not exist")
    manifest = load(root)
    recorded = {f["name"]: f for f in manifest.get("files", [])}
    mismatched, missing = [], []
    for name, entry in recorded.items():
        full = os.path.join(root, name)
        if not os.path.exists(full):
            missing.append(name)
        elif sha256(full) != entry["sha256"]:
            mismatched.append(name)
    result = dict(changed=False, manifest=os.path.join(root, MANIFEST_JSON), mismatched=mismatched, missing=missing)
    if p["state"] == "verified":
        if not manifest:
            module.fail_json(msg=f"no {MANIFEST_JSON} in {root}: the evidence was never sealed", **result)
        result["files"] = list(recorded.values())
        if mismatched or missing:
            module.fail_json(msg=f"evidence in {root} does not match its manifest: changed {mismatched}, "
                                 f"missing {missing}", **result)
        module.exit_json(**result)
    if mismatched or missing:
        module.fail_json(msg=f"evidence in {root} changed since it was sealed (changed {mismatched}, missing "
                             f"{missing}); nothing was rewritten", **result)
    added = [n for n in evidence_files(root) if n not in recorded]
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


if __name__ == "__main__":
    main()
