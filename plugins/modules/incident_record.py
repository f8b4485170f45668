#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: open, append to, escalate, close and read incident records (JSON Lines)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_record
short_description: Open, append to, escalate and close an incident record (JSON Lines)
version_added: 0.1.0
description:
  - "Keeps the incident record of the runbook on the control node, one JSON Lines file per incident in
    O(record_dir), and the runbook's plain log lines (C(<ISO ts> [IC] P0 incident started: <alert>)) in O(log_dir)."
  - C(open) writes the open entry (id, alert, severity, commander, impact, started_at, response and resolution
    deadlines, escalation audience, first escalation step). Opening an existing open incident changes nothing and
    continues it; opening a closed one appends a C(reopen) entry.
  - C(append) adds an C(action) entry (UTC timestamp, actor, host, step, result, details, flags) or, with
    O(type=notification), a notification entry (channel, ok/failed, error).
  - C(escalate) moves one step along the escalation path (on-call engineer, technical lead, engineering manager, CTO)
    and records the reasons. Use the P(taskscheduler.ops.escalation_due#filter) filter to decide whether to.
  - C(close) writes the close entry (ended_at, root cause, resolution, duration); closing twice changes nothing.
  - C(read) returns one incident's entries and summary; C(query) the summaries of all incidents in O(record_dir).
  - Safe with concurrent writers (an exclusive C(fcntl) lock per record) and append-only. Run it on the control node
    (C(delegate_to=localhost), C(run_once) where one entry is meant).
author:
  - taskscheduler.ops contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Computes the entry and the summary it would produce; writes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: partial
    description: C(open) and C(close) are idempotent; C(append) and C(escalate) add an entry on every run.
options:
  state:
    description: What to do with the record.
    type: str
    choices: [open, append, escalate, close, read, query]
    default: append
  id:
    description:
      - Incident id, e.g. C(INC-20261126-211500-apidown), an AWX survey answer or an Alertmanager fingerprint.
      - Required unless O(state=open) (then generated from O(alert) and O(started_at)) or O(state=query).
    type: str
  record_dir:
    description: Directory of the JSON Lines records (the inventory's C(tsops_incident_dir)).
    type: path
    default: /var/lib/tsops/incidents
  log_dir:
    description:
      - Directory of the runbook's plain C(*_incident.log) files (the inventory's C(tsops_incident_log_dir)).
      - An empty string writes no plain log.
    type: path
    default: /var/log/incidents
  timestamp:
    description:
      - Time of the entry (ISO 8601, default now, UTC). For replays and imports; responses leave it unset.
      - For O(state=read) and O(state=query), the time against which open incidents' SLAs are evaluated.
    type: str
  alert:
    description: Alertname (O(state=open)).
    type: str
  severity:
    description: Severity C(P0)-C(P3); default from O(severity_map) (O(state=open)).
    type: str
  severity_map:
    description: Alert to severity overrides merged over the runbook's map (the inventory's C(tsops_severity_map)).
    type: dict
  default_severity:
    description: Severity for alerts missing from the map; without it an unknown alert fails (never a silent P3).
    type: str
  escalation_matrix:
    description: Overrides of the escalation matrix per severity (the inventory's C(tsops_escalation_matrix)).
    type: dict
  escalation_path:
    description:
      - The escalation path, a list of role names or of dicts with C(role) and contact keys
        (the inventory's C(tsops_escalation_path)). Default on-call engineer, technical lead, engineering manager, CTO.
    type: raw
  description:
    description: One-line description of the alert (O(state=open)); default the runbook's for the twelve alerts.
    type: str
  commander:
    description: Incident commander (O(state=open)).
    type: str
  impact:
    description: User-facing impact (O(state=open)).
    type: str
  services:
    description: Services affected (O(state=open)), e.g. C([api, postgres]).
    type: list
    elements: str
  bridge:
    description: Conference bridge or Slack channel of the incident (O(state=open)).
    type: str
  started_at:
    description: When the alert started firing (Alertmanager C(startsAt)); default now. Deadlines count from it.
    type: str
  source:
    description: What opened the incident, e.g. C(eda), C(awx), C(manual).
    type: str
  labels:
    description: Alert labels to keep in the record.
    type: dict
  type:
    description: Entry type for O(state=append).
    type: str
    choices: [action, notification]
    default: action
  actor:
    description: Who did it (person, role or playbook).
    type: str
  host:
    description: Host the step ran on.
    type: str
  step:
    description: What was done (O(type=action)), e.g. C(restart api).
    type: str
  result:
    description: Outcome of the step.
    type: str
    choices: [ok, changed, failed, skipped, info]
    default: ok
  details:
    description: Structured facts of the step (diagnostic output, counts).
    type: raw
  flags:
    description: Findings that the escalation rules read.
    type: list
    elements: str
    choices: [data_loss, breach_confirmed, cascading_failure, root_cause_identified, service_restored]
  status:
    description: New public status of the incident (shown on the status page).
    type: str
    choices: [investigating, identified, monitoring, resolved]
  update:
    description:
      - Update text (notices' "latest update"); stored as the entry's C(message).
      - It goes to the public status page only with O(public=true).
    type: str
  public:
    description:
      - The O(update) text is meant for the public status page. Nothing else of any entry (step names, results,
        details, hosts, errors) is ever shown there.
    type: bool
    default: false
  channel:
    description: Notification channel (O(type=notification)), e.g. C(slack), C(email), C(webhook), C(status_page).
    type: str
  ok:
    description: Whether the notification was delivered (O(type=notification)).
    type: bool
    default: true
  error:
    description: Why the notification failed (O(type=notification)).
    type: str
  audience:
    description: Which stakeholder list was notified (C(immediate), C(update), C(resolution), C(escalation)).
    type: str
  recipients:
    description: Recipients notified.
    type: list
    elements: str
  subject:
    description: Subject or title of the notification.
    type: str
  reasons:
    description: Why the incident is escalated (O(state=escalate)).
    type: list
    elements: str
  level:
    description: Escalate to this level (1-based) instead of one step up (O(state=escalate)).
    type: int
  root_cause:
    description: Root cause (O(state=close)).
    type: str
  resolution:
    description: Resolution steps (O(state=close)), a list or lines of text.
    type: raw
  impact_summary:
    description: Impact summary (O(state=close)), a list or lines of text.
    type: raw
  action_items:
    description: Follow-up action items (O(state=close)), dicts with C(action), C(owner), C(due).
    type: list
    elements: dict
  ended_at:
    description: When service was restored (O(state=close)); default now.
    type: str
  reason:
    description: Why a closed incident is opened again (O(state=open) on a closed id).
    type: str
  since:
    description: O(state=query) only incidents that started at or after this time.
    type: str
  until:
    description: O(state=query) only incidents that started before this time.
    type: str
notes:
  - Timestamps are written in UTC as C(2026-11-26T21:15:00+00:00), the format of C(date -Iseconds -u).
seealso:
  - module: taskscheduler.ops.alertmanager_silence
"""

EXAMPLES = r"""
- name: Open the incident (normally done by the incident_open role)
  taskscheduler.ops.incident_record:
    state: open
    alert: TaskSchedulerAPIDown
    commander: alice
    impact: API unavailable for all clients
    record_dir: "{{ tsops_incident_dir }}"
    log_dir: "{{ tsops_incident_log_dir }}"
  delegate_to: localhost
  run_once: true
  register: incident

- name: Record a step
  taskscheduler.ops.incident_record:
    id: "{{ incident.id }}"
    actor: ansible
    host: "{{ inventory_hostname }}"
    step: restart api
    result: changed
    flags: [service_restored]
    status: monitoring
    update: API restarted, watching error rate
    record_dir: "{{ tsops_incident_dir }}"
  delegate_to: localhost

- name: Record a failed notification
  taskscheduler.ops.incident_record:
    id: "{{ incident.id }}"
    type: notification
    channel: email
    ok: false
    error: "connection refused by 127.0.0.1:25"
    record_dir: "{{ tsops_incident_dir }}"
  delegate_to: localhost

- name: Close it
  taskscheduler.ops.incident_record:
    state: close
    id: "{{ incident.id }}"
    root_cause: api worker pool exhausted by a slow query
    resolution: [restarted api, added index on task_run(started_at)]
    record_dir: "{{ tsops_incident_dir }}"
  delegate_to: localhost

- name: All incidents of November 2026
  taskscheduler.ops.incident_record:
    state: query
    since: "2026-11-01T00:00:00Z"
    until: "2026-12-01T00:00:00Z"
    record_dir: "{{ tsops_incident_dir }}"
  delegate_to: localhost
  register: november
"""

RETURN = r"""
id:
  description: Incident id.
  returned: unless O(state=query)
  type: str
  sample: INC-20261126-211500-apidown
path:
  description: The JSON Lines record.
  returned: unless O(state=query)
  type: str
  sample: /var/lib/tsops/incidents/INC-20261126-211500-apidown.jsonl
log_path:
  description: The runbook's plain log file (null when O(log_dir) is empty).
  returned: unless O(state=query)
  type: str
  sample: /var/log/incidents/20261126_211500_INC-20261126-211500-apidown_incident.log
entry:
  description: The entry written (or that would be written in check mode); null when nothing changed.
  returned: unless O(state=query)
  type: dict
incident:
  description:
    - Summary of the incident, the input of notices, the status page and the reports.
    - Keys include id, alert, severity, state (open/closed), status, commander, impact, services, started_at,
      acknowledged_at, ended_at, duration, deadlines (respond_by, resolve_by, next_update_at), audience,
      escalation_level, escalated_to, flags, notifications (sent, failed, failed_channels), latest_update,
      actions_in_progress, root_cause, resolution, action_items, response_met, resolution_met, sla_breached,
      time_to_acknowledge_seconds, time_to_resolve_seconds, timeline.
  returned: unless O(state=query)
  type: dict
entries:
  description: All entries of the record, oldest first.
  returned: when O(state=read)
  type: list
  elements: dict
bad_lines:
  description:
    - Line numbers of the record that are not JSON objects (a torn write, a hand edit); they were skipped.
    - With O(state=query), a mapping of incident id to its bad line numbers.
  returned: always
  type: raw
  sample: [7]
repaired:
  description:
    - The torn tail moved aside before appending (C(line), C(bytes), C(moved_to) the C(.corrupt) companion file);
      null when none was.
  returned: unless O(state=query)
  type: dict
unreadable:
  description: Records left out of the query because they cannot be summarised (C(id), C(path), C(error)).
  returned: when O(state=query)
  type: list
  elements: dict
incidents:
  description: Summaries of the incidents in O(record_dir), newest first.
  returned: when O(state=query)
  type: list
  elements: dict
count:
  description: Number of incidents listed.
  returned: when O(state=query)
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._incident import (
    IncidentError,
    execute,
)
from ansible_collections.taskscheduler.ops.plugins.module_utils._incident_policy import (
    PolicyError,
)

ARGUMENT_SPEC = {
    "state": {"type": "str", "default": "append", "choices": ["open", "append", "escalate", "close", "read", "query"]},
    "id": {"type": "str"},
    "record_dir": {"type": "path", "default": "/var/lib/tsops/incidents"},
    "log_dir": {"type": "path", "default": "/var/log/incidents"},
    "timestamp": {"type": "str"},
    "alert": {"type": "str"},
    "severity": {"type": "str"},
    "severity_map": {"type": "dict"},
    "default_severity": {"type": "str"},
    "escalation_matrix": {"type": "dict"},
    "escalation_path": {"type": "raw"},
    "description": {"type": "str"},
    "commander": {"type": "str"},
    "impact": {"type": "str"},
    "services": {"type": "list", "elements": "str"},
    "bridge": {"type": "str"},
    "started_at": {"type": "str"},
    "source": {"type": "str"},
    "labels": {"type": "dict"},
    "type": {"type": "str", "default": "action", "choices": ["action", "notification"]},
    "actor": {"type": "str"},
    "host": {"type": "str"},
    "step": {"type": "str"},
    "result": {"type": "str", "default": "ok", "choices": ["ok", "changed", "failed", "skipped", "info"]},
    "details": {"type": "raw"},
    "flags": {
        "type": "list",
        "elements": "str",
        "choices": ["data_loss", "breach_confirmed", "cascading_failure", "root_cause_identified", "service_restored"],
    },
    "status": {"type": "str", "choices": ["investigating", "identified", "monitoring", "resolved"]},
    "update": {"type": "str"},
    "public": {"type": "bool", "default": False},
    "channel": {"type": "str"},
    "ok": {"type": "bool", "default": True},
    "error": {"type": "str"},
    "audience": {"type": "str"},
    "recipients": {"type": "list", "elements": "str"},
    "subject": {"type": "str"},
    "reasons": {"type": "list", "elements": "str"},
    "level": {"type": "int"},
    "root_cause": {"type": "str"},
    "resolution": {"type": "raw"},
    "impact_summary": {"type": "raw"},
    "action_items": {"type": "list", "elements": "dict"},
    "ended_at": {"type": "str"},
    "reason": {"type": "str"},
    "since": {"type": "str"},
    "until": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[
            ("state", "open", ("alert",)),
            ("state", "append", ("id",)),
            ("state", "escalate", ("id",)),
            ("state", "close", ("id",)),
            ("state", "read", ("id",)),
        ],
    )
    try:
        result = execute(module.params, check_mode=module.check_mode)
    except (IncidentError, PolicyError, OSError) as exc:
        module.fail_json(msg=f"incident_record ({module.params['state']}): {exc}")
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
