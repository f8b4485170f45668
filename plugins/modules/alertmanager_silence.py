#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: create, extend or expire an Alertmanager silence through API v2."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: alertmanager_silence
short_description: Create, extend or expire an Alertmanager silence (API v2)
version_added: 0.1.0
description:
  - Silences alerts in Alertmanager through API v2 (C(/api/v2/silences)), as the runbook's post-incident step
    "silence alerts for 30 minutes to prevent noise" does with the obsolete v1 API.
  - With O(state=present) it first looks for an active silence with exactly the same matchers. If that silence
    already lasts long enough nothing changes; if it ends earlier it is extended in place (same id, same start);
    only when there is none is a new silence created. Running it twice never creates a duplicate.
  - With O(state=absent) it expires the silence O(silence_id), or every active or pending silence with the same
    matchers.
author:
  - taskscheduler.ops contributors (!UNKNOWN)
extends_documentation_fragment:
  - taskscheduler.ops.alertmanager
attributes:
  check_mode:
    support: full
    description: Reads the silences and reports what would be created, extended or expired; writes nothing.
  diff_mode:
    support: full
    description: Returns the silence before and after.
  idempotent:
    support: full
    description: A second run within O(min_extension) of the first changes nothing.
options:
  state:
    description: Whether the silence should be in force (V(present)) or expired (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  matchers:
    description:
      - Label matchers of the silence, each with C(name), C(value) and optionally C(is_regex) (default false) and
        C(is_equal) (default true). A dict of label name to value is accepted as a shorthand for equality matchers.
      - Two silences are equivalent when their matchers are the same set.
      - Required unless O(alertname) or O(silence_id) is given.
    type: raw
  alertname:
    description: Shorthand for one matcher C(alertname=<value>), added to O(matchers).
    type: str
  silence_id:
    description:
      - Id of a silence to extend (O(state=present)) or expire (O(state=absent)).
    type: str
  duration:
    description:
      - How long the silence lasts from now, as minutes or a number with C(s), C(m), C(h), C(d) or C(w).
      - Ignored when O(ends_at) is set.
    type: str
    default: 30m
  ends_at:
    description: End of the silence (ISO 8601); overrides O(duration).
    type: str
  min_extension:
    description:
      - An existing equivalent silence is extended only if the wanted end is later than its end by more than this,
        so repeated runs do not bump the silence every time.
    type: str
    default: 1m
  comment:
    description: Comment of the silence, e.g. C(Post-incident silence for INC-20261126-211500-apidown).
    type: str
    default: silenced by taskscheduler.ops
  created_by:
    description: Author recorded in the silence.
    type: str
    default: taskscheduler.ops
notes:
  - Run it once per silence (C(run_once) / C(delegate_to localhost)); it talks to Alertmanager over HTTP.
seealso:
  - module: taskscheduler.ops.incident_record
"""

EXAMPLES = r"""
- name: Silence the alert for 30 minutes after the incident (extends an existing equivalent silence)
  taskscheduler.ops.alertmanager_silence:
    url: "{{ tsops_alertmanager_url }}"
    alertname: TaskSchedulerAPIDown
    duration: 30m
    comment: "Post-incident silence for {{ incident_id }}"
  delegate_to: localhost
  run_once: true
  register: silence

- name: Silence one instance with a regex matcher
  taskscheduler.ops.alertmanager_silence:
    matchers:
      - {name: alertname, value: DiskSpaceCritical}
      - {name: instance, value: "db-0[12]:9100", is_regex: true}
    duration: 2h

- name: Expire it again
  taskscheduler.ops.alertmanager_silence:
    state: absent
    silence_id: "{{ silence.silence_id }}"
"""

RETURN = r"""
silence_id:
  description: Id of the silence created, extended, left alone or expired (null if check mode would create one).
  returned: always
  type: str
  sample: 4f8cde0a-6b8e-4c5c-9f3a-1b2c3d4e5f60
action:
  description: What was (or in check mode would be) done.
  returned: always
  type: str
  sample: extended
  choices: [created, extended, unchanged, expired, absent]
silence:
  description: The silence after the call (id, state, matchers, startsAt, endsAt, createdBy, comment).
  returned: always
  type: dict
previous:
  description: The equivalent silence found before the call, if any.
  returned: always
  type: dict
duplicates:
  description: Ids of further equivalent active silences (e.g. left behind by older tooling); they are not touched.
  returned: always
  type: list
  elements: str
expired_ids:
  description: Ids of the silences expired.
  returned: when O(state=absent)
  type: list
  elements: str
diff:
  description: Before and after of the silence.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._alertmanager import (
    AlertmanagerClient,
    AlertmanagerError,
    alertmanager_argument_spec,
    ensure_silence,
)


def main() -> None:
    argument_spec = alertmanager_argument_spec()
    argument_spec.update(
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        matchers={"type": "raw"},
        alertname={"type": "str"},
        silence_id={"type": "str"},
        duration={"type": "str", "default": "30m"},
        ends_at={"type": "str"},
        min_extension={"type": "str", "default": "1m"},
        comment={"type": "str", "default": "silenced by taskscheduler.ops"},
        created_by={"type": "str", "default": "taskscheduler.ops"},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("matchers", "alertname", "silence_id")],
        required_together=[("username", "password")],
    )
    params = module.params
    matchers = params["matchers"]
    if isinstance(matchers, dict):
        matchers = [{"name": k, "value": v} for k, v in matchers.items()]
    if params["alertname"]:
        matchers = [*list(matchers or []), {"name": "alertname", "value": params["alertname"]}]
    client = AlertmanagerClient(
        url=params["url"], timeout=params["timeout"], validate_certs=params["validate_certs"],
        bearer_token=params["bearer_token"], username=params["username"], password=params["password"],
    )
    try:
        result = ensure_silence(
            client, state=params["state"], matchers=matchers, silence_id=params["silence_id"],
            duration=params["duration"], ends_at=params["ends_at"], comment=params["comment"],
            created_by=params["created_by"], min_extension=params["min_extension"], check_mode=module.check_mode,
        )
    except (AlertmanagerError, ValueError) as exc:
        module.fail_json(msg=f"alertmanager_silence: {exc}")
    if module._diff:
        result["diff"] = {"before": result.get("previous") or {}, "after": result.get("silence") or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
