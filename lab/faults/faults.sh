#!/usr/bin/env bash
# Fault injectors of the lab: the real cause of each of the runbook's twelve alerts, and its undoing.
#   lab/faults/inject AlertName [variant]     lab/faults/clear AlertName     lab/faults/inject --list
# Instance-aware like lab.sh (LAB_INSTANCE, default tsops). Everything happens inside the lab's own containers
# and volumes; nothing on the host is touched. Every fault is bounded:
#   * in time: FAULT_SECONDS (default 300, at most 3600); load, locks, queries and the memory hog end by themselves,
#     and a watchdog clears what is left of a fault after that long (clear cancels it; it never restarts a
#     container that someone else has started or stopped since);
#   * in size: the disk fault fills the lab's 16 MiB tmpfs, the memory hog stays inside a worker's 128 MiB limit,
#     the corruption fault writes three marked rows, the load generator is rate-limited.
# docs/alerts.md lists what each fault does and how long its alert takes to reach the webhook.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_SH="$LAB_DIR/scripts/lab.sh"
INSTANCE="${LAB_INSTANCE:-tsops}"
export LAB_INSTANCE="$INSTANCE"
if [ "$INSTANCE" = tsops ]; then STATE_DIR="$LAB_DIR/.state"; else STATE_DIR="$LAB_DIR/.state/instances/$INSTANCE"; fi
FAULT_DIR="$STATE_DIR/faults"
FAULT_SECONDS="${FAULT_SECONDS:-300}"
MARK=lab-fault   # marks every row, process, container and session a fault creates
ALERT=""         # the alert being injected or cleared

ALERTS=(TaskSchedulerAPIDown TaskSchedulerDatabaseDown NoActiveWorkers SecurityBreach DataCorruption HighErrorRate
        HighAPILatency DatabaseSlowQueries SchedulerOffline WorkerHealthDegraded DiskSpaceCritical MemoryUsageCritical)

log() { printf '[fault] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
compose() { "$LAB_SH" compose "$@"; }
containers() {  # running containers of a service, sorted
  docker ps -q --filter "label=com.docker.compose.project=$INSTANCE" --filter "label=com.docker.compose.service=$1" \
    | sort
}
container() { local c; c=$(containers "$1" | head -n 1); [ -n "$c" ] || die "no running $1 container in lab $INSTANCE"; echo "$c"; }
psql_app() { docker exec -i "$(container postgres)" psql -X -q -v ON_ERROR_STOP=1 -U orchestrator -d orchestrator -At "$@"; }
psql_su() { docker exec -i -u postgres "$(container postgres)" psql -X -q -v ON_ERROR_STOP=1 -d orchestrator -At "$@"; }
env_get() { local f; f=$([ "$INSTANCE" = tsops ] && echo "$LAB_DIR/.env" || echo "$STATE_DIR/.env"); sed -n "s/^$1=//p" "$f" | tail -n 1; }
lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }
quiet() { local out; out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; die "failed: $*"; }; }
# Stop a service as an operator or a crash would (compose stop: its stop_grace_period); start its stopped containers
# again directly, without compose's wait for the health of its dependencies (they are up, or being started too).
# The stopped containers are recorded with the time they stopped: the watchdog restarts only those that nobody has
# started (and maybe stopped again, for reasons of their own) since; a clear by hand starts every stopped one.
record_stopped() { docker inspect -f '{{.Id}} {{.State.FinishedAt}}' "$@" >>"$FAULT_DIR/$ALERT.stopped"; }
stop_service() {
  local ids
  mapfile -t ids < <(containers "$1")
  quiet compose stop "$1"
  ((${#ids[@]} == 0)) || record_stopped "${ids[@]}"
}
start_service() {
  local ids=() id finished
  if [ -n "${FAULT_WATCHDOG:-}" ]; then
    while read -r id finished; do
      [ "$(docker inspect -f '{{.State.Status}} {{.State.FinishedAt}}' "$id" 2>/dev/null)" = "exited $finished" ] \
        && ids+=("$id")
    done < <(cat "$FAULT_DIR/$ALERT.stopped" 2>/dev/null || true)
  else
    mapfile -t ids < <(docker ps -aq --filter "label=com.docker.compose.project=$INSTANCE" \
      --filter "label=com.docker.compose.service=$1" --filter status=exited --filter status=created)
  fi
  ((${#ids[@]} == 0)) || quiet docker start "${ids[@]}"
}

# Bounded load on the API from inside the lab network (the lab's own load generator), detached and named after
# the fault so that clear finds it. Extra `-e NAME=value` arguments tune it.
start_load() {
  local alert=$1 name; shift
  name="$INSTANCE-$MARK-$(lower "$alert")"
  docker rm -f "$name" >/dev/null 2>&1 || true
  compose --profile load run -d --rm --no-deps --name "$name" --label "tsops.fault=$alert" \
    -e LOADGEN_DURATION_SECONDS="$FAULT_SECONDS" "$@" loadgen >/dev/null
  log "load generator $name running for at most ${FAULT_SECONDS}s"
}
# Stopping the load generator abruptly skips its own clean-up: pause the tasks it created since the fault began.
# (One that ran its course paused them itself.)
stop_load() {
  local name since
  name="$INSTANCE-$MARK-$(lower "$1")"
  docker inspect "$name" >/dev/null 2>&1 || return 0
  docker rm -f "$name" >/dev/null 2>&1 || true
  since=$(cat "$FAULT_DIR/$1.injected" 2>/dev/null || true)
  [ -n "$since" ] || return 0
  psql_app >/dev/null -c "UPDATE task SET status = 'paused', updated_at = now() WHERE name LIKE 'loadgen-%'
    AND status = 'active' AND created_at >= timestamptz '$since' - interval '5 seconds'" || true
}

# --- one function pair per alert -------------------------------------------------------------------------------

# API down: the API service is stopped (as a crash or an operator would leave it).
inject_TaskSchedulerAPIDown() { stop_service api; log "api stopped"; }
clear_TaskSchedulerAPIDown() { start_service api; log "api started"; }

# Database down: PostgreSQL is stopped; every client's connections fail.
inject_TaskSchedulerDatabaseDown() { stop_service postgres; log "postgres stopped"; }
clear_TaskSchedulerDatabaseDown() { start_service postgres; log "postgres started"; }

# No active workers: every worker is stopped; their heartbeats end (status 'stopped').
inject_NoActiveWorkers() { stop_service worker; log "all workers stopped"; }
clear_NoActiveWorkers() { start_service worker; log "workers started"; }

# Worker health degraded: more than half of the running workers are stopped, never all (fewer than 50% alive, as the
# runbook says; none alive would be NoActiveWorkers). The last one keeps running.
inject_WorkerHealthDegraded() {
  local ids n k
  mapfile -t ids < <(containers worker)
  n=${#ids[@]}
  k=$((n / 2 + 1))
  ((k < n)) || die "WorkerHealthDegraded needs at least 3 running workers (found $n): set LAB_WORKERS in the lab's .env"
  quiet docker stop "${ids[@]:0:k}"
  record_stopped "${ids[@]:0:k}"
  log "stopped $k of $n workers"
}
clear_WorkerHealthDegraded() { start_service worker; log "workers started"; }

# Scheduler offline: the scheduler is stopped; no due_work is created any more.
inject_SchedulerOffline() { stop_service scheduler; log "scheduler stopped"; }
clear_SchedulerOffline() { start_service scheduler; log "scheduler started"; }

# Security breach. brute_force (default): a burst of requests with bad bearer tokens (10/s, 70% of them to the
# task API). revoked: three requests with the revoked credential of lab/.env (LAB_REVOKED_TOKEN).
inject_SecurityBreach() {
  case "${1:-brute_force}" in
    brute_force)
      start_load SecurityBreach -e LOADGEN_BAD_TOKEN_RATIO=1 -e LOADGEN_RPS=10
      ;;
    revoked)
      local url token codes=""
      url="http://127.0.0.1:$(env_get LAB_API_PORT)/api/v1/tasks"
      token=$(env_get LAB_REVOKED_TOKEN)
      for _ in 1 2 3; do
        codes+=" $(curl -s -o /dev/null -w '%{http_code}' -m 10 -H "Authorization: Bearer $token" "$url" || true)"
      done
      log "three requests made with the revoked token, answered:$codes"
      ;;
    *) die "SecurityBreach variants: brute_force (default), revoked" ;;
  esac
}
clear_SecurityBreach() { stop_load SecurityBreach; log "no more bad-token traffic (the alert ends after its window)"; }

# Data corruption: three task_run rows written with the foreign keys bypassed (session_replication_role =
# replica, as a careless restore or a manual fix would): orphaned (their task does not exist), one finished before
# it started, and two for the same due_work attempt (a double lease). Marked worker_id = 'lab-fault'.
inject_DataCorruption() {
  psql_su <<SQL
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO task_run (task_id, due_work_id, worker_id, attempt, started_at, finished_at, success, error)
SELECT m.missing, NULL, '$MARK', 1, now(), now() - interval '1 hour', true, 'lab fault: finished before it started'
  FROM (SELECT coalesce(max(id), 0) + 1000000 AS missing FROM task) m
UNION ALL
SELECT m.missing, -4242, '$MARK', 1, now(), now(), true, 'lab fault: double lease'
  FROM (SELECT coalesce(max(id), 0) + 1000000 AS missing FROM task) m, generate_series(1, 2);
COMMIT;
SQL
  log "3 corrupt task_run rows written (worker_id '$MARK')"
}
clear_DataCorruption() {
  local n
  n=$(psql_su -c "WITH d AS (DELETE FROM task_run WHERE worker_id = '$MARK' RETURNING 1) SELECT count(*) FROM d")
  log "$n corrupt task_run rows deleted"
}

# High error rate: Redis is stopped while users keep calling the API (the load generator, 5 requests/s):
# the task API's rate limiter and cache fail, so those calls answer 503.
inject_HighErrorRate() {
  stop_service redis
  start_load HighErrorRate
  log "redis stopped under load"
}
clear_HighErrorRate() {
  stop_load HighErrorRate
  start_service redis
  log "redis started, load stopped"
}

# High API latency: lock contention. A session holds a SHARE lock on audit_log (as a long maintenance transaction
# would, idle in transaction), so every mutating API call waits on its audit insert until the API's statement
# timeout (10 s), under the load generator's traffic. The lock is held FAULT_SECONDS at most.
inject_HighAPILatency() {
  local pg
  pg=$(container postgres)
  docker exec -d "$pg" sh -c "{ echo 'BEGIN; LOCK TABLE audit_log IN SHARE MODE;'; sleep $FAULT_SECONDS; echo 'ROLLBACK;'; } \
    | PGAPPNAME=$MARK-HighAPILatency psql -X -q -U orchestrator -d orchestrator; : $MARK-HighAPILatency"
  start_load HighAPILatency
  log "audit_log locked for at most ${FAULT_SECONDS}s, under load"
}
clear_HighAPILatency() {
  stop_load HighAPILatency
  # The waiting audit inserts are cancelled before the lock goes, so that they do not all complete at once as
  # multi-second statements (which DatabaseSlowQueries would rightly report).
  psql_app >/dev/null <<SQL || true
SELECT pg_cancel_backend(a.pid) FROM pg_stat_activity a, pg_stat_activity h
 WHERE h.application_name = '$MARK-HighAPILatency' AND h.pid = ANY (pg_blocking_pids(a.pid));
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$MARK-HighAPILatency';
SQL
  docker exec "$(container postgres)" pkill -f "$MARK-HighAPILatency" 2>/dev/null || true
  log "audit_log lock released, load stopped"
}

# Database slow queries: an expensive statement (a sort and distinct count of 500,000 hashes, about 1.6 s of CPU)
# run again and again with a 1 s pause, for FAULT_SECONDS at most; each is capped by statement_timeout.
# slow_sql N: that statement over N hashes; slow_sql alone: its text up to the range, for finding its statistics.
slow_sql() { printf 'SELECT count(DISTINCT h) FROM (SELECT md5(g::text) AS h FROM generate_series(%s' "${1:+1, $1) g) s}"; }
inject_DatabaseSlowQueries() {
  local pg
  pg=$(container postgres)
  # The same statement, run once on a tiny range first (pg_stat_statements normalises the constants away), exists
  # already when the first expensive run completes, as a report query that ran before would: its counters then
  # increase at once instead of first appearing.
  docker exec "$pg" psql -X -q -U orchestrator -d orchestrator -c "$(slow_sql 1)" >/dev/null
  docker exec -d "$pg" timeout "$FAULT_SECONDS" sh -c "while :; do
    PGAPPNAME=$MARK-DatabaseSlowQueries psql -X -q -U orchestrator -d orchestrator -c \"SET work_mem = '64MB'\" \
      -c \"SET statement_timeout = '120s'\" \
      -c \"$(slow_sql 500000)\" >/dev/null
    sleep 1
  done; : $MARK-DatabaseSlowQueries"
  log "expensive statements running for at most ${FAULT_SECONDS}s"
}
clear_DatabaseSlowQueries() {
  local pg
  pg=$(container postgres)
  docker exec "$pg" pkill -f "$MARK-DatabaseSlowQueries" 2>/dev/null || true
  psql_app >/dev/null -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
    WHERE application_name = '$MARK-DatabaseSlowQueries'" || true
  # pg_stat_statements keeps cumulative means: the fault's statement would read as slow in every later diagnosis
  # (postgres_info, health_check) although nothing runs it any more. Its entry, and only that one, is reset, as an
  # operator resets the statistics of a statement once its cause is gone.
  psql_su >/dev/null -c "SELECT pg_stat_statements_reset(0, 0, queryid) FROM pg_stat_statements
    WHERE query LIKE '$(slow_sql)%'" || true
  log "expensive statements stopped, their statistics reset"
}

# Disk space critical: the lab's own 16 MiB disk (/srv/labdisk of the labdisk service) filled to 95%.
inject_DiskSpaceCritical() {
  docker exec "$(container labdisk)" sh -c '
    size_kb=$(df -Pk /srv/labdisk | awk "NR==2 {print \$2}")
    dd if=/dev/zero of=/srv/labdisk/'"$MARK"'-fill bs=1024 count=$((size_kb * 95 / 100)) 2>/dev/null
    df -h /srv/labdisk | tail -n 1'
  log "/srv/labdisk filled to 95%"
}
clear_DiskSpaceCritical() { docker exec "$(container labdisk)" rm -f "/srv/labdisk/$MARK-fill"; log "/srv/labdisk emptied"; }

# Memory usage critical: a memory hog inside the last worker's container (128 MiB limit; WorkerHealthDegraded stops
# the first ones) grows the container's working set to 95% of its limit and holds it for FAULT_SECONDS at most; the
# cgroup limit bounds it.
inject_MemoryUsageCritical() {
  local target
  target=$(containers worker | tail -n 1)
  [ -n "$target" ] || die "no running worker container in lab $INSTANCE"
  docker exec -d "$target" timeout "$FAULT_SECONDS" python3 -c '
import time
from tsapp.common import container_memory
used, limit = container_memory()
if not limit:
    raise SystemExit("the container has no memory limit")
hog, chunk = [], 4 << 20
while True:
    used, limit = container_memory()
    if used + chunk > 0.95 * limit:
        break
    hog.append(bytearray(b"\x01") * chunk)  # written, so resident
while True:
    time.sleep(60)
' "$MARK-MemoryUsageCritical"
  log "memory hog started in a worker container"
}
clear_MemoryUsageCritical() {
  local c
  for c in $(containers worker); do docker exec "$c" pkill -f "$MARK-MemoryUsageCritical" 2>/dev/null || true; done
  log "memory hog stopped"
}

# --- watchdog and dispatch -------------------------------------------------------------------------------------

watchdog_start() {
  local alert=$1
  mkdir -p "$FAULT_DIR"
  watchdog_stop "$alert"
  setsid nohup bash -c "sleep $FAULT_SECONDS; FAULT_WATCHDOG=1 '$LAB_DIR/faults/clear' $alert" \
    >"$FAULT_DIR/$alert.watchdog.log" 2>&1 </dev/null &
  echo $! >"$FAULT_DIR/$alert.watchdog.pid"
}
watchdog_stop() {
  local pidfile="$FAULT_DIR/$1.watchdog.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile"); rm -f "$pidfile"
  [ -n "${FAULT_WATCHDOG:-}" ] && return 0   # the watchdog itself is clearing
  kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
}

main() {
  local action=${1:-} alert=${2:-}
  ALERT=$alert
  if [ "$alert" = --list ]; then printf '%s\n' "${ALERTS[@]}"; return 0; fi
  [ -n "$alert" ] || die "usage: lab/faults/$action AlertName [variant]   (lab/faults/$action --list names them)"
  [[ " ${ALERTS[*]} " == *" $alert "* ]] || die "unknown alert $alert (lab/faults/$action --list names them)"
  ((FAULT_SECONDS > 0 && FAULT_SECONDS <= 3600)) || die "FAULT_SECONDS must be 1..3600"
  case "$action" in
    inject) watchdog_start "$alert"; date -u +%Y-%m-%dT%H:%M:%SZ >"$FAULT_DIR/$alert.injected"
            rm -f "$FAULT_DIR/$alert.stopped"
            "inject_$alert" "${@:3}" ;;
    clear) watchdog_stop "$alert"; "clear_$alert"; rm -f "$FAULT_DIR/$alert.injected" "$FAULT_DIR/$alert.stopped" ;;
    *) die "usage: faults.sh inject|clear AlertName" ;;
  esac
}

main "$@"
