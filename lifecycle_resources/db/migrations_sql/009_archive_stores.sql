-- 009: archive stores, archive-before-drop retention, and holds.
--
-- * lifecycle.archive_stores: the ArchiveStore resources of each stack (name, URL, endpoint, region), so the
--   runner knows where a policy archives. Never credentials: the runner takes them from boto3's chain (the
--   environment, a profile, an instance role).
-- * A retention declaration whose parameters name an `archive_store` has no TimescaleDB retention job: its
--   chunks are dropped only by the runner, after each is archived and verified. _drop_chunks (the one drop of
--   the SQL runner, execute_lifecycle_policy) refuses such a table, so no SQL path drops unarchived chunks.
-- * lifecycle.archive_holds: (table, from, to) ranges that neither the runner nor the archiver drops or
--   archives while the hold is active; a restore into the hypertable itself needs one covering its range.
-- Safe to run again (IF NOT EXISTS, CREATE OR REPLACE).

CREATE TABLE IF NOT EXISTS lifecycle.archive_stores (
    project       text        NOT NULL DEFAULT '',
    stack         text        NOT NULL DEFAULT '',
    store_name    text        NOT NULL,
    url           text        NOT NULL,              -- file:///path or s3://bucket/prefix (never credentials)
    endpoint_url  text,                              -- an S3-compatible server; NULL: AWS or $AWS_ENDPOINT_URL
    region        text,
    enabled       boolean     NOT NULL DEFAULT true, -- false once its stack removed it
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, stack, store_name)
);

COMMENT ON TABLE lifecycle.archive_stores IS
    'The ArchiveStore resources of each stack: where a retention policy with an archive sends its chunks before '
    'the runner drops them. Credentials are never stored: the runner uses boto3''s chain (environment, profile).';

CREATE TABLE IF NOT EXISTS lifecycle.archive_holds (
    hold_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hypertable   text        NOT NULL,              -- 'schema.table'
    range_from   timestamptz NOT NULL,
    range_to     timestamptz NOT NULL CHECK (range_to > range_from),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz                        -- NULL: active
);

CREATE INDEX IF NOT EXISTS archive_holds_active_idx ON lifecycle.archive_holds (hypertable)
    WHERE released_at IS NULL;

COMMENT ON TABLE lifecycle.archive_holds IS
    'Ranges of a hypertable kept in the database: while a hold is active (released_at NULL) no chunk '
    'overlapping [range_from, range_to) is archived or dropped by the runner.';

-- True when an active hold overlaps the chunk's time range.
CREATE OR REPLACE FUNCTION lifecycle._chunk_held(p_hypertable text, p_chunk regclass)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT EXISTS (
        SELECT 1
        FROM pg_catalog.pg_class k
        JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace
        JOIN timescaledb_information.chunks c ON c.chunk_schema = n.nspname AND c.chunk_name = k.relname
        JOIN lifecycle.archive_holds h ON h.hypertable = p_hypertable AND h.released_at IS NULL
        WHERE k.oid = p_chunk AND c.range_start < h.range_to AND c.range_end > h.range_from)
$fn$;

-- Drops the chunks older than the cutoff, under the table's lock; returns their names. Refused for a table
-- whose retention archives first; chunks under an active hold stay.
CREATE OR REPLACE FUNCTION lifecycle._drop_chunks(p_hypertable regclass, p_cutoff text, p_cutoff_type regtype)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_label text := lifecycle._relation_label(p_hypertable);
    v_store text;
    v_chunk regclass;
    v_done  text[] := '{}';
BEGIN
    PERFORM lifecycle._lock_table(v_label);
    SELECT d.parameters ->> 'archive_store' INTO v_store FROM lifecycle.policy_declarations d
    WHERE d.hypertable = v_label AND d.kind = 'retention' AND d.enabled AND d.parameters ? 'archive_store'
    LIMIT 1;
    IF v_store IS NOT NULL THEN
        RAISE EXCEPTION 'lifecycle: the retention of % archives each chunk to store % before dropping it: '
                        'nothing dropped here', v_label, quote_literal(v_store)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run `lifecycle run` (DataLifecycleManager.run): it archives, verifies, then drops.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM lifecycle.archive_holds h WHERE h.hypertable = v_label AND h.released_at IS NULL) THEN
        EXECUTE format('SELECT coalesce(array_agg(d.c), ''{}'') FROM %I.drop_chunks($1, older_than => $2::%s) AS d(c)',
                       lifecycle._extension_schema(), p_cutoff_type)
            INTO v_done
            USING p_hypertable, p_cutoff;
        RETURN v_done;
    END IF;
    FOR v_chunk IN EXECUTE format('SELECT s FROM %I.show_chunks($1, older_than => $2::%s) s',
                                  lifecycle._extension_schema(), p_cutoff_type)
                   USING p_hypertable, p_cutoff LOOP
        CONTINUE WHEN lifecycle._chunk_held(v_label, v_chunk);
        v_done := v_done || v_chunk::text;
        PERFORM _timescaledb_functions.drop_chunk(v_chunk);
    END LOOP;
    RETURN v_done;
END
$fn$;
