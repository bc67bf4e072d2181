-- 012: garbage collection of the archive stores.
--
-- * lifecycle.archive_gc records every object `lifecycle archive gc` deleted and every incomplete upload it
--   aborted (or failed to): what, where, why, how old. A table of its own rather than rows of
--   lifecycle.archive_metadata: what gc removes is precisely what no archived slice refers to (partial objects,
--   objects superseded by another fingerprint, stale multipart uploads), so it has no chunk or time range to be
--   filed under, and the slices' history keeps its meaning (a state change of one chunk).
-- Safe to run again (IF NOT EXISTS).

CREATE TABLE IF NOT EXISTS lifecycle.archive_gc (
    collected_at  timestamptz NOT NULL DEFAULT now(),
    store_url     text        NOT NULL,              -- file:///path or s3://bucket/prefix (never credentials)
    object_key    text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('object', 'upload')),
    reason        text        NOT NULL,              -- why it was garbage: partial, superseded, unreferenced, ...
    bytes         bigint,
    last_modified timestamptz,                       -- the store's time of the object (upload: its start)
    action        text        NOT NULL CHECK (action IN ('deleted', 'aborted', 'failed')),
    error         text
);

CREATE INDEX IF NOT EXISTS archive_gc_store_idx ON lifecycle.archive_gc (store_url, collected_at);

COMMENT ON TABLE lifecycle.archive_gc IS
    'What `lifecycle archive gc` removed from the archive stores: objects no lifecycle.archives row refers to '
    '(partial, superseded by a new fingerprint, never recorded) and incomplete uploads, each older than the '
    'grace period; action failed: it is still there (see error).';
