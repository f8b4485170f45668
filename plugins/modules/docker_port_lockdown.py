#!/usr/bin/python
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: block (or unblock) external access to a port published by Docker."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_port_lockdown
short_description: Block or lift external access to a port that Docker publishes (DOCKER-USER chain)
version_added: 0.1.0
description:
  - "The runbook's isolation step (C(iptables -A INPUT -p tcp --dport 8080 -j DROP)) does not stop traffic to a port
    that Docker publishes. Docker rewrites the destination in C(PREROUTING) and forwards the packets, which never
    cross C(INPUT)."
  - This module puts the block where Docker leaves room for it, the C(DOCKER-USER) chain, matching
    the port the client asked for (C(-m conntrack --ctorigdstport)) since the destination port has been rewritten
    to the container's by then. Established connections are cut as well.
  - A C(DROP) rule for the same port in C(INPUT) (except loopback) covers a service listening on the host itself.
  - Loopback stays open so responders on the host keep verifying the service; O(allow_sources) stay open too.
  - Rules carry the comment C(tsops-lockdown <proto>/<port>); C(state=absent) removes exactly those.
author:
  - Taskscheduler Ops Team (@taskscheduler-ops)
attributes:
  check_mode:
    support: full
    description: Reports the rules it would add or remove.
  diff_mode:
    support: full
    description: The rules of the port before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  port:
    description: The published (host) port, e.g. C(8080) for the API.
    type: int
    required: true
  protocol:
    description: Transport protocol.
    type: str
    choices: [tcp, udp]
    default: tcp
  state:
    description: C(present) blocks the port, C(absent) lifts the block.
    type: str
    choices: [present, absent]
    default: present
  allow_sources:
    description: Source addresses or CIDRs that keep access (e.g. a bastion or the incident team's network).
    type: list
    elements: str
    default: []
  input_chain:
    description: Also block the port in C(INPUT) (a service listening on the host, as in the runbook).
    type: bool
    default: true
  iptables:
    description: The iptables binary.
    type: str
    default: iptables
notes:
  - Needs root. IPv4 only (C(iptables)); Docker's default bridge networks are IPv4.
  - Rules do not survive a reboot or a restart of Docker's firewall set-up; re-run the containment if either happens.
"""

EXAMPLES = r"""
- name: Contain a breach - no client outside this host reaches the API
  taskscheduler.ops.docker_port_lockdown:
    port: 8080
    allow_sources: [10.20.0.0/24]

- name: Lift the lockdown
  taskscheduler.ops.docker_port_lockdown:
    port: 8080
    state: absent
"""

RETURN = r"""
rules:
  description: Rules of this port after the run (C(iptables -S) form).
  returned: always
  type: list
  elements: str
  sample:
    - -A DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL
      -m comment --comment "tsops-lockdown tcp/8080" -j DROP
removed:
  description: Rules removed (C(state=absent)).
  returned: when O(state=absent)
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._lockdown import Firewall, wanted_rules


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="int", required=True),
            protocol=dict(type="str", choices=["tcp", "udp"], default="tcp"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            allow_sources=dict(type="list", elements="str", default=[]),
            input_chain=dict(type="bool", default=True),
            iptables=dict(type="str", default="iptables"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    binary = module.get_bin_path(p["iptables"], required=True)
    fw = Firewall(lambda argv: module.run_command([binary] + argv[1:]), binary)
    chains = ["DOCKER-USER"] + (["INPUT"] if p["input_chain"] else [])

    def current() -> list[str]:
        return [line for c in chains for line in fw.tagged(c, p["port"], p["protocol"])]

    before = current()
    try:
        if p["state"] == "present":
            if not fw.chain_exists("DOCKER-USER"):
                module.fail_json(msg="iptables chain DOCKER-USER does not exist: is Docker running on this host with "
                                     "its iptables integration on? Without it a published port cannot be blocked here.")
            changed = fw.apply(wanted_rules(p["port"], p["protocol"], p["allow_sources"], p["input_chain"]),
                               module.check_mode)
            removed = None
        else:
            removed = fw.remove(chains, p["port"], p["protocol"], module.check_mode)
            changed = bool(removed)
    except RuntimeError as exc:
        module.fail_json(msg=str(exc), rules=current())
    if not module.check_mode or not changed:
        after = current()
    elif p["state"] == "absent":
        after = []
    else:
        after = [" ".join(["-A", c] + spec) for c, spec in
                 wanted_rules(p["port"], p["protocol"], p["allow_sources"], p["input_chain"])]
    result = dict(changed=changed, rules=after,
                  diff=dict(before="\n".join(before) + "\n", after="\n".join(after) + "\n"))
    if removed is not None:
        result["removed"] = removed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
