-- 002: views over the lifecycle tables and TimescaleDB's catalog.
--
-- The views never reference TimescaleDB objects (timescaledb_information.*, hypertable_compression_stats())
-- directly: a user view that depends on an extension view or function blocks `ALTER EXTENSION timescaledb
-- UPDATE` ("cannot drop view timescaledb_information.jobs because other objects depend on it",
-- timescaledb#5057, #6211; only lifted in 2.2x by timescaledb#9946). They read TimescaleDB through the
-- small PL/pgSQL functions below instead, which bind at call time (no pg_depend entries) and call the
-- extension's functions through the schema the extension really lives in.
-- Safe to run again: CREATE OR REPLACE throughout.

-- The schema the timescaledb extension is installed in (not necessarily public).
CREATE OR REPLACE FUNCTION lifecycle._extension_schema()
RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema name;
BEGIN
    SELECT n.nspname INTO v_schema
    FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'timescaledb';
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'lifecycle: the timescaledb extension is not installed in database %', current_database()
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v_schema;
END
$fn$;

-- text -> interval, NULL when the text is not an interval (a bad hand-written registration must not
-- break the status view for every policy).
CREATE OR REPLACE FUNCTION lifecycle._try_interval(p_value text)
RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN p_value::interval;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$fn$;

-- TimescaleDB's jobs, read at call time.
CREATE OR REPLACE FUNCTION lifecycle._timescaledb_jobs()
RETURNS TABLE (job_id integer, proc_name text, hypertable text, schedule_interval interval,
               scheduled boolean, config jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY
    SELECT j.job_id::integer, j.proc_name::text,
           CASE WHEN j.hypertable_name IS NOT NULL
                THEN j.hypertable_schema::text || '.' || j.hypertable_name::text END,
           j.schedule_interval, j.scheduled, j.config
    FROM timescaledb_information.jobs j;
END
$fn$;

-- Chunk counts and compression figures of every hypertable (or only the one named 'schema.table'),
-- read at call time.
CREATE OR REPLACE FUNCTION lifecycle._hypertable_compression_figures(p_hypertable text DEFAULT NULL)
RETURNS TABLE (hypertable text, total_chunks integer, compressed_chunks integer,
               before_bytes bigint, after_bytes bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format(
        $q$
        SELECT h.hypertable_schema::text || '.' || h.hypertable_name::text,
               coalesce(c.total_chunks, 0)::integer,
               coalesce(c.compressed_chunks, 0)::integer,
               coalesce(s.before_bytes, 0)::bigint,
               coalesce(s.after_bytes, 0)::bigint
        FROM timescaledb_information.hypertables h
        LEFT JOIN (
            SELECT ch.hypertable_schema, ch.hypertable_name,
                   count(*) AS total_chunks,
                   count(*) FILTER (WHERE ch.is_compressed) AS compressed_chunks
            FROM timescaledb_information.chunks ch
            GROUP BY ch.hypertable_schema, ch.hypertable_name
        ) c ON c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name
        LEFT JOIN LATERAL (
            SELECT sum(st.before_compression_total_bytes) AS before_bytes,
                   sum(st.after_compression_total_bytes) AS after_bytes
            FROM %I.hypertable_compression_stats(
                     (quote_ident(h.hypertable_schema) || '.' || quote_ident(h.hypertable_name))::regclass) st
        ) s ON true
        WHERE $1 IS NULL OR h.hypertable_schema::text || '.' || h.hypertable_name::text = $1
        $q$,
        lifecycle._extension_schema())
    USING p_hypertable;
END
$fn$;

-- One row per policy: its latest registration, its TimescaleDB job and its latest execution.
CREATE OR REPLACE VIEW lifecycle.lifecycle_policy_status AS
SELECT p.policy_name,
       p.hypertable,
       p.kind,
       p.parameters,
       p.stack,
       p.environment,
       p.job_id,
       p.enabled,
       p.registered_at,
       j.schedule_interval,
       (j.job_id IS NOT NULL) AS job_exists,
       e.started_at  AS last_started_at,
       e.finished_at AS last_finished_at,
       e.status      AS last_status,
       e.error       AS last_error,
       CASE
           WHEN ok.finished_at IS NULL THEN now()
           ELSE ok.finished_at + coalesce(j.schedule_interval,
                                          lifecycle._try_interval(p.parameters ->> 'schedule_interval'),
                                          interval '1 day')
       END AS next_due
FROM (
    SELECT DISTINCT ON (r.policy_name)
           r.registered_at, r.policy_name, r.hypertable, r.kind, r.parameters, r.stack, r.environment,
           r.job_id, r.enabled
    FROM lifecycle.lifecycle_policies r
    ORDER BY r.policy_name, r.registered_at DESC
) p
LEFT JOIN lifecycle._timescaledb_jobs() j ON j.job_id = p.job_id
LEFT JOIN LATERAL (
    SELECT x.started_at, x.finished_at, x.status, x.error
    FROM lifecycle.lifecycle_executions x
    WHERE x.policy_name = p.policy_name
    ORDER BY x.started_at DESC
    LIMIT 1
) e ON true
LEFT JOIN LATERAL (
    SELECT max(x.finished_at) AS finished_at
    FROM lifecycle.lifecycle_executions x
    WHERE x.policy_name = p.policy_name AND x.status = 'succeeded' AND NOT x.dry_run
) ok ON true;

COMMENT ON VIEW lifecycle.lifecycle_policy_status IS
    'One row per policy_name (latest registration) with its TimescaleDB job, last execution and next due time.';

-- One row per hypertable: chunk counts and compression figures.
CREATE OR REPLACE VIEW lifecycle.compression_statistics AS
SELECT f.hypertable,
       f.total_chunks,
       f.compressed_chunks,
       f.before_bytes,
       f.after_bytes,
       CASE WHEN f.after_bytes > 0
            THEN round(f.before_bytes::numeric / f.after_bytes, 2) END AS compression_ratio,
       CASE WHEN f.before_bytes > 0
            THEN round(100 * (1 - f.after_bytes::numeric / f.before_bytes), 2) END AS space_saved_pct
FROM lifecycle._hypertable_compression_figures(NULL) f;

COMMENT ON VIEW lifecycle.compression_statistics IS
    'One row per hypertable: chunks, compressed chunks, bytes before/after compression, ratio, space saved.';

-- One row per (rule_name, hypertable) of the cleanup log.
CREATE OR REPLACE VIEW lifecycle.cleanup_statistics AS
SELECT c.rule_name,
       c.hypertable,
       count(*)                                        AS runs,
       count(*) FILTER (WHERE c.dry_run)               AS dry_runs,
       count(*) FILTER (WHERE c.status = 'failed')     AS failures,
       sum(c.rows_matched)::bigint                     AS rows_matched_total,
       sum(c.rows_deleted)::bigint                     AS rows_deleted_total,
       max(c.executed_at)                              AS last_executed_at,
       (array_agg(c.status ORDER BY c.executed_at DESC))[1] AS last_status
FROM lifecycle.cleanup_operations c
GROUP BY c.rule_name, c.hypertable;

COMMENT ON VIEW lifecycle.cleanup_statistics IS
    'Per cleanup rule and hypertable: runs, dry runs, failures, rows matched/deleted, last run.';
