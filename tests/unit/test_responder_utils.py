"""Unit tests of the logic behind the responders' own modules (firewall rules; backups: test_backup.py)."""

from __future__ import annotations

from ansible_collections.taskscheduler.ops.plugins.module_utils import _lockdown


class FakeIptables:
    """Keeps chains as lists of rule specs and answers -S, -C, -I, -D like iptables."""

    def __init__(self) -> None:
        self.chains: dict[str, list[list[str]]] = {"DOCKER-USER": [["-j", "RETURN"]], "INPUT": []}
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        args = [a for a in argv[1:] if a != "-w"]
        op, chain, rest = args[0], args[1], args[2:]
        if chain not in self.chains:
            return 1, "", f"iptables: No chain/target/match by that name ({chain})"
        rules = self.chains[chain]
        if op == "-S":
            # iptables -S prints arguments with spaces (the comment) in double quotes
            lines = [f"-N {chain}"] + [f"-A {chain} " + " ".join(f'"{x}"' if " " in x else x for x in r)
                                       for r in rules]
            return 0, "\n".join(lines) + "\n", ""
        if op == "-C":
            return (0, "", "") if rest in rules else (1, "", "Bad rule")
        if op == "-I":
            rules.insert(int(rest[0]) - 1, rest[1:])
            return 0, "", ""
        if op == "-D":
            rules.remove(rest)
            return 0, "", ""
        raise AssertionError(op)


def test_block_puts_allowed_sources_before_the_drop_and_loopback_stays_open():
    fw = FakeIptables()
    rules = _lockdown.wanted_rules(8080, "tcp", ["10.0.0.0/24"], input_chain=True)
    assert _lockdown.Firewall(fw).apply(rules, check_mode=False) is True
    docker_user = fw.chains["DOCKER-USER"]
    assert docker_user[0][-1] == "RETURN" and "10.0.0.0/24" in docker_user[0]
    assert docker_user[1][-1] == "DROP" and "--ctorigdstport" in docker_user[1] and "8080" in docker_user[1]
    assert docker_user[-1] == ["-j", "RETURN"], "Docker's own final RETURN must stay last"
    drop_input = fw.chains["INPUT"][-1]
    assert drop_input[-1] == "DROP" and drop_input[4:7] == ["!", "-i", "lo"]


def test_block_is_idempotent_and_check_mode_changes_nothing():
    fw = FakeIptables()
    firewall = _lockdown.Firewall(fw)
    rules = _lockdown.wanted_rules(8080, "tcp", [], input_chain=False)
    assert firewall.apply(rules, check_mode=True) is True
    assert fw.chains["DOCKER-USER"] == [["-j", "RETURN"]]
    assert firewall.apply(rules, check_mode=False) is True
    before = [list(r) for r in fw.chains["DOCKER-USER"]]
    assert firewall.apply(rules, check_mode=False) is False
    assert fw.chains["DOCKER-USER"] == before


def test_a_partial_set_in_the_wrong_order_is_rebuilt():
    fw = FakeIptables()
    firewall = _lockdown.Firewall(fw)
    rules = _lockdown.wanted_rules(8080, "tcp", ["192.0.2.0/24"], input_chain=False)
    # only the DROP is there (e.g. someone removed the allow rule by hand): the allow rule must go above it
    fw.chains["DOCKER-USER"].insert(0, rules[1][1])
    assert firewall.apply(rules, check_mode=False) is True
    assert [r[-1] for r in fw.chains["DOCKER-USER"]] == ["RETURN", "DROP", "RETURN"]
    assert "192.0.2.0/24" in fw.chains["DOCKER-USER"][0]


def test_lift_removes_only_this_ports_rules():
    fw = FakeIptables()
    firewall = _lockdown.Firewall(fw)
    firewall.apply(_lockdown.wanted_rules(8080, "tcp", [], input_chain=True), check_mode=False)
    firewall.apply(_lockdown.wanted_rules(9090, "tcp", [], input_chain=True), check_mode=False)
    removed = firewall.remove(["DOCKER-USER", "INPUT"], 8080, "tcp", check_mode=False)
    assert len(removed) == 2 and all("tcp/8080" in r for r in removed)
    remaining = firewall.tagged("DOCKER-USER", 9090, "tcp") + firewall.tagged("INPUT", 9090, "tcp")
    assert len(remaining) == 2
    assert firewall.tagged("DOCKER-USER", 8080, "tcp") == []
