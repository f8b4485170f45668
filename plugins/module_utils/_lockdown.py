# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Firewall rules that really cut a port published by Docker. Docker DNATs published ports in the nat
table's PREROUTING chain, so the packets never reach INPUT (the runbook's ``iptables -A INPUT ... DROP``
does not stop them): they are forwarded, and the chain Docker leaves to the administrator for them is
DOCKER-USER. After DNAT the destination port is the container's, so the rule matches the port the client
asked for through conntrack (``--ctorigdstport``). An INPUT rule is added as well for a service listening on
the host itself. Loopback stays open so responders on the host can still verify the service.
"""

from __future__ import annotations

import shlex
from typing import Callable

TAG = "tsops-lockdown"

Runner = Callable[[list[str]], tuple[int, str, str]]


def comment(port: int, proto: str) -> str:
    return f"{TAG} {proto}/{port}"


def wanted_rules(port: int, proto: str, allow_sources: list[str], input_chain: bool) -> list[tuple[str, list[str]]]:
    """(chain, rule spec) in the order they must stand at the top of their chain."""
    tag = ["-m", "comment", "--comment", comment(port, proto)]
    match = ["-p", proto, "-m", "conntrack", "--ctorigdstport", str(port), "--ctdir", "ORIGINAL"]
    rules: list[tuple[str, list[str]]] = [("DOCKER-USER", match + ["-s", src] + tag + ["-j", "RETURN"])
                                          for src in allow_sources]
    rules.append(("DOCKER-USER", match + tag + ["-j", "DROP"]))
    if input_chain:
        rules += [("INPUT", ["-p", proto, "--dport", str(port), "-s", src] + tag + ["-j", "ACCEPT"])
                  for src in allow_sources]
        rules.append(("INPUT", ["-p", proto, "--dport", str(port), "!", "-i", "lo"] + tag + ["-j", "DROP"]))
    return rules


class Firewall:
    def __init__(self, run: Runner, iptables: str = "iptables") -> None:
        self.run = run
        self.iptables = iptables

    def chain_exists(self, chain: str) -> bool:
        return self.run([self.iptables, "-w", "-S", chain])[0] == 0

    def has(self, chain: str, spec: list[str]) -> bool:
        return self.run([self.iptables, "-w", "-C", chain] + spec)[0] == 0

    def tagged(self, chain: str, port: int, proto: str) -> list[str]:
        """Our rules for this port in a chain, as ``iptables -S`` prints them."""
        rc, out, _err = self.run([self.iptables, "-w", "-S", chain])
        if rc != 0:
            return []
        needle = f'"{comment(port, proto)}"'
        return [ln for ln in out.splitlines() if needle in ln and ln.startswith("-A ")]

    def must(self, argv: list[str]) -> None:
        rc, _out, err = self.run([self.iptables, "-w"] + argv)
        if rc != 0:
            raise RuntimeError(f"iptables {' '.join(argv)} failed: {err.strip()}")

    def apply(self, rules: list[tuple[str, list[str]]], check_mode: bool) -> bool:
        """Make every rule present at the top of its chain, in order; True when something changed."""
        missing = [(chain, spec) for chain, spec in rules if not self.has(chain, spec)]
        if not missing:
            return False
        if check_mode:
            return True
        # A partial set may stand in the wrong order: take ours out, then insert the whole set in reverse at
        # position 1, so that it ends in the given order at the top of each chain.
        port, proto = self._port_proto(rules)
        self.remove(sorted({chain for chain, _spec in rules}), port, proto, check_mode=False)
        for chain, spec in reversed(rules):
            self.must(["-I", chain, "1"] + spec)
        return True

    @staticmethod
    def _port_proto(rules: list[tuple[str, list[str]]]) -> tuple[int, str]:
        spec = rules[-1][1]
        text = spec[spec.index("--comment") + 1]
        proto, _sep, port = text.split(" ", 1)[1].partition("/")
        return int(port), proto

    def remove(self, chains: list[str], port: int, proto: str, check_mode: bool) -> list[str]:
        removed: list[str] = []
        for chain in chains:
            for line in self.tagged(chain, port, proto):
                removed.append(line)
                if not check_mode:
                    # "-A CHAIN spec..." -> "-D CHAIN spec..."; iptables -S quotes the comment
                    self.must(["-D"] + shlex.split(line)[1:])
        return removed
