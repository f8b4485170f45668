"""Benchmark: the runbook's work-queue query over a million due_work rows, index vs sequential scan.

Loads 1,000,000 due_work rows into a scratch database of the lab's PostgreSQL (schema from lab/schema.sql):
mostly finished history plus a few thousand pending rows, then runs the runbook's query

    SELECT COUNT(*) as pending_work, MIN(run_at) as oldest_work, MAX(run_at) as newest_work
    FROM due_work WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now());

many times with the lab's indexes and, in the same run, with index use disabled (a plain sequential scan),
and prints the median execution times and their ratio. Target: under 5 ms with the index.

Usage: python bench/queue_query.py [--rows N] [--pending N] [--repeat N]   (needs the lab up: make lab-up)
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from lab import Lab

RUNBOOK_QUERY = """SELECT COUNT(*) as pending_work, MIN(run_at) as oldest_work, MAX(run_at) as newest_work
FROM due_work WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now())"""
DB = "bench_queue"


def su_psql(lab: Lab, sql: str, db: str = "postgres", timeout: float = 600) -> str:
    proc = lab.docker("exec", "-i", "-u", "postgres", lab.container("postgres"), "psql", "-X", "-q", "-At",
                      "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql, timeout=timeout)
    return proc.stdout.strip()


def load(lab: Lab, rows: int, pending: int) -> float:
    t0 = time.monotonic()
    su_psql(lab, f"DROP DATABASE IF EXISTS {DB}")
    su_psql(lab, f"CREATE DATABASE {DB}")
    lab.docker("exec", "-u", "postgres", lab.container("postgres"), "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-d", DB, "-f", "/etc/lab/schema.sql")
    history = rows - pending
    due_unlocked, leased, expired = int(pending * 0.6), int(pending * 0.2), pending - int(pending * 0.6) - int(
        pending * 0.2)
    su_psql(lab, f"""
        INSERT INTO task (name, interval_seconds) VALUES ('bench', 60);
        -- finished history over the last 30 days: locked_until = 'infinity' marks a finished row
        INSERT INTO due_work (task_id, run_at, locked_until, locked_by, attempts, status, finished_at, created_at)
        SELECT 1, t, 'infinity', 'worker-' || (g % 8), 1, 'done', t + interval '1 second', t
        FROM generate_series(1, {history}) g, LATERAL (SELECT now() - (g * interval '2.5 seconds') AS t) x;
        -- due and never claimed
        INSERT INTO due_work (task_id, run_at, status, created_at)
        SELECT 1, now() - g * interval '1 second', 'pending', now() - g * interval '1 second'
        FROM generate_series(1, {due_unlocked}) g;
        -- validly leased right now (not pending)
        INSERT INTO due_work (task_id, run_at, locked_until, locked_by, attempts, status)
        SELECT 1, now() - interval '10 seconds', now() + interval '1 hour', 'worker-x', 1, 'running'
        FROM generate_series(1, {leased}) g;
        -- leases that expired (a killed worker's rows: pending again)
        INSERT INTO due_work (task_id, run_at, locked_until, locked_by, attempts, status)
        SELECT 1, now() - interval '20 minutes', now() - interval '5 minutes', 'worker-dead', 1, 'running'
        FROM generate_series(1, {expired}) g;
    """, db=DB, timeout=1200)
    su_psql(lab, "VACUUM ANALYZE due_work", db=DB)
    return time.monotonic() - t0


def measure(lab: Lab, repeat: int, seqscan: bool) -> tuple[list[float], str, str]:
    settings = "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off;" \
        if seqscan else ""
    # one psql session: warm-up, then `repeat` EXPLAIN ANALYZE runs and the query's own result
    script = settings + "".join(f"EXPLAIN (ANALYZE, FORMAT TEXT) {RUNBOOK_QUERY};" for _run in range(repeat + 2))
    out = su_psql(lab, script + RUNBOOK_QUERY + ";", db=DB)
    times = [float(m) for m in re.findall(r"Execution Time: ([\d.]+) ms", out)][2:]
    plan = next((ln.strip() for ln in out.splitlines() if "Scan" in ln), "?")
    result = out.splitlines()[-1]
    return times, re.sub(r"\s+\(cost.*", "", plan).lstrip("-> "), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pending", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()
    lab = Lab()
    try:
        lab.container("postgres")
    except RuntimeError:
        print("the lab is not running: make lab-up", file=sys.stderr)
        return 2
    secs = load(lab, args.rows, args.pending)
    print(f"loaded {args.rows:,} due_work rows ({args.pending:,} not finished) in {secs:.1f}s")
    try:
        idx, idx_plan, idx_result = measure(lab, args.repeat, seqscan=False)
        seq, seq_plan, seq_result = measure(lab, args.repeat, seqscan=True)
    finally:
        if not args.keep:
            su_psql(lab, f"DROP DATABASE IF EXISTS {DB}")
    assert idx_result.split("|")[0] == seq_result.split("|")[0], (idx_result, seq_result)
    m_idx, m_seq = statistics.median(idx), statistics.median(seq)
    print(f"pending work counted: {idx_result.split('|')[0]} (same answer both ways)")
    print(f"{'plan':<44} {'median ms':>10} {'p90 ms':>8}")
    print(f"{idx_plan[:44]:<44} {m_idx:>10.3f} {sorted(idx)[int(len(idx) * 0.9)]:>8.3f}")
    print(f"{seq_plan[:44]:<44} {m_seq:>10.3f} {sorted(seq)[int(len(seq) * 0.9)]:>8.3f}")
    print(f"ratio sequential/index: {m_seq / m_idx:.1f}x   target < 5 ms with the index: "
          f"{'met' if m_idx < 5 else 'NOT met'}")
    return 0 if m_idx < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
