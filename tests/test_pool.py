"""Connections reused within a provider process (db.pool), the shared catalog reads (catalog.cached) and the
LIFECYCLE_DB_TIMING hook, against a real server (embedded: one connection at a time)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lifecycle_resources.db import pool
from lifecycle_resources.db.connection import pooled
from lifecycle_resources.db.metering import TIMING_ENV
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile import catalog
from tests.conftest import server_under_test, sql_run
from tests.test_hypertable_provider import inputs, make_table, provider

pytestmark = pytest.mark.integration


@pytest.fixture
def pooling(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pooling and shared reads as in the provider host; every pooled connection closed afterwards (the
    embedded server serves nobody else while one is open)."""
    monkeypatch.setenv(pool.POOL_ENV, "1")
    monkeypatch.setattr(catalog, "_written", False)  # as a preview: no write yet in this process
    pool.close_all()
    try:
        yield
    finally:
        pool.close_all()
        with catalog.writing():  # drop what the test cached
            pass


def test_pool_parallel_calls_do_not_deadlock_or_interleave(tsdb_dsn: str, schema: str, pooling: None) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".seen (worker int, txid bigint)')
    opened: list[int] = []
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for _ in range(5):
                with pooled(tsdb_dsn, lambda c: opened.append(id(c))) as conn, conn.transaction():
                    tx = conn.execute("SELECT txid_current()").fetchone()[0]
                    conn.execute(f'INSERT INTO "{schema}".seen VALUES (%s, %s)', (worker, tx))
                    time.sleep(0.01)  # another thread would interleave here if it shared the connection
                    again = conn.execute("SELECT txid_current()").fetchone()[0]
                    mine = conn.execute(f'SELECT count(*) FROM "{schema}".seen WHERE txid = %s', (tx,)).fetchone()
                    assert (again, mine[0]) == (tx, 1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "parallel pooled calls deadlocked"
    assert errors == []
    limit = 1 if server_under_test() == "embedded" else pool.NATIVE_SIZE
    assert 1 <= len(opened) <= limit
    pool.close_all()
    assert sql_run(tsdb_dsn, f'SELECT count(*), count(DISTINCT txid) FROM "{schema}".seen') == [(30, 30)]


def test_pool_rolls_back_what_an_operation_left_open(tsdb_dsn: str, schema: str, pooling: None) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".t (v int)')
    with pooled(tsdb_dsn, lambda c: None) as conn:
        conn.execute("BEGIN")
        conn.execute(f'INSERT INTO "{schema}".t VALUES (1)')
    with pooled(tsdb_dsn, lambda c: None) as again:
        assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert again.execute(f'SELECT count(*) FROM "{schema}".t').fetchone()[0] == 0


def test_pool_replaces_a_connection_the_server_dropped(tsdb_dsn: str, pooling: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[psycopg.Connection] = []
    with pooled(tsdb_dsn, opened.append) as conn:
        conn.execute("SELECT 1")
    monkeypatch.setattr(pool, "PING_AFTER", 0.0)
    opened[0].pgconn.finish()  # as if the server had gone away while it sat in the pool
    with pooled(tsdb_dsn, opened.append) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
    assert len(opened) == 2 and conn is opened[1]


def test_pool_closes_an_idle_connection_for_other_clients(tsdb_dsn: str, pooling: None) -> None:
    with pooled(tsdb_dsn, lambda c: None) as conn:
        conn.execute("SELECT 1")
    started = time.monotonic()
    assert sql_run(tsdb_dsn, "SELECT 1") == [(1,)]  # on the embedded server: waits for the reaper
    assert time.monotonic() - started < pool.IDLE_SECONDS + 10


def test_catalog_cache_sees_writes_of_this_process_and_expires(tsdb_dsn: str, schema: str, pooling: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    table = TableName(schema, "t")
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".t (ts timestamptz NOT NULL)')

    def columns() -> list[str]:
        with pooled(tsdb_dsn, catalog.server_info) as conn:
            snap = catalog.table_snapshot(conn, table)
        return [c.name for c in snap.columns] if snap else []

    assert columns() == ["ts"]
    pool.close_all()
    sql_run(tsdb_dsn, f'ALTER TABLE "{schema}".t ADD COLUMN v int')  # by hand, during the "command"
    assert columns() == ["ts"]  # shared for CACHE_SECONDS at most
    with catalog.writing():  # any create/update/delete of this process drops it
        pass
    assert columns() == ["ts", "v"]
    pool.close_all()
    sql_run(tsdb_dsn, f'ALTER TABLE "{schema}".t ADD COLUMN w int')
    monkeypatch.setattr(catalog, "CACHE_SECONDS", 0.0)
    assert columns() == ["ts", "v", "w"]


def test_catalog_cache_never_serves_reads_inside_a_transaction(tsdb_dsn: str, schema: str, pooling: None) -> None:
    table = TableName(schema, "t")
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".t (ts timestamptz NOT NULL)')
    with pooled(tsdb_dsn, catalog.server_info) as conn:
        assert catalog.table_snapshot(conn, table) is not None  # now cached
        with conn.transaction():
            conn.execute(f'ALTER TABLE "{schema}".t ADD COLUMN v int')
            snap = catalog.table_snapshot(conn, table)
            assert snap is not None and [c.name for c in snap.columns] == ["ts", "v"]


def test_db_timing_writes_one_line_per_operation(tsdb_dsn: str, schema: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    table = make_table(tsdb_dsn, schema, rows=10)
    log = tmp_path / "timing.jsonl"
    monkeypatch.setenv(TIMING_ENV, str(log))
    p = provider(tsdb_dsn)
    outs = p.create(p.check({}, inputs(table)).inputs).outs
    threads = [threading.Thread(target=p.read, args=(table, outs)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(l["op"], l["kind"], l["resource"]) for l in lines] == [
        ("check", "Hypertable", "ticks"), ("create", "Hypertable", "ticks"), *[("read", "Hypertable", "ticks")] * 4]
    assert all(set(l) == {"op", "kind", "resource", "db_seconds", "statements", "cpu_seconds"} for l in lines)
    assert all(l["statements"] >= 1 and 0 < l["db_seconds"] < 60 for l in lines)
    # The CPU of each call's own thread: its Python and the driver's, never more than the call's wall time allows.
    assert all(0 < l["cpu_seconds"] < 60 for l in lines)


def test_db_timing_off_by_default(tsdb_dsn: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMING_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    p = provider(tsdb_dsn)
    p.check({}, inputs(make_table(tsdb_dsn, schema, rows=1)))
    assert list(tmp_path.iterdir()) == []


def test_catalog_present_not_remembered_from_a_transaction_that_may_roll_back(tsdb_dsn: str, schema: str,
                                                                              pooling: None) -> None:
    def probe(conn: psycopg.Connection) -> bool:
        return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".once',)).fetchone()[0])

    what = f"{schema}.once"
    with pooled(tsdb_dsn, catalog.server_info) as conn:
        with conn.transaction() as tx:
            conn.execute(f'CREATE TABLE "{schema}".once (v int)')
            assert catalog.present(conn, what, lambda: probe(conn))
            raise psycopg.Rollback(tx)
    with pooled(tsdb_dsn, catalog.server_info) as conn:
        assert not catalog.present(conn, what, lambda: probe(conn))
        conn.execute(f'CREATE TABLE "{schema}".once (v int)')
        assert catalog.present(conn, what, lambda: probe(conn))  # committed: remembered
        conn.execute(f'DROP TABLE "{schema}".once')
        assert catalog.present(conn, what, lambda: probe(conn))  # not asked again by this process


def test_catalog_cache_reads_aggregates_and_dimensions_once_per_schema(tsdb_dsn: str, schema: str,
                                                                         pooling: None) -> None:
    """Every policy asks whether its target is a continuous aggregate and which aggregates read its table, and every
    Hypertable reads its extra dimensions: in a preview that is one query per schema for each, not one per resource,
    with the same answers as the per-object queries."""
    from lifecycle_resources.db import metering
    from lifecycle_resources.reconcile import caggs, hypertables
    from lifecycle_resources.reconcile.declared import Peers

    for name in ("a", "b"):
        sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".{name} (ts timestamptz NOT NULL, device int NOT NULL)')
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".a', by_range('ts'))")
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".b', by_range('ts'))")
    sql_run(tsdb_dsn, f"SELECT add_dimension('\"{schema}\".b', by_hash('device', 4))")
    sql_run(tsdb_dsn, f'CREATE MATERIALIZED VIEW "{schema}".daily WITH (timescaledb.continuous) AS SELECT '
                      f'time_bucket(\'1 day\', ts) AS bucket, count(*) FROM "{schema}".a GROUP BY 1 WITH NO DATA')
    a, b, daily = TableName(schema, "a"), TableName(schema, "b"), TableName(schema, "daily")

    def answers(conn: psycopg.Connection) -> tuple:
        return (caggs.policy_target(conn, a.qualified, Peers()), caggs.policy_target(conn, b.qualified, Peers()),
                caggs.policy_target(conn, daily.qualified, Peers()) is not None,
                caggs.refreshed_over(conn, a), caggs.refreshed_over(conn, b),
                hypertables.read_extras(conn, a), hypertables.read_extras(conn, b))

    with pooled(tsdb_dsn, catalog.server_info) as conn:
        with conn.transaction():  # never shared inside a transaction: one query per object, as before
            each = answers(conn)
        with metering.metered() as first:
            shared = answers(conn)
        with metering.metered() as again:
            answers(conn)
    assert shared == each
    assert each[:3] == (None, None, True) and each[6].space_column == "device" and each[5].space_column is None
    assert each[3] == [] and each[4] == []  # daily has no refresh policy yet
    # One query per reader for the whole schema (aggregates, aggregates by source, dimensions), plus what only
    # the aggregate needs (its definition and its refresh policy), which is not shared: it is one object.
    assert (first.statements, again.statements) == (3 + 2, 2)


def test_catalog_present_absent_shared_within_a_command_then_seen(tsdb_dsn: str, schema: str, pooling: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Where reads are shared (a preview or refresh), "absent" is asked once for every resource of the moment (each
    RetentionPolicy asks whether the lifecycle schema's declarations exist), and, like every shared read, for
    CACHE_SECONDS at most and never past a write of this process: an object created by hand is then seen."""
    asked: list[bool] = []
    what = f"{schema}.later"

    def probe(conn: psycopg.Connection) -> bool:
        found = bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".later',)).fetchone()[0])
        asked.append(found)
        return found

    def present() -> bool:
        with pooled(tsdb_dsn, catalog.server_info) as conn, catalog.bundle_scope():
            return catalog.present(conn, what, lambda: probe(conn), created_here=False)

    assert [present() for _ in range(3)] == [False] * 3
    assert asked == [False]  # one round trip, not one per resource
    pool.close_all()
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".later (v int)')  # by hand, during the "command"
    with catalog.writing():  # any write of this process drops what was shared
        pass
    assert present() and asked == [False, True]
    monkeypatch.setattr(catalog, "_written", False)  # a new preview
    monkeypatch.setattr(catalog, "CACHE_SECONDS", 0.0)
    other = f"{schema}.other"
    with pooled(tsdb_dsn, catalog.server_info) as conn:
        assert not catalog.present(conn, other, lambda: False)
        assert catalog.present(conn, other, lambda: True)  # not served from an expired "no"


def test_catalog_bundle_composes_no_reads_where_none_are_fetched(tsdb_dsn: str, schema: str, pooling: None) -> None:
    """bundle() given a function: where reads are shared (a preview), the reads are not even composed; inside a
    transaction they are fetched as from a list, in one statement."""
    from lifecycle_resources.db import metering

    table = TableName(schema, "t")
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".t (ts timestamptz NOT NULL)')
    composed: list[int] = []

    def reads(conn: psycopg.Connection) -> list[catalog.Read]:
        composed.append(1)
        return [catalog.snapshot_read(conn, table), catalog.snapshot_read(conn, TableName(schema, "missing"))]

    with pooled(tsdb_dsn, catalog.server_info) as conn:
        with catalog.bundle_scope():
            catalog.bundle(conn, lambda: reads(conn))
        assert composed == []
        with conn.transaction(), catalog.bundle_scope():
            with metering.metered() as meter:
                catalog.bundle(conn, lambda: reads(conn))
                snap = catalog.table_snapshot(conn, table)
                missing = catalog.table_snapshot(conn, TableName(schema, "missing"))
    assert composed == [1] and meter.statements == 1
    assert snap is not None and [c.name for c in snap.columns] == ["ts"] and missing is None
