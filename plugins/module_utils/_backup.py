# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Emergency backups of the scheduler's database through ``docker exec`` (as the runbook does), needing only
Docker on the host, and bounded in time so that a wedged database never holds up its restart:

1. the database is asked its size (``pg_database_size``, a connect timeout, a statement timeout) and the
   backup directory must have that much free space (times a factor), else nothing is written;
2. ``pg_dump -Fc --lock-wait-timeout`` runs in the container and writes to its stdout, which is streamed into
   ``<file>.partial`` on the host (nothing large passes through memory or the container's ``/tmp``); the whole
   dump has a deadline, after which the dump is killed (the ``docker exec`` client on the host, and the
   server's backend of the dump by its ``application_name``) and the partial file removed;
3. on success the file is renamed into place, made read-only, and its SHA-256 written beside it in
   ``sha256sum`` format;
4. ``pg_restore --list`` reads the archive's table of contents from the host file (fast: proves the archive
   is complete and readable); optionally (``restore``) a full restore into a scratch database of the same
   server proves it restorable and returns its row counts. The scratch database is always dropped.

Every external program goes through a ``Runner`` with a timeout, so unit tests replace Docker with a fake.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from typing import IO, Any, Callable, Protocol

COUNT_SQL = (
    "SELECT coalesce(json_object_agg(table_name, (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint), '{}') "
    "FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)
SIZE_SQL = "SELECT pg_database_size(current_database())"
VERIFY_MODES = ("none", "list", "restore")
PARTIAL_SUFFIX = ".partial"


class BackupError(Exception):
    """A step of the backup failed; the message says which and why."""


class BackupTimeout(BackupError):
    """A step ran past its deadline and was killed."""


class Runner(Protocol):
    """Runs argv with extra environment; stdin/stdout may be open binary files (else captured as text).

    Returns (rc, stdout, stderr); raises BackupTimeout when ``timeout`` seconds pass (the process is killed).
    """

    def __call__(self, argv: list[str], env: dict[str, str], timeout: float,
                 stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> tuple[int, str, str]: ...


def run_process(argv: list[str], env: dict[str, str], timeout: float,
                stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> tuple[int, str, str]:
    """The real Runner: a subprocess with a deadline (AnsibleModule.run_command has none), killed when it passes."""
    proc_env = dict(os.environ, **env)
    try:
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv, env=proc_env, stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise BackupError(f"{argv[0]!r} not found on this host: install the docker CLI or set docker_cli") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BackupTimeout(f"{' '.join(argv[:2])} ... {argv[-1]} killed after {timeout:g}s") from None
    text = (out or b"").decode("utf-8", "replace") if stdout is None else ""
    return proc.returncode, text, (err or b"").decode("utf-8", "replace")


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def last_line(text: str | None) -> str:
    """The client's error and its detail ("pg_dump: error: ...", "pg_dump: detail: ..."), else its last line."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if any(tag in ln for tag in ("error:", "detail:", "ERROR:", "FATAL:"))]
    return " ".join(errors[-3:])[:1000] if errors else (lines[-1] if lines else "no message")


def evaluate_space(db_size: int, free: int, factor: float) -> dict[str, Any]:
    """Whether `free` bytes hold a dump of a database of `db_size` bytes (needed: size x factor; 0 = no check)."""
    needed = int(db_size * factor)
    return {"database_size_bytes": db_size, "free_bytes": free, "needed_bytes": needed,
            "enough": factor <= 0 or free >= needed}


class DockerPostgres:
    """Runs PostgreSQL client programs inside the database container, each with a deadline."""

    def __init__(self, run: Runner, cli: str, docker_host: str, container: str, password: str | None,
                 connect_timeout: int = 5, step_timeout: float = 30.0) -> None:
        self._run = run
        self.cli = cli
        self.container = container
        self.step_timeout = step_timeout
        self.env = {"DOCKER_HOST": docker_host, "PGCONNECT_TIMEOUT": str(max(1, int(connect_timeout)))}
        self.pass_env = ["-e", "PGCONNECT_TIMEOUT"]
        if password:
            self.env["PGPASSWORD"] = password
            self.pass_env += ["-e", "PGPASSWORD"]

    def argv(self, argv: list[str], interactive: bool = False, env: dict[str, str] | None = None) -> list[str]:
        extra = [x for name in (env or {}) for x in ("-e", name)]
        return [self.cli, "exec"] + (["-i"] if interactive else []) + self.pass_env + extra + [self.container] + argv

    def run(self, argv: list[str], timeout: float | None = None, stdin: IO[bytes] | None = None,
            stdout: IO[bytes] | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return self._run(self.argv(argv, stdin is not None, env), dict(self.env, **(env or {})),
                         timeout or self.step_timeout, stdin=stdin, stdout=stdout)

    def check(self, argv: list[str], what: str, timeout: float | None = None, stdin: IO[bytes] | None = None) -> str:
        try:
            rc, out, err = self.run(argv, timeout, stdin=stdin)
        except BackupTimeout as exc:
            raise BackupTimeout(f"{what} timed out ({exc})") from None
        if rc != 0:
            raise BackupError(f"{what} failed (exit {rc}): {last_line(err)}")
        return out

    def psql(self, user: str, db: str, sql: str, what: str, statement_timeout_ms: int | None = None,
             timeout: float | None = None) -> str:
        argv = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db]
        if statement_timeout_ms:
            argv += ["-c", f"SET statement_timeout = {int(statement_timeout_ms)}"]
        return self.check(argv + ["-c", sql], what, timeout).strip()

    def database_size(self, user: str, db: str) -> int:
        out = self.psql(user, db, SIZE_SQL, f"asking the size of {db} (does it accept connections?)",
                        int(self.step_timeout * 1000))
        try:
            return int(out.splitlines()[-1])
        except (ValueError, IndexError):
            raise BackupError(f"unexpected answer to {SIZE_SQL!r}: {out[:200]!r}") from None

    def counts(self, user: str, db: str, timeout: float | None = None) -> dict[str, int]:
        out = self.psql(user, db, COUNT_SQL, f"counting rows in {db}", timeout=timeout)
        return {k: int(v) for k, v in json.loads(out or "{}").items()}

    def terminate(self, user: str, db: str, application_name: str) -> None:
        """Best effort: end the server backends of a killed client (its docker exec outlives the host's CLI)."""
        sql = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
               f"WHERE application_name = '{application_name}'")
        with contextlib.suppress(BackupError):
            self.run(["psql", "-X", "-At", "-U", user, "-d", db, "-c", sql], timeout=10)


def take_backup(pg: DockerPostgres, db: str, user: str, admin_user: str, dest_dir: str, name: str,
                verify: str = "list", timeout: float = 300.0, lock_wait_timeout: float = 10.0,
                space_factor: float = 1.0, clock: Callable[[], float] = time.time,
                free_space: Callable[[str], int] = lambda p: shutil.disk_usage(p).free) -> dict[str, Any]:
    """Check space, stream the dump, hash and verify it; returns the facts of the backup.

    Raises BackupError (BackupTimeout for a deadline) with nothing left behind but the directory when the dump
    could not be completed.
    """
    if verify not in VERIFY_MODES:
        raise BackupError(f"verify={verify!r}: use one of {', '.join(VERIFY_MODES)}")
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    path = os.path.join(dest_dir, name)
    if os.path.exists(path):
        raise BackupError(f"{path} exists already; backups are never overwritten (choose another name)")
    t0 = clock()
    space = evaluate_space(pg.database_size(user, db), free_space(dest_dir), space_factor)
    if not space["enough"]:
        raise BackupError(f"not enough free space in {dest_dir}: {space['free_bytes']} bytes free, "
                          f"{space['needed_bytes']} needed (database {space['database_size_bytes']} bytes x "
                          f"{space_factor:g}); free space or choose another dest")
    partial = path + PARTIAL_SUFFIX
    app = f"tsops-backup-{os.getpid()}-{int(clock())}"
    argv = ["pg_dump", "-Fc", f"--lock-wait-timeout={int(lock_wait_timeout * 1000)}", "-U", user, "-d", db]
    try:
        out = open(partial, "xb")  # noqa: SIM115 - closed below; exclusive: never another run's partial file
    except FileExistsError:
        raise BackupError(f"{partial} exists: another backup is being written there (or was interrupted: "
                          "remove it)") from None
    try:
        with out:
            os.chmod(partial, 0o600)
            rc, _out, err = pg.run(argv, timeout=timeout, stdout=out, env={"PGAPPNAME": app})
    except BackupTimeout:
        pg.terminate(admin_user, db, app)
        _remove(partial)
        raise BackupTimeout(f"pg_dump of {db} did not finish within {timeout:g}s and was killed (the database "
                            "answers but is wedged: a lock held, an I/O stall); no backup was written") from None
    except BaseException:
        _remove(partial)
        raise
    if rc != 0:
        _remove(partial)
        raise BackupError(f"pg_dump of {db} failed (exit {rc}): {last_line(err)}")
    os.replace(partial, path)
    os.chmod(path, 0o400)
    digest = sha256_file(path)
    with open(path + ".sha256", "w", encoding="utf-8") as fh:
        fh.write(f"{digest}  {os.path.basename(path)}\n")
    result: dict[str, Any] = {
        "path": path, "sha256": digest, "size_bytes": os.path.getsize(path), "space": space,
        "dump_seconds": round(clock() - t0, 3), "verified": False, "verify_mode": verify,
    }
    if verify != "none":
        result["verify"] = verify_archive(pg, path, db, admin_user, restore=verify == "restore")
        result["verified"] = result["verify"]["ok"]
    result["duration_seconds"] = round(clock() - t0, 3)
    return result


def verify_archive(pg: DockerPostgres, path: str, db: str, admin_user: str, restore: bool = False,
                   timeout: float | None = None) -> dict[str, Any]:
    """``pg_restore --list`` of the host file (streamed in); with `restore`, a full restore into a scratch database.

    Never raises BackupError: the outcome is in ``ok`` and ``error``.
    """
    out: dict[str, Any] = {"ok": False, "restored": False}
    try:
        with open(path, "rb") as fh:
            toc = pg.check(["pg_restore", "--list"], "pg_restore --list", timeout, stdin=fh)
        out["toc_entries"] = len([ln for ln in toc.splitlines() if ln and not ln.startswith(";")])
        if out["toc_entries"] == 0:
            raise BackupError("pg_restore --list found an empty table of contents")
        if restore:
            out.update(restore_into_scratch(pg, path, db, admin_user, timeout))
        out["ok"] = True
    except BackupError as exc:
        out["error"] = str(exc)
    return out


def restore_into_scratch(pg: DockerPostgres, path: str, db: str, admin_user: str,
                         timeout: float | None = None) -> dict[str, Any]:
    scratch = f"{db}_verify_{int(time.time())}_{os.getpid()}"
    pg.check(["createdb", "-U", admin_user, scratch], f"creating scratch database {scratch}", timeout)
    try:
        with open(path, "rb") as fh:
            pg.check(["pg_restore", "-U", admin_user, "-d", scratch, "--no-owner", "--exit-on-error"],
                     f"restoring into {scratch}", timeout, stdin=fh)
        counts = pg.counts(admin_user, scratch, timeout)
    finally:
        with contextlib.suppress(BackupError):
            pg.run(["dropdb", "-U", admin_user, "--if-exists", scratch], timeout)
    return {"scratch_database": scratch, "restored": True, "restored_rows": counts}


def check_recorded_hash(path: str) -> str:
    """The SHA-256 of an existing backup, checked against its ``<file>.sha256``; BackupError when they differ."""
    if not os.path.isfile(path):
        raise BackupError(f"{path}: no such backup file")
    digest = sha256_file(path)
    try:
        with open(path + ".sha256", encoding="utf-8") as fh:
            recorded = fh.read().split()[0]
    except (OSError, IndexError):
        raise BackupError(f"{path}.sha256 missing or empty: the backup's hash cannot be checked") from None
    if recorded != digest:
        raise BackupError(f"{path}: SHA-256 {digest} differs from the recorded {recorded}: the file changed")
    return digest


def verify_existing(pg: DockerPostgres, src: str, db: str, admin_user: str, verify: str = "list",
                    timeout: float | None = None, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Check an existing backup against its recorded SHA-256, then verify it (e.g. the full restore, after the fact)."""
    t0 = clock()
    digest = check_recorded_hash(src)
    result: dict[str, Any] = {"path": src, "sha256": digest, "size_bytes": os.path.getsize(src),
                              "verified": False, "verify_mode": verify}
    if verify != "none":
        result["verify"] = verify_archive(pg, src, db, admin_user, restore=verify == "restore", timeout=timeout)
        result["verified"] = result["verify"]["ok"]
    result["duration_seconds"] = round(clock() - t0, 3)
    return result


def validate_options(name: str | None, timeout: float, lock_wait_timeout: float, connect_timeout: float,
                     space_factor: float, verify: str) -> None:
    """Every input checked before anything is touched; BackupError names the first bad one."""
    if name is not None and (not name or "/" in name or name in (".", "..") or name.endswith(PARTIAL_SUFFIX)):
        raise BackupError(f"name={name!r}: a plain file name, not a path, not ending in {PARTIAL_SUFFIX}")
    for key, value in (("timeout", timeout), ("lock_wait_timeout", lock_wait_timeout),
                       ("connect_timeout", connect_timeout)):
        if value is None or value <= 0:
            raise BackupError(f"{key}={value!r}: a number of seconds above 0")
    if space_factor is None or space_factor < 0:
        raise BackupError(f"space_factor={space_factor!r}: 0 (no check) or more")
    if verify not in VERIFY_MODES:
        raise BackupError(f"verify={verify!r}: use one of {', '.join(VERIFY_MODES)}")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
