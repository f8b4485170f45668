"""Unit tests of the logic behind the responders' own modules (firewall rule handling, backups)."""

from __future__ import annotations

import hashlib
import os

import pytest
from ansible_collections.taskscheduler.ops.plugins.module_utils import _backup, _lockdown


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


class FakeDocker:
    """docker exec / docker cp against a fake container file system."""

    def __init__(self, dump: bytes, fail: str | None = None) -> None:
        self.dump = dump
        self.fail = fail
        self.files: dict[str, bytes] = {}
        self.calls: list[list[str]] = []
        self.databases: set[str] = set()

    def __call__(self, argv: list[str], env: dict) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[1] == "cp":
            src, dest = argv[2], argv[3]
            if ":" in src and not os.path.exists(src):
                with open(dest, "wb") as fh:
                    fh.write(self.files[src.split(":", 1)[1]])
            else:
                with open(src, "rb") as fh:
                    self.files[dest.split(":", 1)[1]] = fh.read()
            return 0, "", ""
        cmd = argv[argv.index("ctr") + 1:]
        prog = cmd[0]
        if prog == self.fail:
            return 1, "", f"{prog}: error: connection to server failed"
        if prog == "pg_dump":
            self.files[cmd[cmd.index("-f") + 1]] = self.dump
        elif prog == "rm":
            self.files.pop(cmd[-1], None)
        elif prog == "pg_restore" and "--list" in cmd:
            return 0, ";\n; Archive\n1; 0 0 TABLE public task orchestrator\n2; 0 0 TABLE public task_run o\n", ""
        elif prog == "createdb":
            self.databases.add(cmd[-1])
        elif prog == "dropdb":
            self.databases.discard(cmd[-1])
        elif prog == "psql":
            return 0, '{"task": 3, "task_run": 10}', ""
        return 0, "", ""


def test_backup_is_copied_out_hashed_verified_and_leaves_nothing_behind(tmp_path):
    fake = FakeDocker(b"PGDMP-fake-archive")
    pg = _backup.DockerPostgres(fake, "docker", "unix:///x", "ctr", password=None)
    result = _backup.take_backup(pg, "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump", verify=True)
    path = tmp_path / "b.dump"
    assert path.read_bytes() == b"PGDMP-fake-archive"
    assert result["sha256"] == hashlib.sha256(b"PGDMP-fake-archive").hexdigest()
    assert (tmp_path / "b.dump.sha256").read_text() == f"{result['sha256']}  b.dump\n"
    assert oct(path.stat().st_mode & 0o777) == "0o400"
    assert result["verified"] is True and result["verify"]["restored_rows"] == {"task": 3, "task_run": 10}
    assert result["verify"]["toc_entries"] == 2
    assert fake.files == {}, "temporary copies inside the container must be removed"
    assert fake.databases == set(), "the scratch database must be dropped"


def test_a_backup_that_does_not_restore_is_reported_not_hidden(tmp_path):
    fake = FakeDocker(b"PGDMP", fail="pg_restore")
    pg = _backup.DockerPostgres(fake, "docker", "unix:///x", "ctr", password=None)
    result = _backup.take_backup(pg, "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump", verify=True)
    assert result["verified"] is False and "pg_restore --list failed" in result["verify"]["error"]
    assert (tmp_path / "b.dump").exists(), "the dump itself is kept"


def test_a_failed_dump_raises_with_the_reason_and_writes_no_file(tmp_path):
    fake = FakeDocker(b"", fail="pg_dump")
    pg = _backup.DockerPostgres(fake, "docker", "unix:///x", "ctr", password="s3cret")
    with pytest.raises(_backup.BackupError, match=r"pg_dump of orchestrator failed .*connection to server failed"):
        _backup.take_backup(pg, "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump", verify=False)
    assert not (tmp_path / "b.dump").exists()
    exec_call = next(c for c in fake.calls if c[1] == "exec")
    assert exec_call[2:4] == ["-e", "PGPASSWORD"] and "s3cret" not in " ".join(exec_call)
