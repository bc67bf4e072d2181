-- 008: the archive catalog.
--
-- * lifecycle.archives holds the current state of every archived slice, one row per chunk ever archived
--   (chunk names are never reused by TimescaleDB). It is a plain table that no retention reaches: the record
--   of where dropped rows went must outlive the lifecycle schema's own history retention.
-- * lifecycle.archive_metadata (a hypertable of the stack, aged like any other) keeps the history: one row per
--   state change, with the error of a failed step. It gains the 'dropped' state and an error column.
-- * lifecycle.archive_restores records each restore of an object into a table, so a second restore of the same
--   range adds nothing.
-- Safe to run again (IF NOT EXISTS; the state check is replaced by name).

CREATE TABLE IF NOT EXISTS lifecycle.archives (
    hypertable   text        NOT NULL,              -- 'schema.table'
    chunk_name   text        NOT NULL,              -- 'schema.chunk' as TimescaleDB named it
    range_start  timestamptz NOT NULL,
    range_end    timestamptz NOT NULL,
    state        text        NOT NULL CHECK (state IN ('pending', 'verified', 'dropped', 'failed')),
    row_count    bigint,                            -- rows counted in the export snapshot
    content_hash text,                              -- sum of the rows' hashtextextended in that snapshot
    store_url    text,                              -- file:///path or s3://bucket/prefix (never credentials)
    object_key   text,
    bytes        bigint,
    sha256       text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    dropped_at   timestamptz,
    PRIMARY KEY (hypertable, chunk_name)
);

CREATE INDEX IF NOT EXISTS archives_range_idx ON lifecycle.archives (hypertable, range_start, range_end);

COMMENT ON TABLE lifecycle.archives IS
    'One row per archived chunk: where its rows went (store_url/object_key), what was verified (row_count, '
    'content_hash, bytes, sha256) and its state: pending, verified, dropped (rows only in the object) or failed '
    '(nothing dropped; see error). Never subject to retention. History: lifecycle.archive_metadata.';

CREATE TABLE IF NOT EXISTS lifecycle.archive_restores (
    restored_at  timestamptz NOT NULL DEFAULT now(),
    hypertable   text        NOT NULL,
    chunk_name   text        NOT NULL,
    object_key   text        NOT NULL,
    into_table   text        NOT NULL,              -- 'schema.table' the rows were loaded into
    range_from   timestamptz NOT NULL,
    range_to     timestamptz NOT NULL,
    rows_loaded  bigint      NOT NULL
);

CREATE INDEX IF NOT EXISTS archive_restores_object_idx
    ON lifecycle.archive_restores (hypertable, chunk_name, into_table);

COMMENT ON TABLE lifecycle.archive_restores IS
    'Each load of an archived object''s rows in [range_from, range_to) into into_table; a later restore skips '
    'the rows of ranges already loaded into the same table.';

ALTER TABLE lifecycle.archive_metadata ADD COLUMN IF NOT EXISTS error text;
ALTER TABLE lifecycle.archive_metadata ADD COLUMN IF NOT EXISTS object_key text;
ALTER TABLE lifecycle.archive_metadata DROP CONSTRAINT IF EXISTS archive_metadata_state_check;
ALTER TABLE lifecycle.archive_metadata ADD CONSTRAINT archive_metadata_state_check
    CHECK (state IN ('pending', 'archived', 'verified', 'restored', 'failed', 'dropped'));
