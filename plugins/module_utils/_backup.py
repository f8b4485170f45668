# -*- coding: utf-8 -*-
# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Emergency backups of the scheduler's database through ``docker exec`` (as the runbook does), needing only
Docker on the host: ``pg_dump -Fc`` streamed to a file on the host, its SHA-256 written beside it in
``sha256sum`` format, then proved restorable: ``pg_restore --list`` reads its table of contents and a full
restore into a scratch database of the same server succeeds, whose row counts are reported. The scratch
database is always dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from typing import Any, Callable

COUNT_SQL = (
    "SELECT coalesce(json_object_agg(table_name, (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint), '{}') "
    "FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)


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

    def __init__(self, cli: str, docker_host: str, container: str, password: str | None, timeout: float) -> None:
        self.cli = cli
        self.container = container
        self.timeout = timeout
        self.env = dict(os.environ, DOCKER_HOST=docker_host)
        self.pass_env: list[str] = []
        if password:
            self.env["PGPASSWORD"] = password
            self.pass_env = ["-e", "PGPASSWORD"]

    def run(self, argv: list[str], stdin: Any = None, stdout: Any = subprocess.PIPE,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        cmd = [self.cli, "exec"] + (["-i"] if stdin is not None else []) + self.pass_env + [self.container] + argv
        try:
            return subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=self.env,
                                  timeout=timeout or self.timeout, check=False)
        except FileNotFoundError as exc:
            raise BackupError(f"docker CLI {self.cli!r} not found on this host") from exc
        except subprocess.TimeoutExpired as exc:
            raise BackupError(f"{argv[0]} in {self.container} timed out after {exc.timeout}s") from exc

    def check(self, argv: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess:
        proc = self.run(argv, **kw)
        if proc.returncode != 0:
            err = (proc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
            raise BackupError(f"{what} failed (exit {proc.returncode}): {err[-1] if err else 'no message'}")
        return proc

    def counts(self, user: str, db: str) -> dict[str, int]:
        proc = self.check(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db, "-c", COUNT_SQL],
                          f"counting rows in {db}")
        return {k: int(v) for k, v in json.loads(proc.stdout.decode() or "{}").items()}


def take_backup(pg: DockerPostgres, db: str, user: str, admin_user: str, dest_dir: str, name: str,
                verify: bool, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Dump, hash and (optionally) verify; returns the facts of the backup."""
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    path = os.path.join(dest_dir, name)
    partial = path + ".partial"
    t0 = clock()
    with open(partial, "wb") as out:
        pg.check(["pg_dump", "-Fc", "-U", user, "-d", db], f"pg_dump of {db}", stdout=out)
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
    with open(path, "rb") as fh:
        toc = pg.check(["pg_restore", "--list"], "pg_restore --list", stdin=fh)
    entries = [ln for ln in toc.stdout.decode("utf-8", "replace").splitlines() if ln and not ln.startswith(";")]
    scratch = f"{db}_verify_{int(time.time())}_{os.getpid()}"
    pg.check(["createdb", "-U", admin_user, scratch], f"creating scratch database {scratch}")
    try:
        with open(path, "rb") as fh:
            pg.check(["pg_restore", "-U", admin_user, "-d", scratch, "--no-owner", "--exit-on-error"],
                     f"restoring into {scratch}", stdin=fh)
        counts = pg.counts(admin_user, scratch)
    finally:
        pg.run(["dropdb", "-U", admin_user, "--if-exists", scratch])
    return {"toc_entries": len(entries), "scratch_database": scratch, "restored": True, "restored_rows": counts}
