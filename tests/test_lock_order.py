"""An apply reads the table under the table's lock (reconcile.locks.lock_table), never before it: while another
apply holds the lock and changes the table, a waiting create must act on the table as that one left it, not on
what it saw before it waited. Another client's transaction stays open while the create waits: native only (the
embedded server serves one client at a time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from lifecycle_resources import CompressionSettingsProvider
from lifecycle_resources.errors import InputError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile.locks import lock_table
from tests.conftest import sql_run
from tests.test_archive_hold_race import in_thread
from tests.test_policy_providers import checked, hypertable, make, settings_of

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
