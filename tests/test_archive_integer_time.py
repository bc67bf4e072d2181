"""Archive and restore of an integer time hypertable: chunk bounds are integers everywhere (results, object
keys, manifests, `archive list`, restore ranges), against a real TimescaleDB and a local directory store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.runner.archive.store import LocalStore
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import chunks, lifecycle, rows_text
from tests.conftest import sql_run

# Nanoseconds since 1970, as trading systems keep them: the recorded bounds lie past year 9999 as timestamps.
BASE = 1_764_000_000_000_000_000
NOW = BASE + 10_000


def make_int_ticks(dsn: str, schema: str) -> str:
    rel = f'"{schema}".int_ticks'
    sql_run(dsn, f'CREATE FUNCTION "{schema}".ns_now() RETURNS bigint LANGUAGE sql STABLE AS '
                 f"$$ SELECT {NOW}::bigint $$")
    sql_run(dsn, f"CREATE TABLE {rel} (t bigint NOT NULL, symbol text, price float8, qty numeric(12,4))")
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('t', 1000))", (rel,))
    sql_run(dsn, "SELECT set_integer_now_func(%s::regclass, %s::regproc)", (rel, f'"{schema}".ns_now'))
    sql_run(dsn, f"INSERT INTO {rel} SELECT {BASE} + g * 7, s, CASE WHEN g % 50 = 0 THEN 'NaN' ELSE g * 1.5 END, "
                 "g / 3.0 FROM generate_series(0, 1428) g, unnest(ARRAY['AAPL', 'MSFT']) s")
    sql_run(dsn, f"ALTER TABLE {rel} SET (timescaledb.compress)")
    sql_run(dsn, f"SELECT compress_chunk(c) FROM (SELECT c FROM show_chunks('{rel}'::regclass) c ORDER BY 1 "
                 "LIMIT 1) x")
    return rel


@pytest.mark.integration
def test_archive_integer_time_round_trip_restores_every_row(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                            tmp_path: Path) -> None:
    rel = make_int_ticks(tsdb_dsn, schema)
    cutoff = NOW - 5_000  # older than 5000 ns before integer_now: the chunks ending at or before BASE + 5000
    original = rows_text(tsdb_dsn, rel, f"t < {cutoff}")
    later = rows_text(tsdb_dsn, rel, f"t >= {cutoff}")
    before = chunks(tsdb_dsn, schema)
    manager = DataLifecycleManager(tsdb_dsn)
    results = manager.archive(f"{schema}.int_ticks", "5000", f"file://{tmp_path}/store")

    assert [(r.range_start, r.range_end) for r in results] == [(BASE + i * 1000, BASE + (i + 1) * 1000)
                                                               for i in range(5)]
    assert all(r.action == "archived" and r.state == "dropped" and not r.error for r in results), results
    assert sum(r.rows or 0 for r in results) == len(original)
    assert f"{BASE} .. {BASE + 1000}" in results[0].describe()
    assert chunks(tsdb_dsn, schema) == before[5:]
    assert rows_text(tsdb_dsn, rel) == later

    store = LocalStore(tmp_path / "store")
    keys = sorted(k for k in store.keys() if k.endswith(".parquet"))
    assert keys[0].startswith(f"{schema}.int_ticks/{BASE}_{BASE + 1000}_"), keys[0]
    body = json.loads(store.read(keys[0] + ".manifest.json") or b"{}")
    assert (body["range_start"], body["range_end"]) == (BASE, BASE + 1000)
    listed = manager.archives(f"{schema}.int_ticks")
    assert [(e["range_start"], e["range_end"]) for e in listed] == [(r.range_start, r.range_end) for r in results]

    # Restore a part, then everything: integer bounds, each row once.
    part = manager.restore(f"{schema}.int_ticks", str(BASE + 1500), str(BASE + 3000), into=f"{schema}.part")
    assert sum(r.rows_loaded for r in part) == len(rows_text(tsdb_dsn, f'"{schema}".part'))
    assert rows_text(tsdb_dsn, f'"{schema}".part') == [r for r in original if r in rows_text(
        tsdb_dsn, f'"{schema}".part')]
    assert rows_text(tsdb_dsn, f'"{schema}".part') == sorted(
        r for r in original if BASE + 1500 <= int(r.strip("()").split(",")[0]) < BASE + 3000)
    manager.restore(f"{schema}.int_ticks", BASE, cutoff, into=f"{schema}.part")
    assert rows_text(tsdb_dsn, f'"{schema}".part') == original
    again = manager.restore(f"{schema}.int_ticks", BASE, cutoff, into=f"{schema}.part")
    assert sum(r.rows_loaded for r in again) == 0

    shown = lifecycle(tsdb_dsn, "archive", "list", "--table", f"{schema}.int_ticks")
    assert shown.returncode == 0 and str(BASE + 4000) in shown.stdout and "57868" not in shown.stdout, shown.stdout
    cli = lifecycle(tsdb_dsn, "restore", "--table", f"{schema}.int_ticks", "--from", str(BASE), "--to",
                    str(cutoff), "--into", f"{schema}.back")
    assert cli.returncode == 0, cli.stderr
    assert rows_text(tsdb_dsn, f'"{schema}".back') == original


@pytest.mark.integration
def test_archive_integer_time_refuses_an_interval_and_a_timestamp_range(tsdb_dsn: str, lifecycle_schema: None,
                                                                       schema: str, tmp_path: Path) -> None:
    rel = make_int_ticks(tsdb_dsn, schema)
    original = rows_text(tsdb_dsn, rel)
    manager = DataLifecycleManager(tsdb_dsn)
    with pytest.raises(LifecycleError, match=r"--older-than '10 days'.*integer time.*bigint.*give an integer"):
        manager.archive(f"{schema}.int_ticks", "10 days", f"file://{tmp_path}/store")
    with pytest.raises(LifecycleError, match=r"--from.*'2026-01-01'.*expected integers"):
        manager.restore(f"{schema}.int_ticks", "2026-01-01", "2026-01-02")
    sql_run(tsdb_dsn, f"CREATE TABLE {schema}.no_now (t bigint NOT NULL, v int)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('t', 1000))", (f"{schema}.no_now",))
    sql_run(tsdb_dsn, f"INSERT INTO {schema}.no_now VALUES (1, 1)")
    with pytest.raises(LifecycleError, match=r"no_now.*no integer_now function.*set_integer_now_func"):
        manager.archive(f"{schema}.no_now", "5000", f"file://{tmp_path}/store")
    assert rows_text(tsdb_dsn, rel) == original
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {schema}.no_now") == [(1,)]
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.archives WHERE hypertable = %s",
                   (f"{schema}.int_ticks",)) == [(0,)]
