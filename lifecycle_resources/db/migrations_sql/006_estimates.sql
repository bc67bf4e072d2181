-- 006: row estimates of compressed chunks that were never analyzed.
--
-- TimescaleDB's approximate_row_count reads a compressed chunk's rows from its compressed relation's
-- statistics; compress_chunk leaves those unset (reltuples -1), so until autovacuum or ANALYZE reaches it a
-- freshly compressed chunk is estimated at 0 rows and a run's rows_before undercounts by whole chunks.
-- For such a chunk the rows it held when compressed (compression_chunk_size.numrows_pre_compression, recorded
-- by compress_chunk itself) plus the rows inserted uncompressed since are the better estimate.
-- Safe to run again (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION lifecycle._estimated_rows(p_chunk regclass)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tuples     real;
    v_compressed regclass;
    v_recorded   bigint;
    v_plan       json;
    v_rows       bigint;
    v_pages      bigint;
BEGIN
    SELECT c.reltuples INTO v_tuples FROM pg_catalog.pg_class c WHERE c.oid = p_chunk;
    SELECT pg_catalog.format('%I.%I', cc.schema_name, cc.table_name)::regclass, s.numrows_pre_compression
      INTO v_compressed, v_recorded
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN _timescaledb_catalog.chunk ch ON ch.schema_name = n.nspname AND ch.table_name = c.relname
      JOIN _timescaledb_catalog.chunk cc ON cc.id = ch.compressed_chunk_id
      LEFT JOIN _timescaledb_catalog.compression_chunk_size s ON s.chunk_id = ch.id
     WHERE c.oid = p_chunk;
    IF v_compressed IS NOT NULL THEN
        IF (SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = v_compressed) >= 0 OR v_recorded IS NULL THEN
            EXECUTE pg_catalog.format('SELECT %I.approximate_row_count($1)', lifecycle._extension_schema())
               INTO v_rows USING p_chunk;
            RETURN v_rows;
        END IF;
        RETURN v_recorded + GREATEST(v_tuples, 0)::bigint;
    END IF;
    IF v_tuples >= 0 THEN
        EXECUTE pg_catalog.format('SELECT %I.approximate_row_count($1)', lifecycle._extension_schema())
           INTO v_rows USING p_chunk;
        RETURN v_rows;
    END IF;
    EXECUTE pg_catalog.format('EXPLAIN (FORMAT JSON) SELECT 1 FROM ONLY %s', lifecycle._relation_ident(p_chunk))
       INTO v_plan;
    -- The planner assumes at least 10 pages for a table never vacuumed: scale back to its real size.
    v_pages := pg_catalog.pg_relation_size(p_chunk) / pg_catalog.current_setting('block_size')::bigint;
    RETURN pg_catalog.round((v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric * v_pages
                            / GREATEST(v_pages, 10))::bigint;
END
$fn$;
