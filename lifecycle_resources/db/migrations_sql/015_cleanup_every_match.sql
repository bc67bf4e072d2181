-- 015: a cleanup slice removes every row its rule matches, also where TimescaleDB's DELETE on a compressed chunk
-- leaves one behind.
--
-- TimescaleDB 2.23 (the embedded server's 2.23.0-dev; 2.26 is not affected): after an UPDATE of the table (a row
-- fixed in a chunk of its own, after a dry run), the DELETE .. RETURNING of a compressed chunk whose batch held two
-- rows matching a condition on the segmentby column (`symbol IS NULL`) removed and reported one of them and left
-- the other in the chunk (tests/test_cleanup_sql.py, ..._every_match_of_compressed_chunks_after_an_update). The
-- run recorded success, its counts one row short, and the row stayed until the next run. Now the slice's DELETE
-- is repeated, in the same transaction, while a pass removes anything: a slice with no match costs one pass as
-- before, a slice with matches one pass more (which finds nothing, except where TimescaleDB left a row). At most
-- 8 passes, so that a writer that keeps inserting matching rows cannot hold a run. Same signature and results
-- as 010's. Safe to run again.

CREATE OR REPLACE FUNCTION lifecycle._cleanup_slice(p_rule_name text, p_operation_id uuid, p_from text,
                                                    p_to text, OUT removed bigint, OUT quarantined bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule  lifecycle.cleanup_rules := lifecycle._cleanup_rule(p_rule_name);
    v_table text := lifecycle._relation_ident(to_regclass(v_rule.hypertable));
    v_where text := lifecycle._cleanup_condition(v_rule, p_from, p_to);
    v_pass  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('lifecycle:' || lifecycle._relation_label(to_regclass(v_rule.hypertable))));
    removed := 0;
    FOR i IN 1..8 LOOP
        IF v_rule.action = 'delete' THEN
            EXECUTE format('DELETE FROM %s t WHERE %s', v_table, v_where);
        ELSE
            EXECUTE format('WITH moved AS (DELETE FROM %s t WHERE %s RETURNING t.*) '
                           'INSERT INTO lifecycle.cleanup_quarantine (quarantined_at, rule_name, hypertable, '
                           'operation_id, row_data) SELECT now(), $1, $2, $3, to_jsonb(moved) FROM moved',
                           v_table, v_where)
                USING v_rule.rule_name, v_rule.hypertable, p_operation_id;
        END IF;
        GET DIAGNOSTICS v_pass = ROW_COUNT;
        removed := removed + v_pass;
        EXIT WHEN v_pass = 0;
    END LOOP;
    quarantined := CASE WHEN v_rule.action = 'delete' THEN 0 ELSE removed END;
END
$fn$;
