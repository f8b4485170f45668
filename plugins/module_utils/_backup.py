# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Emergency backups of the scheduler's database through ``docker exec`` (as the runbook does), needing only
Docker on the host: ``pg_dump -Fc`` writes the dump inside the database container, ``docker cp`` brings it to
the host (nothing large passes through memory), its SHA-256 is written beside it in ``sha256sum`` format, and it
is proved restorable: ``pg_restore --list`` reads its table of contents and a full restore into a scratch
database of the same server succeeds, whose row counts are reported. The scratch database and the container's
temporary copies are always removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable

COUNT_SQL = (
    "SELECT coalesce(json_object_agg(table_name, (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint), '{}') "
    "FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)

# (argv, environ_update) -> (rc, stdout, stderr): AnsibleModule.run_command in the module, a fake in unit tests.
Runner = Callable[[list, dict], tuple]


class BackupError(Exception):
    """A step of the backup failed; the message says which and why."""


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


class DockerPostgres:
    """Runs PostgreSQL client programs inside the database container."""

    def __init__(self, run: Runner, cli: str, docker_host: str, container: str, password: str | None) -> None:
        self._run = run
        self.cli = cli
        self.container = container
        self.env = {"DOCKER_HOST": docker_host}
        self.pass_env: list[str] = []
        if password:
            self.env["PGPASSWORD"] = password
            self.pass_env = ["-e", "PGPASSWORD"]

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        return self._run([self.cli, "exec"] + self.pass_env + [self.container] + argv, self.env)

    def check(self, argv: list[str], what: str) -> str:
        rc, out, err = self.run(argv)
        if rc != 0:
            lines = (err or "").strip().splitlines()
            raise BackupError(f"{what} failed (exit {rc}): {lines[-1] if lines else 'no message'}")
        return out

    def copy(self, src: str, dest: str, what: str) -> None:
        rc, _out, err = self._run([self.cli, "cp", src, dest], self.env)
        if rc != 0:
            raise BackupError(f"{what} failed (exit {rc}): {(err or '').strip()}")

    def counts(self, user: str, db: str) -> dict[str, int]:
        out = self.check(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db, "-c", COUNT_SQL],
                         f"counting rows in {db}")
        return {k: int(v) for k, v in json.loads(out or "{}").items()}


def take_backup(pg: DockerPostgres, db: str, user: str, admin_user: str, dest_dir: str, name: str,
                verify: bool, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Dump, copy out, hash and (optionally) verify; returns the facts of the backup."""
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    path = os.path.join(dest_dir, name)
    partial = path + ".partial"
    inside = f"/tmp/tsops-backup-{os.getpid()}-{int(clock())}.dump"
    t0 = clock()
    try:
        pg.check(["pg_dump", "-Fc", "-U", user, "-d", db, "-f", inside], f"pg_dump of {db}")
        pg.copy(f"{pg.container}:{inside}", partial, "copying the dump out of the container")
    finally:
        pg.run(["rm", "-f", inside])
    os.replace(partial, path)
    os.chmod(path, 0o400)
    digest = sha256_file(path)
    with open(path + ".sha256", "w", encoding="utf-8") as fh:
        fh.write(f"{digest}  {os.path.basename(path)}\n")
    result: dict[str, Any] = {
        "path": path, "sha256": digest, "size_bytes": os.path.getsize(path),
        "dump_seconds": round(clock() - t0, 3), "verified": False,
    }
    if verify:
        try:
            result["verify"] = verify_backup(pg, path, db, admin_user)
        except BackupError as exc:
            result["verify"] = {"restored": False, "error": str(exc)}
        result["verified"] = result["verify"]["restored"]
    result["duration_seconds"] = round(clock() - t0, 3)
    return result


def verify_backup(pg: DockerPostgres, path: str, db: str, admin_user: str) -> dict[str, Any]:
    """pg_restore --list, then a full restore into a scratch database whose row counts are returned."""
    suffix = f"{int(time.time())}_{os.getpid()}"
    inside = f"/tmp/tsops-verify-{suffix}.dump"
    scratch = f"{db}_verify_{suffix}"
    pg.copy(path, f"{pg.container}:{inside}", "copying the backup into the container")
    try:
        toc = pg.check(["pg_restore", "--list", inside], "pg_restore --list")
        entries = [ln for ln in toc.splitlines() if ln and not ln.startswith(";")]
        pg.check(["createdb", "-U", admin_user, scratch], f"creating scratch database {scratch}")
        try:
            pg.check(["pg_restore", "-U", admin_user, "-d", scratch, "--no-owner", "--exit-on-error", inside],
                     f"restoring into {scratch}")
            counts = pg.counts(admin_user, scratch)
        finally:
            pg.run(["dropdb", "-U", admin_user, "--if-exists", scratch])
    finally:
        pg.run(["rm", "-f", inside])
    return {"toc_entries": len(entries), "scratch_database": scratch, "restored": True, "restored_rows": counts}
