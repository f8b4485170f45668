-- Schema of the lab's Enterprise Task Scheduling System.
-- Applied at every start of the postgres container: every statement is idempotent.
-- Table and column names are the ones the runbook's queries use.

-- Extensions (pg_stat_statements, amcheck) are created by the postgres superuser in
-- lab/images/postgres/entrypoint.sh before this file runs as the orchestrator user.

-- A scheduled task. status: active | paused | disabled.
CREATE TABLE IF NOT EXISTS task (
    id               bigserial PRIMARY KEY,
    name             text        NOT NULL UNIQUE,
    status           text        NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'paused', 'disabled')),
    interval_seconds integer     NOT NULL CHECK (interval_seconds > 0),
    next_run_at      timestamptz NOT NULL DEFAULT now(),
    payload          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS task_due_idx ON task (next_run_at) WHERE status = 'active';

-- One unit of work made by the scheduler when a task is due.
-- A worker leases a row by setting locked_by/locked_until; a finished row keeps
-- locked_until = 'infinity' so that the runbook's pending-work query
--   run_at <= now() AND (locked_until IS NULL OR locked_until < now())
-- counts only work that is due and not validly leased.
CREATE TABLE IF NOT EXISTS due_work (
    id           bigserial PRIMARY KEY,
    task_id      bigint      NOT NULL REFERENCES task (id) ON DELETE CASCADE,
    run_at       timestamptz NOT NULL,
    locked_until timestamptz,
    locked_by    text,
    attempts     integer     NOT NULL DEFAULT 0,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed')),
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Serves the runbook's queue query and the workers' claim query as a BitmapOr of
-- two index conditions (IS NULL, < now()), never touching finished history.
CREATE INDEX IF NOT EXISTS due_work_lease_idx ON due_work (locked_until, run_at);
CREATE INDEX IF NOT EXISTS due_work_created_idx ON due_work (created_at);
CREATE INDEX IF NOT EXISTS due_work_task_idx ON due_work (task_id);

-- One execution attempt of a due_work row.
CREATE TABLE IF NOT EXISTS task_run (
    id          bigserial PRIMARY KEY,
    task_id     bigint      NOT NULL REFERENCES task (id) ON DELETE CASCADE,
    due_work_id bigint      REFERENCES due_work (id) ON DELETE SET NULL,
    worker_id   text        NOT NULL,
    attempt     integer     NOT NULL DEFAULT 1,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    success     boolean,
    error       text
);
CREATE INDEX IF NOT EXISTS task_run_started_idx ON task_run (started_at);
CREATE INDEX IF NOT EXISTS task_run_due_work_idx ON task_run (due_work_id);

-- Liveness of each worker process, renewed every few seconds.
CREATE TABLE IF NOT EXISTS worker_heartbeat (
    worker_id       text PRIMARY KEY,
    hostname        text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    processed_count bigint      NOT NULL DEFAULT 0,
    failed_count    bigint      NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'stopping', 'stopped'))
);
CREATE INDEX IF NOT EXISTS worker_heartbeat_last_seen_idx ON worker_heartbeat (last_seen);

-- Every failed authentication and every mutating API call.
CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text,
    source_addr inet,
    outcome     text        NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at);
