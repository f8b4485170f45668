#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_report
short_description: Write the JSON and Markdown reports of a health or performance check run
version_added: 0.1.0
description:
  - Takes the results of M(taskscheduler.ops.system_health) for every host of a run and writes one JSON document
    and one Markdown page, C(<name>-<UTC time>.json) and C(.md), into O(dest) (created if missing). Files are
    written atomically and never overwritten (the time stamp is the run's).
  - The JSON report is C({check, title, generated_at, generated_by, status, fail_on, hosts}), C(hosts) mapping each
    host to its system_health result without invocation details; a host without a result is reported as not
    checked. The Markdown page has an overview table per host (one line per area with status, key figures and
    reasons) and a section per area with its figures.
  - An action plugin does the work on the control node, whatever the host of the task, without running a module
    remotely; use it with C(run_once). Used by the roles taskscheduler.ops.health_check and
    taskscheduler.ops.performance_check.
author:
  - taskscheduler.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: In check mode nothing is written; the paths that would be written are returned.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  results:
    description:
      - Results of M(taskscheduler.ops.system_health) by host name (an empty value for a host that was not checked).
    type: dict
    required: true
  dest:
    description:
      - Directory of the reports.
    type: path
    required: true
  name:
    description:
      - Name of the check, the file name prefix and C(check) of the JSON report.
    type: str
    default: health_check
  title:
    description:
      - Title of the Markdown page.
    type: str
    default: Health check
  fail_on:
    description:
      - Area statuses the run fails on, stated in the reports.
    type: list
    elements: str
    default: [down, unknown]
  formats:
    description:
      - Reports to write.
    type: list
    elements: str
    choices: [json, markdown]
    default: [json, markdown]
seealso:
  - module: taskscheduler.ops.system_health
"""

EXAMPLES = r"""
- name: Check every host
  taskscheduler.ops.system_health:
    project: "{{ tsops_compose_project }}"
    api_url: "{{ tsops_api_url }}"
  register: health

- name: Write the reports of the run on the control node
  taskscheduler.ops.health_report:
    results: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)
                 | map(attribute='health', default={}))) }}"
    dest: "{{ playbook_dir | dirname }}/reports"
  run_once: true
"""

RETURN = r"""
status:
  description: Overall status of the run, the worst of the hosts (a host whose check failed counts as V(unknown)).
  returned: always
  type: str
  sample: healthy
json_path:
  description: Path of the JSON report.
  returned: when V(json) is in O(formats)
  type: str
  sample: /srv/ops/reports/health_check-20250110T091403Z.json
markdown_path:
  description: Path of the Markdown report.
  returned: when V(markdown) is in O(formats)
  type: str
  sample: /srv/ops/reports/health_check-20250110T091403Z.md
hosts:
  description: Status of each host.
  returned: always
  type: dict
  sample: {lab: healthy}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._report import REPORT_ARGS, ReportError, run


def main() -> None:
    """Used only without the action plugin (which writes on the control node without running this)."""
    module = AnsibleModule(argument_spec=REPORT_ARGS, supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except ReportError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=not module.check_mode, **result)


if __name__ == "__main__":
    main()
