-- 010: cleanup rules declared by the stack (CleanupRule), applied chunk by chunk, into a quarantine.
--
-- * lifecycle.cleanup_rules holds the current declaration of every rule, one per rule_name, with the stack
--   that declared it. A rule is data, never SQL text: its kind ('orphans' or 'invalid') and a spec of column
--   names, check names from a fixed set, and values. _cleanup_condition turns a rule into a WHERE clause from
--   fixed fragments: names through %I (after checking them in the catalog), values through %L. A rule edited
--   by hand into something that cannot be composed is refused, naming the rule.
-- * A run removes the matched rows of each chunk's time range in its own short transaction (the DELETE itself
--   re-checks the condition when it runs); unless the rule says action = 'delete', the removed rows go to
--   lifecycle.cleanup_quarantine (one jsonb row each, restorable by restore_cleanup_quarantine). DELETE on a
--   compressed chunk works through TimescaleDB's DML decompression.
-- * execute_cleanup_operation(p_rule_name, p_dry_run) replaces 004's column/check signature: it takes a
--   declared rule by name. A dry run counts in a STABLE function (read-only by construction).
-- * cleanup_operations gains what a run with a quarantine needs; cleanup_statistics (002) shows the runs,
--   cleanup_rule_status each declared rule with its quarantine.
-- Every function sets search_path = pg_catalog, pg_temp. Safe to run again.

DROP FUNCTION IF EXISTS lifecycle.execute_cleanup_operation(text, regclass, name, text, numeric, numeric, text[],
                                                           boolean);
DROP FUNCTION IF EXISTS lifecycle.count_cleanup_matches(text, regclass, name, text, numeric, numeric, text[]);
DROP FUNCTION IF EXISTS lifecycle._cleanup_predicate(text, regclass, name, text, numeric, numeric, text[]);
DROP FUNCTION IF EXISTS lifecycle._cleanup_rule_text(name, text, numeric, numeric, text[]);

CREATE TABLE IF NOT EXISTS lifecycle.cleanup_rules (
    rule_name     text        PRIMARY KEY,
    hypertable    text        NOT NULL,              -- 'schema.table' the rule cleans
    kind          text        NOT NULL CHECK (kind IN ('orphans', 'invalid')),
    spec          jsonb       NOT NULL,
    action        text        NOT NULL DEFAULT 'quarantine' CHECK (action IN ('quarantine', 'delete')),
    project       text        NOT NULL DEFAULT '',
    stack         text        NOT NULL DEFAULT '',
    registered_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE lifecycle.cleanup_rules IS
    'Declared cleanup rules (CleanupRule), one per rule_name. spec: orphans {parent, keys, parent_keys, '
    'time_column, grace}; invalid {checks: [{column, check: not_null|finite|finite_positive|range|allowed, '
    'min, max, values}]}. Removing a rule never removes data.';

CREATE TABLE IF NOT EXISTS lifecycle.cleanup_quarantine (
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    rule_name      text        NOT NULL,
    hypertable     text        NOT NULL,
    operation_id   uuid        NOT NULL,
    row_data       jsonb       NOT NULL
);

CREATE INDEX IF NOT EXISTS cleanup_quarantine_rule_idx ON lifecycle.cleanup_quarantine (rule_name, hypertable);

COMMENT ON TABLE lifecycle.cleanup_quarantine IS
    'Rows a cleanup rule removed from their table (to_jsonb of the row), until restored '
    '(lifecycle.restore_cleanup_quarantine) or purged by hand. Never subject to retention.';

ALTER TABLE lifecycle.cleanup_operations ADD COLUMN IF NOT EXISTS operation_id uuid;
ALTER TABLE lifecycle.cleanup_operations ADD COLUMN IF NOT EXISTS action text;
ALTER TABLE lifecycle.cleanup_operations ADD COLUMN IF NOT EXISTS rows_quarantined bigint;
ALTER TABLE lifecycle.cleanup_operations ADD COLUMN IF NOT EXISTS rows_restored bigint;
ALTER TABLE lifecycle.cleanup_operations ADD COLUMN IF NOT EXISTS chunks integer;
COMMENT ON COLUMN lifecycle.cleanup_operations.action IS
    'quarantine (rows moved to cleanup_quarantine), delete, or restore (rows moved back); NULL before 010.';
COMMENT ON COLUMN lifecycle.cleanup_operations.rows_deleted IS
    'Rows removed from the table (quarantined or deleted).';

-- cleanup_statistics (002) keeps its columns (002 may run again over this schema): rows_deleted_total counts
-- the rows removed from the table, quarantined or deleted. Per declared rule, with its quarantine:
CREATE OR REPLACE VIEW lifecycle.cleanup_rule_status AS
SELECT r.rule_name,
       r.hypertable,
       r.kind,
       r.action,
       lifecycle._stack_label(r.project, r.stack)           AS stack,
       r.registered_at,
       s.runs,
       s.last_executed_at,
       s.last_status,
       coalesce(s.rows_quarantined_total, 0)::bigint         AS rows_quarantined_total,
       coalesce(s.rows_restored_total, 0)::bigint            AS rows_restored_total,
       (SELECT count(*) FROM lifecycle.cleanup_quarantine q
         WHERE q.rule_name = r.rule_name)                   AS rows_in_quarantine
FROM lifecycle.cleanup_rules r
LEFT JOIN LATERAL (
    SELECT count(*) AS runs, max(c.executed_at) AS last_executed_at,
           (array_agg(c.status ORDER BY c.executed_at DESC))[1] AS last_status,
           sum(c.rows_quarantined) AS rows_quarantined_total, sum(c.rows_restored) AS rows_restored_total
      FROM lifecycle.cleanup_operations c WHERE c.rule_name = r.rule_name) s ON true;

COMMENT ON VIEW lifecycle.cleanup_rule_status IS
    'One row per declared cleanup rule: its table, kind, action and stack, its runs (cleanup_operations: last '
    'run and status, rows quarantined and restored) and the rows it holds in quarantine now.';

-- The rule named, or an error naming it.
CREATE OR REPLACE FUNCTION lifecycle._cleanup_rule(p_rule_name text)
RETURNS lifecycle.cleanup_rules
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule lifecycle.cleanup_rules;
BEGIN
    SELECT * INTO v_rule FROM lifecycle.cleanup_rules r WHERE r.rule_name = p_rule_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lifecycle: no cleanup rule named %', quote_literal(coalesce(p_rule_name, ''))
            USING ERRCODE = 'undefined_object',
                  HINT = 'Declare it with CleanupRule (or lifecycle.register_cleanup_rule).';
    END IF;
    RETURN v_rule;
END
$fn$;

-- A column of a relation as the catalog has it (its type too), or an error naming the rule and field.
CREATE OR REPLACE FUNCTION lifecycle._cleanup_column(p_rule_name text, p_relation regclass, p_field text,
                                                     p_column text, OUT col name, OUT typ regtype)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    SELECT a.attname, a.atttypid::regtype INTO col, typ
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = p_relation AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF col IS NULL THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule %: %: % has no column %', quote_literal(p_rule_name), p_field,
            lifecycle._relation_label(p_relation), quote_literal(coalesce(p_column, ''))
            USING ERRCODE = 'undefined_column';
    END IF;
END
$fn$;

-- The WHERE clause of the rows the rule matches, over its table aliased t; NULL p_from/p_to: every chunk.
-- p_from/p_to (a chunk's range, as text) are compared with the table's time dimension.
CREATE OR REPLACE FUNCTION lifecycle._cleanup_condition(p_rule lifecycle.cleanup_rules, p_from text DEFAULT NULL,
                                                        p_to text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name     text := quote_literal(p_rule.rule_name);
    v_rel      regclass := to_regclass(p_rule.hypertable);
    v_parent   regclass;
    v_check    jsonb;
    v_col      record;
    v_pcol     record;
    v_parts    text[] := '{}';
    v_join     text[] := '{}';
    v_numeric  regtype[] := ARRAY['smallint', 'integer', 'bigint', 'real', 'double precision', 'numeric']::regtype[];
    v_keys     jsonb;
    v_pkeys    jsonb;
    v_time     text;
    v_where    text;
BEGIN
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule %: table % does not exist', v_name, quote_literal(p_rule.hypertable)
            USING ERRCODE = 'undefined_table';
    END IF;
    IF p_rule.kind = 'invalid' THEN
        IF jsonb_typeof(p_rule.spec -> 'checks') IS DISTINCT FROM 'array'
           OR jsonb_array_length(p_rule.spec -> 'checks') = 0 THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: an invalid-rows rule needs a non-empty checks list', v_name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR v_check IN SELECT * FROM jsonb_array_elements(p_rule.spec -> 'checks') LOOP
            v_col := lifecycle._cleanup_column(p_rule.rule_name, v_rel, 'checks', v_check ->> 'column');
            CASE v_check ->> 'check'
            WHEN 'not_null' THEN
                v_parts := v_parts || format('t.%I IS NULL', v_col.col);
            WHEN 'finite', 'finite_positive' THEN
                IF NOT v_col.typ = ANY (v_numeric) THEN
                    RAISE EXCEPTION 'lifecycle: cleanup rule %: check % does not apply to column % of type %', v_name,
                        v_check ->> 'check', v_col.col, v_col.typ USING ERRCODE = 'invalid_parameter_value';
                END IF;
                v_parts := v_parts || format('t.%I::text IN (''NaN'', ''Infinity'', ''-Infinity'')', v_col.col)
                    || CASE WHEN v_check ->> 'check' = 'finite_positive'
                            THEN ARRAY[format('t.%I <= 0', v_col.col)] ELSE '{}'::text[] END;
            WHEN 'range' THEN
                IF NOT v_col.typ = ANY (v_numeric) THEN
                    RAISE EXCEPTION 'lifecycle: cleanup rule %: check range does not apply to column % of type %',
                        v_name, v_col.col, v_col.typ USING ERRCODE = 'invalid_parameter_value';
                END IF;
                IF v_check ->> 'min' IS NULL AND v_check ->> 'max' IS NULL THEN
                    RAISE EXCEPTION 'lifecycle: cleanup rule %: range on % needs min, max or both', v_name, v_col.col
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                IF v_check ->> 'min' IS NOT NULL THEN
                    v_parts := v_parts || format('t.%I < %L::numeric', v_col.col, (v_check ->> 'min')::numeric);
                END IF;
                IF v_check ->> 'max' IS NOT NULL THEN
                    v_parts := v_parts || format('t.%I > %L::numeric', v_col.col, (v_check ->> 'max')::numeric);
                END IF;
            WHEN 'allowed' THEN
                IF jsonb_typeof(v_check -> 'values') IS DISTINCT FROM 'array'
                   OR jsonb_array_length(v_check -> 'values') = 0 THEN
                    RAISE EXCEPTION 'lifecycle: cleanup rule %: allowed on % needs a non-empty values list '
                                    '(an empty one would match every row)', v_name, v_col.col
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                v_parts := v_parts || format('NOT (t.%I::text = ANY (%L::text[]))', v_col.col,
                    ARRAY(SELECT jsonb_array_elements_text(v_check -> 'values')));
            ELSE
                RAISE EXCEPTION 'lifecycle: cleanup rule %: unknown check %', v_name,
                    quote_literal(coalesce(v_check ->> 'check', ''))
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'One of: not_null, finite, finite_positive, range, allowed.';
            END CASE;
        END LOOP;
        v_where := '(' || array_to_string(v_parts, ' OR ') || ')';
    ELSIF p_rule.kind = 'orphans' THEN
        v_parent := to_regclass(p_rule.spec ->> 'parent');
        IF v_parent IS NULL THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: parent table % does not exist', v_name,
                quote_literal(coalesce(p_rule.spec ->> 'parent', '')) USING ERRCODE = 'undefined_table';
        END IF;
        v_keys := p_rule.spec -> 'keys';
        v_pkeys := coalesce(p_rule.spec -> 'parent_keys', v_keys);
        IF jsonb_typeof(v_keys) IS DISTINCT FROM 'array' OR jsonb_array_length(v_keys) = 0
           OR jsonb_typeof(v_pkeys) IS DISTINCT FROM 'array'
           OR jsonb_array_length(v_pkeys) <> jsonb_array_length(v_keys) THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: orphans needs keys, and as many parent_keys', v_name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR i IN 0 .. jsonb_array_length(v_keys) - 1 LOOP
            v_col := lifecycle._cleanup_column(p_rule.rule_name, v_rel, 'keys', v_keys ->> i);
            v_pcol := lifecycle._cleanup_column(p_rule.rule_name, v_parent, 'parent_keys', v_pkeys ->> i);
            v_parts := v_parts || format('t.%I IS NOT NULL', v_col.col);
            v_join := v_join || format('p.%I = t.%I', v_pcol.col, v_col.col);
        END LOOP;
        IF p_rule.spec ->> 'grace' IS NOT NULL THEN
            v_col := lifecycle._cleanup_column(p_rule.rule_name, v_rel, 'time_column', p_rule.spec ->> 'time_column');
            IF v_col.typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
                RAISE EXCEPTION 'lifecycle: cleanup rule %: grace needs a timestamptz, timestamp or date '
                                'time_column; % is %', v_name, v_col.col, v_col.typ
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            v_parts := v_parts || format('t.%I < now() - %L::interval', v_col.col,
                                         (p_rule.spec ->> 'grace')::interval);
        END IF;
        v_where := '(' || array_to_string(v_parts, ' AND ')
                || format(' AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s))', lifecycle._relation_ident(v_parent),
                          array_to_string(v_join, ' AND '));
    ELSE
        RAISE EXCEPTION 'lifecycle: cleanup rule %: unknown kind %', v_name, quote_literal(coalesce(p_rule.kind, ''))
            USING ERRCODE = 'invalid_parameter_value', HINT = 'orphans or invalid.';
    END IF;
    IF p_from IS NOT NULL OR p_to IS NOT NULL THEN
        SELECT d.column_name INTO v_time FROM timescaledb_information.dimensions d
         WHERE format('%I.%I', d.hypertable_schema, d.hypertable_name)::regclass = v_rel AND d.dimension_number = 1;
        IF p_from IS NOT NULL THEN
            v_where := v_where || format(' AND t.%I >= %L', v_time, p_from);
        END IF;
        IF p_to IS NOT NULL THEN
            v_where := v_where || format(' AND t.%I < %L', v_time, p_to);
        END IF;
    END IF;
    RETURN v_where;
END
$fn$;

-- The rule in words, for the log (never executed).
CREATE OR REPLACE FUNCTION lifecycle._cleanup_rule_text(p_rule lifecycle.cleanup_rules)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE p_rule.kind
        WHEN 'orphans' THEN format('orphans of %s (%s) older than %s', p_rule.spec ->> 'parent',
                                   (SELECT string_agg(k, ', ') FROM jsonb_array_elements_text(p_rule.spec -> 'keys') k),
                                   coalesce(p_rule.spec ->> 'grace', '0'))
        ELSE (SELECT string_agg(format('%s %s', c ->> 'column', c ->> 'check')
                                || CASE c ->> 'check'
                                       WHEN 'range' THEN format(' [%s, %s]', coalesce(c ->> 'min', '-inf'),
                                                                coalesce(c ->> 'max', '+inf'))
                                       WHEN 'allowed' THEN ' ' || (c -> 'values')::text
                                       ELSE '' END, ', ')
                FROM jsonb_array_elements(p_rule.spec -> 'checks') c)
    END || format(' -> %s', p_rule.action)
$fn$;

-- Records (or replaces) a rule, refusing one that cannot be composed; true when it changed.
CREATE OR REPLACE FUNCTION lifecycle.register_cleanup_rule(
    p_rule_name text, p_hypertable text, p_kind text, p_spec jsonb, p_action text DEFAULT 'quarantine',
    p_project text DEFAULT '', p_stack text DEFAULT '')
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule lifecycle.cleanup_rules;
    v_old  lifecycle.cleanup_rules;
BEGIN
    v_rule := ROW(p_rule_name, p_hypertable, p_kind, p_spec, coalesce(p_action, 'quarantine'),
                  coalesce(p_project, ''), coalesce(p_stack, ''), now())::lifecycle.cleanup_rules;
    PERFORM lifecycle._cleanup_condition(v_rule);
    SELECT * INTO v_old FROM lifecycle.cleanup_rules r WHERE r.rule_name = p_rule_name FOR UPDATE;
    IF FOUND AND (v_old.project, v_old.stack) IS DISTINCT FROM (v_rule.project, v_rule.stack) THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule % is declared by stack %, not %', quote_literal(p_rule_name),
            lifecycle._stack_label(v_old.project, v_old.stack), lifecycle._stack_label(v_rule.project, v_rule.stack)
            USING ERRCODE = 'unique_violation';
    END IF;
    IF FOUND AND (v_old.hypertable, v_old.kind, v_old.spec, v_old.action)
                 IS NOT DISTINCT FROM (v_rule.hypertable, v_rule.kind, v_rule.spec, v_rule.action) THEN
        RETURN false;
    END IF;
    INSERT INTO lifecycle.cleanup_rules SELECT v_rule.*
    ON CONFLICT (rule_name) DO UPDATE SET hypertable = EXCLUDED.hypertable, kind = EXCLUDED.kind,
        spec = EXCLUDED.spec, action = EXCLUDED.action, registered_at = EXCLUDED.registered_at;
    RETURN true;
END
$fn$;

-- Forgets a rule (its runs and its quarantined rows stay); true when there was one of that stack.
CREATE OR REPLACE FUNCTION lifecycle.unregister_cleanup_rule(p_rule_name text, p_project text DEFAULT '',
                                                             p_stack text DEFAULT '')
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH gone AS (DELETE FROM lifecycle.cleanup_rules r
                  WHERE r.rule_name = p_rule_name AND r.project = coalesce(p_project, '')
                    AND r.stack = coalesce(p_stack, '') RETURNING 1)
    SELECT count(*) > 0 FROM gone
$fn$;

-- The slices a run takes, one per chunk of a hypertable in time order (one NULL slice for a plain table).
CREATE OR REPLACE FUNCTION lifecycle._cleanup_slices(p_rule_name text)
RETURNS TABLE (range_from text, range_to text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rel regclass := to_regclass((lifecycle._cleanup_rule(p_rule_name)).hypertable);
BEGIN
    RETURN QUERY
        SELECT coalesce(c.range_start::text, c.range_start_integer::text),
               coalesce(c.range_end::text, c.range_end_integer::text)
          FROM timescaledb_information.chunks c
         WHERE format('%I.%I', c.hypertable_schema, c.hypertable_name)::regclass = v_rel
         ORDER BY c.range_start, c.range_start_integer;
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                                 WHERE format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass = v_rel) THEN
        RETURN QUERY SELECT NULL::text, NULL::text;
    END IF;
END
$fn$;

-- How many rows of one slice (NULL: the whole table) the rule matches now. STABLE: PostgreSQL refuses any
-- data-modifying statement run from here, so a dry run cannot change anything.
CREATE OR REPLACE FUNCTION lifecycle.count_cleanup_matches(p_rule_name text, p_from text DEFAULT NULL,
                                                           p_to text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule    lifecycle.cleanup_rules := lifecycle._cleanup_rule(p_rule_name);
    v_matched bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s t WHERE %s', lifecycle._relation_ident(to_regclass(v_rule.hypertable)),
                   lifecycle._cleanup_condition(v_rule, p_from, p_to))
        INTO v_matched;
    RETURN v_matched;
END
$fn$;

-- Removes the rows of one slice the rule matches (the condition is evaluated by the DELETE itself, in the
-- caller's transaction), into the quarantine unless the rule deletes. Returns (removed, quarantined).
CREATE OR REPLACE FUNCTION lifecycle._cleanup_slice(p_rule_name text, p_operation_id uuid, p_from text,
                                                    p_to text, OUT removed bigint, OUT quarantined bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule  lifecycle.cleanup_rules := lifecycle._cleanup_rule(p_rule_name);
    v_table text := lifecycle._relation_ident(to_regclass(v_rule.hypertable));
    v_where text := lifecycle._cleanup_condition(v_rule, p_from, p_to);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('lifecycle:' || lifecycle._relation_label(to_regclass(v_rule.hypertable))));
    IF v_rule.action = 'delete' THEN
        EXECUTE format('DELETE FROM %s t WHERE %s', v_table, v_where);
        GET DIAGNOSTICS removed = ROW_COUNT;
        quarantined := 0;
    ELSE
        EXECUTE format('WITH moved AS (DELETE FROM %s t WHERE %s RETURNING t.*) '
                       'INSERT INTO lifecycle.cleanup_quarantine (quarantined_at, rule_name, hypertable, '
                       'operation_id, row_data) SELECT now(), $1, $2, $3, to_jsonb(moved) FROM moved',
                       v_table, v_where)
            USING v_rule.rule_name, v_rule.hypertable, p_operation_id;
        GET DIAGNOSTICS removed = ROW_COUNT;
        quarantined := removed;
    END IF;
END
$fn$;

-- One cleanup_operations row.
CREATE OR REPLACE FUNCTION lifecycle._record_cleanup(
    p_rule lifecycle.cleanup_rules, p_operation_id uuid, p_action text, p_status text, p_error text,
    p_matched bigint, p_removed bigint, p_quarantined bigint, p_restored bigint, p_chunks integer,
    p_dry_run boolean)
RETURNS lifecycle.cleanup_operations
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO lifecycle.cleanup_operations
        (executed_at, rule_name, hypertable, condition, rows_matched, rows_deleted, dry_run, status, error,
         operation_id, action, rows_quarantined, rows_restored, chunks)
    VALUES (clock_timestamp(), p_rule.rule_name, p_rule.hypertable,
            CASE WHEN p_action = 'restore' THEN 'restore the quarantined rows'
                 ELSE coalesce(lifecycle._cleanup_rule_text(p_rule), p_rule.kind) END,
            coalesce(p_matched, 0), coalesce(p_removed, 0), p_dry_run, p_status, p_error, p_operation_id,
            p_action, coalesce(p_quarantined, 0), coalesce(p_restored, 0), p_chunks)
    RETURNING *
$fn$;

-- Runs a declared rule in one transaction (the `lifecycle cleanup` runner commits chunk by chunk instead):
-- counts, and unless p_dry_run (the default) removes, the rows it matches, chunk by chunk. A rule that cannot
-- be composed is refused (raised, nothing logged); an error during the work is logged as failed, nothing removed.
CREATE OR REPLACE FUNCTION lifecycle.execute_cleanup_operation(p_rule_name text, p_dry_run boolean DEFAULT true)
RETURNS lifecycle.cleanup_operations
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule    lifecycle.cleanup_rules := lifecycle._cleanup_rule(p_rule_name);
    v_dry_run boolean := coalesce(p_dry_run, true);
    v_op      uuid := gen_random_uuid();
    v_slice   record;
    v_done    record;
    v_matched bigint := 0;
    v_removed bigint := 0;
    v_quar    bigint := 0;
    v_chunks  integer := 0;
    v_status  text := CASE WHEN coalesce(p_dry_run, true) THEN 'dry_run' ELSE 'succeeded' END;
    v_error   text;
BEGIN
    PERFORM lifecycle._cleanup_condition(v_rule);
    BEGIN
        FOR v_slice IN SELECT * FROM lifecycle._cleanup_slices(p_rule_name) LOOP
            v_chunks := v_chunks + 1;
            IF v_dry_run THEN
                v_matched := v_matched + lifecycle.count_cleanup_matches(p_rule_name, v_slice.range_from,
                                                                          v_slice.range_to);
            ELSE
                v_done := lifecycle._cleanup_slice(p_rule_name, v_op, v_slice.range_from, v_slice.range_to);
                v_removed := v_removed + v_done.removed;
                v_quar := v_quar + v_done.quarantined;
            END IF;
        END LOOP;
        IF NOT v_dry_run THEN
            v_matched := v_removed;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        v_status := 'failed';
        v_error := SQLERRM;
        v_removed := 0;  -- the block's partial work is rolled back
        v_quar := 0;
    END;
    RETURN lifecycle._record_cleanup(v_rule, v_op, CASE WHEN v_dry_run THEN NULL ELSE v_rule.action END, v_status,
                                     v_error, v_matched, v_removed, v_quar, 0, v_chunks, v_dry_run);
END
$fn$;

COMMENT ON FUNCTION lifecycle.execute_cleanup_operation(text, boolean) IS
    'Runs the declared cleanup rule p_rule_name (lifecycle.cleanup_rules): counts, and unless p_dry_run (the '
    'default) removes the rows it matches, chunk by chunk, into lifecycle.cleanup_quarantine unless the rule''s '
    'action is delete. No argument is executed as SQL. Logs one lifecycle.cleanup_operations row.';

-- Moves every quarantined row of a rule back into its table (in the caller's transaction); logs the restore.
CREATE OR REPLACE FUNCTION lifecycle.restore_cleanup_quarantine(p_rule_name text)
RETURNS lifecycle.cleanup_operations
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule     lifecycle.cleanup_rules;
    v_table    text;
    v_rel      regclass;
    v_restored bigint := 0;
    v_n        bigint;
BEGIN
    FOR v_table IN SELECT DISTINCT q.hypertable FROM lifecycle.cleanup_quarantine q WHERE q.rule_name = p_rule_name
    LOOP
        v_rel := to_regclass(v_table);
        IF v_rel IS NULL THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: cannot restore into %: the table is gone',
                quote_literal(p_rule_name), v_table USING ERRCODE = 'undefined_table';
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext('lifecycle:' || lifecycle._relation_label(v_rel)));
        EXECUTE format('WITH back AS (DELETE FROM lifecycle.cleanup_quarantine q WHERE q.rule_name = $1 '
                       'AND q.hypertable = $2 RETURNING q.row_data) '
                       'INSERT INTO %1$s SELECT (jsonb_populate_record(NULL::%1$s, back.row_data)).* FROM back',
                       lifecycle._relation_ident(v_rel))
            USING p_rule_name, v_table;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_restored := v_restored + v_n;
    END LOOP;
    SELECT * INTO v_rule FROM lifecycle.cleanup_rules r WHERE r.rule_name = p_rule_name;
    IF NOT FOUND AND v_table IS NULL THEN
        RAISE EXCEPTION 'lifecycle: no cleanup rule named % and no rows quarantined by one',
            quote_literal(coalesce(p_rule_name, '')) USING ERRCODE = 'undefined_object';
    ELSIF NOT FOUND THEN  -- a rule removed from its stack: its quarantined rows can still come back
        v_rule := ROW(p_rule_name, coalesce(v_table, ''), 'invalid', '{"checks": []}', 'quarantine', '', '',
                      now())::lifecycle.cleanup_rules;
    END IF;
    RETURN lifecycle._record_cleanup(v_rule, gen_random_uuid(), 'restore', 'succeeded', NULL, 0, 0, 0, v_restored,
                                     NULL, false);
END
$fn$;
