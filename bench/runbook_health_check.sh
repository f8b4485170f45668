#!/usr/bin/env bash
# health_check.sh - Comprehensive system health assessment
#
# The runbook's script (RUNBOOK.md section 4, "System Health Quick Assessment"), verbatim except for
# container names: the lab runs compose's default names (<project>-<service>-1) instead of the runbook's
# container_name's (api, postgres, redis). The base URLs default to the runbook's and can be pointed at another
# lab instance (API_URL, PROMETHEUS_URL, GRAFANA_URL); the shebang is the env form ansible-test accepts.
# Used by bench/health_check_vs_shell.py as the baseline.
P="${COMPOSE_PROJECT_NAME:-tsops}"
API_URL="${API_URL:-http://localhost:8080}"
PROMETHEUS_URL="${PROMETHEUS_URL:-http://localhost:9090}"
GRAFANA_URL="${GRAFANA_URL:-http://localhost:3000}"

echo "=== TASK SCHEDULING SYSTEM HEALTH CHECK ==="
echo "Timestamp: $(date -Iseconds)"

# Container status
echo -e "\n=== CONTAINER STATUS ==="
docker ps --format "table {{.Names}}\t{{.Status}}\t{{.Ports}}" | grep -E "(api|postgres|redis|scheduler|worker|prometheus)"

# Service health endpoints
echo -e "\n=== SERVICE HEALTH ==="
curl -s -o /dev/null -w "API Health: %{http_code} (%{time_total}s)\n" "$API_URL/health"
curl -s -o /dev/null -w "Prometheus: %{http_code} (%{time_total}s)\n" "$PROMETHEUS_URL/-/healthy"
curl -s -o /dev/null -w "Grafana: %{http_code} (%{time_total}s)\n" "$GRAFANA_URL/api/health"

# Database connectivity
echo -e "\n=== DATABASE STATUS ==="
docker exec "$P-postgres-1" pg_isready -U orchestrator
docker exec "$P-postgres-1" psql -U orchestrator -c "SELECT COUNT(*) as active_tasks FROM task WHERE status = 'active';" 2>/dev/null || echo "Database query failed"

# Redis connectivity
echo -e "\n=== REDIS STATUS ==="
docker exec "$P-redis-1" redis-cli ping 2>/dev/null || echo "Redis connection failed"
docker exec "$P-redis-1" redis-cli info keyspace 2>/dev/null | head -5

# Work queue status
echo -e "\n=== WORK QUEUE STATUS ==="
docker exec "$P-postgres-1" psql -U orchestrator -c "
SELECT 
  COUNT(*) as due_now,
  COUNT(*) FILTER (WHERE locked_until IS NOT NULL) as locked,
  COUNT(*) FILTER (WHERE run_at > now()) as future
FROM due_work;
" 2>/dev/null || echo "Work queue query failed"

# Worker status
echo -e "\n=== WORKER STATUS ==="
docker exec "$P-postgres-1" psql -U orchestrator -c "
SELECT worker_id, last_seen, processed_count 
FROM worker_heartbeat 
WHERE last_seen > now() - interval '2 minutes'
ORDER BY last_seen DESC;
" 2>/dev/null || echo "Worker status query failed"

# Resource utilization
echo -e "\n=== RESOURCE UTILIZATION ==="
docker stats --no-stream --format "table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}" | head -10

# Recent errors
echo -e "\n=== RECENT ERRORS ==="
docker logs "$P-api-1" --since 15m 2>/dev/null | grep -E "(ERROR|FATAL|CRITICAL)" | tail -5 || echo "No recent API errors"
docker logs "$P-postgres-1" --since 15m 2>/dev/null | grep -E "(ERROR|FATAL|CRITICAL)" | tail -5 || echo "No recent database errors"
