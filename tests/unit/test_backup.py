"""Unit tests of the emergency backup's logic (plugins/module_utils/_backup.py) with a fake docker CLI.

The fake answers like ``docker exec`` of the PostgreSQL client programs: pg_dump writes the archive to the
stdout it is given, pg_restore reads it from stdin, a "wedged" pg_dump never returns within its deadline.
The real thing, against a really wedged database, is tests/integration/test_postgres_backup.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys

import pytest
from ansible_collections.taskscheduler.ops.plugins.module_utils import _backup

ARCHIVE = b"PGDMP-fake-archive"
TOC = ";\n; Archive\n1; 0 0 TABLE public task orchestrator\n2; 0 0 TABLE public task_run o\n"


class FakeDocker:
    """Plays `docker exec [-i] [-e NAME...] ctr prog ...` for the client programs the backup runs."""

    def __init__(self, dump: bytes = ARCHIVE, fail: str | None = None, size: int = 1000, wedged: bool = False):
        self.dump = dump
        self.fail = fail
        self.size = size
        self.wedged = wedged
        self.calls: list[list[str]] = []
        self.envs: list[dict] = []
        self.databases: set[str] = set()
        self.stdin_seen: list[bytes] = []
        self.timeouts: list[float] = []

    def __call__(self, argv, env, timeout, stdin=None, stdout=None):
        self.calls.append(argv)
        self.envs.append(env)
        self.timeouts.append(timeout)
        assert argv[1] == "exec", "everything runs through docker exec (no docker cp, no files in the container)"
        cmd = argv[argv.index("ctr") + 1:]
        prog = cmd[0]
        if stdin is not None:
            self.stdin_seen.append(stdin.read())
        if prog == self.fail:
            return 1, "", f"{prog}: error: connection to server failed\n"
        if prog == "pg_dump":
            if self.wedged:
                stdout.write(self.dump[:5])  # a few bytes, then the stall: the deadline passes
                raise _backup.BackupTimeout(f"docker exec ... killed after {timeout:g}s")
            stdout.write(self.dump)
        elif prog == "pg_restore" and "--list" in cmd:
            return 0, TOC, ""
        elif prog == "createdb":
            self.databases.add(cmd[-1])
        elif prog == "dropdb":
            self.databases.discard(cmd[-1])
        elif prog == "psql":
            sql = cmd[-1]
            if "pg_database_size" in sql:
                return 0, f"{self.size}\n", ""
            if "pg_terminate_backend" in sql:
                return 0, "1\n", ""
            return 0, '{"task": 3, "task_run": 10}', ""
        return 0, "", ""

    def progs(self) -> list[str]:
        return [c[c.index("ctr") + 1] for c in self.calls]


def pg_for(fake: FakeDocker, password: str | None = None) -> _backup.DockerPostgres:
    return _backup.DockerPostgres(fake, "docker", "unix:///x", "ctr", password=password)


def plenty(_path: str) -> int:
    return 10**12


def test_the_dump_is_streamed_to_the_host_hashed_and_listed(tmp_path):
    fake = FakeDocker()
    result = _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                                 free_space=plenty)
    path = tmp_path / "b.dump"
    assert path.read_bytes() == ARCHIVE
    assert result["sha256"] == hashlib.sha256(ARCHIVE).hexdigest()
    assert (tmp_path / "b.dump.sha256").read_text() == f"{result['sha256']}  b.dump\n"
    assert oct(path.stat().st_mode & 0o777) == "0o400"
    assert result["verified"] is True and result["verify"]["toc_entries"] == 2
    assert "restored_rows" not in result["verify"], "the full restore is off the critical path by default"
    assert fake.stdin_seen == [ARCHIVE], "pg_restore --list reads the host's file"
    assert sorted(os.listdir(tmp_path)) == ["b.dump", "b.dump.sha256"], "no temporary file is left"


def test_pg_dump_gets_a_lock_wait_timeout_and_the_run_its_deadline(tmp_path):
    fake = FakeDocker()
    _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                        timeout=42, lock_wait_timeout=3, free_space=plenty)
    i = fake.progs().index("pg_dump")
    assert "--lock-wait-timeout=3000" in fake.calls[i]
    assert fake.timeouts[i] == 42
    assert fake.envs[i]["PGCONNECT_TIMEOUT"] == "5" and fake.envs[i]["PGAPPNAME"].startswith("tsops-backup-")


def test_the_size_and_space_are_checked_before_dumping(tmp_path):
    fake = FakeDocker(size=5000)
    with pytest.raises(_backup.BackupError, match=r"not enough free space .* 4000 bytes free, 5000 needed"):
        _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                            free_space=lambda _p: 4000)
    assert "pg_dump" not in fake.progs(), "nothing is dumped when the space is short"
    assert os.listdir(tmp_path) == []


def test_space_factor_zero_skips_the_check(tmp_path):
    fake = FakeDocker(size=5000)
    result = _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                                 space_factor=0, free_space=lambda _p: 1)
    assert result["space"]["enough"] is True


def test_a_wedged_dump_is_killed_the_backend_ended_and_nothing_left(tmp_path):
    fake = FakeDocker(wedged=True)
    with pytest.raises(_backup.BackupTimeout, match=r"did not finish within 7s and was killed"):
        _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                            timeout=7, free_space=plenty)
    assert os.listdir(tmp_path) == [], "the partial dump is removed"
    terminate = fake.calls[-1]
    assert "pg_terminate_backend" in terminate[-1] and fake.envs[1]["PGAPPNAME"] in terminate[-1]


def test_a_database_that_does_not_answer_fails_before_any_file(tmp_path):
    fake = FakeDocker(fail="psql")
    with pytest.raises(_backup.BackupError, match=r"asking the size of orchestrator .* failed .*connection"):
        _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                            free_space=plenty)
    assert os.listdir(tmp_path) == []


def test_a_failed_dump_raises_with_the_reason_and_writes_no_file(tmp_path):
    fake = FakeDocker(fail="pg_dump")
    with pytest.raises(_backup.BackupError, match=r"pg_dump of orchestrator failed .*connection to server failed"):
        _backup.take_backup(pg_for(fake, "s3cret"), "orchestrator", "orchestrator", "postgres", str(tmp_path),
                            "b.dump", verify="none", free_space=plenty)
    assert os.listdir(tmp_path) == []
    for call in fake.calls:
        assert "s3cret" not in " ".join(call) and call[2:6] == ["-e", "PGCONNECT_TIMEOUT", "-e", "PGPASSWORD"]


def test_the_reason_of_a_failed_dump_keeps_the_error_and_its_detail():
    stderr = ("pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout\n"
              "pg_dump: detail: Query was: LOCK TABLE public.task_run IN ACCESS SHARE MODE\n")
    assert _backup.last_line(stderr) == ("pg_dump: error: query failed: ERROR:  canceling statement due to lock "
                                         "timeout pg_dump: detail: Query was: LOCK TABLE public.task_run IN "
                                         "ACCESS SHARE MODE")
    assert _backup.last_line("just one line\n") == "just one line" and _backup.last_line("") == "no message"


def test_an_archive_that_does_not_list_is_reported_not_hidden(tmp_path):
    fake = FakeDocker(fail="pg_restore")
    result = _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                                 free_space=plenty)
    assert result["verified"] is False and "pg_restore --list failed" in result["verify"]["error"]
    assert (tmp_path / "b.dump").exists(), "the dump itself is kept"


def test_the_full_restore_proof_counts_rows_and_drops_the_scratch_database(tmp_path):
    fake = FakeDocker()
    result = _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                                 verify="restore", free_space=plenty)
    assert result["verify"]["restored"] is True and result["verify"]["restored_rows"] == {"task": 3, "task_run": 10}
    assert fake.databases == set(), "the scratch database must be dropped"
    assert fake.stdin_seen == [ARCHIVE, ARCHIVE]


def test_an_existing_file_is_never_overwritten(tmp_path):
    (tmp_path / "b.dump").write_bytes(b"old")
    fake = FakeDocker()
    with pytest.raises(_backup.BackupError, match="exists already"):
        _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                            free_space=plenty)
    assert (tmp_path / "b.dump").read_bytes() == b"old" and fake.calls == []


def test_an_existing_backup_is_checked_against_its_hash_then_restored(tmp_path):
    fake = FakeDocker()
    first = _backup.take_backup(pg_for(fake), "orchestrator", "orchestrator", "postgres", str(tmp_path), "b.dump",
                                free_space=plenty)
    proof = _backup.verify_existing(pg_for(fake), first["path"], "orchestrator", "postgres", "restore")
    assert proof["verified"] is True and proof["verify"]["restored_rows"]["task_run"] == 10
    os.chmod(first["path"], 0o600)
    with open(first["path"], "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(_backup.BackupError, match="differs from the recorded"):
        _backup.verify_existing(pg_for(fake), first["path"], "orchestrator", "postgres", "list")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "../x.dump"}, "plain file name"),
    ({"name": "x.dump.partial"}, "plain file name"),
    ({"timeout": 0}, "timeout=0"),
    ({"lock_wait_timeout": -1}, "lock_wait_timeout=-1"),
    ({"space_factor": -0.5}, "space_factor=-0.5"),
    ({"verify": "yes"}, "verify='yes'"),
])
def test_bad_options_are_refused_with_their_name(kwargs, message):
    args = {"name": None, "timeout": 300, "lock_wait_timeout": 10, "connect_timeout": 5, "space_factor": 1.0,
            "verify": "list"}
    args.update(kwargs)
    with pytest.raises(_backup.BackupError, match=re.escape(message)):
        _backup.validate_options(**args)


def test_run_process_kills_at_the_deadline_and_streams_to_a_file(tmp_path):
    with pytest.raises(_backup.BackupTimeout, match=r"killed after 0\.5s"):
        _backup.run_process([sys.executable, "-c", "import time; time.sleep(30)"], {}, 0.5)
    out = tmp_path / "out"
    with open(out, "wb") as fh:
        rc, text, _err = _backup.run_process([sys.executable, "-c", "print('x' * 10)"], {}, 10, stdout=fh)
    assert rc == 0 and text == "" and out.read_text() == "x" * 10 + "\n"
