-- 005: the runner and the registry.
--
-- * Current declarations live in lifecycle.policy_declarations, a plain table keyed by (project, stack,
--   policy_name) that no retention reaches; lifecycle.lifecycle_policies stays their append-only history
--   (one row per change). Two stacks or projects on one database never collide on policy names.
-- * A declaration is live (enabled) or removed; whether TimescaleDB's scheduler also runs the job
--   (`scheduled`) is a parameter of the declaration, never a reason to hide it from the runner.
-- * Registering records a declaration and nothing else: the job itself is reconciled by whoever declares it
--   (the Pulumi provider, or create_lifecycle_*_policy for SQL users), once.
-- * A run never counts the whole hypertable: row figures are TimescaleDB's estimates (rows_estimated), and
--   every writer of a table (providers, runner) takes the same advisory lock,
--   pg_advisory_xact_lock(hashtext('lifecycle:' || 'schema.table')).
-- Safe to run again (IF NOT EXISTS, CREATE OR REPLACE, ON CONFLICT), also after 002/003 ran again.

CREATE TABLE IF NOT EXISTS lifecycle.policy_declarations (
    project       text        NOT NULL DEFAULT '',   -- '' for declarations made in SQL without a project
    stack         text        NOT NULL DEFAULT '',
    policy_name   text        NOT NULL,
    hypertable    text        NOT NULL,              -- 'schema.table'
    kind          text        NOT NULL CHECK (kind IN ('compression', 'retention')),
    parameters    jsonb       NOT NULL DEFAULT '{}', -- window, schedule_interval, scheduled
    environment   text,
    job_id        integer,
    enabled       boolean     NOT NULL DEFAULT true, -- false once removed from its stack
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, stack, policy_name)
);

COMMENT ON TABLE lifecycle.policy_declarations IS
    'The current policy declarations, one per (project, stack, policy_name); never subject to retention. '
    'lifecycle.lifecycle_policies holds their history.';
COMMENT ON COLUMN lifecycle.policy_declarations.enabled IS
    'true while the policy is declared; false once its stack removed it (the runner refuses to run it).';

ALTER TABLE lifecycle.lifecycle_executions ADD COLUMN IF NOT EXISTS stack text;
ALTER TABLE lifecycle.lifecycle_executions ADD COLUMN IF NOT EXISTS rows_estimated boolean;
COMMENT ON COLUMN lifecycle.lifecycle_executions.stack IS
    'The declaring stack as ''project/stack'' (NULL for executions recorded before 005).';
COMMENT ON COLUMN lifecycle.lifecycle_executions.rows_estimated IS
    'true: rows_before / rows_after are TimescaleDB''s statistics (approximate_row_count), not counts.';

-- 'project/stack' as the views show it; '' project: the stack alone.
CREATE OR REPLACE FUNCTION lifecycle._stack_label(p_project text, p_stack text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN coalesce(p_project, '') = '' THEN nullif(p_stack, '') ELSE p_project || '/' || p_stack END
$fn$;

-- The inverse: 'project/stack' -> (project, stack); a label without '/' is a stack of no project.
CREATE OR REPLACE FUNCTION lifecycle._stack_key(p_label text, OUT project text, OUT stack text)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN strpos(coalesce(p_label, ''), '/') > 0 THEN split_part(p_label, '/', 1) ELSE '' END,
           CASE WHEN strpos(coalesce(p_label, ''), '/') > 0 THEN substr(p_label, strpos(p_label, '/') + 1)
                ELSE coalesce(p_label, '') END
$fn$;

-- Existing registrations become declarations: the latest row of each name. Before 005 `enabled` also
-- meant "scheduled"; a registration whose job still exists is live whatever it said.
INSERT INTO lifecycle.policy_declarations
    (project, stack, policy_name, hypertable, kind, parameters, environment, job_id, enabled, registered_at)
SELECT k.project, k.stack, r.policy_name, r.hypertable, r.kind, r.parameters, r.environment, r.job_id,
       r.enabled OR EXISTS (SELECT 1 FROM lifecycle._timescaledb_jobs() j WHERE j.job_id = r.job_id),
       r.registered_at
FROM (
    SELECT DISTINCT ON (p.policy_name) p.*
    FROM lifecycle.lifecycle_policies p
    ORDER BY p.policy_name, p.registered_at DESC
) r
CROSS JOIN LATERAL lifecycle._stack_key(r.stack) k
ON CONFLICT DO NOTHING;

-- Records a declaration (no job is touched). Appends to the history only when something changed.
-- Returns true when it changed. A name already declared as the other kind in the same stack is refused.
CREATE OR REPLACE FUNCTION lifecycle.register_lifecycle_policy(
    p_policy_name text,
    p_hypertable text,
    p_kind text,
    p_parameters jsonb,
    p_job_id integer,
    p_project text DEFAULT '',
    p_stack text DEFAULT '',
    p_environment text DEFAULT NULL,
    p_enabled boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_project text := coalesce(p_project, '');
    v_stack   text := coalesce(p_stack, '');
    v_old     lifecycle.policy_declarations;
BEGIN
    IF p_policy_name IS NULL OR btrim(p_policy_name) = '' THEN
        RAISE EXCEPTION 'lifecycle: no policy name given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('compression', 'retention') THEN
        RAISE EXCEPTION 'lifecycle: policy %: unknown kind %, expected compression or retention',
            quote_literal(p_policy_name), quote_nullable(p_kind) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Serialise registrations of one name (two applies of one stack).
    PERFORM pg_advisory_xact_lock(hashtext('lifecycle:policy:' || v_project || '/' || v_stack || '/' || p_policy_name));
    SELECT * INTO v_old FROM lifecycle.policy_declarations d
    WHERE d.project = v_project AND d.stack = v_stack AND d.policy_name = p_policy_name
    FOR UPDATE;
    IF FOUND AND v_old.enabled AND v_old.kind <> p_kind THEN
        RAISE EXCEPTION 'lifecycle: policy name % is already declared as a % policy in stack %, not %',
            quote_literal(p_policy_name), v_old.kind,
            coalesce(lifecycle._stack_label(v_project, v_stack), '(none)'), p_kind
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF FOUND AND (v_old.hypertable, v_old.kind, v_old.parameters, v_old.environment, v_old.job_id, v_old.enabled)
                 IS NOT DISTINCT FROM (p_hypertable, p_kind, p_parameters, p_environment, p_job_id, p_enabled) THEN
        RETURN false;
    END IF;
    INSERT INTO lifecycle.policy_declarations AS d
        (project, stack, policy_name, hypertable, kind, parameters, environment, job_id, enabled, registered_at)
    VALUES (v_project, v_stack, p_policy_name, p_hypertable, p_kind, coalesce(p_parameters, '{}'), p_environment,
            p_job_id, coalesce(p_enabled, true), clock_timestamp())
    ON CONFLICT (project, stack, policy_name) DO UPDATE
        SET hypertable = EXCLUDED.hypertable, kind = EXCLUDED.kind, parameters = EXCLUDED.parameters,
            environment = EXCLUDED.environment, job_id = EXCLUDED.job_id, enabled = EXCLUDED.enabled,
            registered_at = EXCLUDED.registered_at;
    INSERT INTO lifecycle.lifecycle_policies
        (registered_at, policy_name, hypertable, kind, parameters, stack, environment, job_id, enabled)
    VALUES (clock_timestamp(), p_policy_name, p_hypertable, p_kind, coalesce(p_parameters, '{}'),
            lifecycle._stack_label(v_project, v_stack), p_environment, p_job_id, coalesce(p_enabled, true));
    RETURN true;
END
$fn$;

COMMENT ON FUNCTION lifecycle.register_lifecycle_policy(text, text, text, jsonb, integer, text, text, text, boolean) IS
    'Records (or, with p_enabled false, marks removed) the declaration of a policy in '
    'lifecycle.policy_declarations and appends the change to lifecycle.lifecycle_policies. Touches no job.';

-- Marks a declaration removed (its history keeps it). Returns false when nothing was declared.
CREATE OR REPLACE FUNCTION lifecycle.unregister_lifecycle_policy(
    p_policy_name text, p_project text DEFAULT '', p_stack text DEFAULT '')
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_old lifecycle.policy_declarations;
BEGIN
    SELECT * INTO v_old FROM lifecycle.policy_declarations d
    WHERE d.project = coalesce(p_project, '') AND d.stack = coalesce(p_stack, '') AND d.policy_name = p_policy_name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN lifecycle.register_lifecycle_policy(v_old.policy_name, v_old.hypertable, v_old.kind, v_old.parameters,
                                               v_old.job_id, v_old.project, v_old.stack, v_old.environment, false);
END
$fn$;

-- The one declaration a run by name means: p_stack (a 'project/stack' label, a stack or an environment;
-- '' for a declaration of no project and no stack) narrows it. Refuses, by name, an unknown, ambiguous or
-- removed policy.
CREATE OR REPLACE FUNCTION lifecycle._declaration(p_policy_name text, p_stack text DEFAULT NULL)
RETURNS lifecycle.policy_declarations
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_found  lifecycle.policy_declarations[];
    v_live   lifecycle.policy_declarations[];
    v_labels text;
BEGIN
    IF p_policy_name IS NULL THEN
        RAISE EXCEPTION 'lifecycle: no policy name given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT coalesce(array_agg(d ORDER BY d.project, d.stack), '{}') INTO v_found
    FROM lifecycle.policy_declarations d
    WHERE d.policy_name = p_policy_name
      AND (p_stack IS NULL OR lifecycle._stack_label(d.project, d.stack) = p_stack OR d.stack = p_stack
           OR d.environment = p_stack OR (p_stack = '' AND d.project = '' AND d.stack = ''));
    IF cardinality(v_found) = 0 THEN
        RAISE EXCEPTION 'lifecycle: no policy named % is declared%', quote_literal(p_policy_name),
            CASE WHEN p_stack IS NULL THEN '' ELSE ' in stack ' || quote_literal(p_stack) END
            USING ERRCODE = 'no_data_found';
    END IF;
    SELECT coalesce(array_agg(f), '{}') INTO v_live FROM unnest(v_found) f WHERE f.enabled;
    IF cardinality(v_live) = 0 THEN
        RAISE EXCEPTION 'lifecycle: policy % was removed from stack % (at %): it is not run',
            quote_literal(p_policy_name),
            coalesce(lifecycle._stack_label(v_found[1].project, v_found[1].stack), '(none)'), v_found[1].registered_at
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Declare it again in its stack (pulumi up) to run it.';
    END IF;
    IF cardinality(v_live) > 1 THEN
        SELECT string_agg(coalesce(lifecycle._stack_label(f.project, f.stack), '(none)'), ', ') INTO v_labels
        FROM unnest(v_live) f;
        RAISE EXCEPTION 'lifecycle: policy % is declared by several stacks (%): name the stack',
            quote_literal(p_policy_name), v_labels
            USING ERRCODE = 'ambiguous_parameter';
    END IF;
    RETURN v_live[1];
END
$fn$;

-- The rows of one chunk, estimated without reading it: TimescaleDB's approximate_row_count from the
-- statistics (compressed chunks included); for a chunk never analyzed (reltuples -1, where that would say 0),
-- the planner's estimate from its current size.
CREATE OR REPLACE FUNCTION lifecycle._estimated_rows(p_chunk regclass)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tuples real;
    v_plan   json;
    v_rows   bigint;
    v_pages  bigint;
BEGIN
    SELECT c.reltuples INTO v_tuples FROM pg_catalog.pg_class c WHERE c.oid = p_chunk;
    IF v_tuples >= 0 OR EXISTS (
            SELECT 1 FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            JOIN timescaledb_information.chunks ch ON ch.chunk_schema = n.nspname AND ch.chunk_name = c.relname
            WHERE c.oid = p_chunk AND ch.is_compressed) THEN
        EXECUTE format('SELECT %I.approximate_row_count($1)', lifecycle._extension_schema()) INTO v_rows
            USING p_chunk;
        RETURN v_rows;
    END IF;
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM ONLY %s', lifecycle._relation_ident(p_chunk)) INTO v_plan;
    -- The planner assumes at least 10 pages for a table never vacuumed: scale back to its real size.
    v_pages := pg_catalog.pg_relation_size(p_chunk) / current_setting('block_size')::bigint;
    RETURN round((v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric * v_pages / greatest(v_pages, 10))::bigint;
END
$fn$;

-- What a run of a declaration would act on: the cutoff and the chunks older than it (retention: all of
-- them; compression: the uncompressed ones), with estimates of their rows (_estimated_rows) and their sizes.
-- Reads statistics and plans only: never counts rows.
CREATE OR REPLACE FUNCTION lifecycle._execution_plan(
    p_decl lifecycle.policy_declarations,
    OUT hypertable regclass,
    OUT ht_label text,
    OUT window_key text,
    OUT window_text text,
    OUT cutoff text,
    OUT cutoff_type regtype,
    OUT chunks regclass[],
    OUT chunk_rows bigint,
    OUT chunk_bytes bigint,
    OUT rows_before bigint,
    OUT bytes_before bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ext name := lifecycle._extension_schema();
    v_ht  record;
BEGIN
    window_key := CASE p_decl.kind WHEN 'retention' THEN 'drop_after' ELSE 'compress_after' END;
    hypertable := lifecycle._resolve_hypertable(p_decl.hypertable);
    SELECT * INTO v_ht FROM lifecycle._hypertable_info(hypertable);
    ht_label := v_ht.ht_label;
    window_text := lifecycle._parse_window(v_ht.ht_label, v_ht.window_type, p_decl.parameters ->> window_key,
                                           window_key);
    IF v_ht.window_type = 'interval'::regtype THEN
        cutoff := window_text;                 -- show_chunks / drop_chunks measure it back from now()
        cutoff_type := 'interval'::regtype;
    ELSE
        cutoff := (lifecycle._integer_now(hypertable) - window_text::bigint)::text;
        cutoff_type := v_ht.window_type;
    END IF;

    EXECUTE format('SELECT coalesce(array_agg(s.c ORDER BY s.n), ''{}'') '
                   'FROM %I.show_chunks($1, older_than => $2::%s) WITH ORDINALITY AS s(c, n)',
                   v_ext, cutoff_type)
        INTO chunks
        USING hypertable, cutoff;
    IF p_decl.kind = 'compression' THEN
        SELECT coalesce(array_agg(u.c ORDER BY u.n), '{}') INTO chunks
        FROM unnest(chunks) WITH ORDINALITY AS u(c, n)
        JOIN pg_catalog.pg_class k ON k.oid = u.c
        JOIN pg_catalog.pg_namespace kn ON kn.oid = k.relnamespace
        JOIN timescaledb_information.chunks ch ON ch.chunk_schema = kn.nspname AND ch.chunk_name = k.relname
        WHERE NOT ch.is_compressed;
    END IF;

    EXECUTE format('SELECT coalesce(sum(lifecycle._estimated_rows(c)), 0)::bigint FROM %I.show_chunks($1) c', v_ext)
        INTO rows_before USING hypertable;
    bytes_before := lifecycle._hypertable_size(hypertable);
    SELECT coalesce(sum(lifecycle._estimated_rows(c)), 0)::bigint INTO chunk_rows FROM unnest(chunks) c;
    EXECUTE format('SELECT coalesce(sum(d.total_bytes), 0)::bigint FROM %I.chunks_detailed_size($1) d '
                   'WHERE (quote_ident(d.chunk_schema) || ''.'' || quote_ident(d.chunk_name))::regclass '
                   '= ANY ($2)', v_ext)
        INTO chunk_bytes USING hypertable, chunks;
END
$fn$;

-- The lock every writer of one table takes (reconcile/locks.py takes the same one).
CREATE OR REPLACE FUNCTION lifecycle._lock_table(p_label text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pg_advisory_xact_lock(hashtext('lifecycle:' || p_label))
$fn$;

CREATE OR REPLACE FUNCTION lifecycle._hypertable_size(p_hypertable regclass)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_size bigint;
BEGIN
    EXECUTE format('SELECT %I.hypertable_size($1)', lifecycle._extension_schema()) INTO v_size USING p_hypertable;
    RETURN v_size;
END
$fn$;

-- Drops the chunks older than the cutoff, under the table's lock; returns their names.
CREATE OR REPLACE FUNCTION lifecycle._drop_chunks(p_hypertable regclass, p_cutoff text, p_cutoff_type regtype)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_done text[];
BEGIN
    PERFORM lifecycle._lock_table(lifecycle._relation_label(p_hypertable));
    EXECUTE format('SELECT coalesce(array_agg(d.c), ''{}'') FROM %I.drop_chunks($1, older_than => $2::%s) AS d(c)',
                   lifecycle._extension_schema(), p_cutoff_type)
        INTO v_done
        USING p_hypertable, p_cutoff;
    RETURN v_done;
END
$fn$;

-- Compresses one chunk under its hypertable's lock.
CREATE OR REPLACE FUNCTION lifecycle._compress_chunk(p_hypertable regclass, p_chunk regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM lifecycle._lock_table(lifecycle._relation_label(p_hypertable));
    EXECUTE format('SELECT %I.compress_chunk($1, if_not_compressed => true)', lifecycle._extension_schema())
        USING p_chunk;
END
$fn$;

-- Logs one execution (and, after a compression that did something, a compression_metrics snapshot).
-- Rows after a run are estimated from the plan: a retention run removes its chunks' rows, compression keeps
-- every row.
CREATE OR REPLACE FUNCTION lifecycle._record_execution(
    p_decl lifecycle.policy_declarations,
    p_started timestamptz,
    p_status text,
    p_error text,
    p_affected integer,
    p_rows_before bigint,
    p_rows_after bigint,
    p_bytes_before bigint,
    p_bytes_after bigint,
    p_dry_run boolean,
    p_details jsonb)
RETURNS lifecycle.lifecycle_executions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_result lifecycle.lifecycle_executions;
BEGIN
    IF p_decl.kind = 'compression' AND NOT coalesce(p_dry_run, false)
       AND (p_status = 'succeeded' OR coalesce(p_affected, 0) > 0) THEN
        INSERT INTO lifecycle.compression_metrics
            (captured_at, hypertable, total_chunks, compressed_chunks, before_bytes, after_bytes)
        SELECT clock_timestamp(), f.hypertable, f.total_chunks, f.compressed_chunks, f.before_bytes, f.after_bytes
        FROM lifecycle._hypertable_compression_figures(p_decl.hypertable) f;
    END IF;
    INSERT INTO lifecycle.lifecycle_executions
        (started_at, policy_name, hypertable, kind, job_id, finished_at, status, error, chunks_affected,
         rows_before, rows_after, bytes_before, bytes_after, dry_run, details, stack, rows_estimated)
    VALUES
        (p_started, p_decl.policy_name, p_decl.hypertable, p_decl.kind, p_decl.job_id, clock_timestamp(),
         p_status, p_error, coalesce(p_affected, 0), p_rows_before, p_rows_after, p_bytes_before, p_bytes_after,
         coalesce(p_dry_run, false), coalesce(p_details, '{}'), lifecycle._stack_label(p_decl.project, p_decl.stack),
         p_rows_before IS NOT NULL OR p_rows_after IS NOT NULL)
    RETURNING * INTO v_result;
    RETURN v_result;
END
$fn$;

-- Runs a declared policy once, now, in ONE transaction, and logs it. For SQL users and small tables:
-- `lifecycle run` (DataLifecycleManager) runs the same steps with one short transaction per chunk.
CREATE OR REPLACE FUNCTION lifecycle._execute_declaration(p_decl lifecycle.policy_declarations, p_dry_run boolean)
RETURNS lifecycle.lifecycle_executions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_dry_run     boolean := coalesce(p_dry_run, false);
    v_started     timestamptz := clock_timestamp();
    v_plan        record;
    v_chunk       regclass;
    v_done        text[] := '{}';
    v_rows_before bigint;
    v_rows_after  bigint;
    v_bytes_before bigint;
    v_bytes_after bigint;
    v_status      text;
    v_error       text;
    v_details     jsonb;
    v_sqlstate    text;
    v_context     text;
    v_key         text := CASE p_decl.kind WHEN 'retention' THEN 'drop_after' ELSE 'compress_after' END;
BEGIN
    v_details := jsonb_build_object('registered_at', p_decl.registered_at, v_key, p_decl.parameters ->> v_key);
    BEGIN
        SELECT * INTO v_plan FROM lifecycle._execution_plan(p_decl);
        v_rows_before := v_plan.rows_before;
        v_bytes_before := v_plan.bytes_before;
        v_details := v_details || jsonb_build_object(
            v_key, v_plan.window_text, 'older_than', v_plan.cutoff, 'chunks', to_jsonb(v_plan.chunks::text[]),
            'chunk_rows', v_plan.chunk_rows, 'chunk_bytes', v_plan.chunk_bytes);
        IF v_dry_run THEN
            v_done := v_plan.chunks::text[];
            v_status := 'dry_run';
        ELSIF p_decl.kind = 'retention' THEN
            v_done := lifecycle._drop_chunks(v_plan.hypertable, v_plan.cutoff, v_plan.cutoff_type);
            v_details := v_details || jsonb_build_object('chunks', to_jsonb(v_done));
            v_status := 'succeeded';
        ELSE
            FOREACH v_chunk IN ARRAY v_plan.chunks LOOP
                PERFORM lifecycle._compress_chunk(v_plan.hypertable, v_chunk);
                v_done := v_done || v_chunk::text;
            END LOOP;
            v_status := 'succeeded';
        END IF;
        IF p_decl.kind = 'retention' THEN
            v_rows_after := greatest(v_rows_before - v_plan.chunk_rows, 0);
        ELSE
            v_rows_after := v_rows_before;      -- compression keeps every row
        END IF;
        IF NOT v_dry_run THEN
            v_bytes_after := lifecycle._hypertable_size(v_plan.hypertable);
        ELSIF p_decl.kind = 'retention' THEN
            v_bytes_after := v_bytes_before - v_plan.chunk_bytes;
        END IF;                                 -- a compression dry run cannot know the bytes after
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_context = PG_EXCEPTION_CONTEXT;
        v_status := 'failed';
        v_error := SQLERRM;
        v_done := '{}';
        v_rows_after := NULL;
        v_bytes_after := NULL;
        -- Whatever was listed was not acted on (the whole run rolled back): keep it under a name that says so.
        v_details := (v_details - 'chunks')
                     || jsonb_strip_nulls(jsonb_build_object('planned_chunks', v_details -> 'chunks'))
                     || jsonb_build_object('sqlstate', v_sqlstate, 'context', v_context);
    END;
    RETURN lifecycle._record_execution(p_decl, v_started, v_status, v_error, cardinality(v_done), v_rows_before,
                                       v_rows_after, v_bytes_before, v_bytes_after, v_dry_run, v_details);
END
$fn$;

CREATE OR REPLACE FUNCTION lifecycle.execute_lifecycle_policy(
    p_policy_name text,
    p_dry_run boolean DEFAULT false)
RETURNS lifecycle.lifecycle_executions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN lifecycle._execute_declaration(lifecycle._declaration(p_policy_name, NULL), p_dry_run);
END
$fn$;

-- No defaults here: a call with one or two arguments stays the two-argument function's.
CREATE OR REPLACE FUNCTION lifecycle.execute_lifecycle_policy(
    p_policy_name text,
    p_dry_run boolean,
    p_stack text)
RETURNS lifecycle.lifecycle_executions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN lifecycle._execute_declaration(lifecycle._declaration(p_policy_name, p_stack), p_dry_run);
END
$fn$;

COMMENT ON FUNCTION lifecycle.execute_lifecycle_policy(text, boolean) IS
    'Runs a live declared policy once, in one transaction under the table''s lifecycle lock: retention drops '
    'the chunks older than drop_after, compression compresses the uncompressed chunks older than compress_after. '
    'A removed, unknown or ambiguous (several stacks) name is refused. Row figures are estimates '
    '(rows_estimated). Errors roll the work back and are logged, not raised. For large tables use '
    '`lifecycle run`, which compresses chunk by chunk in short transactions.';
COMMENT ON FUNCTION lifecycle.execute_lifecycle_policy(text, boolean, text) IS
    'execute_lifecycle_policy(name, dry_run) for the declaration of one stack (''project/stack'', stack or '
    'environment).';

-- The SQL users' path: converge the job (add or alter_job) and register, in one call. The Pulumi provider
-- converges the job itself and only registers (register_lifecycle_policy): a job is never reconciled twice.
CREATE OR REPLACE FUNCTION lifecycle._create_lifecycle_policy(
    p_kind text,
    p_hypertable regclass,
    p_window text,
    p_schedule_interval interval,
    p_stack text,
    p_environment text,
    p_policy_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ext         name := lifecycle._extension_schema();
    v_key         text;
    v_created_key text;
    v_ht          record;
    v_window      text;
    v_window_json jsonb;
    v_job         record;
    v_job_id      integer;
    v_same        boolean;
    v_config      jsonb;
    v_schedule    interval;
    v_scheduled   boolean;
    v_name        text;
    v_scope       record;
    v_known_kind  text;
BEGIN
    IF p_kind = 'retention' THEN
        v_key := 'drop_after';
        v_created_key := 'drop_created_before';
    ELSIF p_kind = 'compression' THEN
        v_key := 'compress_after';
        v_created_key := 'compress_created_before';
    ELSE
        RAISE EXCEPTION 'lifecycle: unknown policy kind %', quote_literal(p_kind)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT * INTO v_scope FROM lifecycle._stack_key(p_stack);
    SELECT * INTO v_ht FROM lifecycle._hypertable_info(p_hypertable);
    v_window := lifecycle._parse_window(v_ht.ht_label, v_ht.window_type, p_window, v_key);
    v_window_json := CASE WHEN v_ht.window_type = 'interval'::regtype THEN to_jsonb(v_window)
                          ELSE to_jsonb(v_window::bigint) END;
    IF p_schedule_interval IS NOT NULL AND p_schedule_interval <= interval '0' THEN
        RAISE EXCEPTION 'lifecycle: invalid schedule_interval % for hypertable %: it must be positive',
            quote_literal(p_schedule_interval::text), v_ht.ht_label
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_ht.window_type <> 'interval'::regtype THEN
        PERFORM lifecycle._integer_now(p_hypertable);
    END IF;
    IF p_kind = 'compression' AND NOT v_ht.compression_enabled THEN
        RAISE EXCEPTION 'lifecycle: compression is not enabled on hypertable %', v_ht.ht_label
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('ALTER TABLE %I.%I SET (timescaledb.compress) first.', v_ht.ht_schema, v_ht.ht_table);
    END IF;

    v_name := coalesce(nullif(btrim(p_policy_name), ''), p_kind || ':' || v_ht.ht_label);
    SELECT d.kind INTO v_known_kind FROM lifecycle.policy_declarations d
    WHERE d.project = v_scope.project AND d.stack = v_scope.stack AND d.policy_name = v_name AND d.enabled;
    IF v_known_kind IS NOT NULL AND v_known_kind <> p_kind THEN
        RAISE EXCEPTION 'lifecycle: policy name % is already registered as a % policy, not %',
            quote_literal(v_name), v_known_kind, p_kind
            USING ERRCODE = 'duplicate_object';
    END IF;

    PERFORM lifecycle._lock_table(v_ht.ht_label);
    SELECT j.job_id, j.config, j.schedule_interval INTO v_job
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'policy_' || p_kind
      AND j.job_id >= 1000
      AND j.hypertable_schema = v_ht.ht_schema
      AND j.hypertable_name = v_ht.ht_table
    ORDER BY j.job_id
    LIMIT 1;

    IF FOUND THEN
        v_job_id := v_job.job_id;
        IF v_ht.window_type = 'interval'::regtype THEN
            v_same := lifecycle._try_interval(v_job.config ->> v_key) = v_window::interval;
        ELSE
            v_same := jsonb_typeof(v_job.config -> v_key) = 'number'
                      AND (v_job.config ->> v_key)::numeric = v_window::numeric;
        END IF;
        v_config := NULL;
        IF NOT coalesce(v_same, false) OR v_job.config ? v_created_key THEN
            v_config := (v_job.config - v_created_key) || jsonb_build_object(v_key, v_window_json);
        END IF;
        IF p_schedule_interval IS NOT DISTINCT FROM v_job.schedule_interval THEN
            p_schedule_interval := NULL;
        END IF;
        IF v_config IS NOT NULL OR p_schedule_interval IS NOT NULL THEN
            EXECUTE format('SELECT (%I.alter_job($1, schedule_interval => $2, config => $3)).job_id', v_ext)
                INTO v_job_id
                USING v_job.job_id, p_schedule_interval, v_config;
        END IF;
    ELSE
        EXECUTE format('SELECT %I.%I($1, %I => $2::%s, schedule_interval => $3)',
                       v_ext, 'add_' || p_kind || '_policy', v_key, v_ht.window_type)
            INTO v_job_id
            USING p_hypertable, v_window, p_schedule_interval;
        IF v_job_id IS NULL OR v_job_id < 0 THEN
            RAISE EXCEPTION 'lifecycle: TimescaleDB did not create a % policy on hypertable % (returned %)',
                p_kind, v_ht.ht_label, coalesce(v_job_id::text, 'NULL');
        END IF;
    END IF;

    SELECT j.schedule_interval, j.scheduled INTO v_schedule, v_scheduled
    FROM timescaledb_information.jobs j
    WHERE j.job_id = v_job_id;

    PERFORM lifecycle.register_lifecycle_policy(
        v_name, v_ht.ht_label, p_kind,
        jsonb_build_object(v_key, v_window, 'schedule_interval', v_schedule::text,
                           'scheduled', coalesce(v_scheduled, true)),
        v_job_id, v_scope.project, v_scope.stack, p_environment, true);
    RETURN v_job_id;
END
$fn$;

-- One row per current declaration: its TimescaleDB job and its latest execution. `stack` is
-- 'project/stack'; `enabled` false: removed from its stack (kept so that status shows it).
CREATE OR REPLACE VIEW lifecycle.lifecycle_policy_status AS
SELECT p.policy_name,
       p.hypertable,
       p.kind,
       p.parameters,
       lifecycle._stack_label(p.project, p.stack) AS stack,
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
FROM lifecycle.policy_declarations p
LEFT JOIN lifecycle._timescaledb_jobs() j ON j.job_id = p.job_id
LEFT JOIN LATERAL (
    SELECT x.started_at, x.finished_at, x.status, x.error
    FROM lifecycle.lifecycle_executions x
    WHERE x.policy_name = p.policy_name
      AND (x.stack IS NULL OR x.stack = lifecycle._stack_label(p.project, p.stack))
    ORDER BY x.started_at DESC
    LIMIT 1
) e ON true
LEFT JOIN LATERAL (
    SELECT max(x.finished_at) AS finished_at
    FROM lifecycle.lifecycle_executions x
    WHERE x.policy_name = p.policy_name
      AND (x.stack IS NULL OR x.stack = lifecycle._stack_label(p.project, p.stack))
      AND x.status = 'succeeded' AND NOT x.dry_run
) ok ON true;

COMMENT ON VIEW lifecycle.lifecycle_policy_status IS
    'One row per current declaration (lifecycle.policy_declarations) with its TimescaleDB job, last execution '
    'and next due time. enabled = still declared by its stack (whether or not TimescaleDB schedules the job).';

COMMENT ON COLUMN lifecycle.compression_statistics.before_bytes IS
    'Bytes the COMPRESSED chunks took before compression (hypertable_compression_stats); uncompressed chunks '
    'are not counted: compare with after_bytes, not with the table''s size.';
COMMENT ON COLUMN lifecycle.compression_statistics.after_bytes IS
    'Bytes the compressed chunks take now.';

-- Per hypertable: chunk and compression figures, live declared policies, executions.
CREATE OR REPLACE FUNCTION lifecycle.get_lifecycle_statistics(p_hypertable regclass DEFAULT NULL)
RETURNS TABLE (
    hypertable text,
    total_chunks integer,
    compressed_chunks integer,
    before_bytes bigint,
    after_bytes bigint,
    compression_ratio numeric,
    policies integer,
    executions integer,
    failed_executions integer,
    last_execution_at timestamptz,
    chunks_dropped bigint,
    chunks_compressed bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_label text;
BEGIN
    IF p_hypertable IS NOT NULL THEN
        v_label := lifecycle._relation_label(p_hypertable);
    END IF;
    RETURN QUERY
    SELECT s.hypertable,
           s.total_chunks,
           s.compressed_chunks,
           s.before_bytes,
           s.after_bytes,
           s.compression_ratio,
           coalesce(p.n, 0)::integer,
           coalesce(e.n, 0)::integer,
           coalesce(e.failed, 0)::integer,
           e.last_at,
           coalesce(e.dropped, 0)::bigint,
           coalesce(e.compressed, 0)::bigint
    FROM lifecycle.compression_statistics s
    LEFT JOIN (
        SELECT d.hypertable AS ht, count(*) AS n
        FROM lifecycle.policy_declarations d
        WHERE d.enabled
        GROUP BY d.hypertable
    ) p ON p.ht = s.hypertable
    LEFT JOIN (
        SELECT x.hypertable AS ht,
               count(*) AS n,
               count(*) FILTER (WHERE x.status = 'failed') AS failed,
               max(x.started_at) AS last_at,
               sum(x.chunks_affected) FILTER (WHERE x.kind = 'retention' AND x.status = 'succeeded') AS dropped,
               sum(x.chunks_affected) FILTER (WHERE x.kind = 'compression' AND x.status = 'succeeded') AS compressed
        FROM lifecycle.lifecycle_executions x
        GROUP BY x.hypertable
    ) e ON e.ht = s.hypertable
    WHERE p_hypertable IS NULL OR s.hypertable = v_label
    ORDER BY s.hypertable;
END
$fn$;

COMMENT ON FUNCTION lifecycle.get_lifecycle_statistics(regclass) IS
    'Per hypertable (or only p_hypertable): chunks, compression figures (before_bytes: compressed chunks only), '
    'live declared policies, executions (all, including dry runs), failures, last execution, chunks dropped / '
    'compressed by successful runs.';
