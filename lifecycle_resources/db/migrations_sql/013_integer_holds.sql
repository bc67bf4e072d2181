-- 013: holds on integer-time hypertables.
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
