#!/usr/bin/env bash
# PostgreSQL 15 for the lab: initialise PGDATA on first start, run the server in the foreground,
# copy its log files to stdout (so `docker logs postgres` shows them, as the runbook expects) and,
# once it accepts connections, make sure role, database, extensions and schema exist (idempotent).
# Progress goes to /run/lab-postgres (phase, then schema-applied last, or bootstrap-failed), which the health check
# (lab-postgres-health) reads: the container is healthy only once the schema is there.
set -euo pipefail
: "${POSTGRES_USER:=orchestrator}" "${POSTGRES_DB:=orchestrator}" "${POSTGRES_PASSWORD:=orchestrator_pw}"
# How long the bootstrap waits for the server to accept connections (a first start on a slow disk is slow).
: "${LAB_PG_BOOTSTRAP_WAIT_SECONDS:=600}"
run=/run/lab-postgres
rm -rf "$run" && mkdir -p "$run"
date -u +%Y-%m-%dT%H:%M:%SZ > "$run/started"
phase() { echo "$*" > "$run/phase"; }
t_start=$SECONDS
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"

# The lab settings are appended right after initdb and before the server ever starts: a data directory without them
# is an initialisation that was interrupted (container stopped or killed during initdb, e.g. a lab taken down while
# starting). It holds no data, and PostgreSQL could never start from it properly: initialise it again.
lab_settings='# --- lab settings ---'
if [ -s "$PGDATA/PG_VERSION" ] && ! grep -qx -- "$lab_settings" "$PGDATA/postgresql.conf" 2>/dev/null; then
  echo "lab-postgres: $PGDATA holds an interrupted initialisation (no lab settings, never started): initialising again"
  find "$PGDATA" -mindepth 1 -delete
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "lab-postgres: initialising $PGDATA"
  phase "initdb"
  as_pg initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >> "$PGDATA/postgresql.conf" <<CONF
$lab_settings
listen_addresses = '*'
max_connections = 100
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
track_io_timing = on
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql.log'
log_rotation_age = 0
log_rotation_size = 0
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
log_lock_waits = on
CONF
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "lab-postgres: initdb took $((SECONDS - t_start))s"
fi

# Runs in an `||` list, where errexit does not apply: every step returns on failure itself.
bootstrap() {
  local t0=$SECONDS
  phase "waiting for the server to accept connections"
  until pg_isready -q -U postgres -h /var/run/postgresql; do
    kill -0 "$pg_pid" 2>/dev/null || { echo "the server exited before accepting connections" >&2; return 1; }
    (( SECONDS - t0 < LAB_PG_BOOTSTRAP_WAIT_SECONDS )) || {
      echo "the server did not accept connections within ${LAB_PG_BOOTSTRAP_WAIT_SECONDS}s" >&2; return 1; }
    sleep 0.2
  done
  echo "lab-postgres: accepting connections after $((SECONDS - t_start))s"
  phase "role and database"
  as_pg psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U postgres -d postgres \
        -v user="$POSTGRES_USER" -v pass="$POSTGRES_PASSWORD" -v db="$POSTGRES_DB" <<'SQL' || return 1
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user')\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'pass')\gexec
SELECT format('GRANT pg_monitor, pg_read_all_stats TO %I', :'user')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')\gexec
SQL
  phase "extensions"
  as_pg psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U postgres -d "$POSTGRES_DB" -v user="$POSTGRES_USER" <<'SQL' || return 1
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT format('GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO %I', :'user')\gexec
SELECT format('GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO %I', :'user')\gexec
SQL
  phase "schema (/etc/lab/schema.sql)"
  as_pg psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SET client_min_messages = warning" -f /etc/lab/schema.sql || return 1
  touch "$run/schema-applied"
  phase "ready"
  echo "lab-postgres: role, database and schema are in place after $((SECONDS - t_start))s (bootstrap $((SECONDS - t0))s)"
}

shutdown() { [ -n "${pg_pid:-}" ] && kill -INT "$pg_pid" 2>/dev/null || true; }
trap shutdown TERM INT

setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" &
pg_pid=$!
# A failed bootstrap leaves the server running for inspection; the health check then reports the reason.
( bootstrap 2>"$run/bootstrap.err" || {
    { cat "$run/bootstrap.err"; echo "phase: $(cat "$run/phase")"; } > "$run/bootstrap-failed"
    echo "lab-postgres: ERROR: bootstrap failed in phase $(cat "$run/phase"): $(tail -n 3 "$run/bootstrap.err")" >&2; } ) &
# Follow the server's own log files on stdout, from the current end.
mkdir -p "$PGDATA/log" && chown postgres:postgres "$PGDATA/log"
tail -q -n 0 -F "$PGDATA/log/postgresql.log" 2>/dev/null &
tail_pid=$!
set +e
wait "$pg_pid"; rc=$?
while kill -0 "$pg_pid" 2>/dev/null; do wait "$pg_pid"; rc=$?; done
kill "$tail_pid" 2>/dev/null
exit "$rc"
