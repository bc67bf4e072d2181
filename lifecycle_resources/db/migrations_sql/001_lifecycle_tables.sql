-- 001: the lifecycle schema's tables.
--
-- Plain tables, each with a NOT NULL timestamptz time column first: the Pulumi stack turns them into
-- hypertables later (so no create_hypertable here, and no unique constraints: a hypertable's unique
-- indexes must include its time column). Safe to run again: everything is IF NOT EXISTS.

CREATE SCHEMA IF NOT EXISTS lifecycle;

COMMENT ON SCHEMA lifecycle IS
    'Data lifecycle bookkeeping: policy declarations, executions, compression metrics, archives, cleanups.';

-- Append-only history of policy declarations: the latest row per policy_name is the current one.
CREATE TABLE IF NOT EXISTS lifecycle.lifecycle_policies (
    registered_at timestamptz NOT NULL DEFAULT now(),
    policy_name   text        NOT NULL,
    hypertable    text        NOT NULL,               -- 'schema.table'
    kind          text        NOT NULL CHECK (kind IN ('compression', 'retention')),
    parameters    jsonb       NOT NULL DEFAULT '{}',  -- {"drop_after"|"compress_after": .., "schedule_interval": ..}
    stack         text,
    environment   text,
    job_id        integer,
    enabled       boolean     NOT NULL DEFAULT true
);

COMMENT ON TABLE lifecycle.lifecycle_policies IS
    'Append-only policy registrations; the latest row per policy_name is the current declaration.';

CREATE INDEX IF NOT EXISTS lifecycle_policies_name_idx
    ON lifecycle.lifecycle_policies (policy_name, registered_at DESC);
CREATE INDEX IF NOT EXISTS lifecycle_policies_hypertable_idx
    ON lifecycle.lifecycle_policies (hypertable, registered_at DESC);

-- One row per execution of a policy (real, dry run or failed).
CREATE TABLE IF NOT EXISTS lifecycle.lifecycle_executions (
    started_at      timestamptz NOT NULL,
    execution_id    uuid        NOT NULL DEFAULT gen_random_uuid(),
    policy_name     text        NOT NULL,
    hypertable      text        NOT NULL,
    kind            text        NOT NULL,
    job_id          integer,
    finished_at     timestamptz,
    status          text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'dry_run')),
    error           text,
    chunks_affected integer     NOT NULL DEFAULT 0,
    rows_before     bigint,
    rows_after      bigint,
    bytes_before    bigint,
    bytes_after     bigint,
    dry_run         boolean     NOT NULL DEFAULT false,
    details         jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX IF NOT EXISTS lifecycle_executions_policy_idx
    ON lifecycle.lifecycle_executions (policy_name, started_at DESC);
CREATE INDEX IF NOT EXISTS lifecycle_executions_hypertable_idx
    ON lifecycle.lifecycle_executions (hypertable, started_at DESC);
CREATE INDEX IF NOT EXISTS lifecycle_executions_id_idx
    ON lifecycle.lifecycle_executions (execution_id);
CREATE INDEX IF NOT EXISTS lifecycle_executions_status_idx
    ON lifecycle.lifecycle_executions (status, started_at DESC);

-- Snapshots of a hypertable's compression state (appended after each compression execution).
CREATE TABLE IF NOT EXISTS lifecycle.compression_metrics (
    captured_at       timestamptz NOT NULL,
    hypertable        text        NOT NULL,
    total_chunks      integer,
    compressed_chunks integer,
    before_bytes      bigint,
    after_bytes       bigint
);

CREATE INDEX IF NOT EXISTS compression_metrics_hypertable_idx
    ON lifecycle.compression_metrics (hypertable, captured_at DESC);

-- Chunks exported to cold storage, and their state.
CREATE TABLE IF NOT EXISTS lifecycle.archive_metadata (
    archived_at timestamptz NOT NULL,
    hypertable  text        NOT NULL,
    chunk_name  text        NOT NULL,
    range_start timestamptz,
    range_end   timestamptz,
    row_count   bigint,
    bytes       bigint,
    location    text,
    checksum    text,
    state       text        NOT NULL
        CHECK (state IN ('pending', 'archived', 'verified', 'restored', 'failed'))
);

CREATE INDEX IF NOT EXISTS archive_metadata_hypertable_idx
    ON lifecycle.archive_metadata (hypertable, archived_at DESC);
CREATE INDEX IF NOT EXISTS archive_metadata_chunk_idx
    ON lifecycle.archive_metadata (chunk_name, archived_at DESC);

-- Row-level cleanups (DELETE .. WHERE <rule's condition>), real or dry run.
CREATE TABLE IF NOT EXISTS lifecycle.cleanup_operations (
    executed_at  timestamptz NOT NULL,
    rule_name    text        NOT NULL,
    hypertable   text        NOT NULL,
    condition    text        NOT NULL,
    rows_matched bigint      NOT NULL DEFAULT 0,
    rows_deleted bigint      NOT NULL DEFAULT 0,
    dry_run      boolean     NOT NULL,
    status       text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'dry_run')),
    error        text
);

CREATE INDEX IF NOT EXISTS cleanup_operations_rule_idx
    ON lifecycle.cleanup_operations (rule_name, hypertable, executed_at DESC);
