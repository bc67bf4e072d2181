-- 004: row cleanup by a declared rule, never by SQL text.
--
-- 003's execute_cleanup_operation(text, regclass, text, boolean) spliced its p_condition into the statement it
-- executed: `false); DROP TABLE p.victim; SELECT (1` dropped a table, even in a dry run. It is dropped here
-- and replaced by a function that takes a rule: a column and one check from a fixed set, with its values as
-- typed arguments. The statement is assembled from fixed fragments, the column through %I (as the catalog
-- spells it) and the values as USING parameters: no argument text is ever executed.
-- A dry run only counts, in a STABLE function: PostgreSQL refuses any data-modifying statement there, so
-- the dry run is read-only by construction, not by care.
-- Every function sets search_path = pg_catalog, pg_temp.
-- Safe to run again: DROP .. IF EXISTS, CREATE OR REPLACE.

DROP FUNCTION IF EXISTS lifecycle.execute_cleanup_operation(text, regclass, text, boolean);

-- The checks a cleanup rule may make, each the condition of the rows it removes:
--   null         column IS NULL
--   not_finite   NaN / Infinity / -Infinity (real, double precision, numeric), or an infinite date/timestamp
--   out_of_range below p_min or above p_max (numeric columns; a NULL bound is open)
--   not_in       the column's text is not one of p_allowed (a NULL column is not matched: use 'null')
-- Returns the WHERE clause for the column of that relation, with $1 = p_min, $2 = p_max, $3 = p_allowed;
-- refuses, naming the rule, a column or a check the relation cannot take.
CREATE OR REPLACE FUNCTION lifecycle._cleanup_predicate(
    p_rule_name text, p_relation regclass, p_column name, p_check text,
    p_min numeric, p_max numeric, p_allowed text[])
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_label  text := lifecycle._relation_label(p_relation);
    v_column name;
    v_type   regtype;
    v_col    text;
BEGIN
    SELECT a.attname, a.atttypid::regtype INTO v_column, v_type
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = p_relation AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_column IS NULL THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule %: % has no column %',
            quote_literal(p_rule_name), v_label, quote_literal(coalesce(p_column::text, ''))
            USING ERRCODE = 'undefined_column';
    END IF;
    v_col := format('%I', v_column);

    IF p_check = 'null' THEN
        RETURN format('%s IS NULL', v_col);
    ELSIF p_check = 'not_finite' THEN
        IF v_type IN ('real'::regtype, 'double precision'::regtype, 'numeric'::regtype) THEN
            RETURN format('%s::text IN (''NaN'', ''Infinity'', ''-Infinity'')', v_col);
        ELSIF v_type IN ('date'::regtype, 'timestamp without time zone'::regtype,
                         'timestamp with time zone'::regtype) THEN
            RETURN format('NOT isfinite(%s)', v_col);
        END IF;
        RAISE EXCEPTION 'lifecycle: cleanup rule %: check not_finite does not apply to %.% of type %',
            quote_literal(p_rule_name), v_label, v_column, v_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'not_finite takes a real, double precision, numeric, date or timestamp column.';
    ELSIF p_check = 'out_of_range' THEN
        IF v_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'real'::regtype,
                          'double precision'::regtype, 'numeric'::regtype) THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: check out_of_range does not apply to %.% of type %',
                quote_literal(p_rule_name), v_label, v_column, v_type
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'out_of_range takes a numeric column (smallint .. double precision, numeric).';
        END IF;
        IF p_min IS NULL AND p_max IS NULL THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: out_of_range needs p_min, p_max or both',
                quote_literal(p_rule_name) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_min > p_max THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: p_min % is above p_max %', quote_literal(p_rule_name),
                p_min, p_max USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN format('(($1 IS NOT NULL AND %1$s < $1) OR ($2 IS NOT NULL AND %1$s > $2))', v_col);
    ELSIF p_check = 'not_in' THEN
        IF p_allowed IS NULL OR cardinality(p_allowed) = 0 THEN
            RAISE EXCEPTION 'lifecycle: cleanup rule %: not_in needs a non-empty p_allowed '
                            '(an empty list would match every row)', quote_literal(p_rule_name)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN format('NOT (%s::text = ANY ($3))', v_col);
    END IF;
    RAISE EXCEPTION 'lifecycle: cleanup rule %: unknown check %', quote_literal(p_rule_name),
        quote_literal(coalesce(p_check, ''))
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'One of: null, not_finite, out_of_range, not_in.';
END
$fn$;

-- The rule as the log shows it (never executed).
CREATE OR REPLACE FUNCTION lifecycle._cleanup_rule_text(
    p_column name, p_check text, p_min numeric, p_max numeric, p_allowed text[])
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT format('%I %s', p_column, p_check)
        || CASE p_check
               WHEN 'out_of_range' THEN format(' [%s, %s]', coalesce(p_min::text, '-inf'), coalesce(p_max::text, '+inf'))
               WHEN 'not_in' THEN ' ' || coalesce(p_allowed::text, '{}')
               ELSE '' END
$fn$;

-- The dry run: how many rows the rule matches. STABLE, so PostgreSQL itself refuses any INSERT, UPDATE,
-- DELETE or DDL run from here ("... is not allowed in a non-volatile function").
CREATE OR REPLACE FUNCTION lifecycle.count_cleanup_matches(
    p_rule_name text, p_hypertable regclass, p_column name, p_check text,
    p_min numeric DEFAULT NULL, p_max numeric DEFAULT NULL, p_allowed text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_matched bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s WHERE %s', lifecycle._relation_ident(p_hypertable),
                   lifecycle._cleanup_predicate(p_rule_name, p_hypertable, p_column, p_check,
                                                p_min, p_max, p_allowed))
        INTO v_matched
        USING p_min, p_max, p_allowed;
    RETURN v_matched;
END
$fn$;

COMMENT ON FUNCTION lifecycle.count_cleanup_matches(text, regclass, name, text, numeric, numeric, text[]) IS
    'How many rows of p_hypertable the cleanup rule (p_column, p_check, p_min/p_max or p_allowed) matches. '
    'STABLE: read-only by construction.';

-- Deletes (or, in a dry run, only counts) the rows of a table that a declared rule matches.
CREATE OR REPLACE FUNCTION lifecycle.execute_cleanup_operation(
    p_rule_name text,
    p_hypertable regclass,
    p_column name,
    p_check text,
    p_min numeric DEFAULT NULL,
    p_max numeric DEFAULT NULL,
    p_allowed text[] DEFAULT NULL,
    p_dry_run boolean DEFAULT true)
RETURNS lifecycle.cleanup_operations
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_result  lifecycle.cleanup_operations;
    v_dry_run boolean := coalesce(p_dry_run, true);
    v_label   text;
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
    IF v_label IS NULL THEN
        RAISE EXCEPTION 'lifecycle: cleanup rule %: relation with OID % does not exist',
            quote_literal(p_rule_name), p_hypertable::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    -- A rule that cannot be composed is refused (raised), not logged: nothing was attempted.
    PERFORM lifecycle._cleanup_predicate(p_rule_name, p_hypertable, p_column, p_check, p_min, p_max, p_allowed);

    BEGIN
        v_matched := lifecycle.count_cleanup_matches(p_rule_name, p_hypertable, p_column, p_check,
                                                     p_min, p_max, p_allowed);
        IF v_dry_run THEN
            v_status := 'dry_run';
        ELSE
            EXECUTE format('DELETE FROM %s WHERE %s', lifecycle._relation_ident(p_hypertable),
                           lifecycle._cleanup_predicate(p_rule_name, p_hypertable, p_column, p_check,
                                                        p_min, p_max, p_allowed))
                USING p_min, p_max, p_allowed;
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
        (clock_timestamp(), p_rule_name, v_label,
         lifecycle._cleanup_rule_text(p_column, p_check, p_min, p_max, p_allowed),
         coalesce(v_matched, 0), v_deleted, v_dry_run, v_status, v_error)
    RETURNING * INTO v_result;
    RETURN v_result;
END
$fn$;

COMMENT ON FUNCTION lifecycle.execute_cleanup_operation(text, regclass, name, text, numeric, numeric, text[], boolean) IS
    'Counts, and unless p_dry_run (the default) deletes, the rows of p_hypertable that a declared rule '
    'matches: p_column and p_check, one of null, not_finite, out_of_range (p_min/p_max), not_in (p_allowed). '
    'No argument is executed as SQL; the dry run counts in a STABLE function (read-only by construction). '
    'Logs one lifecycle.cleanup_operations row, its condition the rule as text (failed with the error, and '
    'nothing deleted, on any error during the work); an invalid rule is refused before anything runs.';
