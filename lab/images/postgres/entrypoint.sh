#!/usr/bin/env bash
# PostgreSQL 15 for the lab: initialise PGDATA on first start, run the server in the foreground,
# copy its log files to stdout (so `docker logs postgres` shows them, as the runbook expects) and,
# once it accepts connections, make sure role, database, extensions and schema exist (idempotent).
set -euo pipefail
: "${POSTGRES_USER:=orchestrator}" "${POSTGRES_DB:=orchestrator}" "${POSTGRES_PASSWORD:=orchestrator_pw}"
ready_flag=/run/lab-schema-applied
rm -f "$ready_flag"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "lab-postgres: initialising $PGDATA"
  as_pg initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >> "$PGDATA/postgresql.conf" <<CONF
# --- lab settings ---
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
fi

bootstrap() {
  for _ in $(seq 1 300); do pg_isready -q -U postgres -h /var/run/postgresql && break; sleep 0.1; done
  as_pg psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U postgres -d postgres \
        -v user="$POSTGRES_USER" -v pass="$POSTGRES_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user')\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'pass')\gexec
SELECT format('GRANT pg_monitor, pg_read_all_stats TO %I', :'user')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')\gexec
SQL
  as_pg psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U postgres -d "$POSTGRES_DB" -v user="$POSTGRES_USER" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT format('GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO %I', :'user')\gexec
SELECT format('GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO %I', :'user')\gexec
SQL
  as_pg psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SET client_min_messages = warning" -f /etc/lab/schema.sql
  touch "$ready_flag"
  echo "lab-postgres: role, database and schema are in place"
}

shutdown() { [ -n "${pg_pid:-}" ] && kill -INT "$pg_pid" 2>/dev/null || true; }
trap shutdown TERM INT

setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" &
pg_pid=$!
( bootstrap || echo "lab-postgres: ERROR: bootstrap failed" >&2 ) &
# Follow the server's own log files on stdout, from the current end.
mkdir -p "$PGDATA/log" && chown postgres:postgres "$PGDATA/log"
tail -q -n 0 -F "$PGDATA/log/postgresql.log" 2>/dev/null &
tail_pid=$!
set +e
wait "$pg_pid"; rc=$?
while kill -0 "$pg_pid" 2>/dev/null; do wait "$pg_pid"; rc=$?; done
kill "$tail_pid" 2>/dev/null
exit "$rc"
