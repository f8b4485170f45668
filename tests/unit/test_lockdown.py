"""Unit tests of docker_port_lockdown's planning logic (module_utils/_lockdown.py), without iptables.

The fake below keeps chains as lists of rule specs and answers -S, -C, -I, -D like iptables, and can be told to
fail one step: enough to prove the order of the steps and what stands after a failure part-way.
"""

from __future__ import annotations

import pytest
from ansible_collections.taskscheduler.ops.plugins.module_utils import _lockdown as lk


class FakeIptables:
    def __init__(self, fail_on: str | None = None) -> None:
        self.chains: dict[str, list[list[str]]] = {"DOCKER-USER": [["-j", "RETURN"]], "INPUT": []}
        self.calls: list[list[str]] = []
        self.fail_on = fail_on  # a step whose argv (joined) contains this text fails

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        args = [a for a in argv[1:] if a != "-w"]
        op, chain, rest = args[0], args[1], args[2:]
        if op in ("-I", "-D"):
            self.calls.append(args)
            if self.fail_on and self.fail_on in " ".join(args):
                return 4, "", "iptables: injected failure"
        if chain not in self.chains:
            return 1, "", f"iptables: No chain/target/match by that name ({chain})"
        rules = self.chains[chain]
        if op == "-S":
            lines = [f"-N {chain}"] + [f"-A {chain} " + " ".join(f'"{x}"' if " " in x else x for x in r)
                                       for r in rules]
            return 0, "\n".join(lines) + "\n", ""
        if op == "-C":
            return (0, "", "") if rest in rules else (1, "", "Bad rule")
        if op == "-I":
            rules.insert(int(rest[0]) - 1, rest[1:])
            return 0, "", ""
        if op == "-D":
            if rest not in rules:
                return 1, "", "Bad rule (does a matching rule exist in that chain?)"
            rules.remove(rest)
            return 0, "", ""
        raise AssertionError(op)

    def targets(self, chain: str) -> list[str]:
        """The rules of a chain as their kind ('drop', 'allow <cidr>': ours) or the target (Docker's)."""
        return [lk.rule_key(" ".join(["-A", chain] + r)) if "--comment" in r else r[-1] for r in self.chains[chain]]


def apply(fake: FakeIptables, port: int = 8080, sources: tuple[str, ...] = (), input_chain: bool = True) -> lk.Plan:
    fw = lk.Firewall(fake)
    wanted = lk.rules_for(port, "tcp", list(sources), input_chain)
    todo = fw.plan_apply(wanted, port, "tcp")
    fw.execute(todo.steps)
    return todo


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("port", [0, 65536, -1, True, "8080", None])
def test_a_bad_port_is_refused(port):
    with pytest.raises(lk.LockdownError, match="port must be a port number"):
        lk.validate(port, "tcp", "present", [])


def test_every_bad_allow_source_is_named_in_one_error():
    with pytest.raises(lk.LockdownError) as err:
        lk.validate(8080, "tcp", "present",
                    ["10.0.0.0/24", "bastion.example", "2001:db8::/64", "0.0.0.0/0", "", "10.0.0.300"])
    text = str(err.value)
    for bad in ("'bastion.example'", "'2001:db8::/64' is IPv6", "'0.0.0.0/0' allows every source", "''",
                "'10.0.0.300'", "Nothing was changed"):
        assert bad in text
    assert "'10.0.0.0/24'" not in text


def test_allow_sources_are_normalised_and_deduplicated():
    assert lk.validate(8080, "tcp", "present", [" 10.20.0.7/24", "10.20.0.0/24", "192.0.2.1"]) == [
        "10.20.0.0/24", "192.0.2.1/32"]


@pytest.mark.parametrize("port,connection_port", [(22, None), (2222, 2222)])
def test_ssh_and_the_connection_port_are_never_blocked(port, connection_port):
    with pytest.raises(lk.LockdownError, match="lock the responders out"):
        lk.validate(port, "tcp", "present", [], connection_port=connection_port)


def test_lifting_is_allowed_on_any_port():
    assert lk.validate(22, "tcp", "absent", []) == []


@pytest.mark.parametrize("kwargs,message", [
    (dict(proto="sctp"), "protocol"), (dict(state="gone"), "state"),
    (dict(chains=("DOCKER USER",)), "chain name"), (dict(connection_port=0), "connection_port")])
def test_other_bad_options_are_refused(kwargs, message):
    args = dict(port=8080, proto="tcp", state="present", allow_sources=[]) | kwargs
    with pytest.raises(lk.LockdownError, match=message):
        lk.validate(**args)


def test_a_bad_entry_touches_nothing():
    """The module validates before it builds a firewall: nothing reaches iptables."""
    fake = FakeIptables()

    def run() -> None:
        sources = lk.validate(8080, "tcp", "present", ["10.0.0.0/24", "not-an-address"])
        apply(fake, sources=tuple(sources))

    with pytest.raises(lk.LockdownError):
        run()
    assert fake.calls == []


# ------------------------------------------------------------------------------------------------ the rules


def test_docker_user_matches_only_dnated_connections():
    drop = next(r for r in lk.rules_for(443, "tcp", [], True) if r.chain == "DOCKER-USER" and r.is_drop)
    spec = list(drop.spec)
    assert spec[spec.index("--ctstate") + 1] == "DNAT"
    assert spec[spec.index("--ctorigdstport") + 1] == "443"


def test_every_drop_goes_in_before_any_exception():
    fake = FakeIptables()
    todo = apply(fake, sources=("10.0.0.0/24",))
    kinds = [(s.action, s.chain, s.spec[-1]) for s in todo.steps]
    assert kinds == [("insert", "DOCKER-USER", "DROP"), ("insert", "INPUT", "DROP"),
                     ("insert", "DOCKER-USER", "RETURN"), ("insert", "INPUT", "ACCEPT")]
    assert fake.targets("DOCKER-USER") == ["allow 10.0.0.0/24", "drop", "RETURN"]
    assert fake.targets("INPUT") == ["allow 10.0.0.0/24", "drop"]


def test_a_second_run_plans_nothing():
    fake = FakeIptables()
    apply(fake, sources=("10.0.0.0/24", "192.0.2.0/24"))
    assert apply(fake, sources=("10.0.0.0/24", "192.0.2.0/24")).steps == []


def test_a_changed_allow_list_adds_the_new_rules_before_removing_the_old():
    fake = FakeIptables()
    apply(fake, sources=("10.0.0.0/24",))
    todo = apply(fake, sources=("192.0.2.0/24",))
    actions = [(s.action, s.chain, " ".join(s.spec)) for s in todo.steps]
    assert [a[:2] for a in actions] == [("insert", "DOCKER-USER"), ("insert", "INPUT"),
                                        ("delete", "DOCKER-USER"), ("delete", "INPUT")]
    assert all("192.0.2.0/24" in a[2] for a in actions[:2]) and all("10.0.0.0/24" in a[2] for a in actions[2:])
    assert not any("DROP" in a[2] for a in actions), "the DROP stays where it is"
    assert fake.targets("DOCKER-USER") == ["allow 192.0.2.0/24", "drop", "RETURN"]


def test_rules_of_the_previous_format_are_replaced_new_drop_first():
    fake = FakeIptables()
    legacy = ["-p", "tcp", "-m", "conntrack", "--ctorigdstport", "8080", "--ctdir", "ORIGINAL",
              "-m", "comment", "--comment", "tsops-lockdown tcp/8080", "-j", "DROP"]
    fake.chains["DOCKER-USER"].insert(0, legacy)
    todo = apply(fake, input_chain=False)
    assert [(s.action, s.why) for s in todo.steps] == [("insert", "the DROP first"), ("delete", "replaced")]
    assert fake.targets("DOCKER-USER") == ["drop", "RETURN"]
    assert "DNAT" in fake.chains["DOCKER-USER"][0]


def test_an_exception_below_the_drop_is_moved_on_top():
    fake = FakeIptables()
    rules = lk.rules_for(8080, "tcp", ["192.0.2.0/24"], False)
    fake.chains["DOCKER-USER"][:0] = [list(rules[1].spec), list(rules[0].spec)]  # DROP above the exception
    apply(fake, sources=("192.0.2.0/24",), input_chain=False)
    assert fake.targets("DOCKER-USER") == ["allow 192.0.2.0/24", "drop", "RETURN"]


def test_a_partial_set_in_the_wrong_order_is_rebuilt_without_losing_the_drop():
    fake = FakeIptables()
    rules = lk.rules_for(8080, "tcp", ["192.0.2.0/24"], False)
    fake.chains["DOCKER-USER"].insert(0, list(rules[1].spec))  # only the DROP
    todo = apply(fake, sources=("192.0.2.0/24",), input_chain=False)
    assert [s.action for s in todo.steps] == ["insert"]
    assert fake.targets("DOCKER-USER") == ["allow 192.0.2.0/24", "drop", "RETURN"]


def test_a_failing_exception_leaves_every_drop_in_place_and_says_what_was_applied():
    fake = FakeIptables(fail_on="-s 10.0.0.0/24")
    with pytest.raises(lk.StepFailed) as err:
        apply(fake, sources=("10.0.0.0/24",))
    assert [(s.chain, s.spec[-1]) for s in err.value.applied] == [("DOCKER-USER", "DROP"), ("INPUT", "DROP")]
    assert "injected failure" in str(err.value) and "-s 10.0.0.0/24" in err.value.step.text()
    assert fake.targets("DOCKER-USER") == ["drop", "RETURN"] and fake.targets("INPUT") == ["drop"]


def test_a_failing_removal_of_an_old_exception_keeps_the_new_set():
    fake = FakeIptables()
    apply(fake, sources=("10.0.0.0/24",), input_chain=False)
    fake.fail_on = "-D DOCKER-USER"
    with pytest.raises(lk.StepFailed) as err:
        apply(fake, sources=("192.0.2.0/24",), input_chain=False)
    assert [s.action for s in err.value.applied] == ["insert"]
    assert fake.targets("DOCKER-USER") == ["allow 192.0.2.0/24", "allow 10.0.0.0/24", "drop", "RETURN"]


def test_removal_takes_the_exceptions_first_and_each_drop_last():
    fake = FakeIptables()
    apply(fake, sources=("10.0.0.0/24",))
    apply(fake, port=9090)
    fw = lk.Firewall(fake)
    todo = lk.plan_removal(fw.existing(["DOCKER-USER", "INPUT"], 8080, "tcp"))
    assert [s.spec[-1] for s in todo.steps] == ["RETURN", "ACCEPT", "DROP", "DROP"]
    fw.execute(todo.steps)
    assert fake.targets("DOCKER-USER") == ["drop", "RETURN"] and fake.targets("INPUT") == ["drop"]
    assert fw.tagged("DOCKER-USER", 9090, "tcp"), "another port's rules stay"


def test_check_result_names_what_is_wrong():
    wanted = lk.rules_for(8080, "tcp", ["10.0.0.0/24"], False)
    current = [lk.Existing("DOCKER-USER", key, "-A DOCKER-USER ...")
               for key in ("drop", "allow 10.0.0.0/24", "allow 10.9.0.0/16")]
    assert lk.check_result(wanted, current) == ["allow 10.0.0.0/24 below the DROP in DOCKER-USER",
                                                "stale rule 'allow 10.9.0.0/16' in DOCKER-USER"]
    assert lk.check_result(wanted, []) == ["no DROP in DOCKER-USER"]


def test_parse_tagged_knows_each_rule_by_its_kind_and_never_reads_another_port():
    out = "\n".join([
        "-N DOCKER-USER",
        '-A DOCKER-USER -s 10.0.0.0/24 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 --ctdir ORIGINAL '
        '-m comment --comment "tsops-lockdown tcp/8080" -j RETURN',
        '-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 -m comment --comment "tsops-lockdown tcp/8080" '
        '-j DROP',
        '-A DOCKER-USER -p tcp -m comment --comment "tsops-lockdown tcp/8080" -j LOG',
        '-A INPUT -p tcp -m comment --comment "tsops-lockdown tcp/8080" -j DROP',
        '-A DOCKER-USER -p tcp -m comment --comment "tsops-lockdown tcp/80801" -j DROP',
        '-A DOCKER-USER -p tcp -m comment --comment "tsops-lockdown tcp/8080 drop" -j DROP',
        '-A DOCKER-USER -p udp -m comment --comment "tsops-lockdown udp/8080" -j DROP',
        "-A DOCKER-USER -j RETURN"])
    found = lk.parse_tagged("DOCKER-USER", out, 8080, "tcp")
    assert [e.key for e in found] == ["allow 10.0.0.0/24", "drop", "other LOG", "drop"]
    assert found[1].spec()[-3:] == ("tsops-lockdown tcp/8080", "-j", "DROP")


# ------------------------------------------------------------------------------------------------------ IPv6

TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000001000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000
   2: 0000000000000000FFFF00000100007F:2383 00000000000000000000000000000000:0000 0A 00000000:00000000
   3: B80D0120000000000000000001000000:2384 00000000000000000000000000000000:0000 0A 00000000:00000000
   4: 00000000000000000000000000000000:2385 B80D0120000000000000000002000000:D431 01 00000000:00000000
"""


@pytest.mark.parametrize("port,expected", [
    (8080, ["[::]:8080"]),             # docker-proxy on ::
    (9090, []),                        # ::1 only
    (9091, []),                        # IPv4-mapped 127.0.0.1: IPv4 traffic
    (9092, ["[2001:db8::1]:9092"]),    # a global address
    (9093, []),                        # an established connection, not a listener
])
def test_ipv6_listeners(port, expected):
    assert lk.ipv6_listeners(TCP6, port, "tcp") == expected


def test_ipv6_dnat_rules():
    nat = "\n".join(["-A DOCKER ! -i br-1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::2]:8080",
                     "-A DOCKER ! -i br-1 -p tcp -m tcp --dport 80801 -j DNAT --to-destination [fd00::2]:80"])
    assert len(lk.ipv6_dnat_rules(nat, 8080, "tcp")) == 1
    assert lk.ipv6_dnat_rules(nat, 8080, "udp") == []
