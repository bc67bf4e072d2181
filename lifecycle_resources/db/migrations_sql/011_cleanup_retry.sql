-- 011: execute_cleanup_operation recompresses and retries a chunk TimescaleDB refuses to clean, as the
-- `lifecycle cleanup` runner does (runner/cleanup.py).
--
-- * TimescaleDB 2.23 (the embedded server's 2.23.0-dev; 2.26 is not affected) refuses a DELETE .. RETURNING of
--   two or more rows of a partially compressed chunk whose rows an earlier DML decompressed, with 'attempted to
--   delete invisible tuple'. Recompressing the chunk (compress_chunk on a partial chunk merges it, every row
--   kept) clears it. 010's execute_cleanup_operation recorded such a run as failed, nothing removed.
-- * Now the slice is retried once after its partially compressed chunks are recompressed, inside the run's
--   transaction (the failed attempt is rolled back to its savepoint first); the run's record says so in `error`,
--   as the runner's does. Any other error, or the same error again, fails the run as before.
-- * register_cleanup_rule: rule names are unique per database. Two stacks registering one name at once (on
--   different tables, so under different table locks) both found no row, and the second's INSERT .. ON CONFLICT
--   then rewrote the first's rule under the first's stack: one record silently shared. Now only a row of the
--   same stack is updated; the second is refused, naming the other stack, as a sequential one always was.
-- Every function sets search_path = pg_catalog, pg_temp. Safe to run again.

-- The partially compressed chunks (status bit 8) of the rule's table within one slice's range, recompressed;
-- their names (none: nothing done).
CREATE OR REPLACE FUNCTION lifecycle._recompress_partial_chunks(p_rule_name text, p_from text, p_to text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rel   regclass := to_regclass((lifecycle._cleanup_rule(p_rule_name)).hypertable);
    v_chunk text;
    v_done  text[] := '{}';
BEGIN
    FOR v_chunk IN
        SELECT format('%I.%I', c.chunk_schema, c.chunk_name)
          FROM timescaledb_information.chunks c
          JOIN _timescaledb_catalog.chunk k ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
         WHERE format('%I.%I', c.hypertable_schema, c.hypertable_name)::regclass = v_rel
           AND k.status & 8 = 8
           AND coalesce(c.range_start::text, c.range_start_integer::text) IS NOT DISTINCT FROM p_from
           AND coalesce(c.range_end::text, c.range_end_integer::text) IS NOT DISTINCT FROM p_to
         ORDER BY 1
    LOOP
        PERFORM lifecycle._compress_chunk(v_rel, v_chunk::regclass);  -- 005's helper, under the table's lock
        v_done := v_done || v_chunk;
    END LOOP;
    RETURN v_done;
END
$fn$;

-- One slice of a run, retried once after recompressing where TimescaleDB refused it; the note to record.
CREATE OR REPLACE FUNCTION lifecycle._cleanup_slice_retried(p_rule_name text, p_operation_id uuid, p_from text,
                                                            p_to text, OUT removed bigint, OUT quarantined bigint,
                                                            OUT note text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_done   record;
    v_merged text[];
BEGIN
    BEGIN
        v_done := lifecycle._cleanup_slice(p_rule_name, p_operation_id, p_from, p_to);
    EXCEPTION WHEN OTHERS THEN
        IF SQLERRM <> 'attempted to delete invisible tuple' THEN
            RAISE;
        END IF;
        v_merged := lifecycle._recompress_partial_chunks(p_rule_name, p_from, p_to);
        IF cardinality(v_merged) = 0 THEN
            RAISE;
        END IF;
        note := format('recompressed the partially compressed chunk %s after ''attempted to delete invisible '
                       'tuple'' and retried it', array_to_string(v_merged, ', '));
        v_done := lifecycle._cleanup_slice(p_rule_name, p_operation_id, p_from, p_to);
    END;
    removed := v_done.removed;
    quarantined := v_done.quarantined;
END
$fn$;

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
    v_notes   text[] := '{}';
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
                v_done := lifecycle._cleanup_slice_retried(p_rule_name, v_op, v_slice.range_from, v_slice.range_to);
                v_removed := v_removed + v_done.removed;
                v_quar := v_quar + v_done.quarantined;
                IF v_done.note IS NOT NULL THEN
                    v_notes := v_notes || v_done.note;
                END IF;
            END IF;
        END LOOP;
        IF NOT v_dry_run THEN
            v_matched := v_removed;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        v_status := 'failed';
        v_error := SQLERRM;
        v_removed := 0;  -- the block's partial work (recompressions included) is rolled back
        v_quar := 0;
        v_notes := '{}';
    END;
    -- A run that recovered says so (error stays NULL only for a run that needed nothing), as the runner's does.
    v_error := nullif(array_to_string(v_notes || v_error, '; '), '');
    RETURN lifecycle._record_cleanup(v_rule, v_op, CASE WHEN v_dry_run THEN NULL ELSE v_rule.action END, v_status,
                                     v_error, v_matched, v_removed, v_quar, 0, v_chunks, v_dry_run);
END
$fn$;

COMMENT ON FUNCTION lifecycle.execute_cleanup_operation(text, boolean) IS
    'Runs the declared cleanup rule p_rule_name (lifecycle.cleanup_rules): counts, and unless p_dry_run (the '
    'default) removes the rows it matches, chunk by chunk, into lifecycle.cleanup_quarantine unless the rule''s '
    'action is delete; a chunk TimescaleDB refuses with ''attempted to delete invisible tuple'' is recompressed and '
    'retried once (said in error). No argument is executed as SQL. Logs one lifecycle.cleanup_operations row.';

-- Records (or replaces) a rule, refusing one that cannot be composed or that another stack declares (also
-- when that stack registered it concurrently); true when it changed.
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
    IF FOUND AND (v_old.hypertable, v_old.kind, v_old.spec, v_old.action, v_old.project, v_old.stack)
                 IS NOT DISTINCT FROM (v_rule.hypertable, v_rule.kind, v_rule.spec, v_rule.action, v_rule.project,
                                       v_rule.stack) THEN
        RETURN false;
    END IF;
    -- The row of another stack is never rewritten: not when it was there before (FOUND above), nor when its
    -- INSERT committed while this one waited on it (ON CONFLICT then sees it, the WHERE skips it).
    INSERT INTO lifecycle.cleanup_rules SELECT v_rule.*
    ON CONFLICT (rule_name) DO UPDATE SET hypertable = EXCLUDED.hypertable, kind = EXCLUDED.kind,
        spec = EXCLUDED.spec, action = EXCLUDED.action, registered_at = EXCLUDED.registered_at
        WHERE (cleanup_rules.project, cleanup_rules.stack) = (EXCLUDED.project, EXCLUDED.stack);
    IF NOT FOUND THEN
        SELECT * INTO v_old FROM lifecycle.cleanup_rules r WHERE r.rule_name = p_rule_name;
        RAISE EXCEPTION 'lifecycle: cleanup rule % is declared by stack %, not %', quote_literal(p_rule_name),
            lifecycle._stack_label(v_old.project, v_old.stack), lifecycle._stack_label(v_rule.project, v_rule.stack)
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN true;
END
$fn$;
