"""An apply reads the table under the table's lock (reconcile.locks.lock_table), never before it: while another
apply holds the lock and changes the table, a waiting create must act on the table as that one left it, not on
what it saw before it waited. Each test fails with its resource's read moved before the lock (CompressionSettings,
Hypertable, CompressionPolicy, RetentionPolicy, ReorderPolicy, ContinuousAggregate). Another client's transaction
stays open while the create waits: native only (the embedded server serves one client at a time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from lifecycle_resources import (CompressionPolicyProvider, CompressionSettingsProvider, ContinuousAggregateProvider,
                                 ReorderPolicyProvider, RetentionPolicyProvider)
from lifecycle_resources.errors import InputError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile.locks import lock_table
from tests.conftest import sql_run
from tests.test_cagg_provider import QUERY, declared, refresh_jobs
from tests.test_archive_hold_race import in_thread
from tests.test_hypertable_provider import inputs, interval_of, make_table, provider
from tests.test_policy_providers import checked, hypertable, jobs_of, make, settings_of
from tests.test_reorder import decl, reorder_jobs, table_with_indexes

pytestmark = [pytest.mark.integration,
              pytest.mark.native_only("a second client holds the table's lock while the create waits: the embedded "
                                      "server serves one client at a time")]


def waits_on_the_table_lock(dsn: str, holder: psycopg.Connection, table: TableName,
                            thread: threading.Thread) -> None:
    """Until another backend waits for the advisory lock `holder` holds on `table` (pg_locks, not a sleep)."""
    key = f"lifecycle:{table.qualified}"
    for _ in range(600):
        if sql_run(dsn, "SELECT 1 FROM pg_locks w JOIN pg_locks h USING (locktype, classid, objid, objsubid) "
                        "WHERE w.locktype = 'advisory' AND NOT w.granted AND h.granted AND h.pid = %s "
                        "AND h.objid = (hashtext(%s)::bigint & 4294967295)::oid", (holder.info.backend_pid, key)):
            return
        thread.join(0.05)
        assert thread.is_alive(), "it did not wait for the table's lock"
    raise AssertionError("it never waited on the table's lock")


def while_locked(dsn: str, table: TableName, work: Callable[[], Any], change: str) -> Any:
    """`work`'s result, started while another transaction holds `table`'s lock; that transaction runs `change`
    once `work` waits for the lock, then commits (releasing it)."""
    with psycopg.connect(dsn) as holder:
        lock_table(holder, table)
        thread, outcome = in_thread(work)
        try:
            waits_on_the_table_lock(dsn, holder, table, thread)
            holder.execute(change)
            holder.commit()
        finally:
            holder.rollback()  # a failed wait: let the create go on, so the thread ends
            thread.join(60)
    assert not thread.is_alive() and len(outcome) == 1, outcome
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_compression_settings_create_reads_the_table_under_its_lock(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    news = checked(p, {}, {"hypertable": table, "segment_by": ["symbol"], "order_by": [], "resource_name": "cs"})
    # While the create waits, another apply enables compression with other settings.
    outs = while_locked(tsdb_dsn, TableName.parse(table), lambda: p.create(news).outs,
                        f'ALTER TABLE "{schema}".ticks SET (timescaledb.compress, '
                        "timescaledb.compress_segmentby = 'price')")
    # The create saw compression enabled by the other: it changed those settings (and says so), rather than
    # "enabling" compression as it found it before it waited.
    assert outs["adopted"] is True, outs["last_operations"]
    assert any("segment_by [price] -> [symbol]" in op for op in outs["last_operations"]), outs["last_operations"]
    assert settings_of(tsdb_dsn, schema)[0] == "symbol"


def test_compression_settings_create_refuses_a_column_dropped_while_it_waited(tsdb_dsn: str, schema: str) -> None:
    """The columns too are read under the lock (before the merged read, they were read before it)."""
    table = hypertable(tsdb_dsn, schema)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    news = checked(p, {}, {"hypertable": table, "segment_by": ["symbol"], "order_by": [], "resource_name": "cs"})
    with pytest.raises(InputError) as refused:
        while_locked(tsdb_dsn, TableName.parse(table), lambda: p.create(news),
                     f'ALTER TABLE "{schema}".ticks DROP COLUMN symbol')
    # Refused by name, field and value before anything is changed, not by the server's error on the ALTER TABLE.
    assert (refused.value.resource, refused.value.field, refused.value.value) == ("cs", "segment_by", "symbol")
    assert "no such column" in str(refused.value)
    assert sql_run(tsdb_dsn, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s", (schema,)) == [(False,)]


@pytest.mark.parametrize(("kind", "window_key", "add"), [
    (CompressionPolicyProvider, "compress_after", "add_compression_policy"),
    (RetentionPolicyProvider, "drop_after", "add_retention_policy")])
def test_policy_create_reads_the_jobs_under_the_table_lock(tsdb_dsn: str, schema: str, kind: type, window_key: str,
                                                           add: str) -> None:
    table = hypertable(tsdb_dsn, schema, rows=10, compress=True)
    p = make(kind, tsdb_dsn)
    # Named per kind: with the lifecycle schema, a name is registered as one kind of policy (per stack).
    news = checked(p, {}, {"hypertable": table, window_key: "7 days", "resource_name": f"lock_order_{window_key}"})
    # While the create waits, another apply adds the table's policy with another window.
    outs = while_locked(tsdb_dsn, TableName.parse(table), lambda: p.create(news).outs,
                        f"SELECT {add}('\"{schema}\".ticks'::regclass, interval '3 days')")
    # The create adopted and altered that job instead of adding a second one (or failing on it).
    assert outs["adopted"] is True, outs["last_operations"]
    found = jobs_of(tsdb_dsn, schema)
    assert [j[0] for j in found] == [outs["job_id"]] and found[0][3][window_key] == "7 days", found


def test_hypertable_create_reads_the_table_under_its_lock(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema, rows=10)
    p = provider(tsdb_dsn)
    news = checked(p, {}, inputs(table))
    # While the create waits, another apply makes the table a hypertable with another chunk interval.
    outs = while_locked(tsdb_dsn, TableName.parse(table), lambda: p.create(news).outs,
                        f"SELECT create_hypertable('\"{schema}\".ticks'::regclass, by_range('ts', interval '2 days'), "
                        "migrate_data => true)")
    # The create adopted that hypertable and set the declared interval, rather than creating it again.
    assert outs["adopted"] is True, outs.get("last_operations")
    assert interval_of(tsdb_dsn, schema) == "1 day"


def test_reorder_policy_create_reads_the_jobs_under_the_table_lock(tsdb_dsn: str, schema: str) -> None:
    table = table_with_indexes(tsdb_dsn, schema)
    p = make(ReorderPolicyProvider, tsdb_dsn)
    news = checked(p, {}, decl(table))
    # While the create waits, another apply adds the table's reorder policy on another index.
    outs = while_locked(tsdb_dsn, TableName.parse(table), lambda: p.create(news).outs,
                        f"SELECT add_reorder_policy('\"{schema}\".ticks'::regclass, 'ticks_ts_idx')")
    # The create adopted and altered that job instead of adding a second one (or failing on it).
    assert outs["adopted"] is True, outs["last_operations"]
    assert [r[:2] for r in reorder_jobs(tsdb_dsn, schema)] == [(outs["job_id"], "ticks_symbol_ts")]


def test_cagg_create_reads_the_view_under_its_lock(tsdb_dsn: str, schema: str) -> None:
    hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    news = checked(p, {}, declared(schema))
    # While the create waits, another apply creates the aggregate.
    outs = while_locked(tsdb_dsn, TableName(schema, "ohlcv"), lambda: p.create(news).outs,
                        f'CREATE MATERIALIZED VIEW "{schema}".ohlcv WITH (timescaledb.continuous) AS '
                        + QUERY.format(table=f'"{schema}".ticks') + " WITH NO DATA")
    # The create adopted it (and added its refresh policy) rather than creating it again.
    assert outs["adopted"] is True, outs["last_operations"]
    assert len(refresh_jobs(tsdb_dsn, schema)) == 1


def test_cagg_create_reads_its_sources_retention_under_the_sources_lock(tsdb_dsn: str, schema: str) -> None:
    """The aggregate's overlap check reads the source's retention job: under the source's lock, which a
    RetentionPolicy's apply holds while it adds that job (it reads the aggregates under that lock only)."""
    table = hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    news = checked(p, {}, declared(schema))  # refresh from 2 days ago
    # While the create waits, another apply adds a retention on the source that drops inside the refresh window.
    with pytest.raises(InputError) as refused:
        while_locked(tsdb_dsn, TableName.parse(table), lambda: p.create(news),
                     f"SELECT add_retention_policy('\"{schema}\".ticks'::regclass, interval '1 day')")
    assert (refused.value.field, refused.value.value) == ("refresh_policy.start_offset", "2 days"), refused.value
    assert "drops chunks older than 1 day" in str(refused.value)
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
                             "WHERE view_schema = %s", (schema,)) == [(0,)]
