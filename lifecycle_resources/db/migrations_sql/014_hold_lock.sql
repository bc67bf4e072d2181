-- 014: a hold and a drop of the same table are serialised, so a hold added while a drop runs is never missed.
--
-- The drops checked the active holds and then dropped, in one READ COMMITTED transaction; a hold committed between
-- the check and the drop's commit (`lifecycle hold add` returned: the range is held) did not stop it. Now every
-- drop that honours holds (the archiver's, and _drop_chunks here) takes a shared lock on the table's holds before
-- reading them, and adding a hold takes it exclusively: a hold waits for the drops in flight, a drop for the holds
-- being added. Not the table's lifecycle lock, which a whole `lifecycle run` holds: a hold must not wait for a run
-- to end, since the run's next drops are exactly what it is meant to stop. Safe to run again (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION lifecycle._lock_holds(p_label text, p_exclusive boolean)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN p_exclusive THEN pg_advisory_xact_lock(hashtext('lifecycle-holds:' || p_label))
                ELSE pg_advisory_xact_lock_shared(hashtext('lifecycle-holds:' || p_label)) END
$fn$;

-- 013's _drop_chunks, taking that shared lock before it reads the holds.
CREATE OR REPLACE FUNCTION lifecycle._drop_chunks(p_hypertable regclass, p_cutoff text, p_cutoff_type regtype)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_label text := lifecycle._relation_label(p_hypertable);
    v_store text;
    v_chunk regclass;
    v_done  text[] := '{}';
    v_refused text;
BEGIN
    PERFORM lifecycle._lock_table(v_label);
    -- A hold being added waits for this drop to commit, and this drop for a hold being added (its own statement:
    -- the reads below take their snapshot after the wait, so they see that hold).
    PERFORM lifecycle._lock_holds(v_label, false);
    SELECT d.parameters ->> 'archive_store' INTO v_store FROM lifecycle.policy_declarations d
    WHERE d.hypertable = v_label AND d.kind = 'retention' AND d.enabled AND d.parameters ? 'archive_store'
    LIMIT 1;
    IF v_store IS NOT NULL THEN
        RAISE EXCEPTION 'lifecycle: the retention of % archives each chunk to store % before dropping it: '
                        'nothing dropped here', v_label, quote_literal(v_store)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run `lifecycle run` (DataLifecycleManager.run): it archives, verifies, then drops.';
    END IF;
    EXECUTE format('SELECT string_agg(r, ''; '') FROM %I.show_chunks($1, older_than => $2::%s) s, '
                   'lifecycle._chunk_refreshed_by(s) r WHERE r IS NOT NULL AND NOT lifecycle._chunk_held($3, s)',
                   lifecycle._extension_schema(), p_cutoff_type)
        INTO v_refused
        USING p_hypertable, p_cutoff, v_label;
    IF v_refused IS NOT NULL THEN
        RAISE EXCEPTION 'lifecycle: %: nothing dropped', v_refused
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Lengthen drop_after past the refresh policy''s start_offset, or shorten its start_offset.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM lifecycle.archive_holds h WHERE h.hypertable = v_label AND h.released_at IS NULL) THEN
        EXECUTE format('SELECT coalesce(array_agg(d.c), ''{}'') FROM %I.drop_chunks($1, older_than => $2::%s) AS d(c)',
                       lifecycle._extension_schema(), p_cutoff_type)
            INTO v_done
            USING p_hypertable, p_cutoff;
        RETURN v_done;
    END IF;
    FOR v_chunk IN EXECUTE format('SELECT s FROM %I.show_chunks($1, older_than => $2::%s) s',
                                  lifecycle._extension_schema(), p_cutoff_type)
                   USING p_hypertable, p_cutoff LOOP
        CONTINUE WHEN lifecycle._chunk_held(v_label, v_chunk);
        v_done := v_done || v_chunk::text;
        PERFORM _timescaledb_functions.drop_chunk(v_chunk);
    END LOOP;
    RETURN v_done;
END
$fn$;
