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
  - This module puts the block where Docker leaves room for it, the C(DOCKER-USER) chain. Since the destination port
    has been rewritten to the container's by then, the rule matches connections that Docker DNATed from the port the
    client asked for (C(-m conntrack --ctstate DNAT --ctorigdstport PORT --ctdir ORIGINAL)). Established connections
    are cut as well. Connections that containers open to port O(port) elsewhere (outbound, not DNATed) stay open,
    so locking down an API on 443 does not cut the containers' outbound HTTPS.
  - A C(DROP) rule for the same port in C(INPUT) (except loopback) covers a service listening on the host itself.
  - Loopback stays open so responders on the host keep verifying the service; O(allow_sources) stay open too.
  - It never fails open. Every option is checked before any rule is touched (a bad O(allow_sources) entry fails the
    task and changes nothing). The C(DROP) of each chain goes in first, the exceptions for O(allow_sources) after
    it (above it); when the rules change (for example the allow list), the new set is added before the old one is
    removed. When an C(iptables) step fails part-way, the task fails naming the step, the steps already applied
    (RV(applied)) and whether the C(DROP) stands (RV(drop_in_place)).
  - Refuses to block port 22 (SSH) and O(connection_port) (the port Ansible reaches the host on).
  - IPv4 only, and it says so. With O(state=present) it refuses (fails, changes nothing) when the port is reachable
    over IPv6 on this host, that is, a socket listens on it on an IPv6 address other than loopback (C(docker-proxy)
    publishing on C(::), a service on the host), or an C(ip6tables) nat rule DNATs it. It does not write
    C(ip6tables) rules.
  - "Each rule carries the comment C(tsops-lockdown <proto>/<port>); O(state=absent) removes exactly those, the
    exceptions first and the C(DROP) last. Rules written by earlier versions (without C(--ctstate DNAT)) carry the
    same comment: a run with O(state=present) replaces them, new C(DROP) first."
author:
  - Taskscheduler Ops Team (@taskscheduler-ops)
attributes:
  check_mode:
    support: full
    description: Reports the rules it would add or remove (RV(steps)), touching none.
  diff_mode:
    support: full
    description: The rules of the port before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  port:
    description: The published (host) port, e.g. C(8080) for the API. Not 22 nor O(connection_port).
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
    description:
      - IPv4 addresses or CIDRs that keep access (e.g. a bastion or the incident team's network).
      - Host names, IPv6 entries and C(0.0.0.0/0) are refused. Entries are kept in their network form
        (C(10.20.0.7/24) becomes C(10.20.0.0/24)), duplicates once.
    type: list
    elements: str
    default: []
  input_chain:
    description: Also block the port in C(INPUT) (a service listening on the host, as in the runbook).
    type: bool
    default: true
  connection_port:
    description:
      - The port Ansible reaches this host on (pass C(ansible_port)); the module refuses to block it.
      - Port 22 is refused in any case.
    type: int
  iptables:
    description: The iptables binary (a name on the path or a full path).
    type: str
    default: iptables
notes:
  - Needs root. IPv4 only (C(iptables)); Docker's default bridge networks are IPv4. See the description for the
    IPv6 check; it reads C(/proc/net/tcp6) (or C(udp6)) and, when C(ip6tables) is installed and can list its nat
    table, that table. A host whose IPv6 exposure neither shows (for example nftables rules written without
    C(ip6tables)) is not detected.
  - Rules do not survive a reboot or a restart of Docker's firewall set-up; re-run the containment if either happens.
"""

EXAMPLES = r"""
- name: Contain a breach - no client outside this host reaches the API
  taskscheduler.ops.docker_port_lockdown:
    port: 8080
    allow_sources: [10.20.0.0/24]
    connection_port: "{{ ansible_port | default(22) }}"
  register: lockdown

- name: Lift the lockdown
  taskscheduler.ops.docker_port_lockdown:
    port: 8080
    state: absent
"""

RETURN = r"""
rules:
  description: Rules of this port after the run (C(iptables -S) form); in check mode the rules it would leave.
  returned: always except on bad input
  type: list
  elements: str
  sample:
    - -A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 --ctdir ORIGINAL
      -m comment --comment "tsops-lockdown tcp/8080" -j DROP
removed:
  description: Rules removed (in check mode, that it would remove).
  returned: when O(state=absent)
  type: list
  elements: str
steps:
  description: The iptables steps run (in check mode, planned), in order, e.g. C(-I DOCKER-USER 1 ... -j DROP).
  returned: success
  type: list
  elements: str
drop_in_place:
  description:
    - Whether the C(DROP) of this port stands in every chain of the lockdown when the module returns (read back
      from iptables; in check mode, before any change).
    - On a failure part-way, C(true) means the port is blocked although not every exception went in.
  returned: always except on bad input
  type: bool
applied:
  description: On failure, the steps that had been applied before the failing one (they stand).
  returned: failure
  type: list
  elements: str
failed_step:
  description: On failure part-way, the iptables step that failed.
  returned: failure of an iptables step
  type: str
planned:
  description: On failure part-way, every step that was planned.
  returned: failure of an iptables step
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.taskscheduler.ops.plugins.module_utils._lockdown import (
    DOCKER_CHAIN,
    INPUT_CHAIN,
    Firewall,
    LockdownError,
    StepFailed,
    check_result,
    ipv6_dnat_rules,
    ipv6_listeners,
    plan_removal,
    rules_for,
    validate,
)


def probe_ipv6_exposure(module: AnsibleModule, port: int, proto: str) -> list[str]:
    """Where the port is reachable over IPv6: listening sockets, and ip6tables DNAT rules when readable."""
    found: list[str] = []
    try:
        with open(f"/proc/net/{proto}6", encoding="ascii") as fh:
            found += [f"socket {s}" for s in ipv6_listeners(fh.read(), port, proto)]
    except OSError:
        pass  # no IPv6 in this kernel: nothing listens on it
    ip6tables = module.get_bin_path("ip6tables")
    if ip6tables:
        rc, out, _err = module.run_command([ip6tables, "-w", "-t", "nat", "-S"])
        if rc == 0:
            found += [f"ip6tables rule {line}" for line in ipv6_dnat_rules(out, port, proto)]
    return found


def fail(module: AnsibleModule, msg: str, **result) -> None:
    """The one failure path: no secrets pass through this module, the message names what stands."""
    module.fail_json(msg=msg, changed=bool(result.get("applied")), **result)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="int", required=True),
            protocol=dict(type="str", choices=["tcp", "udp"], default="tcp"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            allow_sources=dict(type="list", elements="str", default=[]),
            input_chain=dict(type="bool", default=True),
            connection_port=dict(type="int"),
            iptables=dict(type="str", default="iptables"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    port, proto = p["port"], p["protocol"]
    chains = [DOCKER_CHAIN] + ([INPUT_CHAIN] if p["input_chain"] else [])
    try:
        sources = validate(port, proto, p["state"], p["allow_sources"], p["connection_port"], tuple(chains))
    except LockdownError as exc:
        fail(module, str(exc), applied=[])
    binary = module.get_bin_path(p["iptables"], required=True)
    fw = Firewall(lambda argv: module.run_command([binary] + argv[1:]), binary)

    def current() -> list[str]:
        return [e.line for e in fw.existing(chains, port, proto)]

    def drop_in_place() -> bool:
        keys = {(e.chain, e.key) for e in fw.existing(chains, port, proto)}
        return all((c, "drop") in keys for c in chains)

    before = current()
    if p["state"] == "present":
        missing = [c for c in chains if not fw.chain_exists(c)]
        if missing:
            fail(module, f"iptables chain {', '.join(missing)} does not exist: is Docker running on this host with "
                         "its iptables integration on? Without it a published port cannot be blocked here. Nothing "
                         "was changed.", rules=before, applied=[])
        exposed = probe_ipv6_exposure(module, port, proto)
        if exposed:
            fail(module, f"{proto}/{port} is reachable over IPv6 ({'; '.join(exposed)}) and this module writes IPv4 "
                         "rules only: an IPv4 lockdown would leave it open. Publish the port on an IPv4 address "
                         "only (e.g. 0.0.0.0:PORT:PORT) or block it with ip6tables by hand. Nothing was changed.",
                 rules=before, applied=[])
        wanted = rules_for(port, proto, sources, p["input_chain"])
        todo = fw.plan_apply(wanted, port, proto)
    else:
        wanted = []
        todo = plan_removal(fw.existing(chains, port, proto))
    steps = [s.text() for s in todo.steps]
    if not module.check_mode:
        try:
            fw.execute(todo.steps)
        except StepFailed as exc:
            fail(module, f"{exc} (step {len(exc.applied) + 1} of {len(todo.steps)}; the steps before it stand, see "
                         f"applied; DROP in place: {drop_in_place()})", rules=current(), applied=[
                             s.text() for s in exc.applied], failed_step=exc.step.text(), planned=steps,
                 drop_in_place=drop_in_place())
        if wanted:
            problems = check_result(wanted, fw.existing(chains, port, proto))
            if problems:
                fail(module, "the lockdown rules are not as wanted after the run (changed by someone else at the "
                             f"same time?): {'; '.join(problems)}", rules=current(), applied=steps,
                     drop_in_place=drop_in_place())
    if not module.check_mode or not todo.changed:
        after = current()
    elif p["state"] == "absent":
        after = []
    else:
        after = [r.text() for r in wanted]
    result = dict(changed=todo.changed, rules=after, steps=steps, drop_in_place=drop_in_place(),
                  diff=dict(before="\n".join(before) + "\n", after="\n".join(after) + "\n"))
    if p["state"] == "absent":
        result["removed"] = before
    module.exit_json(**result)


if __name__ == "__main__":
    main()
