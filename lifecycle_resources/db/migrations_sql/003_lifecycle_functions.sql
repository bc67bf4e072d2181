-- 003: lifecycle functions (PL/pgSQL).
--
-- TimescaleDB functions are called through the schema the extension really lives in
-- (lifecycle._extension_schema(), EXECUTE format('%I.fn(..)')); identifiers go through %I, values
-- through USING parameters. Every function runs with search_path = pg_catalog, pg_temp (except
-- execute_cleanup_operation, whose trusted predicate is written against the caller's search_path).
-- Safe to run again: CREATE OR REPLACE throughout.

-- 'schema.table' of a relation (plain, unquoted: the form the lifecycle tables store).
CREATE OR REPLACE FUNCTION lifecycle._relation_label(p_relation regclass)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT n.nspname::text || '.' || c.relname::text
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_relation
$fn$;

-- A relation as a quoted, schema-qualified SQL identifier.
CREATE OR REPLACE FUNCTION lifecycle._relation_ident(p_relation regclass)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_relation
$fn$;

-- What lifecycle policies need to know about a hypertable; refuses anything else.
-- window_type is the type a drop_after / compress_after window takes on it: interval for
-- timestamptz / timestamp / date time columns, the column's own integer type otherwise.
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

    SELECT h.compression_enabled INTO compression_enabled
    FROM timescaledb_information.hypertables h
    WHERE h.hypertable_schema = ht_schema AND h.hypertable_name = ht_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lifecycle: % is not a hypertable', ht_label
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Lifecycle policies apply to TimescaleDB hypertables (create_hypertable) only.';
    END IF;

    SELECT d.column_name INTO time_column
    FROM timescaledb_information.dimensions d
    WHERE d.hypertable_schema = ht_schema AND d.hypertable_name = ht_table AND d.dimension_type = 'Time'
    ORDER BY d.dimension_number
    LIMIT 1;
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

-- Parses a drop_after / compress_after window for a hypertable whose windows are of p_window_type;
-- returns it as the database prints it. Refuses, naming the hypertable and the value, anything that is
-- not a positive value of that type.
CREATE OR REPLACE FUNCTION lifecycle._parse_window(
    p_hypertable text, p_window_type regtype, p_window text, p_what text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_interval interval;
    v_integer  bigint;
BEGIN
    IF p_window IS NULL OR btrim(p_window) = '' THEN
        RAISE EXCEPTION 'lifecycle: % for hypertable % is missing', p_what, p_hypertable
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF p_window_type = 'interval'::regtype THEN
        BEGIN
            v_interval := p_window::interval;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'lifecycle: invalid % % for hypertable %: not an interval (%)',
                p_what, quote_literal(p_window), p_hypertable, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Its time column is a timestamp: give an interval such as ''30 days''.';
        END;
        IF v_interval <= interval '0' THEN
            RAISE EXCEPTION 'lifecycle: invalid % % for hypertable %: the interval must be positive',
                p_what, quote_literal(p_window), p_hypertable
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN v_interval::text;
    END IF;

    BEGIN
        v_integer := p_window::bigint;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'lifecycle: invalid % % for hypertable %: not an integer (%)',
            p_what, quote_literal(p_window), p_hypertable, SQLERRM
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Its time column is %s: give a window in the column''s own units.', p_window_type);
    END;
    IF v_integer <= 0 THEN
        RAISE EXCEPTION 'lifecycle: invalid % % for hypertable %: the window must be positive',
            p_what, quote_literal(p_window), p_hypertable
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        EXECUTE format('SELECT $1::%s', p_window_type) USING v_integer;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RAISE EXCEPTION 'lifecycle: invalid % % for hypertable %: out of range for its % time column',
            p_what, quote_literal(p_window), p_hypertable, p_window_type
            USING ERRCODE = 'invalid_parameter_value';
    END;
    RETURN v_integer::text;
END
$fn$;

-- The hypertable a registration names ('schema.table' as stored; a quoted name is accepted too).
CREATE OR REPLACE FUNCTION lifecycle._resolve_hypertable(p_hypertable text)
RETURNS regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_relation regclass;
BEGIN
    SELECT (quote_ident(h.hypertable_schema) || '.' || quote_ident(h.hypertable_name))::regclass
    INTO v_relation
    FROM timescaledb_information.hypertables h
    WHERE h.hypertable_schema::text || '.' || h.hypertable_name::text = p_hypertable
    LIMIT 1;
    IF v_relation IS NULL THEN
        BEGIN
            v_relation := to_regclass(p_hypertable);
        EXCEPTION WHEN OTHERS THEN
            v_relation := NULL;
        END;
    END IF;
    IF v_relation IS NULL THEN
        RAISE EXCEPTION 'lifecycle: hypertable % does not exist', p_hypertable
            USING ERRCODE = 'undefined_table';
    END IF;
    RETURN v_relation;
END
$fn$;

-- The current time of an integer-time hypertable, from its integer_now function.
CREATE OR REPLACE FUNCTION lifecycle._integer_now(p_hypertable regclass)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_label  text := lifecycle._relation_label(p_hypertable);
    v_schema name;
    v_func   name;
    v_now    bigint;
BEGIN
    SELECT d.integer_now_func_schema, d.integer_now_func INTO v_schema, v_func
    FROM _timescaledb_catalog.dimension d
    JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id
    JOIN pg_catalog.pg_namespace n ON n.nspname = h.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = h.table_name
    WHERE c.oid = p_hypertable AND d.interval_length IS NOT NULL
    ORDER BY d.id
    LIMIT 1;
    IF v_func IS NULL THEN
        RAISE EXCEPTION 'lifecycle: hypertable % has an integer time column but no integer_now function', v_label
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set one with set_integer_now_func() so that windows can be measured back from "now".';
    END IF;
    EXECUTE format('SELECT (%I.%I())::bigint', v_schema, v_func) INTO v_now;
    RETURN v_now;
END
$fn$;

-- Shared body of create_lifecycle_retention_policy / create_lifecycle_compression_policy.
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
        -- TimescaleDB measures integer windows back from integer_now(): refuse early, by name.
        PERFORM lifecycle._integer_now(p_hypertable);
    END IF;
    IF p_kind = 'compression' AND NOT v_ht.compression_enabled THEN
        RAISE EXCEPTION 'lifecycle: compression is not enabled on hypertable %', v_ht.ht_label
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('ALTER TABLE %I.%I SET (timescaledb.compress) first.', v_ht.ht_schema, v_ht.ht_table);
    END IF;

    v_name := coalesce(nullif(btrim(p_policy_name), ''), p_kind || ':' || v_ht.ht_label);
    SELECT r.kind INTO v_known_kind
    FROM lifecycle.lifecycle_policies r
    WHERE r.policy_name = v_name
    ORDER BY r.registered_at DESC
    LIMIT 1;
    IF v_known_kind IS NOT NULL AND v_known_kind <> p_kind THEN
        RAISE EXCEPTION 'lifecycle: policy name % is already registered as a % policy, not %',
            quote_literal(v_name), v_known_kind, p_kind
            USING ERRCODE = 'duplicate_object';
    END IF;

    -- Adopt the hypertable's existing TimescaleDB job (ours from an earlier call, or anyone's).
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
            p_schedule_interval := NULL;  -- nothing to change
        END IF;
        IF v_config IS NOT NULL OR p_schedule_interval IS NOT NULL THEN
            -- alter_job leaves NULL arguments as they are.
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

    INSERT INTO lifecycle.lifecycle_policies
        (registered_at, policy_name, hypertable, kind, parameters, stack, environment, job_id, enabled)
    VALUES
        (clock_timestamp(), v_name, v_ht.ht_label, p_kind,
         jsonb_build_object(v_key, v_window, 'schedule_interval', v_schedule::text),
         p_stack, p_environment, v_job_id, coalesce(v_scheduled, true));
    RETURN v_job_id;
END
$fn$;

CREATE OR REPLACE FUNCTION lifecycle.create_lifecycle_retention_policy(
    p_hypertable regclass,
    p_drop_after text,
    p_schedule_interval interval DEFAULT NULL,
    p_stack text DEFAULT NULL,
    p_environment text DEFAULT NULL,
    p_policy_name text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN lifecycle._create_lifecycle_policy('retention', p_hypertable, p_drop_after, p_schedule_interval,
                                              p_stack, p_environment, p_policy_name);
END
$fn$;

COMMENT ON FUNCTION lifecycle.create_lifecycle_retention_policy(regclass, text, interval, text, text, text) IS
    'Adds (add_retention_policy) or updates (alter_job) the retention job of a hypertable, registers the '
    'declaration in lifecycle.lifecycle_policies and returns the job id. drop_after is an interval for '
    'timestamp/date time columns, an integer in the column''s units for integer time columns.';

CREATE OR REPLACE FUNCTION lifecycle.create_lifecycle_compression_policy(
    p_hypertable regclass,
    p_compress_after text,
    p_schedule_interval interval DEFAULT NULL,
    p_stack text DEFAULT NULL,
    p_environment text DEFAULT NULL,
    p_policy_name text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN lifecycle._create_lifecycle_policy('compression', p_hypertable, p_compress_after, p_schedule_interval,
                                              p_stack, p_environment, p_policy_name);
END
$fn$;

COMMENT ON FUNCTION lifecycle.create_lifecycle_compression_policy(regclass, text, interval, text, text, text) IS
    'Adds (add_compression_policy) or updates (alter_job) the compression job of a hypertable, registers the '
    'declaration in lifecycle.lifecycle_policies and returns the job id. Compression must be enabled on it.';

-- Runs a registered policy once, now, and logs it in lifecycle.lifecycle_executions.
CREATE OR REPLACE FUNCTION lifecycle.execute_lifecycle_policy(
    p_policy_name text,
    p_dry_run boolean DEFAULT false)
RETURNS lifecycle.lifecycle_executions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_reg          lifecycle.lifecycle_policies;
    v_result       lifecycle.lifecycle_executions;
    v_dry_run      boolean := coalesce(p_dry_run, false);
    v_started      timestamptz := clock_timestamp();
    v_ext          name;
    v_rel          regclass;
    v_ht           record;
    v_key          text;
    v_window       text;
    v_cutoff       text;
    v_cutoff_type  regtype;
    v_older        regclass[];
    v_chunks       regclass[] := '{}';
    v_chunk        regclass;
    v_done         text[];
    v_count        bigint;
    v_rows_in      bigint := 0;
    v_bytes_in     bigint;
    v_rows_before  bigint;
    v_rows_after   bigint;
    v_bytes_before bigint;
    v_bytes_after  bigint;
    v_affected     integer := 0;
    v_status       text;
    v_error        text;
    v_details      jsonb;
    v_sqlstate     text;
    v_context      text;
BEGIN
    IF p_policy_name IS NULL THEN
        RAISE EXCEPTION 'lifecycle: no policy name given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_reg
    FROM lifecycle.lifecycle_policies r
    WHERE r.policy_name = p_policy_name
    ORDER BY r.registered_at DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lifecycle: no policy named % is registered in lifecycle.lifecycle_policies',
            quote_literal(p_policy_name)
            USING ERRCODE = 'no_data_found';
    END IF;
    v_key := CASE v_reg.kind WHEN 'retention' THEN 'drop_after' ELSE 'compress_after' END;
    v_window := v_reg.parameters ->> v_key;
    v_details := jsonb_build_object('registered_at', v_reg.registered_at, v_key, v_window);

    -- All the work is one subtransaction: on any error it is rolled back as a whole and the
    -- failure is logged (and returned) instead of raised.
    BEGIN
        v_ext := lifecycle._extension_schema();
        v_rel := lifecycle._resolve_hypertable(v_reg.hypertable);
        SELECT * INTO v_ht FROM lifecycle._hypertable_info(v_rel);
        v_window := lifecycle._parse_window(v_ht.ht_label, v_ht.window_type, v_window, v_key);
        IF v_ht.window_type = 'interval'::regtype THEN
            v_cutoff := v_window;                 -- show_chunks / drop_chunks measure it back from now()
            v_cutoff_type := 'interval'::regtype;
        ELSE
            v_cutoff := (lifecycle._integer_now(v_rel) - v_window::bigint)::text;
            v_cutoff_type := v_ht.window_type;
        END IF;
        v_details := v_details || jsonb_build_object('older_than', v_cutoff);

        EXECUTE format('SELECT count(*) FROM %I.%I', v_ht.ht_schema, v_ht.ht_table) INTO v_rows_before;
        EXECUTE format('SELECT %I.hypertable_size($1)', v_ext) INTO v_bytes_before USING v_rel;

        EXECUTE format('SELECT coalesce(array_agg(s.c ORDER BY s.n), ''{}'') '
                       'FROM %I.show_chunks($1, older_than => $2::%s) WITH ORDINALITY AS s(c, n)',
                       v_ext, v_cutoff_type)
            INTO v_older
            USING v_rel, v_cutoff;

        IF v_reg.kind = 'retention' THEN
            v_chunks := v_older;
        ELSE
            SELECT coalesce(array_agg(u.c ORDER BY u.n), '{}') INTO v_chunks
            FROM unnest(v_older) WITH ORDINALITY AS u(c, n)
            JOIN pg_catalog.pg_class k ON k.oid = u.c
            JOIN pg_catalog.pg_namespace kn ON kn.oid = k.relnamespace
            JOIN timescaledb_information.chunks ch
              ON ch.chunk_schema = kn.nspname AND ch.chunk_name = k.relname
            WHERE NOT ch.is_compressed;
        END IF;

        -- What the chunks hold (what a retention run removes, what a compression run rewrites).
        FOREACH v_chunk IN ARRAY v_chunks LOOP
            EXECUTE format('SELECT count(*) FROM %s', lifecycle._relation_ident(v_chunk)) INTO v_count;
            v_rows_in := v_rows_in + v_count;
        END LOOP;
        EXECUTE format('SELECT coalesce(sum(d.total_bytes), 0)::bigint FROM %I.chunks_detailed_size($1) d '
                       'WHERE (quote_ident(d.chunk_schema) || ''.'' || quote_ident(d.chunk_name))::regclass '
                       '= ANY ($2)', v_ext)
            INTO v_bytes_in
            USING v_rel, v_chunks;
        v_details := v_details || jsonb_build_object('chunks', to_jsonb(v_chunks::text[]),
                                                     'chunk_rows', v_rows_in, 'chunk_bytes', v_bytes_in);

        IF v_dry_run THEN
            v_affected := cardinality(v_chunks);
            IF v_reg.kind = 'retention' THEN
                v_rows_after := v_rows_before - v_rows_in;
                v_bytes_after := v_bytes_before - v_bytes_in;
            ELSE
                v_rows_after := v_rows_before;   -- compression keeps every row
                v_bytes_after := NULL;           -- unknown until the chunks are really compressed
            END IF;
            v_status := 'dry_run';
        ELSE
            IF v_reg.kind = 'retention' THEN
                EXECUTE format('SELECT coalesce(array_agg(d.c), ''{}'') '
                               'FROM %I.drop_chunks($1, older_than => $2::%s) AS d(c)',
                               v_ext, v_cutoff_type)
                    INTO v_done
                    USING v_rel, v_cutoff;
                v_details := v_details || jsonb_build_object('chunks', to_jsonb(v_done));
                v_affected := cardinality(v_done);
            ELSE
                FOREACH v_chunk IN ARRAY v_chunks LOOP
                    EXECUTE format('SELECT %I.compress_chunk($1, if_not_compressed => true)', v_ext)
                        USING v_chunk;
                    v_affected := v_affected + 1;
                END LOOP;
                INSERT INTO lifecycle.compression_metrics
                    (captured_at, hypertable, total_chunks, compressed_chunks, before_bytes, after_bytes)
                SELECT clock_timestamp(), f.hypertable, f.total_chunks, f.compressed_chunks,
                       f.before_bytes, f.after_bytes
                FROM lifecycle._hypertable_compression_figures(v_ht.ht_label) f;
            END IF;
            EXECUTE format('SELECT count(*) FROM %I.%I', v_ht.ht_schema, v_ht.ht_table) INTO v_rows_after;
            EXECUTE format('SELECT %I.hypertable_size($1)', v_ext) INTO v_bytes_after USING v_rel;
            v_status := 'succeeded';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_context = PG_EXCEPTION_CONTEXT;
        v_status := 'failed';
        v_error := SQLERRM;
        v_affected := 0;
        v_rows_after := NULL;
        v_bytes_after := NULL;
        -- Whatever was listed was not acted on: keep it, under a name that says so.
        v_details := (v_details - 'chunks')
                     || jsonb_strip_nulls(jsonb_build_object('planned_chunks', v_details -> 'chunks'))
                     || jsonb_build_object('sqlstate', v_sqlstate, 'context', v_context);
    END;

    -- Heartbeat: a live declaration is re-registered weekly, so that a retention on
    -- lifecycle_policies never drops the only row of a policy still in use.
    IF v_reg.registered_at < now() - interval '7 days' THEN
        INSERT INTO lifecycle.lifecycle_policies
            (registered_at, policy_name, hypertable, kind, parameters, stack, environment, job_id, enabled)
        VALUES
            (clock_timestamp(), v_reg.policy_name, v_reg.hypertable, v_reg.kind, v_reg.parameters,
             v_reg.stack, v_reg.environment, v_reg.job_id, v_reg.enabled);
    END IF;

    INSERT INTO lifecycle.lifecycle_executions
        (started_at, policy_name, hypertable, kind, job_id, finished_at, status, error, chunks_affected,
         rows_before, rows_after, bytes_before, bytes_after, dry_run, details)
    VALUES
        (v_started, v_reg.policy_name, v_reg.hypertable, v_reg.kind, v_reg.job_id, clock_timestamp(),
         v_status, v_error, v_affected, v_rows_before, v_rows_after, v_bytes_before, v_bytes_after,
         v_dry_run, v_details)
    RETURNING * INTO v_result;
    RETURN v_result;
END
$fn$;

COMMENT ON FUNCTION lifecycle.execute_lifecycle_policy(text, boolean) IS
    'Runs the latest registration of a policy once: retention drops the chunks older than drop_after, '
    'compression compresses the uncompressed chunks older than compress_after. A dry run changes nothing '
    'and reports what would be affected. Errors roll the work back and are logged, not raised. Always '
    'logs and returns exactly one lifecycle_executions row.';

-- Deletes (or, in a dry run, only counts) the rows of a table matching a rule's condition.
-- p_condition is trusted configuration written by the platform engineer: it is executed as SQL as is.
CREATE OR REPLACE FUNCTION lifecycle.execute_cleanup_operation(
    p_rule_name text,
    p_hypertable regclass,
    p_condition text,
    p_dry_run boolean DEFAULT true)
RETURNS lifecycle.cleanup_operations
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_result  lifecycle.cleanup_operations;
    v_dry_run boolean := coalesce(p_dry_run, true);
    v_label   text;
    v_ident   text;
    v_matched bigint := 0;
    v_deleted bigint := 0;
    v_status  text;
    v_error   text;
BEGIN
    IF p_rule_name IS NULL OR btrim(p_rule_name) = '' THEN
        RAISE EXCEPTION 'lifecycle: no cleanup rule name given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_hypertable IS NULL THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule % names no table', quote_literal(p_rule_name)
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_label := lifecycle._relation_label(p_hypertable);
    v_ident := lifecycle._relation_ident(p_hypertable);
    IF v_label IS NULL THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule %: relation with OID % does not exist',
            quote_literal(p_rule_name), p_hypertable::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    IF p_condition IS NULL OR btrim(p_condition) = '' THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule % on % has no condition (refusing to delete every row)',
            quote_literal(p_rule_name), v_label
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    BEGIN
        EXECUTE format('SELECT count(*) FROM %s WHERE (%s)', v_ident, p_condition) INTO v_matched;
        IF v_dry_run THEN
            v_status := 'dry_run';
        ELSE
            EXECUTE format('DELETE FROM %s WHERE (%s)', v_ident, p_condition);
            GET DIAGNOSTICS v_deleted = ROW_COUNT;
            v_status := 'succeeded';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        v_status := 'failed';
        v_error := SQLERRM;
        v_deleted := 0;  -- the block's partial work is rolled back
    END;

    INSERT INTO lifecycle.cleanup_operations
        (executed_at, rule_name, hypertable, condition, rows_matched, rows_deleted, dry_run, status, error)
    VALUES
        (clock_timestamp(), p_rule_name, v_label, p_condition, coalesce(v_matched, 0), v_deleted,
         v_dry_run, v_status, v_error)
    RETURNING * INTO v_result;
    RETURN v_result;
END
$fn$;

COMMENT ON FUNCTION lifecycle.execute_cleanup_operation(text, regclass, text, boolean) IS
    'Counts, and unless p_dry_run deletes, the rows of p_hypertable matching p_condition; logs one '
    'lifecycle.cleanup_operations row (failed with the error, and nothing deleted, on any error). '
    'p_condition is TRUSTED configuration: a SQL boolean expression executed as is, resolved with the '
    'caller''s search_path. Never pass end-user input.';

-- Per hypertable: chunk and compression figures, policies, executions.
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
        SELECT ps.hypertable AS ht, count(*) AS n
        FROM lifecycle.lifecycle_policy_status ps
        GROUP BY ps.hypertable
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
    'Per hypertable (or only p_hypertable): chunks, compression figures, registered policies, executions '
    '(all, including dry runs), failures, last execution, chunks dropped / compressed by successful runs.';
