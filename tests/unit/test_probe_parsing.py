"""Unit tests of the diagnostic modules' parsing: Docker API documents and log streams, psql scripts and their
output, redis-cli / RESP, /proc files, HTTP sampling. Mocks and fakes only; the real thing is in
tests/integration/test_diag_*.py."""

from __future__ import annotations

import socket
import subprocess
import threading
from typing import Any

import pytest
from ansible_collections.taskscheduler.ops.plugins.module_utils import _cgroup, _docker, _host, _http, _pg, _redis
from ansible_collections.taskscheduler.ops.plugins.module_utils import _probes_sql as sql


# --- Docker ----------------------------------------------------------------------------------------------
def frame(stream: int, text: str) -> bytes:
    data = text.encode()
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_demux_log_stream_joins_stdout_and_stderr_frames():
    data = frame(1, "2025 INFO api started\n") + frame(2, "2025 ERROR boom\nsecond") + frame(1, " line\n")
    assert _docker.demux_log_stream(data).splitlines() == ["2025 INFO api started", "2025 ERROR boom",
                                                           "second line"]


def test_demux_log_stream_passes_tty_output_through():
    assert _docker.demux_log_stream(b"plain tty output\n") == "plain tty output\n"


@pytest.mark.parametrize("value,expected", [
    ("2025-01-10T09:00:00Z", 1736499600.0),
    ("2025-01-10T09:00:00.5Z", 1736499600.5),
    ("2025-01-10T09:00:00.123456789Z", 1736499600.123456789),
    ("2025-01-10T10:00:00+01:00", 1736499600.0),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    (None, None),
    ("garbage", None),
])
def test_parse_docker_time(value, expected):
    got = _docker.parse_docker_time(value)
    assert got == pytest.approx(expected) if expected is not None else got is None


def inspect_doc(**state: Any) -> dict[str, Any]:
    base_state = {"Status": "running", "StartedAt": "2025-01-10T09:00:00Z", "ExitCode": 0, "OOMKilled": False,
                  "Health": {"Status": "healthy"}}
    base_state.update(state)
    return {"Id": "0123456789abcdef", "Name": "/tsops-api-1", "RestartCount": 2, "State": base_state,
            "Config": {"Image": "tsops-lab/app:1.0.0", "Labels": {"com.docker.compose.service": "api"}},
            "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}}


def test_describe_running_container():
    c = _docker.describe(inspect_doc(), now=1736499660.0)
    assert c == {"name": "tsops-api-1", "id": "0123456789ab", "service": "api", "image": "tsops-lab/app:1.0.0",
                 "state": "running", "health": "healthy", "restart_count": 2, "exit_code": 0, "oom_killed": False,
                 "started_at": "2025-01-10T09:00:00Z", "uptime_seconds": 60.0, "restart_policy": "unless-stopped"}


def test_describe_exited_container_without_healthcheck_has_no_uptime():
    doc = inspect_doc(Status="exited", ExitCode=137, OOMKilled=True)
    del doc["State"]["Health"]
    c = _docker.describe(doc, now=1736499660.0)
    assert (c["state"], c["health"], c["exit_code"], c["oom_killed"], c["uptime_seconds"]) == (
        "exited", "none", 137, True, None)


def test_stats_figures_like_docker_stats_cgroup_v2():
    stats = {
        "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 110_000_000_000,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_900_000_000}, "system_cpu_usage": 108_000_000_000},
        "memory_stats": {"usage": 50 * 2**20, "limit": 1000 * 2**20, "stats": {"inactive_file": 10 * 2**20}},
        "pids_stats": {"current": 7},
    }
    f = _docker.stats_figures(stats)
    # (0.1e9 / 2e9) * 2 CPUs * 100 = 10 %; memory without inactive page cache: 40 MiB of 1000 MiB.
    assert f == {"cpu_percent": 10.0, "memory_bytes": 40 * 2**20, "memory_limit_bytes": 1000 * 2**20,
                 "memory_percent": 4.0, "pids": 7}


def test_stats_figures_cgroup_v1_and_first_sample():
    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 5, "percpu_usage": [1, 2, 3, 4]}, "system_cpu_usage": 10},
             "precpu_stats": {},
             "memory_stats": {"usage": 300, "limit": 1000, "stats": {"total_inactive_file": 100}}}
    f = _docker.stats_figures(stats)
    assert f["memory_bytes"] == 200
    assert f["cpu_percent"] == pytest.approx(5 / 10 * 4 * 100)


@pytest.mark.parametrize("value,seconds", [("15m", 900), ("90s", 90), ("2h", 7200), ("1d", 86400), ("45", 45),
                                           (30, 30), ("1.5m", 90)])
def test_parse_duration(value, seconds):
    assert _docker.parse_duration(value) == seconds


def test_parse_duration_rejects_garbage():
    with pytest.raises(ValueError, match="not a duration"):
        _docker.parse_duration("fifteen minutes")


def test_docker_host_schemes():
    assert _docker.DockerApi("unix:///run/docker.sock")._unix_path == "/run/docker.sock"
    assert _docker.DockerApi("tcp://10.0.0.2:2375")._netloc == "10.0.0.2:2375"
    with pytest.raises(_docker.DockerError, match="ssh"):
        _docker.DockerApi("ssh://user@host")


class FakeApi:
    """list_containers answering from a fixed list, honouring the label and name filters."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.calls: list[dict[str, list[str]]] = []

    def list_containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        self.calls.append(filters)
        out = self.entries
        for label in filters.get("label", []):
            key, _sep, value = label.partition("=")
            out = [e for e in out if (e.get("Labels") or {}).get(key) == value]
        for name in filters.get("name", []):
            out = [e for e in out if any(name in n for n in e["Names"])]
        return out


def entry(name: str, service: str | None = None, project: str | None = None, state: str = "running") -> dict:
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": service} if project else {}
    return {"Id": name + "-id", "Names": ["/" + name], "State": state, "Labels": labels}


def test_find_containers_by_labels_then_by_name():
    api = FakeApi([
        entry("tsops-api-1", "api", "tsops"), entry("tsops-worker-2", "worker", "tsops"),
        entry("tsops-worker-1", "worker", "tsops", "exited"), entry("other-api-1", "api", "other"),
        entry("postgres"), entry("postgres-exporter"), entry("redis-1"),
    ])
    found = _docker.find_containers(api, "tsops", ["api", "postgres", "redis", "worker", "scheduler"])
    assert {k: [_docker.container_name(e) for e in v] for k, v in found.items()} == {
        "api": ["tsops-api-1"], "worker": ["tsops-worker-1", "tsops-worker-2"],
        "postgres": ["postgres"], "redis": ["redis-1"]}
    assert _docker.pick_running(found["worker"])["Names"] == ["/tsops-worker-2"]
    assert _docker.pick_running([entry("x", state="exited")]) is None


def test_exec_passes_secrets_in_the_environment_not_argv(monkeypatch):
    seen: dict[str, Any] = {}

    def fake_run(cmd, **kw):
        seen.update(cmd=cmd, env=kw["env"], input=kw["input"])
        return subprocess.CompletedProcess(cmd, 0, "ok", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    api = _docker.DockerApi("unix:///var/run/docker.sock")
    api.exec("pg", ["psql", "-f", "-"], stdin="SELECT 1;", env={"PGPASSWORD": "s3cret"})
    assert seen["cmd"] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "pg", "psql", "-f", "-"]
    assert "s3cret" not in " ".join(seen["cmd"])
    assert seen["env"]["PGPASSWORD"] == "s3cret"
    assert seen["env"]["DOCKER_HOST"] == "unix:///var/run/docker.sock"


def test_exec_without_docker_cli_names_the_remedy():
    api = _docker.DockerApi(cli="/nonexistent/docker")
    with pytest.raises(_docker.DockerError, match="docker CLI"):
        api.exec("pg", ["true"])


# --- psql scripts ----------------------------------------------------------------------------------------
def test_render_psql_script_single_lines_and_guards():
    queries = [_pg.Query("a", "SELECT json_build_object('x',\n  1)"),
               _pg.Query("b", "SELECT '{}'::json", cases=[("g1 = 1", "SELECT '[1]'::json"), ("g2", "SELECT 2")])]
    script, owner = _pg.render_psql_script(queries, 5000)
    lines = script.splitlines()
    assert lines[:5] == ["\\set ON_ERROR_STOP off", "\\set QUIET on", "SET statement_timeout = 5000;",
                         "SET default_transaction_read_only = on;",
                         "SET application_name = 'taskscheduler.ops diagnostics';"]
    assert "SELECT 'tsops:a ' || coalesce((SELECT json_build_object('x', 1))::jsonb::text, 'null');" in lines
    assert "SELECT (g1 = 1) AS g0, (g2) AS g1 \\gset tsops_q1_" in lines
    assert lines[-7:] == [
        "\\if :tsops_q1_g0", "SELECT 'tsops:b ' || coalesce((SELECT '[1]'::json)::jsonb::text, 'null');",
        "\\elif :tsops_q1_g1", "SELECT 'tsops:b ' || coalesce((SELECT 2)::jsonb::text, 'null');",
        "\\else", "SELECT 'tsops:b ' || coalesce((SELECT '{}'::json)::jsonb::text, 'null');", "\\endif"]
    assert {owner[i + 1] for i, line in enumerate(lines) if line.startswith("SELECT 'tsops:b")} == {"b"}
    assert owner[lines.index("SELECT 'tsops:a ' || coalesce((SELECT json_build_object('x', 1))::jsonb::text, "
                             "'null');") + 1] == "a"


def test_parse_psql_output_attributes_errors_by_line():
    owner = {6: "server", 7: "queue", 9: "slow"}
    stdout = 'tsops:server {"version": "15.4"}\nsome noise\ntsops:slow {"available": false}\n'
    stderr = ('psql:<stdin>:7: ERROR:  relation "due_work" does not exist\n'
              "LINE 1: SELECT ...\n"
              "psql:<stdin>:9: ERROR:  permission denied for view pg_stat_statements\n")
    res = _pg.parse_psql_output(stdout, stderr, owner, ["server", "queue", "slow", "workers"])
    assert res["server"].data == {"version": "15.4"}
    assert res["queue"].error == 'relation "due_work" does not exist'
    assert res["slow"].error == "permission denied for view pg_stat_statements"  # the error wins over output
    assert res["workers"].error.startswith("no result")


class ExecApi:
    def __init__(self, proc: subprocess.CompletedProcess | Exception) -> None:
        self.proc = proc
        self.calls: list[tuple] = []

    def exec(self, container, argv, stdin=None, env=None, timeout=None):
        self.calls.append((container, argv, stdin, env))
        if isinstance(self.proc, Exception):
            raise self.proc
        return self.proc


def test_psql_via_docker_reachable_batch():
    api = ExecApi(subprocess.CompletedProcess([], 0, 'tsops:queue {"due_now": 3}\n', ""))
    batch = _pg.PsqlViaDocker(api, "pg1", "orchestrator", "orchestrator").run([sql.queue_query()])
    assert batch.reachable and batch.get("queue").data == {"due_now": 3}
    container, argv, stdin, env = api.calls[0]
    assert (container, argv[:2], env) == ("pg1", ["psql", "-X"], None)
    assert "-h" not in argv and "SET default_transaction_read_only = on;" in stdin


def test_psql_via_docker_password_only_with_a_host():
    api = ExecApi(subprocess.CompletedProcess([], 0, "", ""))
    _pg.PsqlViaDocker(api, "pg1", "db", "u", password="pw", host="127.0.0.1", port=5433).run([sql.queue_query()])
    _container, argv, _stdin, env = api.calls[0]
    assert argv[:5] == ["psql", "-p", "5433", "-h", "127.0.0.1"] and env == {"PGPASSWORD": "pw"}
    assert "pw" not in argv


@pytest.mark.parametrize("proc,needle", [
    (subprocess.CompletedProcess([], 2, "", 'psql: error: connection to server on socket "/var/run/postgresql/'
                                            '.s.PGSQL.5432" failed: No such file or directory\n'), "No such file"),
    (subprocess.CompletedProcess([], 1, "", "Error response from daemon: container abc is not running\n"),
     "is not running"),
    (_docker.DockerError("docker CLI 'docker' not found"), "not found"),
])
def test_psql_via_docker_unreachable(proc, needle):
    batch = _pg.PsqlViaDocker(ExecApi(proc), "pg1", "db", "u").run([sql.queue_query(), sql.tasks_query(60)])
    assert not batch.reachable and needle in batch.error
    assert needle in batch.get("queue").error and needle in batch.get("tasks").error


def test_psycopg_transport_without_psycopg(monkeypatch):
    monkeypatch.setattr(_pg, "HAS_PSYCOPG", False)
    batch = _pg.PsycopgConnection("db", 5432, "d", "u", None).run([sql.queue_query()])
    assert not batch.reachable and "pip install" in batch.error


# --- SQL builders ----------------------------------------------------------------------------------------
def test_queue_sql_excludes_finished_rows_and_uses_the_claim_condition():
    q = " ".join(sql.queue_query().sql.split())
    assert "WHERE (locked_until IS NULL OR locked_until < 'infinity') AND status IN ('pending', 'running')" in q
    assert "count(*) FILTER (WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now()))" in q


def test_slow_statements_sql_handles_both_column_names():
    q = sql.slow_statements_query(5)
    assert [("total_exec_time" in g, "total_time'" in g, "pg_stat_statements_info" in g) for g, _sql in q.cases] == [
        (True, False, True), (True, False, False), (False, True, False)]
    assert "ORDER BY total_exec_time DESC LIMIT 5" in " ".join(q.cases[0][1].split())
    assert "'since', (SELECT stats_reset FROM pg_stat_statements_info)" in q.cases[0][1]
    assert "ORDER BY total_exec_time DESC LIMIT 5" in " ".join(q.cases[1][1].split())
    assert "'since', NULL" in q.cases[1][1]
    assert "ORDER BY total_time DESC LIMIT 5" in " ".join(q.cases[2][1].split())
    assert "'available', false" in q.sql


@pytest.mark.parametrize("build", [lambda: sql.slow_statements_query(0), lambda: sql.processing_query(0),
                                   lambda: sql.workers_query(0), lambda: sql.slow_statements_query(101)])
def test_sql_builders_validate_numbers(build):
    with pytest.raises(ValueError, match="between"):
        build()


# --- Redis -----------------------------------------------------------------------------------------------
INFO = ("# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:3600\r\n# Clients\r\nconnected_clients:4\r\n"
        "# Memory\r\nused_memory:1180000\r\nmaxmemory:0\r\n# Persistence\r\nloading:0\r\n"
        "rdb_last_bgsave_status:ok\r\n# Replication\r\nrole:master\r\n# Keyspace\r\n"
        "db0:keys=2,expires=2,avg_ttl=82974\r\ndb3:keys=10,expires=0,avg_ttl=0\r\n")


def test_parse_info():
    info = _redis.parse_info(INFO)
    assert info["redis_version"] == "7.0.15" and info["used_memory"] == 1180000 and info["role"] == "master"
    assert info["db0"] == {"keys": 2, "expires": 2, "avg_ttl": 82974}
    assert info["db3"]["keys"] == 10


def test_redis_via_docker():
    api = ExecApi(subprocess.CompletedProcess([], 0, "PONG\n" + INFO, ""))
    pong, info = _redis.ping_info_via_docker(api, "r1", password="pw")
    assert pong == "PONG" and info["db0"]["keys"] == 2
    assert api.calls[0][1:] == (["redis-cli", "-n", "0"], "PING\nINFO\n", {"REDISCLI_AUTH": "pw"})


@pytest.mark.parametrize("proc,needle", [
    (subprocess.CompletedProcess([], 1, "", "Could not connect to Redis at 127.0.0.1:6379: Connection refused\n"),
     "Connection refused"),
    (subprocess.CompletedProcess([], 0, "NOAUTH Authentication required.\n", ""), "NOAUTH"),
])
def test_redis_via_docker_failures(proc, needle):
    with pytest.raises(_redis.RedisError, match=needle):
        _redis.ping_info_via_docker(ExecApi(proc), "r1")


@pytest.fixture
def resp_server():
    """A one-connection RESP server: answers AUTH, PING and INFO like Redis."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _addr = srv.accept()
        with conn:
            data = b""
            while data.count(b"INFO") < 1:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            received.append(data)
            reply = b""
            if b"AUTH" in data:
                reply += b"+OK\r\n"
            body = INFO.encode()
            reply += b"+PONG\r\n$%d\r\n%s\r\n" % (len(body), body)
            conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], received
    srv.close()


def test_redis_via_tcp(resp_server):
    port, received = resp_server
    pong, info = _redis.ping_info_via_tcp("127.0.0.1", port, password="pw", timeout=5)
    assert pong == "PONG" and info["redis_version"] == "7.0.15"
    assert received[0].startswith(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n")


def test_redis_via_tcp_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(_redis.RedisError, match="unreachable"):
        _redis.ping_info_via_tcp("127.0.0.1", port, timeout=2)


# --- /proc -----------------------------------------------------------------------------------------------
def test_parse_meminfo_and_memory(tmp_path):
    p = tmp_path / "meminfo"
    p.write_text("MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n"
                 "SwapTotal:       0 kB\nSwapFree:        0 kB\nHugePages_Total:       0\n")
    m = _host.memory(str(p))
    assert m["total_bytes"] == 1024000 and m["available_bytes"] == 256000 and m["used_ratio"] == 0.75


def test_data_mounts_skip_pseudo_and_container_filesystems():
    mounts = _host.parse_mounts(
        "/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n"
        "/dev/vdb /srv/data\\040disk xfs rw 0 0\noverlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n"
        "/dev/vda /var/lib/docker ext4 rw 0 0\n/dev/vdc /dev/shm ext4 rw 0 0\n")
    assert _host.data_mounts(mounts) == ["/", "/srv/data disk", "/var/lib/docker"]


def test_disks_dedupe_by_filesystem_and_report_bad_paths(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/x {tmp_path} ext4 rw 0 0\n")
    (tmp_path / "sub").mkdir()
    disks, errors = _host.disks([str(tmp_path / "sub"), str(tmp_path / "nope")], str(mounts))
    assert [(d["path"], d.get("also")) for d in disks] == [(str(tmp_path), [str(tmp_path / "sub")])]
    assert 0 <= disks[0]["free_ratio"] <= 1 and "device" not in disks[0]
    assert errors and "nope" in errors[0]


# --- HTTP ------------------------------------------------------------------------------------------------
def test_percentile_nearest_rank():
    assert _http.percentile([], 95) is None
    assert _http.percentile([0.3, 0.1, 0.2], 50) == 0.2
    assert _http.percentile([0.1] * 19 + [5.0], 95) == 0.1
    assert _http.percentile([0.1] * 18 + [5.0, 6.0], 95) == 5.0


def test_sample_statistics(monkeypatch):
    answers = iter([
        {"status_code": 200, "time_seconds": 0.1, "error": None, "body": None},
        {"status_code": 503, "time_seconds": 0.3, "error": None, "body": {"reason": "postgres down"}},
        {"status_code": 0, "time_seconds": 0.001, "error": "connection refused", "body": None},
        {"status_code": 200, "time_seconds": 0.2, "error": None, "body": None},
    ])
    monkeypatch.setattr(_http, "request_once", lambda url, **kw: next(answers))
    r = _http.sample("http://x/health", samples=4)
    assert (r["samples"], r["failures"], r["server_errors"], r["status_code"]) == (4, 2, 1, 200)
    assert r["time_stats"] == {"min": 0.1, "avg": 0.2, "p95": 0.3, "max": 0.3}
    assert [a["status_code"] for a in r["attempts"]] == [200, 503, 0, 200]


def test_request_once_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _http.request_once(f"http://127.0.0.1:{port}/health", timeout=2, use_proxy=False)
    assert (r["status_code"], r["error"]) == (0, "connection refused")


# --- cgroups ---------------------------------------------------------------------------------------------
def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_cgroupfs(tmp_path, monkeypatch):
    cid = "a" * 64
    write(tmp_path / "cpuacct" / "docker" / cid / "cpuacct.usage", "1000000000\n")
    mem = tmp_path / "memory" / "docker" / cid
    write(mem / "memory.usage_in_bytes", str(50 * 2**20))
    write(mem / "memory.limit_in_bytes", "9223372036854771712")
    write(mem / "memory.stat", "cache 1\ninactive_file 4096\ntotal_inactive_file 10485760\n")
    write(tmp_path / "pids" / "docker" / cid / "pids.current", "3\n")
    monkeypatch.setattr(_cgroup, "host_memory_bytes", lambda: 1000 * 2**20)
    cg = _cgroup.ContainerCgroup(cid, str(tmp_path))
    assert cg.found and cg.v2 is None and cg.cpu_ns() == 10**9
    # No limit: the host's memory, as docker stats shows it; total_inactive_file (v1) is left out.
    assert cg.memory_figures(1000 * 2**20) == {"memory_bytes": 40 * 2**20, "memory_limit_bytes": 1000 * 2**20,
                                               "memory_percent": 4.0, "pids": 3}


def test_cgroup_v2_systemd_sample_measures_cpu_over_the_interval(tmp_path, monkeypatch):
    cid = "b" * 64
    scope = tmp_path / "system.slice" / f"docker-{cid}.scope"
    write(scope / "cpu.stat", "usage_usec 1000000\nuser_usec 1\n")
    write(scope / "memory.current", str(300 * 2**20))
    write(scope / "memory.max", str(600 * 2**20))
    write(scope / "memory.stat", "anon 1\ninactive_file 0\n")
    write(scope / "pids.current", "12")
    readings = iter(["usage_usec 1000000\n", "usage_usec 1250000\n"])  # +0.25 s of CPU
    real_read = _cgroup._read
    monkeypatch.setattr(_cgroup, "_read", lambda p: next(readings) if p.endswith("cpu.stat") else real_read(p))
    clock = iter([100.0, 100.5])
    monkeypatch.setattr(_cgroup.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(_cgroup.time, "sleep", lambda s: None)
    out = _cgroup.sample([cid, "c" * 64], 0.5, str(tmp_path))
    assert list(out) == [cid]  # the other container has no cgroup here: left to the Engine API
    assert out[cid] == {"cpu_percent": 50.0, "memory_bytes": 300 * 2**20, "memory_limit_bytes": 600 * 2**20,
                        "memory_percent": 50.0, "pids": 12}


def test_cgroup_none_found(tmp_path):
    assert _cgroup.sample(["d" * 64], 0.01, str(tmp_path)) == {}
