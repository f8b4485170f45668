# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Firewall rules that really cut a port published by Docker. Docker DNATs published ports in the nat
table's PREROUTING chain, so the packets never reach INPUT (the runbook's ``iptables -A INPUT ... DROP``
does not stop them): they are forwarded, and the chain Docker leaves to the administrator for them is
DOCKER-USER. After DNAT the destination port is the container's, so the rule matches the port the client
asked for through conntrack (``--ctorigdstport``), and only on connections that were DNATed
(``--ctstate DNAT``): a container's own outbound connections to the same port elsewhere are not published
traffic and stay open. An INPUT rule is added as well for a service listening on the host itself. Loopback
stays open so responders on the host can still verify the service.

Never fail open:

* every input is validated (``validate``) before any rule is touched;
* ``plan`` (pure) orders the steps: the DROP of a chain goes in first, the exceptions for ``allow_sources``
  after it (inserted above it), and rules that are no longer wanted (a changed allow list, an older rule
  format) are removed only once the new set stands;
* ``Firewall.execute`` runs the steps one by one and, when one fails, raises ``StepFailed`` naming the steps
  already applied, so the caller reports exactly what stands.

Each rule carries the comment ``tsops-lockdown <proto>/<port>`` (as in earlier versions, so that rules written
by them are found, and replaced or lifted). Within a port, a rule is known by its kind (``key``): ``drop`` for the
DROP target, ``allow <cidr>`` for an exception of that source, read from ``iptables -S`` whatever the order in
which iptables prints the options.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable

TAG = "tsops-lockdown"
DOCKER_CHAIN = "DOCKER-USER"
INPUT_CHAIN = "INPUT"
SSH_PORT = 22
PROTOCOLS = ("tcp", "udp")
STATES = ("present", "absent")
_CHAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,28}$")

Runner = Callable[[list[str]], tuple[int, str, str]]


class LockdownError(ValueError):
    """Input that the module refuses before touching any rule."""


class StepFailed(RuntimeError):
    """An iptables step failed; ``applied`` holds the steps that had succeeded before it."""

    def __init__(self, message: str, step: Step, applied: list[Step]) -> None:
        super().__init__(message)
        self.step = step
        self.applied = applied


@dataclass(frozen=True)
class Rule:
    chain: str
    key: str  # "drop" or "allow <cidr>"
    spec: tuple[str, ...]

    @property
    def is_drop(self) -> bool:
        return self.key == "drop"

    def text(self) -> str:
        """As ``iptables -S`` would print it (arguments with spaces in double quotes)."""
        return " ".join(["-A", self.chain] + [f'"{a}"' if " " in a else a for a in self.spec])


@dataclass(frozen=True)
class Step:
    action: str  # "insert" (at position 1) or "delete" (by spec)
    chain: str
    spec: tuple[str, ...]
    why: str

    def argv(self) -> list[str]:
        return (["-I", self.chain, "1"] if self.action == "insert" else ["-D", self.chain]) + list(self.spec)

    def text(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv())


@dataclass(frozen=True)
class Existing:
    """One of our rules as ``iptables -S`` prints it."""

    chain: str
    key: str  # "drop", "allow <cidr>", or "other <target>" (not ours to keep)
    line: str

    def spec(self) -> tuple[str, ...]:
        return tuple(shlex.split(self.line)[2:])


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)


# ---------------------------------------------------------------------------------------------- validation


def _check_port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise LockdownError(f"{what} must be a port number between 1 and 65535, got {value!r}")
    return value


def normalise_sources(allow_sources: list[object]) -> list[str]:
    """IPv4 addresses or CIDRs in their network form (as ``iptables -S`` prints them), duplicates removed.

    Every bad entry is named in one error, so nothing is touched until the whole list is right.
    """
    problems: list[str] = []
    out: list[str] = []
    for raw in allow_sources or []:
        text = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(text, str) or not text:
            problems.append(f"{raw!r} is not an address")
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            problems.append(f"{raw!r} is not an IPv4 address or CIDR (host names are not accepted)")
            continue
        if net.version != 4:
            problems.append(f"{raw!r} is IPv6; this module writes IPv4 rules (iptables) only")
        elif net.prefixlen == 0:
            problems.append(f"{raw!r} allows every source: that is no lockdown")
        elif str(net) not in out:
            out.append(str(net))
    if problems:
        raise LockdownError("allow_sources: " + "; ".join(problems) + ". Nothing was changed.")
    return out


def validate(port: object, proto: str, state: str, allow_sources: list[object],
             connection_port: object = None, chains: tuple[str, ...] = (DOCKER_CHAIN, INPUT_CHAIN)) -> list[str]:
    """All inputs checked before any rule is touched; returns the normalised allow_sources."""
    _check_port(port, "port")
    if proto not in PROTOCOLS:
        raise LockdownError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {proto!r}")
    if state not in STATES:
        raise LockdownError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    for chain in chains:
        if not _CHAIN_RE.match(chain or ""):
            raise LockdownError(f"{chain!r} is not a valid iptables chain name")
    if connection_port is not None:
        _check_port(connection_port, "connection_port")
    if state == "present":
        protected = {SSH_PORT: "SSH"}
        if connection_port is not None:
            protected.setdefault(int(connection_port), "the connection port of this run (connection_port)")
        if port in protected:
            raise LockdownError(f"port {port} is {protected[port]}: blocking it would lock the responders out of "
                                "the host. Nothing was changed.")
    return normalise_sources(allow_sources)


# ------------------------------------------------------------------------------------------------ the rules


def comment(port: int, proto: str) -> str:
    return f"{TAG} {proto}/{port}"


def _tag(port: int, proto: str) -> list[str]:
    return ["-m", "comment", "--comment", comment(port, proto)]


def rules_for(port: int, proto: str, allow_sources: list[str], input_chain: bool) -> list[Rule]:
    """The wanted rules, per chain in the order they must stand (exceptions above the DROP)."""
    match = ["-p", proto, "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdstport", str(port), "--ctdir", "ORIGINAL"]
    rules = [Rule(DOCKER_CHAIN, f"allow {src}", tuple(["-s", src] + match + _tag(port, proto)
                                                      + ["-j", "RETURN"])) for src in allow_sources]
    rules.append(Rule(DOCKER_CHAIN, "drop", tuple(match + _tag(port, proto) + ["-j", "DROP"])))
    if input_chain:
        local = ["-p", proto, "--dport", str(port)]
        rules += [Rule(INPUT_CHAIN, f"allow {src}", tuple(["-s", src] + local + _tag(port, proto)
                                                          + ["-j", "ACCEPT"])) for src in allow_sources]
        rules.append(Rule(INPUT_CHAIN, "drop", tuple(local + ["!", "-i", "lo"] + _tag(port, proto)
                                                     + ["-j", "DROP"])))
    return rules


def wanted_rules(port: int, proto: str, allow_sources: list[str], input_chain: bool) -> list[tuple[str, list[str]]]:
    """(chain, rule spec) in the order they must stand at the top of their chain."""
    return [(r.chain, list(r.spec)) for r in rules_for(port, proto, allow_sources, input_chain)]


def parse_tagged(chain: str, out: str, port: int, proto: str) -> list[Existing]:
    """Our rules of this port in ``iptables -S <chain>`` output, in chain order."""
    # the comment alone, or followed by a word (a development build of 0.1.0 wrote "<tag> drop")
    needle = re.compile(r'--comment "' + re.escape(comment(port, proto)) + r'[" ]')
    return [Existing(chain, rule_key(line), line) for line in out.splitlines()
            if line.startswith(f"-A {chain} ") and needle.search(line)]


def rule_key(line: str) -> str:
    """The kind of one of our rules from its ``iptables -S`` line: ``drop``, ``allow <cidr>`` or ``other ...``."""
    try:
        args = shlex.split(line)
    except ValueError:
        return "other (unreadable)"
    target = args[args.index("-j") + 1] if "-j" in args[:-1] else ""
    source = args[args.index("-s") + 1] if "-s" in args[:-1] else ""
    if target == "DROP" and not source:
        return "drop"
    if target in ("RETURN", "ACCEPT") and source:
        return f"allow {source}"
    return f"other {target} {source}".strip()


def plan(wanted: list[Rule], current: list[Existing], exact: set[Rule]) -> Plan:
    """Steps that turn ``current`` into ``wanted`` without a moment where traffic passes that the DROP would stop.

    ``exact`` holds the wanted rules that iptables already has exactly (``iptables -C``). A rule stays when it is
    the single exact copy of its kind and, for an exception, stands above a DROP that stays. In order, each phase
    for every chain (DOCKER-USER first) before the next phase:

    1. the DROP, inserted on top, when it does not stay;
    2. old copies of exceptions that are put back, when a copy is exact (a delete by spec removes the first
       match, which would otherwise be the new copy); deleting an exception only ever blocks more;
    3. the exceptions that do not stay, inserted on top, above the DROP;
    4. only then the old DROP and the other old copies, and the rules no longer wanted (a source dropped from
       the list, an older rule format): the new set stands before the old one goes.
    """
    phases: list[list[Step]] = [[], [], [], []]
    for chain in dict.fromkeys(r.chain for r in wanted):
        per_chain = _plan_chain(chain, [r for r in wanted if r.chain == chain],
                                [e for e in current if e.chain == chain], exact)
        for phase, chain_steps in zip(phases, per_chain):
            phase += chain_steps
    return Plan([step for phase in phases for step in phase])


def _stays(rule: Rule, keys: list[str], exact: set[Rule], drop_stays: bool) -> bool:
    if rule.is_drop:
        return drop_stays
    return (drop_stays and rule in exact and keys.count(rule.key) == 1
            and keys.index(rule.key) < keys.index("drop"))


def _plan_chain(chain: str, want: list[Rule], have: list[Existing],
                exact: set[Rule]) -> tuple[list[Step], list[Step], list[Step], list[Step]]:
    keys = [e.key for e in have]
    drop = next(r for r in want if r.is_drop)
    drop_stays = drop in exact and keys.count("drop") == 1
    redo = [r for r in want if not _stays(r, keys, exact, drop_stays)]
    redo_keys = {r.key for r in redo}
    pre_keys = {r.key for r in redo if not r.is_drop and r in exact}
    wanted_keys = {r.key for r in want}
    first = [Step("insert", chain, drop.spec, "the DROP first")] if not drop_stays else []
    pre = [Step("delete", chain, e.spec(), f"old copy of {e.key}, put back on top")
           for e in have if e.key in pre_keys]
    inserts = [Step("insert", chain, r.spec, f"exception above the DROP: {r.key}")
               for r in reversed(redo) if not r.is_drop]
    post = [Step("delete", chain, e.spec(), "replaced" if e.key in redo_keys else "no longer wanted")
            for e in have if (e.key in redo_keys and e.key not in pre_keys) or e.key not in wanted_keys]
    return first, pre, inserts, post


def plan_removal(current: list[Existing]) -> Plan:
    """Lift: exceptions first, each chain's DROP last (a failure part-way leaves the port blocked)."""
    ordered = [e for e in current if e.key != "drop"] + [e for e in current if e.key == "drop"]
    return Plan([Step("delete", e.chain, e.spec(), "lift") for e in ordered])


def check_result(wanted: list[Rule], current: list[Existing]) -> list[str]:
    """What is wrong with the rules that stand after an apply (empty when they are as wanted)."""
    problems: list[str] = []
    for chain in dict.fromkeys(r.chain for r in wanted):
        keys = [e.key for e in current if e.chain == chain]
        if "drop" not in keys:
            problems.append(f"no DROP in {chain}")
            continue
        for rule in wanted:
            if rule.chain == chain and not rule.is_drop:
                if rule.key not in keys:
                    problems.append(f"{rule.key} missing in {chain}")
                elif keys.index(rule.key) > keys.index("drop"):
                    problems.append(f"{rule.key} below the DROP in {chain}")
        wanted_keys = {r.key for r in wanted if r.chain == chain}
        problems += [f"stale rule {k!r} in {chain}" for k in keys if k not in wanted_keys]
    return problems


# -------------------------------------------------------------------------------------------- IPv6 exposure


def ipv6_listeners(proc_net: str, port: int, proto: str) -> list[str]:
    """Sockets of ``/proc/net/tcp6`` (or ``udp6``) bound to ``port`` on an address outside this host.

    An IPv6 socket on ``::`` or a global address receives IPv6 clients that no iptables (IPv4) rule stops.
    Loopback and IPv4-mapped addresses are not IPv6 exposure.
    """
    found: list[str] = []
    for line in proc_net.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or ":" not in cols[1]:
            continue
        addr_hex, _sep, port_hex = cols[1].partition(":")
        if proto == "tcp" and cols[3] != "0A":  # LISTEN
            continue
        try:
            if int(port_hex, 16) != port or len(addr_hex) != 32:
                continue
            raw = b"".join(bytes.fromhex(addr_hex[i:i + 8])[::-1] for i in range(0, 32, 8))
            addr = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if addr.is_loopback or addr.ipv4_mapped is not None:
            continue
        text = f"[{addr}]:{port}"
        if text not in found:
            found.append(text)
    return found


def ipv6_dnat_rules(nat_rules: str, port: int, proto: str) -> list[str]:
    """``ip6tables -t nat -S`` lines that DNAT this port (Docker publishing on IPv6 without its proxy)."""
    dport = re.compile(rf"--dport {port}(?:\s|$)")
    return [ln for ln in nat_rules.splitlines()
            if ln.startswith("-A ") and "-j DNAT" in ln and f"-p {proto}" in ln and dport.search(ln)]


# ---------------------------------------------------------------------------------------------- iptables I/O


class Firewall:
    def __init__(self, run: Runner, iptables: str = "iptables") -> None:
        self.run = run
        self.iptables = iptables

    def chain_exists(self, chain: str) -> bool:
        return self.run([self.iptables, "-w", "-S", chain])[0] == 0

    def has(self, chain: str, spec: list[str] | tuple[str, ...]) -> bool:
        return self.run([self.iptables, "-w", "-C", chain] + list(spec))[0] == 0

    def existing(self, chains: list[str], port: int, proto: str) -> list[Existing]:
        found: list[Existing] = []
        for chain in chains:
            rc, out, _err = self.run([self.iptables, "-w", "-S", chain])
            if rc == 0:
                found += parse_tagged(chain, out, port, proto)
        return found

    def tagged(self, chain: str, port: int, proto: str) -> list[str]:
        """Our rules for this port in a chain, as ``iptables -S`` prints them."""
        return [e.line for e in self.existing([chain], port, proto)]

    def must(self, argv: list[str]) -> None:
        rc, _out, err = self.run([self.iptables, "-w"] + argv)
        if rc != 0:
            raise RuntimeError(f"iptables {' '.join(argv)} failed: {err.strip() or f'exit status {rc}'}")

    def execute(self, steps: list[Step]) -> list[Step]:
        applied: list[Step] = []
        for step in steps:
            try:
                self.must(step.argv())
            except RuntimeError as exc:
                raise StepFailed(str(exc), step, applied) from None
            applied.append(step)
        return applied

    def plan_apply(self, wanted: list[Rule], port: int, proto: str) -> Plan:
        chains = list(dict.fromkeys(r.chain for r in wanted))
        exact = {r for r in wanted if self.has(r.chain, r.spec)}
        return plan(wanted, self.existing(chains, port, proto), exact)

    def apply(self, rules: list[tuple[str, list[str]]], check_mode: bool) -> bool:
        """Make every rule present, exceptions above the DROP; True when something changed."""
        wanted = [_rule_from_spec(chain, spec) for chain, spec in rules]
        port, proto = _port_proto(wanted[-1].spec)
        todo = self.plan_apply(wanted, port, proto)
        if not check_mode:
            self.execute(todo.steps)
        return todo.changed

    def remove(self, chains: list[str], port: int, proto: str, check_mode: bool) -> list[str]:
        current = self.existing(chains, port, proto)
        todo = plan_removal(current)
        if not check_mode:
            self.execute(todo.steps)
        by_spec = {e.spec(): e.line for e in current}
        return [by_spec[s.spec] for s in todo.steps]


def _rule_from_spec(chain: str, spec: list[str]) -> Rule:
    return Rule(chain, rule_key(shlex.join(["-A", chain] + list(spec))), tuple(spec))


def _port_proto(spec: tuple[str, ...]) -> tuple[int, str]:
    text = spec[spec.index("--comment") + 1]
    proto, _sep, port = text.split(" ")[1].partition("/")
    return int(port), proto
