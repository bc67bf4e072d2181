-- 007: lifecycle policies on continuous aggregates.
--
-- A continuous aggregate takes compression and retention policies like a hypertable (TimescaleDB's
-- show_chunks, drop_chunks and hypertable_size accept its view). Its chunks, time column and compression
-- state belong to its materialization hypertable, which the catalog lists under an internal name: read them
-- from there, keep the view's own name as the label everything else records.
-- Safe to run again (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION lifecycle._hypertable_info(
    p_hypertable regclass,
    OUT ht_label text,
    OUT ht_schema name,
    OUT ht_table name,
    OUT time_column name,
    OUT time_type regtype,
    OUT window_type regtype,
    OUT compression_enabled boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_dim_schema name;
    v_dim_table  name;
BEGIN
    IF p_hypertable IS NULL THEN
        RAISE EXCEPTION 'lifecycle: no hypertable given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT n.nspname, c.relname INTO ht_schema, ht_table
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_hypertable;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lifecycle: relation with OID % does not exist', p_hypertable::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    ht_label := ht_schema::text || '.' || ht_table::text;

    SELECT h.compression_enabled, h.hypertable_schema, h.hypertable_name
      INTO compression_enabled, v_dim_schema, v_dim_table
    FROM timescaledb_information.hypertables h
    WHERE h.hypertable_schema = ht_schema AND h.hypertable_name = ht_table;
    IF NOT FOUND THEN
        SELECT ca.compression_enabled, ca.materialization_hypertable_schema, ca.materialization_hypertable_name
          INTO compression_enabled, v_dim_schema, v_dim_table
        FROM timescaledb_information.continuous_aggregates ca
        WHERE ca.view_schema = ht_schema AND ca.view_name = ht_table;
    END IF;
    IF v_dim_table IS NULL THEN
        RAISE EXCEPTION 'lifecycle: % is not a hypertable', ht_label
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Lifecycle policies apply to TimescaleDB hypertables and continuous aggregates only.';
    END IF;

    SELECT d.column_name INTO time_column
    FROM timescaledb_information.dimensions d
    WHERE d.hypertable_schema = v_dim_schema AND d.hypertable_name = v_dim_table AND d.dimension_type = 'Time'
    ORDER BY d.dimension_number
    LIMIT 1;
    -- The aggregate's view has the bucket column under the same name as its materialization hypertable.
    SELECT a.atttypid::regtype INTO time_type
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = p_hypertable AND a.attname = time_column AND NOT a.attisdropped;

    window_type := CASE
        WHEN time_type IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype,
                           'date'::regtype) THEN 'interval'::regtype
        WHEN time_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN time_type
    END;
    IF window_type IS NULL THEN
        RAISE EXCEPTION 'lifecycle: hypertable % has time column % of type %, which lifecycle policies do not support',
            ht_label, coalesce(time_column::text, '(none)'), coalesce(time_type::text, '(unknown)')
            USING ERRCODE = 'feature_not_supported';
    END IF;
END
$fn$;
