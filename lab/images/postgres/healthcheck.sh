#!/bin/sh
# Health of the lab's PostgreSQL: healthy only when the server accepts connections AND the entrypoint's bootstrap
# (role, database, extensions, schema) has finished; the bootstrap writes its marker last. What is missing is
# printed, so `docker inspect .State.Health.Log` (and `lab.sh up` when it gives up) says why it is not healthy.
run=/run/lab-postgres
if [ ! -f "$run/schema-applied" ]; then
  if [ -f "$run/bootstrap-failed" ]; then
    echo "bootstrap failed: $(tail -n 3 "$run/bootstrap-failed" | tr '\n' ' ')"
  else
    echo "initialising: $(cat "$run/phase" 2>/dev/null || echo starting) (since $(cat "$run/started" 2>/dev/null || echo '?'))"
  fi
  exit 1
fi
pg_isready -q -U "${POSTGRES_USER:-orchestrator}" -d "${POSTGRES_DB:-orchestrator}" -h /var/run/postgresql \
  || { echo "schema in place but the server does not accept connections"; exit 1; }
