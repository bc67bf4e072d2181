"""Archive before drop and restore, against a real TimescaleDB and a local directory store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lifecycle_resources.db.connection import connect
from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.runner.archive import archiver
from lifecycle_resources.runner.archive.plan import (Snapshot, manifest, manifest_key, manifest_problems,
                                                     object_key)
from lifecycle_resources.runner.archive.store import LocalStore, open_store
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import before_expiring_end, chunks, lifecycle, make_ticks, rows_text
from tests.conftest import sql_run

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def snap(**kw: object) -> Snapshot:
    base = dict(hypertable="public.ticks", chunk="_timescaledb_internal._hyper_1_2_chunk", range_start=T0,
                range_end=T0 + timedelta(days=1), row_count=10, export_sha256="12345")
    return Snapshot(**{**base, **kw})


def test_plan_object_key_is_deterministic_and_follows_the_export() -> None:
    key = object_key(snap())
    assert key == object_key(snap())
    assert key.startswith("public.ticks/20260101T000000000000Z_20260102T000000000000Z__hyper_1_2_chunk_")
    assert key.endswith(".parquet")
    assert object_key(snap(row_count=11)) != key and object_key(snap(export_sha256="9")) != key
    assert object_key(snap(hypertable='we"ird/..')).startswith("we%22ird%2F../")
    assert manifest_key(key) == key + ".manifest.json"


def test_plan_manifest_problems_name_each_difference() -> None:
    s = snap()
    key = object_key(s)
    body = manifest(s, key=key, size=5, sha256="12345", columns=[], exported_at=T0)
    assert manifest_problems(body, s, key) == []
    assert manifest_problems(body, snap(row_count=9), key) == ["manifest row_count is 10, expected 9"]
    assert manifest_problems(b"{nope", s, key) == ["the manifest is not JSON"]


def test_store_local_manifest_is_written_once(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/arch")
    assert isinstance(store, LocalStore)
    assert store.put_once("a/b.manifest.json", b"first") is True
    assert store.put_once("a/b.manifest.json", b"second") is False
    assert store.read("a/b.manifest.json") == b"first"
    src = tmp_path / "data"
    src.write_bytes(b"partial")
    store.put_file("a/b.parquet", src)
    src.write_bytes(b"complete")
    store.put_file("a/b.parquet", src)  # a data object without manifest is overwritten
    assert store.read("a/b.parquet") == b"complete" and store.size("a/b.parquet") == 8
    assert store.keys("a/") == ["a/b.manifest.json", "a/b.parquet"]
    with pytest.raises(LifecycleError, match="leaves the store"):
        store.size("../x")
    for bad in ("http://x/y", "file://host/p", "s3://key:secret@bucket/p"):
        with pytest.raises(LifecycleError) as exc:
            open_store(bad)
        assert "secret" not in str(exc.value)


@pytest.mark.integration
def test_archive_round_trip_restores_every_row(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                               tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema)
    before = chunks(tsdb_dsn, schema)
    cutoff = before_expiring_end(tsdb_dsn, schema, "10 days")
    original = rows_text(tsdb_dsn, rel, cutoff)
    expiring = [r[0] for r in sql_run(tsdb_dsn, "SELECT count(*) FROM show_chunks(%s::regclass, older_than => "
                                                "interval '10 days')", (rel,))]
    manager = DataLifecycleManager(tsdb_dsn)
    results = manager.archive(f"{schema}.ticks", "10 days", f"file://{tmp_path}/store")
    assert [r.error for r in results] == [None] * len(results) and len(results) == expiring[0] >= 9
    assert {r.action for r in results} == {"archived"} and {r.state for r in results} == {"dropped"}
    assert sum(r.rows for r in results) == len(original)
    assert len(chunks(tsdb_dsn, schema)) == len(before) - len(results)
    assert rows_text(tsdb_dsn, rel, cutoff) == []
    objects = LocalStore(tmp_path / "store").keys()
    assert len([k for k in objects if k.endswith(".parquet")]) == len(results)
    assert len([k for k in objects if k.endswith(".manifest.json")]) == len(results)
    states = sql_run(tsdb_dsn, "SELECT state, count(*) FROM lifecycle.archives WHERE hypertable = %s GROUP BY 1",
                     (f"{schema}.ticks",))
    assert states == [("dropped", len(results))]
    history = sql_run(tsdb_dsn, "SELECT state, count(*) FROM lifecycle.archive_metadata WHERE hypertable = %s "
                                "GROUP BY 1 ORDER BY 1", (f"{schema}.ticks",))
    assert history == [("dropped", len(results)), ("pending", len(results)), ("verified", len(results))]

    first, last = results[0].range_start, results[-1].range_end
    restored = manager.restore(f"{schema}.ticks", first, last)
    assert sum(r.rows_loaded for r in restored) == len(original)
    assert rows_text(tsdb_dsn, f'"{schema}".ticks_restored') == original
    again = manager.restore(f"{schema}.ticks", first, last)
    assert [r.rows_loaded for r in again] == [0] * len(again)
    assert rows_text(tsdb_dsn, f'"{schema}".ticks_restored') == original

    rerun = manager.archive(f"{schema}.ticks", "10 days", f"file://{tmp_path}/store")
    assert rerun == []  # nothing expiring is left: nothing archived twice
    assert [r["state"] for r in manager.archives(f"{schema}.ticks")] == ["dropped"] * len(results)
    assert [p for _, p in manager.verify_archive(f"{schema}.ticks")] == [[]] * len(results)


@pytest.mark.integration
def test_restore_partial_ranges_add_up_without_duplicates(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                          tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=0)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "10 days"))
    manager = DataLifecycleManager(tsdb_dsn)
    results = manager.archive(f"{schema}.ticks", "10 days", f"file://{tmp_path}/s")
    start, end = results[0].range_start, results[-1].range_end
    middle = start + (end - start) / 2 + timedelta(minutes=7)
    into = f"{schema}.side"
    a = manager.restore(f"{schema}.ticks", start + timedelta(hours=5), middle, into=into)
    b = manager.restore(f"{schema}.ticks", start, end, into=into)  # overlaps a: only the rest is added
    assert sum(r.rows_loaded for r in a) + sum(r.rows_loaded for r in b) == len(original)
    assert rows_text(tsdb_dsn, f'"{schema}".side') == original


@pytest.mark.integration
def test_restore_refuses_the_hypertable_itself_and_an_empty_range(tsdb_dsn: str, lifecycle_schema: None,
                                                                  schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    manager = DataLifecycleManager(tsdb_dsn)
    with pytest.raises(LifecycleError, match="refused without an active hold covering the range"):
        manager.restore(f"{schema}.ticks", "2026-01-01", "2026-01-02", into=f"{schema}.ticks")
    with pytest.raises(LifecycleError, match="--from must be before --to"):
        manager.restore(f"{schema}.ticks", "2026-01-02", "2026-01-01")
    with pytest.raises(LifecycleError, match="expected timestamps"):
        manager.restore(f"{schema}.ticks", "yesterday-ish", "2026-01-01")


class CorruptingStore(LocalStore):
    """Uploads a damaged copy: what a faulty network or disk would leave."""

    def put_file(self, key: str, path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged = path.with_suffix(".damaged")
        damaged.write_bytes(bytes(data))
        super().put_file(key, damaged)


@pytest.mark.integration
def test_archive_corrupted_upload_is_recorded_failed_and_not_dropped(tsdb_dsn: str, lifecycle_schema: None,
                                                                     schema: str, tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=0)
    original = rows_text(tsdb_dsn, rel)
    results = archiver.archive(tsdb_dsn, f"{schema}.ticks", "18 days", CorruptingStore(tmp_path / "s"))
    assert results and all(r.action == "failed" and "sha256" in (r.error or "") for r in results)
    assert rows_text(tsdb_dsn, rel) == original
    assert sql_run(tsdb_dsn, "SELECT DISTINCT state FROM lifecycle.archives WHERE hypertable = %s",
                   (f"{schema}.ticks",)) == [("failed",)]
    assert not [k for k in LocalStore(tmp_path / "s").keys() if k.endswith(".manifest.json")]
    # The store works again: the same chunks are archived (partial objects overwritten) and dropped.
    fixed = archiver.archive(tsdb_dsn, f"{schema}.ticks", "18 days", LocalStore(tmp_path / "s"))
    assert [r.action for r in fixed] == ["archived"] * len(results)
    assert len([k for k in LocalStore(tmp_path / "s").keys() if k.endswith(".parquet")]) == len(results)


@pytest.mark.integration
def test_archive_drop_refused_when_the_chunk_changed_since_verification(tsdb_dsn: str, lifecycle_schema: None,
                                                                        schema: str, tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=1)
    [first] = chunks(tsdb_dsn, schema)[:1]
    store = LocalStore(tmp_path / "s")
    table = TableName(schema, "ticks")
    with connect(tsdb_dsn) as conn:
        info = archiver.expiring_chunks(conn, table, "10 days")[0]
        assert info["chunk"] == first
        with conn.transaction():
            s = archiver._snapshot(conn, table, info)
        for change in (f"UPDATE {rel} SET n = n + 1 WHERE ts = (SELECT min(ts) FROM {rel})",
                       f"INSERT INTO {rel} (ts, symbol) VALUES ('{info['range_start'].isoformat()}', 'late')"):
            conn.execute(change)
            with pytest.raises(archiver.Mismatch, match="changed since it was verified"):
                archiver._drop(conn, table, s, store, object_key(s), 1, "x")
    assert first in chunks(tsdb_dsn, schema)
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.archives WHERE chunk_name = %s", (first,)) == [(0,)]


@pytest.mark.integration
def test_cli_archive_list_verify_and_restore(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                            tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "15 days"))
    url = f"file://{tmp_path}/store"
    run = lifecycle(tsdb_dsn, "archive", "run", "--table", f"{schema}.ticks", "--older-than", "15 days", "--to", url,
                    "--read-back")
    assert run.returncode == 0, run.stderr
    assert "archived" in run.stdout and "FAILED" not in run.stdout
    listed = lifecycle(tsdb_dsn, "archive", "list", "--table", f"{schema}.ticks")
    assert listed.returncode == 0 and listed.stdout.count("dropped") >= 4, listed.stdout
    ok = lifecycle(tsdb_dsn, "archive", "verify", "--table", f"{schema}.ticks")
    assert ok.returncode == 0 and " 0 with problems" in ok.stdout, ok.stdout + ok.stderr

    restored = lifecycle(tsdb_dsn, "restore", "--table", f"{schema}.ticks", "--from", "2000-01-01",
                         "--to", "2100-01-01", "--into", f"{schema}.back")
    assert restored.returncode == 0, restored.stderr
    assert f"{len(original)} rows restored" in restored.stdout
    assert rows_text(tsdb_dsn, f'"{schema}".back') == original

    store = LocalStore(tmp_path / "store")
    data = sorted(k for k in store.keys() if k.endswith(".parquet"))
    (tmp_path / "store" / data[0]).unlink()
    damaged = tmp_path / "store" / data[1]
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    bad = lifecycle(tsdb_dsn, "archive", "verify", "--table", f"{schema}.ticks")
    assert bad.returncode == 1
    assert f"{data[0]}: missing" in bad.stdout and "sha256" in bad.stdout and " 2 with problems" in bad.stdout
    assert "verification FAILED" in bad.stderr
    refused = lifecycle(tsdb_dsn, "restore", "--table", f"{schema}.ticks", "--from", "2000-01-01",
                        "--to", "2100-01-01", "--into", f"{schema}.again")
    assert refused.returncode == 1 and "restore refused, nothing loaded" in refused.stderr
    assert sql_run(tsdb_dsn, "SELECT to_regclass(%s)", (f'"{schema}".again',)) == [(None,)]


@pytest.mark.integration
def test_archive_read_back_refuses_a_lossy_export(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Size, sha256 and the footer's row count cannot see an export that changed a value; the full read-back can."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lifecycle_resources.runner.archive import export

    rel = make_ticks(tsdb_dsn, schema, compress=1)
    original = rows_text(tsdb_dsn, rel)
    exact = export.conform

    def lossy(batch: pa.RecordBatch, schema_: pa.Schema) -> pa.RecordBatch:
        good = exact(batch, schema_)
        n = good.schema.get_field_index("n")  # n off by one
        arrays = list(good.columns)
        arrays[n] = pc.add(arrays[n].fill_null(0), 1)
        return pa.RecordBatch.from_arrays(arrays, schema=schema_)

    monkeypatch.setattr(export, "conform", lossy)
    results = archiver.archive(tsdb_dsn, f"{schema}.ticks", "17 days", LocalStore(tmp_path / "s"), read_back=True)
    assert results and all("full read-back differs" in (r.error or "") for r in results), results[0]
    assert rows_text(tsdb_dsn, rel) == original
    assert not [k for k in LocalStore(tmp_path / "s").keys() if k.endswith(".manifest.json")]  # never published
    monkeypatch.setattr(export, "conform", exact)
    fixed = archiver.archive(tsdb_dsn, f"{schema}.ticks", "17 days", LocalStore(tmp_path / "s"), read_back=True)
    assert [r.action for r in fixed] == ["archived"] * len(results) and not [r for r in fixed if r.error]
    keys = LocalStore(tmp_path / "s").keys()
    assert len([k for k in keys if k.endswith(".manifest.json")]) == len(results)
    # the lossy files, never published, stay under their own keys until `lifecycle archive gc`
    assert len([k for k in keys if k.endswith(".parquet")]) == 2 * len(results)


@pytest.mark.integration
def test_migration_008_upgrades_a_compressed_archive_metadata_hypertable(tmp_path: Path) -> None:
    """Stacks already running have archive_metadata as a compressed hypertable (their bookkeeping ages it): 008
    must apply there, keep its rows, and accept the new state and columns."""
    import psycopg

    from lifecycle_resources.db import migrations
    from tests.conftest import fresh_server

    every = migrations.load()
    with fresh_server(tmp_path) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            migrations.apply(conn, [m for m in every if m.version < 8])
        sql_run(dsn, "SELECT create_hypertable('lifecycle.archive_metadata', by_range('archived_at', "
                     "interval '1 day'))")
        sql_run(dsn, "INSERT INTO lifecycle.archive_metadata (archived_at, hypertable, chunk_name, state) "
                     "VALUES (now() - interval '3 days', 'a.b', 'c1', 'verified')")
        sql_run(dsn, "ALTER TABLE lifecycle.archive_metadata SET (timescaledb.compress)")
        sql_run(dsn, "SELECT compress_chunk(c) FROM show_chunks('lifecycle.archive_metadata') c")
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            planned = migrations.plan(every, migrations.applied(conn))
            assert [m.version for m in planned.pending if m.version >= 8][:1] == [8] and not planned.problems
            migrations.apply(conn, planned.pending)
        sql_run(dsn, "INSERT INTO lifecycle.archive_metadata (archived_at, hypertable, chunk_name, state, error, "
                     "object_key) VALUES (now(), 'a.b', 'c2', 'dropped', NULL, 'k')")
        assert sql_run(dsn, "SELECT chunk_name, state FROM lifecycle.archive_metadata ORDER BY archived_at") == [
            ("c1", "verified"), ("c2", "dropped")]
        with pytest.raises(psycopg.errors.CheckViolation):
            sql_run(dsn, "INSERT INTO lifecycle.archive_metadata (archived_at, hypertable, chunk_name, state) "
                         "VALUES (now(), 'a.b', 'c3', 'lost')")
        assert sql_run(dsn, "SELECT count(*) FROM lifecycle.archives") == [(0,)]


@pytest.mark.integration
def test_archive_round_trip_of_a_row_longer_than_a_parser_block(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                                tmp_path: Path) -> None:
    """The embedded server's rows are parsed from CSV: a 3 MB value is longer than pyarrow's default 1 MB block."""
    rel = f'"{schema}".wide'
    sql_run(tsdb_dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, note text, blob bytea)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(tsdb_dsn, f"INSERT INTO {rel} VALUES (now() - interval '20 days', repeat('a,\"b' || chr(10), 750000), "
                      "decode(repeat('00ff', 1000), 'hex')), (now() - interval '20 days', '', NULL)")
    original = rows_text(tsdb_dsn, rel)
    results = DataLifecycleManager(tsdb_dsn).archive(f"{schema}.wide", "10 days", f"file://{tmp_path}/store")
    assert [r.action for r in results] == ["archived"] and not results[0].error, results[0].describe()
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {rel}") == [(0,)]
    DataLifecycleManager(tsdb_dsn).restore(f"{schema}.wide", "2000-01-01", "2100-01-01", into=f"{schema}.back")
    assert rows_text(tsdb_dsn, f'"{schema}".back') == original


@pytest.mark.integration
@pytest.mark.native_only("another client's transaction is open on the chunk while the drop runs: the embedded "
                         "server serves one client at a time")
def test_archive_drop_waits_for_a_writer_in_progress_and_refuses_its_rows(tsdb_dsn: str, lifecycle_schema: None,
                                                                          schema: str, tmp_path: Path) -> None:
    """A row inserted by a transaction still open when the drop re-checks the chunk, committed while the drop
    waits for its lock, must not be dropped with the chunk: the chunk is locked before it is re-checked."""
    import threading

    import psycopg

    rel = make_ticks(tsdb_dsn, schema, compress=0)
    table = TableName(schema, "ticks")
    store = LocalStore(tmp_path / "s")
    with connect(tsdb_dsn) as conn:
        info = archiver.expiring_chunks(conn, table, "10 days")[0]
        with conn.transaction():
            s = archiver._snapshot(conn, table, info)
    late = f"{info['range_start'].isoformat()}"
    with psycopg.connect(tsdb_dsn) as writer:
        writer.execute(f"INSERT INTO {rel} (ts, symbol) VALUES (%s, 'late')", (late,))  # open, not committed
        outcome: list[BaseException | None] = []

        def drop() -> None:
            try:
                with connect(tsdb_dsn) as conn:
                    archiver._drop(conn, table, s, store, object_key(s), 1, "x")
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                outcome.append(exc)

        thread = threading.Thread(target=drop)
        thread.start()
        waited = 0.0
        while not sql_run(tsdb_dsn, "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                          (archiver._ident(info["chunk"]).as_string(None),)) and waited < 20:
            thread.join(0.05)
            waited += 0.05
        assert waited < 20, "the drop never waited for the writer's lock on the chunk"
        writer.commit()
        thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], archiver.Mismatch), outcome
    assert "changed since it was verified" in str(outcome[0])
    assert info["chunk"] in chunks(tsdb_dsn, schema)
    assert rows_text(tsdb_dsn, rel, "symbol = 'late'")


@pytest.mark.integration
def test_export_session_reads_from_the_first_block_without_parallel_workers(tsdb_dsn: str, tmp_path: Path) -> None:
    """An object's key follows from its exported bytes: the export must read the same rows in the same order each
    time (no synchronized scan starting where another scan of a large chunk is, no parallel workers). Read through
    the exporter itself: ADBC on the native server, the CSV reader on the embedded one."""
    import pyarrow.parquet as pq
    from psycopg import sql

    from lifecycle_resources.runner.archive import export

    probe = sql.SQL("(SELECT current_setting('synchronize_seqscans') AS s, "
                    "current_setting('max_parallel_workers_per_gather') AS p) x")
    cols = [export.Column(name="s", pg_type="text"), export.Column(name="p", pg_type="text")]
    with connect(tsdb_dsn) as conn, export.Exporter(tsdb_dsn) as exporter, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows, *_ = exporter.export_chunk(conn, probe, cols, tmp_path / "x.parquet")
    assert rows == 1
    assert pq.read_table(tmp_path / "x.parquet").to_pylist() == [{"s": "off", "p": "0"}]
