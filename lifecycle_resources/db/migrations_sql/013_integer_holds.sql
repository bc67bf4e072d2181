-- 013: holds on integer-time hypertables; the SQL runner's drops kept out of aggregates' refresh windows.
--
-- lifecycle.archive_holds keeps timestamptz bounds (009). A hold on an integer-time hypertable records each
-- integer bound v as 'epoch' + v microseconds, the encoding lifecycle.archives already uses for integer chunk
-- bounds (runner/archive/timeaxis.py: exact and ordered for -2e17 < v < 9e18, -infinity / infinity beyond).
-- _chunk_held (009) compared only timestamp chunk bounds, so an integer chunk was never held: it now encodes
-- the chunk's integer bounds the same way before comparing. Safe to run again (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION lifecycle._integer_bound(p_value bigint)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN p_value <= -200000000000000000 THEN '-infinity'::timestamptz
                WHEN p_value >= 9000000000000000000 THEN 'infinity'::timestamptz
                ELSE 'epoch'::timestamptz + (p_value::text || ' microseconds')::interval END
$fn$;

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
        WHERE k.oid = p_chunk
          AND coalesce(c.range_start, lifecycle._integer_bound(c.range_start_integer)) < h.range_to
          AND coalesce(c.range_end, lifecycle._integer_bound(c.range_end_integer)) > h.range_from)
$fn$;

-- Why a continuous aggregate's refresh policy still needs the rows of a chunk (NULL when none does): a refresh
-- reaches back to now() - start_offset (integer time: integer_now() - start_offset; unbounded: everything), and
-- a refresh over a range whose raw rows are gone erases the aggregated buckets of that range. The same rule as
-- the runner's (runner/archive/refresh_guard.py), for the drops of the SQL runner.
CREATE OR REPLACE FUNCTION lifecycle._chunk_refreshed_by(p_chunk regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_chunk record;
    v_job   record;
    v_reach bigint;
BEGIN
    SELECT c.hypertable_schema, c.hypertable_name, c.range_end, c.range_end_integer INTO v_chunk
    FROM pg_catalog.pg_class k
    JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace
    JOIN timescaledb_information.chunks c ON c.chunk_schema = n.nspname AND c.chunk_name = k.relname
    WHERE k.oid = p_chunk;
    FOR v_job IN
        SELECT ca.user_view_schema || '.' || ca.user_view_name AS view, j.job_id, j.config -> 'start_offset' AS start
        FROM _timescaledb_catalog.continuous_agg ca
        JOIN _timescaledb_catalog.hypertable h ON h.id = ca.raw_hypertable_id
        JOIN timescaledb_information.jobs j ON j.proc_name = 'policy_refresh_continuous_aggregate'
         AND j.hypertable_schema = ca.user_view_schema AND j.hypertable_name = ca.user_view_name
        WHERE h.schema_name = v_chunk.hypertable_schema AND h.table_name = v_chunk.hypertable_name
        ORDER BY 1, 2
    LOOP
        IF v_job.start IS NOT NULL AND jsonb_typeof(v_job.start) <> 'null' THEN
            IF v_chunk.range_end_integer IS NULL THEN
                CONTINUE WHEN v_chunk.range_end <= now() - (v_job.start #>> '{}')::interval;
            ELSE
                BEGIN
                    v_reach := lifecycle._integer_now(format('%I.%I', v_chunk.hypertable_schema,
                                                             v_chunk.hypertable_name)::regclass)
                               - (v_job.start #>> '{}')::bigint;
                EXCEPTION WHEN object_not_in_prerequisite_state THEN
                    v_reach := NULL;   -- no integer_now: how far it reaches is unknown, so the chunk stays
                END;
                CONTINUE WHEN v_chunk.range_end_integer <= v_reach;
            END IF;
        END IF;
        RETURN format('chunk %s is still refreshed by the refresh policy (job %s) of continuous aggregate %s '
                      '(start_offset %s): dropping its raw rows would erase its aggregated buckets at its next '
                      'refresh', p_chunk, v_job.job_id, v_job.view, coalesce(v_job.start #>> '{}', 'unbounded'));
    END LOOP;
    RETURN NULL;
END
$fn$;

-- 009's _drop_chunks, refusing (before anything is dropped) a drop inside an aggregate's refresh window.
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
    v_refused text;
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
    EXECUTE format('SELECT string_agg(r, ''; '') FROM %I.show_chunks($1, older_than => $2::%s) s, '
                   'lifecycle._chunk_refreshed_by(s) r WHERE r IS NOT NULL AND NOT lifecycle._chunk_held($3, s)',
                   lifecycle._extension_schema(), p_cutoff_type)
        INTO v_refused
        USING p_hypertable, p_cutoff, v_label;
    IF v_refused IS NOT NULL THEN
        RAISE EXCEPTION 'lifecycle: %: nothing dropped', v_refused
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Lengthen drop_after past the refresh policy''s start_offset, or shorten its start_offset.';
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
