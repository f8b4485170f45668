# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

Read-only PostgreSQL access for the diagnostic modules, in ONE round trip per batch of checks.

A check is a `Query`: a SELECT returning exactly one JSON value, optionally in several variants chosen by
guard expressions evaluated in the same session (e.g. pg_stat_statements absent / PostgreSQL >= 13 with
``total_exec_time`` / older with ``total_time``). A batch of queries runs

* ``docker`` transport: as one psql script on stdin of one ``docker exec <postgres container> psql``, using
  psql's ``\\gset`` and ``\\if`` for the variants; each result line is tagged with the query's name, and each
  error is attributed to its query by the script line psql reports. Nothing extra is needed on the host;
* ``tcp`` transport: over one psycopg connection (if psycopg is importable on the managed host).

Every session is read-only (``default_transaction_read_only``) with a statement timeout, and one failing
query never hides the results of the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ._docker import DockerApi, DockerError

try:  # optional: only the tcp transport needs it
    import psycopg  # type: ignore[import-not-found]

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the managed host
    psycopg = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = _exc

_TAG = "tsops:"
_ERROR_LINE = re.compile(r"^psql:[^:]*:(\d+):\s*(?:ERROR|FATAL|PANIC):\s*(.*)$")


class Query:
    """A named SELECT returning one JSON value; `cases` are (guard expression, sql) tried in order before `sql`."""

    def __init__(self, name: str, sql: str, cases: Sequence[tuple[str, str]] = ()) -> None:
        if not re.match(r"^[a-z][a-z0-9_]*$", name):
            raise ValueError(f"query name {name!r}: lower-case letters, digits and _ only")
        self.name = name
        self.sql = sql
        self.cases = list(cases)


class Result:
    """Outcome of one query: `data` (parsed JSON) or `error` (message of the server, psql or docker)."""

    def __init__(self, data: Any = None, error: str | None = None) -> None:
        self.data = data
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Result(data={self.data!r}, error={self.error!r})"


class Batch:
    """Results of a batch: `reachable` is False when no session could be opened (then every query has `error`)."""

    def __init__(self, results: dict[str, Result], reachable: bool, error: str | None = None,
                 server: str | None = None) -> None:
        self.results = results
        self.reachable = reachable
        self.error = error
        self.server = server

    def get(self, name: str) -> Result:
        return self.results.get(name) or Result(error=self.error or "query was not run")


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


def _wrap(name: str, sql: str) -> str:
    """A statement printing one line: the tag, the query name and its JSON value (jsonb: always one line)."""
    return f"SELECT '{_TAG}{name} ' || coalesce(({_one_line(sql)})::jsonb::text, 'null');"


def session_settings(statement_timeout_ms: int) -> list[str]:
    return [
        f"SET statement_timeout = {int(statement_timeout_ms)};",
        "SET default_transaction_read_only = on;",
        "SET application_name = 'taskscheduler.ops diagnostics';",
    ]


def render_psql_script(queries: Sequence[Query], statement_timeout_ms: int) -> tuple[str, dict[int, str]]:
    """The psql script for a batch and the map script line -> query name (to attribute errors)."""
    lines = ["\\set ON_ERROR_STOP off", "\\set QUIET on", *session_settings(statement_timeout_ms)]
    owner: dict[int, str] = {}

    def add(text: str, name: str | None = None) -> None:
        lines.append(text)
        if name:
            owner[len(lines)] = name

    for i, q in enumerate(queries):
        if not q.cases:
            add(_wrap(q.name, q.sql), q.name)
            continue
        prefix = f"tsops_q{i}_"
        for j in range(len(q.cases)):
            add(f"\\set {prefix}g{j} false")
        guards = ", ".join(f"({_one_line(g)}) AS g{j}" for j, (g, _sql) in enumerate(q.cases))
        add(f"SELECT {guards} \\gset {prefix}", q.name)
        for j, (_guard, sql) in enumerate(q.cases):
            add(f"\\{'if' if j == 0 else 'elif'} :{prefix}g{j}")
            add(_wrap(q.name, sql), q.name)
        add("\\else")
        add(_wrap(q.name, q.sql), q.name)
        add("\\endif")
    return "\n".join(lines) + "\n", owner


def parse_psql_output(stdout: str, stderr: str, owner: dict[int, str], names: Sequence[str]) -> dict[str, Result]:
    """Results from the tagged stdout lines; errors from stderr, attributed by script line number."""
    results: dict[str, Result] = {}
    for line in stdout.splitlines():
        if not line.startswith(_TAG):
            continue
        name, _sep, payload = line[len(_TAG):].partition(" ")
        try:
            results[name] = Result(json.loads(payload))
        except ValueError as exc:
            results[name] = Result(error=f"unparsable result: {exc}")
    pending_error: tuple[str, str] | None = None
    for line in stderr.splitlines():
        m = _ERROR_LINE.match(line)
        if m:
            pending_error = (owner.get(int(m.group(1)), ""), m.group(2).strip())
            if pending_error[0]:
                results[pending_error[0]] = Result(error=pending_error[1])
    for name in names:
        results.setdefault(name, Result(error="no result (see the other errors of this batch)"))
    return results


class PsqlViaDocker:
    """``docker exec -i <container> psql ... -f -``: the runbook's ``docker exec postgres psql -U orchestrator``."""

    def __init__(self, api: DockerApi, container: str, dbname: str, user: str, password: str | None = None,
                 host: str | None = None, port: int | None = None, timeout: float = 10.0) -> None:
        self.api = api
        self.container = container
        self.dbname = dbname
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.timeout = timeout

    def run(self, queries: Sequence[Query]) -> Batch:
        script, owner = render_psql_script(queries, int(self.timeout * 1000))
        argv = ["psql", "-X", "-q", "-A", "-t", "-U", self.user, "-d", self.dbname, "-f", "-"]
        if self.host:
            argv[1:1] = ["-h", self.host]
        if self.port:
            argv[1:1] = ["-p", str(self.port)]
        env = {"PGPASSWORD": self.password} if self.password else None
        names = [q.name for q in queries]
        where = f"psql in container {self.container}"
        try:
            proc = self.api.exec(self.container, argv, stdin=script, env=env, timeout=self.timeout + 5)
        except DockerError as exc:
            return _unreachable(names, str(exc), where)
        if proc.returncode != 0 and not any(line.startswith(_TAG) for line in proc.stdout.splitlines()):
            # Exit 2: no connection; exit 1 / 126 / 127 with nothing printed: docker or psql could not run.
            return _unreachable(names, _first_error(proc.stderr) or f"{where} exited {proc.returncode}", where)
        return Batch(parse_psql_output(proc.stdout, proc.stderr, owner, names), True, server=where)


class PsycopgConnection:
    """The same batch over TCP with psycopg 3, for a database reached over the network."""

    def __init__(self, host: str, port: int, dbname: str, user: str, password: str | None,
                 timeout: float = 10.0, sslmode: str = "prefer") -> None:
        self.host = host
        self.port = port
        self.dbname = dbname
        self.user = user
        self.password = password
        self.timeout = timeout
        self.sslmode = sslmode

    def run(self, queries: Sequence[Query]) -> Batch:
        names = [q.name for q in queries]
        where = f"PostgreSQL at {self.host}:{self.port}"
        if not HAS_PSYCOPG:
            return _unreachable(names, f"db_transport=tcp needs psycopg on the managed host ({PSYCOPG_IMPORT_ERROR}): "
                                       "pip install 'psycopg[binary]', or use db_transport=docker", where)
        try:
            conn = psycopg.connect(host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                                   password=self.password, connect_timeout=max(1, int(self.timeout)),
                                   sslmode=self.sslmode, autocommit=True,
                                   application_name="taskscheduler.ops diagnostics")
        except Exception as exc:  # noqa: BLE001 - any driver error means: unreachable
            return _unreachable(names, f"{type(exc).__name__}: {_first_line(exc)}", where)
        results: dict[str, Result] = {}
        try:
            with conn.cursor() as cur:
                for stmt in session_settings(int(self.timeout * 1000))[:2]:
                    cur.execute(stmt)
                for q in queries:
                    results[q.name] = self._one(cur, q)
        finally:
            conn.close()
        return Batch(results, True, server=where)

    @staticmethod
    def _one(cur: Any, q: Query) -> Result:
        try:
            sql = q.sql
            if q.cases:
                cur.execute("SELECT " + ", ".join(f"({g})" for g, _sql in q.cases))
                flags = cur.fetchone()
                sql = next((s for flag, (_guard, s) in zip(flags, q.cases) if flag), q.sql)
            cur.execute(f"SELECT coalesce(({sql})::jsonb::text, 'null')")
            return Result(json.loads(cur.fetchone()[0]))
        except Exception as exc:  # noqa: BLE001 - reported per query, the others still run
            return Result(error=f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " ".join(lines[:3])[:500]


def _unreachable(names: Sequence[str], error: str, where: str) -> Batch:
    return Batch({n: Result(error=error) for n in names}, False, error, server=where)
