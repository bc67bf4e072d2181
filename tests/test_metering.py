"""db.metering.operation: the line each provider call appends to $LIFECYCLE_DB_TIMING, its CPU seconds included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lifecycle_resources.db import metering


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_operation_records_its_thread_cpu_from_the_callers_start(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "timing.jsonl"
    monkeypatch.setenv(metering.TIMING_ENV, str(path))
    with metering.operation("check", "Hypertable", "t000"):
        _burn(0.02)
    started = time.thread_time()
    _burn(0.05)  # the caller's imports, before the operation begins: counted from `started`
    with metering.operation("configure", "Hypertable", None, started):
        time.sleep(0.05)  # waiting is no CPU
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert (first["op"], first["kind"], first["resource"], first["statements"]) == ("check", "Hypertable", "t000", 0)
    assert 0.02 <= first["cpu_seconds"] < 0.2, first
    assert (second["op"], second["resource"]) == ("configure", "")
    assert 0.05 <= second["cpu_seconds"] < 0.09, second


def test_operation_writes_nothing_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metering.TIMING_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with metering.operation("check", "Hypertable", "t000"):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_transactions_are_metered_with_their_statements(tsdb_dsn: str) -> None:
    """psycopg sends BEGIN and COMMIT (or ROLLBACK; when nested SAVEPOINT, then RELEASE, or ROLLBACK TO and RELEASE)
    itself, not through the cursor: each is a round trip the provider waits for, counted as a statement with its
    time."""
    import psycopg
    from lifecycle_resources.db.connection import connect

    with connect(tsdb_dsn) as conn:
        with metering.metered() as committed:
            with conn.transaction():
                conn.execute("SELECT 1")
        with metering.metered() as rolled_back:
            with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
                conn.execute("SELECT 1 / 0")
        with metering.metered() as nested:
            with conn.transaction():
                with conn.transaction():
                    conn.execute("SELECT 1")
                with conn.transaction(force_rollback=True):
                    pass
        with metering.metered() as forced:
            with conn.transaction() as tx:
                raise psycopg.Rollback(tx)
        assert conn.execute("SELECT 2").fetchone() == (2,)
    assert (committed.statements, rolled_back.statements, nested.statements, forced.statements) == (3, 3, 8, 2)
    assert committed.seconds > 0


@pytest.mark.integration
def test_sql_log_holds_each_statement_as_sent(tsdb_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$LIFECYCLE_SQL_LOG: each statement as it went out (text with its placeholders, its parameters, whether it
    was prepared, whether it succeeded), transaction commands included, in order; the password never."""
    from datetime import datetime, timezone

    import psycopg
    from psycopg.types.json import Jsonb

    from lifecycle_resources.db.connection import connect

    path = tmp_path / "sql.jsonl"
    monkeypatch.setenv(metering.SQL_LOG_ENV, str(path))
    with connect(tsdb_dsn) as conn:
        password = conn.info.password
        with conn.transaction():
            conn.execute("SELECT %s::int + 1", (41,))
            conn.execute("SELECT %s::text", (password,))
        with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
            conn.execute("SELECT 1 / 0")
        # Parameters JSON cannot hold (a Jsonb, a timestamp, as the lifecycle schema's registrations send): the
        # statement is logged bound, its values as SQL literals, so that it can be replayed as it ran.
        when = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
        assert conn.execute("SELECT %s::jsonb ->> 'k', %s::timestamptz", (Jsonb({"k": "v"}), when)).fetchone() == \
            ("v", when)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    bound = lines.pop()
    assert bound["params"] is None and bound["prepare"] is False and bound["ok"] is True, bound
    with connect(tsdb_dsn) as conn:
        assert conn.execute(bound["sql"]).fetchone() == ("v", when), bound
    assert [(line["sql"], line["params"], line["prepare"], line["ok"]) for line in lines] == [
        ("BEGIN", None, False, True), ("SELECT %s::int + 1", [41], False, True),
        ("SELECT %s::text", ["<secret>"], False, True), ("COMMIT", None, False, True),
        ("BEGIN", None, False, True), ("SELECT 1 / 0", None, False, False), ("ROLLBACK", None, False, True)]
    assert password and password not in path.read_text()
