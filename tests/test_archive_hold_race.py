"""A hold added while a drop runs (migration 014, archiver.lock_holds): whichever commits first, no chunk a hold
covers is dropped after `hold add` returned. Another client's transaction is open while the drop or the hold
waits: native only (the embedded server serves one client at a time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lifecycle_resources.db.connection import connect
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.runner.archive import archiver, holds
from lifecycle_resources.runner.archive.plan import object_key
from lifecycle_resources.runner.archive.store import LocalStore
from tests.archive_helpers import chunks, make_ticks
from tests.conftest import sql_run

pytestmark = [pytest.mark.integration,
              pytest.mark.native_only("a second client's transaction stays open while the first waits: the "
                                      "embedded server serves one client at a time")]


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def waits_on_the_holds_lock(dsn: str, thread: threading.Thread) -> None:
    for _ in range(400):
        if sql_run(dsn, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
            return
        thread.join(0.05)
        assert thread.is_alive(), "it did not wait for the other transaction"
    raise AssertionError("it never waited on the holds lock")


def first_chunk(dsn: str, table: TableName) -> dict[str, Any]:
    with connect(dsn) as conn:
        return archiver.expiring_chunks(conn, table, "10 days")[0]


def hold_in_flight(dsn: str, table: TableName, chunk: dict[str, Any]) -> psycopg.Connection:
    """A transaction adding a hold over `chunk`, as holds.add does, left open (the caller commits it)."""
    adder = psycopg.connect(dsn)
    archiver.lock_holds(adder, table, exclusive=True)
    adder.execute("INSERT INTO lifecycle.archive_holds (hypertable, range_from, range_to, reason) "
                  "VALUES (%s, %s, %s, 'added while a drop runs')",
                  (table.qualified, chunk["range_start"], chunk["range_end"]))
    return adder


def while_a_hold_is_added(dsn: str, table: TableName, chunk: dict[str, Any], work: Callable[[], Any]) -> list[Any]:
    """`work`'s outcome, run while a hold over `chunk` is being added: it must wait, then see the hold."""
    adder = hold_in_flight(dsn, table, chunk)
    try:
        thread, outcome = in_thread(work)
        waits_on_the_holds_lock(dsn, thread)
        adder.commit()
        thread.join(30)
    finally:
        adder.close()
    return outcome


def test_archive_drop_waits_for_a_hold_being_added_and_keeps_the_chunk(tsdb_dsn: str, lifecycle_schema: None,
                                                                       schema: str, tmp_path: Path) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    table = TableName(schema, "ticks")
    info = first_chunk(tsdb_dsn, table)
    with connect(tsdb_dsn) as conn, conn.transaction():
        s = archiver._snapshot(conn, table, info)

    def drop() -> None:
        with connect(tsdb_dsn) as conn:
            archiver._drop(conn, table, s, LocalStore(tmp_path / "s"), object_key(s), 1, "x")
    outcome = while_a_hold_is_added(tsdb_dsn, table, info, drop)
    assert len(outcome) == 1 and isinstance(outcome[0], archiver.Mismatch), outcome
    assert "came under a hold" in str(outcome[0])
    assert info["chunk"] in chunks(tsdb_dsn, schema)


def test_hold_add_waits_for_a_drop_in_flight(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    table = TableName(schema, "ticks")
    info = first_chunk(tsdb_dsn, table)
    with psycopg.connect(tsdb_dsn) as dropping:  # a drop's transaction, past its reading of the holds
        archiver.lock_holds(dropping, table, exclusive=False)

        def add() -> Any:
            with connect(tsdb_dsn) as conn:
                return holds.add(conn, table.qualified, info["range_start"], info["range_end"], "late")
        thread, outcome = in_thread(add)
        waits_on_the_holds_lock(tsdb_dsn, thread)
        dropping.commit()
        thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], holds.Hold), outcome


def test_sql_drop_chunks_waits_for_a_hold_being_added_and_keeps_the_chunk(tsdb_dsn: str, lifecycle_schema: None,
                                                                          schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    table = TableName(schema, "ticks")
    info = first_chunk(tsdb_dsn, table)
    expiring = [c for c in chunks(tsdb_dsn, schema) if c != info["chunk"]][:1]

    def drop() -> list[str]:
        with connect(tsdb_dsn) as conn:
            row = conn.execute("SELECT lifecycle._drop_chunks(%s::regclass, '10 days', 'interval'::regtype)",
                               (f'"{schema}".ticks',)).fetchone()
            return list(row[0]) if row else []
    outcome = while_a_hold_is_added(tsdb_dsn, table, info, drop)
    assert len(outcome) == 1 and isinstance(outcome[0], list), outcome
    assert info["chunk"] not in outcome[0] and info["chunk"] in chunks(tsdb_dsn, schema)
    assert expiring and expiring[0] in outcome[0]  # the other expiring chunks went on
