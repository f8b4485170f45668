#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: draw the monthly incident review chart (PNG) from the monthly figures."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_chart
short_description: Draw the monthly incident review chart (PNG)
version_added: 0.1.0
description:
  - Draws two panels from the figures of the P(taskscheduler.ops.incident_monthly_stats#filter) filter, incidents
    per alert stacked by severity, and the median time to acknowledge and to resolve per severity against the SLA
    targets, and writes them as a PNG.
  - Runs on the control node (C(delegate_to localhost)) and needs matplotlib there.
author:
  - taskscheduler.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Draws into a temporary file to tell whether the chart would change; writes nothing at O(path).
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: The chart is replaced only when its bytes differ.
options:
  stats:
    description: The output of the P(taskscheduler.ops.incident_monthly_stats#filter) filter.
    type: dict
    required: true
  path:
    description: PNG file to write.
    type: path
    required: true
  title:
    description: Title above the two panels.
    type: str
    default: ""
  mode:
    description: File mode of the PNG.
    type: raw
    default: "0644"
requirements:
  - matplotlib
seealso:
  - module: taskscheduler.ops.incident_record
"""

EXAMPLES = r"""
- name: Chart of November
  taskscheduler.ops.incident_chart:
    stats: "{{ incidents | taskscheduler.ops.incident_monthly_stats('2026-11') }}"
    path: reports/2026-11-incidents.png
    title: Incidents 2026-11
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The PNG written.
  returned: always
  type: str
sha256:
  description: SHA-256 of the chart.
  returned: always
  type: str
alerts:
  description: Number of alerts in the left panel.
  returned: always
  type: int
"""

import hashlib
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._incident_report import ReportError, render_chart


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "stats": {"type": "dict", "required": True},
            "path": {"type": "path", "required": True},
            "title": {"type": "str", "default": ""},
            "mode": {"type": "raw", "default": "0644"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="tsops-mpl-"))
    tmpdir = tempfile.mkdtemp(prefix="tsops-chart-")
    try:
        drawn = os.path.join(tmpdir, "chart.png")
        info = render_chart(module.params["stats"], drawn, module.params["title"])
        digest = _sha256(drawn)
        changed = not os.path.exists(path) or _sha256(path) != digest
        if changed and not module.check_mode:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            shutil.move(drawn, path)
    except (ReportError, KeyError, TypeError, ValueError, OSError) as exc:
        module.fail_json(msg=f"incident_chart: cannot draw {path}: {exc}")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if not module.check_mode and os.path.exists(path):
        changed = module.set_fs_attributes_if_different(
            module.load_file_common_arguments({"path": path, "mode": module.params["mode"]}), changed)
    module.exit_json(changed=changed, path=path, sha256=digest, alerts=info["alerts"])


if __name__ == "__main__":
    main()
