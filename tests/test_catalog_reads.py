"""The table and compression readers query TimescaleDB's catalog tables instead of its information views (their
planning alone cost 10-25 ms a query on the embedded server): they must read exactly what the views say, for
every kind of relation and setting the resources meet."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from lifecycle_resources.identifiers import TableName
from lifecycle_resources.db import metering
from lifecycle_resources.reconcile import caggs, catalog, compression, hypertables, impact, jobs, reorder

pytestmark = pytest.mark.integration

# The readers as they were, on the information views: the reference.
SNAPSHOT_BY_VIEWS = """
SELECT c.relname, c.relkind::text,
       (SELECT json_agg(json_build_array(a.attname, t.typname, format_type(a.atttypid, a.atttypmod))
                        ORDER BY a.attnum)
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       json_build_array(d.column_name, d.column_type::text, d.integer_interval, d.time_interval::text),
       h.compression_enabled
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN timescaledb_information.dimensions d
    ON d.hypertable_schema = n.nspname AND d.hypertable_name = c.relname AND d.dimension_number = 1
  LEFT JOIN timescaledb_information.hypertables h
    ON h.hypertable_schema = n.nspname AND h.hypertable_name = c.relname
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

COMPRESSION_BY_VIEWS = """
SELECT h.hypertable_name, h.compression_enabled, s.segmentby, s.orderby,
       (SELECT count(*) FROM timescaledb_information.chunks c
         WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name
           AND c.is_compressed)
  FROM timescaledb_information.hypertables h
  LEFT JOIN timescaledb_information.hypertable_columnstore_settings s
    ON s.hypertable = format('%%I.%%I', h.hypertable_schema, h.hypertable_name)::regclass
 WHERE h.hypertable_schema = %s
"""


def build(conn: psycopg.Connection, schema: str) -> None:
    """One of each: plain table, view, hypertables on timestamptz / date / bigint time with a space dimension, uuid,
    compression with quoted names and every NULLS placement, compressed chunks, a continuous aggregate."""
    s = sql.Identifier(schema)

    def run(text: str) -> None:
        conn.execute(sql.SQL(text).format(s=s))

    run("CREATE TABLE {s}.plain (ts timestamptz NOT NULL, v int)")
    run("CREATE VIEW {s}.a_view AS SELECT 1 AS one")
    run('CREATE TABLE {s}."Ticks" (ts timestamptz NOT NULL, "Sym bol" text, dev int, price float8, dropped int)')
    run('ALTER TABLE {s}."Ticks" DROP COLUMN dropped')
    run("SELECT create_hypertable(format('%I.%I', {s_text}, 'Ticks')::regclass, by_range('ts', interval '6 hours'))"
        .replace("{s_text}", sql.Literal(schema).as_string(conn)))
    run('ALTER TABLE {s}."Ticks" SET (timescaledb.compress, timescaledb.compress_segmentby = \'"Sym bol", dev\', '
        "timescaledb.compress_orderby = 'price ASC NULLS FIRST, ts DESC NULLS LAST')")
    run('INSERT INTO {s}."Ticks" SELECT now() - g * interval \'1 hour\', \'A\', g % 3, g FROM generate_series(1, 30) g')
    run('SELECT compress_chunk(c) FROM show_chunks(format(\'%I.%I\', {s_text}, \'Ticks\')::regclass) c LIMIT 2'
        .replace("{s_text}", sql.Literal(schema).as_string(conn)))
    run("CREATE TABLE {s}.days (day date NOT NULL, v int)")
    run("SELECT create_hypertable(format('%I.%I', {s_text}, 'days')::regclass, by_range('day', interval '1 month'))"
        .replace("{s_text}", sql.Literal(schema).as_string(conn)))
    run("ALTER TABLE {s}.days SET (timescaledb.compress)")
    run("CREATE TABLE {s}.counts (t bigint NOT NULL, k int NOT NULL, v int)")
    run("SELECT create_hypertable(format('%I.%I', {s_text}, 'counts')::regclass, by_range('t', 1000))"
        .replace("{s_text}", sql.Literal(schema).as_string(conn)))
    run("SELECT add_dimension(format('%I.%I', {s_text}, 'counts')::regclass, by_hash('k', 4))"
        .replace("{s_text}", sql.Literal(schema).as_string(conn)))
    run("CREATE TABLE {s}.events (id uuid NOT NULL, v int)")  # UUIDv7 time (TimescaleDB 2.22 on)
    run("SELECT create_hypertable(format('%I.%I', {s_text}, 'events')::regclass, by_range('id', interval '1 day'))"
        .replace("{s_text}", sql.Literal(schema).as_string(conn)))
    run("CREATE MATERIALIZED VIEW {s}.hourly WITH (timescaledb.continuous) AS "
        'SELECT time_bucket(interval \'1 hour\', ts) AS bucket, count(*) FROM {s}."Ticks" GROUP BY 1 WITH NO DATA')


def rows(conn: psycopg.Connection, query: Any, schema: str) -> list[tuple]:
    return sorted(conn.execute(query, (schema,)).fetchall(), key=lambda r: r[0])


def test_catalog_reads_match_the_information_views(tsdb_dsn: str, schema: str) -> None:
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        build(conn, schema)
        by_views = rows(conn, SNAPSHOT_BY_VIEWS, schema)
        ours = rows(conn, catalog._SNAPSHOT.format(one=sql.SQL(""), time_types=catalog._time_types(conn)), schema)
        # The views give an array of nulls for a plain table, ours null: the reader treats both as "no dimension".
        assert [r[:3] + (r[3] if r[3] and r[3][0] is not None else None, bool(r[4])) for r in by_views] == \
               [r[:3] + (r[3], bool(r[4])) for r in ours]
        assert {r[0] for r in ours} == {"plain", "a_view", "Ticks", "days", "counts", "events", "hourly"}
        assert rows(conn, COMPRESSION_BY_VIEWS, schema) == rows(conn, compression._READ.format(one=sql.SQL("")),
                                                                 schema)
        # What the readers make of it, one table at a time as a transaction reads it.
        with conn.transaction():
            ticks = catalog.table_snapshot(conn, TableName(schema=schema, name="Ticks"))
            counts = catalog.table_snapshot(conn, TableName(schema=schema, name="counts"))
            state = compression.read_settings(conn, catalog.server_info(conn),
                                              TableName(schema=schema, name="Ticks"))
    assert ticks is not None and ticks.time_dimension is not None and ticks.compression_enabled
    assert (ticks.time_dimension.column, ticks.time_dimension.interval_value) == ("ts", 6 * 3600 * 10**6)
    assert [c.name for c in ticks.columns] == ["ts", "Sym bol", "dev", "price"]
    assert counts is not None and counts.time_dimension is not None and not counts.compression_enabled
    assert (counts.time_dimension.column_type, counts.time_dimension.interval_value) == ("int8", 1000)
    assert state is not None and state.compressed_chunks == 2
    assert (state.segment_by, state.order_by) == (("Sym bol", "dev"), ("price ASC NULLS FIRST",
                                                                       "ts DESC NULLS LAST"))


# The jobs readers as they were, on timescaledb_information.jobs: the reference.
JOBS_BY_VIEW = """
SELECT j.hypertable_name, j.job_id, j.config, jsonb_typeof(j.config -> %s),
       CASE jsonb_typeof(j.config -> %s)
            WHEN 'number' THEN j.config ->> %s
            WHEN 'string' THEN (j.config ->> %s)::interval::text
       END,
       j.schedule_interval::text, j.max_runtime::text, j.max_retries, j.retry_period::text, j.scheduled,
       coalesce(j.next_start = 'infinity'::timestamptz, false), j.fixed_schedule, b.timezone, j.initial_start
  FROM timescaledb_information.jobs j
  LEFT JOIN _timescaledb_config.bgw_job b ON b.id = j.job_id
 WHERE j.proc_name = %s AND j.hypertable_schema = %s AND j.hypertable_name = %s
   AND j.job_id >= %s
 ORDER BY j.job_id
"""
JOB_IDS_BY_VIEW = """
SELECT job_id FROM timescaledb_information.jobs
 WHERE proc_name = %s AND hypertable_schema = %s AND hypertable_name = %s AND job_id >= %s ORDER BY job_id
"""


def test_jobs_reads_match_the_information_view(tsdb_dsn: str, schema: str) -> None:
    """The policies', refresh policies' and reorder policies' jobs of one relation, read from TimescaleDB's tables
    through bgw_job's index (the view's filter scans every job): the same rows as the view gives, for a hypertable,
    an aggregate (its jobs run on its materialization hypertable, which the view names after the aggregate), that
    materialization hypertable by its own name (none), a table without jobs and a missing one; paused, with a
    timezone, and with jobs of the same kind on other tables beside them."""
    ticks, hourly = TableName(schema=schema, name="Ticks"), TableName(schema=schema, name="hourly")
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        build(conn, schema)
        s = sql.Literal(schema).as_string(conn)
        for statement in (
                f"SELECT add_compression_policy(format('%I.%I', {s}, 'Ticks')::regclass, interval '7 days')",
                f"SELECT add_retention_policy(format('%I.%I', {s}, 'Ticks')::regclass, interval '30 days', "
                "timezone => 'Europe/Paris')",
                f"SELECT add_retention_policy(format('%I.%I', {s}, 'days')::regclass, interval '1 year')",
                f"SELECT add_reorder_policy(format('%I.%I', {s}, 'Ticks')::regclass, 'Ticks_ts_idx')",
                f"SELECT add_continuous_aggregate_policy(format('%I.%I', {s}, 'hourly')::regclass, "
                "interval '3 days', interval '1 hour', interval '1 hour')",
                f"SELECT add_retention_policy(format('%I.%I', {s}, 'hourly')::regclass, interval '90 days')"):
            conn.execute(statement)
        conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                     "WHERE hypertable_schema = %s AND proc_name = 'policy_compression'", (schema,))
        mat = conn.execute("SELECT materialization_hypertable_schema, materialization_hypertable_name "
                           "FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s", (schema,)
                           ).fetchone()
        relations = [TableName(schema=schema, name=n) for n in ("Ticks", "counts", "days", "hourly", "missing")]
        relations.append(TableName(schema=mat[0], name=mat[1]))
        found = 0
        for kind in (jobs.COMPRESSION, jobs.RETENTION):
            for t in relations:
                view = conn.execute(JOBS_BY_VIEW, (*[kind.window_key] * 4, kind.proc_name, t.schema, t.name,
                                                   jobs.FIRST_USER_JOB)).fetchall()
                with conn.transaction():
                    ours = catalog.rows(conn, jobs.jobs_read(kind, t))
                assert ours == view, (kind.proc_name, t)
                found += len(ours)
        assert found == 4  # compression on Ticks; retention on Ticks, days and hourly
        for t in relations:
            assert [j.job_id for j in caggs.read_refresh(conn, t)] == [r[0] for r in conn.execute(
                JOB_IDS_BY_VIEW, (caggs.REFRESH_PROC, t.schema, t.name, jobs.FIRST_USER_JOB))], t
            assert [j.job_id for j in reorder.read_jobs(conn, t)] == [r[0] for r in conn.execute(
                JOB_IDS_BY_VIEW, (reorder.PROC, t.schema, t.name, jobs.FIRST_USER_JOB))], t
        assert len(caggs.read_refresh(conn, hourly)) == len(reorder.read_jobs(conn, ticks)) == 1
        # The whole schema's jobs at once (outside a transaction), as the view gives them.
        by_view = conn.execute(JOBS_BY_VIEW.replace("AND j.hypertable_name = %s", ""),
                               (*[jobs.RETENTION.window_key] * 4, jobs.RETENTION.proc_name, schema,
                                jobs.FIRST_USER_JOB)).fetchall()
        assert conn.execute(jobs._READ.format(where=jobs._SCHEMA), jobs._params(jobs.RETENTION, schema)).fetchall() \
            == by_view and len(by_view) == 3


def _scanned(plan: dict, relation: str) -> int:
    """Rows a plan read from `relation`: those it returned and those its filters removed, in every node on it."""
    here = 0
    if plan.get("Relation Name") == relation:
        here = (plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) + plan.get("Rows Removed by Filter", 0)
                + plan.get("Rows Removed by Index Recheck", 0))
    return here + sum(_scanned(child, relation) for child in plan.get("Plans", []))


def test_jobs_read_of_one_table_does_not_scan_every_job(tsdb_dsn: str, schema: str) -> None:
    """A policy reads its table's jobs at its check, under its lock and in its read-back. Through the information
    view that read scanned and joined every job of the database (its filter compares names no index serves): 4.8 ms
    at 600 jobs on the embedded server, quadratic over an `up`. Planned as the provider's pooled connections plan it
    (one generic plan), it now reads its own table's job and no other, among 300 tables' policies. The catalog is
    analysed and whole-table scans are off: at 40 jobs, unanalysed, the planner rightly walked all of them in CI
    runs (scan or primary key). The view's read has no other path whatever the size."""
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        for i in range(300):
            table = sql.Identifier(schema, f"t{i}")
            conn.execute(sql.SQL("CREATE TABLE {} (ts timestamptz NOT NULL)").format(table))
            regclass = f'"{schema}"."t{i}"'
            conn.execute("SELECT create_hypertable(%s::regclass, by_range('ts'))", (regclass,))
            conn.execute("SELECT add_retention_policy(%s::regclass, interval '30 days')", (regclass,))
        # Statistics as autovacuum would keep them: without them the planner guesses the size of a table it has
        # never measured (in one CI run it walked bgw_job's primary key rather than sort one row).
        conn.execute(sql.SQL("ANALYZE {}, _timescaledb_catalog.hypertable").format(sql.SQL(conn.execute(
            "SELECT coalesce(to_regclass('_timescaledb_catalog.bgw_job'), "
            "to_regclass('_timescaledb_config.bgw_job'))::text").fetchone()[0])))
        read = jobs.jobs_read(jobs.RETENTION, TableName(schema=schema, name="t7"))
        text = read.query.as_string(conn)
        parts = text.split("%s")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        conn.execute(f"PREPARE jobs_of_one AS {numbered}")
        args = sql.SQL(", ").join(sql.Literal(v) for v in read.params)
        plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE jobs_of_one({})").format(args)
                            ).fetchone()[0][0]["Plan"]
        assert [r[1] for r in conn.execute(sql.SQL("EXECUTE jobs_of_one({})").format(args))] == [
            conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
                         "AND hypertable_name = 't7'", (schema,)).fetchone()[0]]
        conn.execute("DEALLOCATE jobs_of_one")
    assert _scanned(plan, "bgw_job") <= 2, plan


def test_catalog_reads_per_object_once_the_process_has_written(tsdb_dsn: str, schema: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """In the provider host, a preview's reads share one read of the whole schema for a moment; once the process
    has written (an `up`), each read queries its own object: every write drops the shared reads, and reading a
    whole schema (or the whole ownership ledger) per resource made an `up` quadratic in resources."""
    monkeypatch.setenv("LIFECYCLE_POOL", "1")
    monkeypatch.setattr(catalog, "_written", False, raising=False)
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        def table(name: str) -> TableName:  # made by hand (the embedded server serves one connection at a time)
            conn.execute(sql.SQL("CREATE TABLE {} (ts timestamptz NOT NULL)").format(sql.Identifier(schema, name)))
            return TableName(schema=schema, name=name)

        assert catalog.table_snapshot(conn, table("a")) is not None
        assert catalog.table_snapshot(conn, table("b")) is None  # a preview: the schema as read a moment ago
        with catalog.writing():
            pass
        assert catalog.table_snapshot(conn, table("c")) is not None
        assert catalog.table_snapshot(conn, table("d")) is not None  # an `up`: each read its own query


def test_catalog_bundle_reads_as_each_read_alone(tsdb_dsn: str, schema: str) -> None:
    """catalog.bundle() sends a plan's reads as one statement: each reader must get exactly the rows (values and
    types, order, none for a missing object) its own query gives, also where several reads return several rows
    (joined, their rows multiply), each once: a second read of the same object (a read-back) queries again.
    Its write runs once, in the same statement."""
    with psycopg.connect(tsdb_dsn, autocommit=True, cursor_factory=metering.MeteredCursor) as conn:
        build(conn, schema)
        conn.execute(sql.SQL("CREATE MATERIALIZED VIEW {} WITH (timescaledb.continuous) AS SELECT time_bucket("
                             "interval '1 day', ts) AS bucket, max(price) FROM {} GROUP BY 1 WITH NO DATA").format(
                                 sql.Identifier(schema, "daily"), sql.Identifier(schema, "Ticks")))
        conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(sql.Identifier(schema, "written")))
        ticks, counts = TableName(schema=schema, name="Ticks"), TableName(schema=schema, name="counts")
        conn.execute("SELECT add_compression_policy(format('%%I.%%I', %s::text, 'Ticks')::regclass, "
                     "interval '7 days')", (schema,))
        reads = [caggs.near_read(ticks), catalog.snapshot_read(conn, ticks), hypertables.extras_read(counts),
                 compression.settings_read(ticks), jobs.jobs_read(jobs.COMPRESSION, ticks),
                 catalog.snapshot_read(conn, TableName(schema=schema, name="missing")), impact.dimension_read(ticks)]
        with conn.transaction(), catalog.bundle_scope():
            alone = [conn.execute(r.query, r.params).fetchall() for r in reads]
            with metering.metered() as meter:
                catalog.bundle(conn, reads, (sql.SQL("INSERT INTO {} VALUES (%s)").format(
                    sql.Identifier(schema, "written")), (7,)))
                bundled = [catalog.rows(conn, r) for r in reads]
            assert meter.statements == 1
            with metering.metered() as meter:
                again = catalog.rows(conn, reads[1])
            assert meter.statements == 1 and again == alone[1]
            assert conn.execute(sql.SQL("SELECT n FROM {}").format(sql.Identifier(schema, "written"))).fetchall() \
                == [(7,)]
    assert [len(a) for a in alone] == [2, 1, 2, 1, 1, 0, 1]
    assert bundled == alone
    assert [[tuple(type(v) for v in row) for row in b] for b in bundled] == \
           [[tuple(type(v) for v in row) for row in a] for a in alone]
