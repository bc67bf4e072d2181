"""The drop's re-check (archiver._drop): an untouched chunk is proven so without hashing its rows (same columns,
same count, no row version newer than the export's snapshot); anything it cannot prove is not dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle_resources.db.connection import connect
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.runner.archive import archiver, export
from lifecycle_resources.runner.archive.plan import Snapshot, object_key
from lifecycle_resources.runner.archive.store import LocalStore
from tests.archive_helpers import chunks, make_ticks, rows_text
from tests.conftest import sql_run

pytestmark = pytest.mark.integration


def snapshot_of_first(dsn: str, schema: str, compressed: bool) -> tuple[TableName, dict[str, Any], Snapshot]:
    make_ticks(dsn, schema, compress=1)
    table = TableName(schema, "ticks")
    with connect(dsn) as conn:
        info = [c for c in archiver.expiring_chunks(conn, table, "10 days") if c["is_compressed"] == compressed][0]
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            s = archiver._snapshot(conn, table, info)
    assert s.snapshot_xmin is not None and s.row_count
    return table, info, s


def hashes_during(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = export.content_hash

    def counted(conn: Any, relation: Any, cols: Any) -> tuple[int, str]:
        calls.append(str(relation))
        return real(conn, relation, cols)
    monkeypatch.setattr(export, "content_hash", counted)
    return calls


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
def test_archive_drop_of_an_untouched_chunk_does_not_hash_it_again(tsdb_dsn: str, lifecycle_schema: None,
                                                                   schema: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   compressed: bool) -> None:
    table, info, s = snapshot_of_first(tsdb_dsn, schema, compressed)
    calls = hashes_during(monkeypatch)
    with connect(tsdb_dsn) as conn:
        archiver._drop(conn, table, s, LocalStore(tmp_path / "s"), object_key(s), 1, "x")
    assert calls == []
    assert info["chunk"] not in chunks(tsdb_dsn, schema)


def test_archive_drop_refuses_a_recompressed_chunk_and_the_next_run_archives_it(tsdb_dsn: str,
                                                                               lifecycle_schema: None, schema: str,
                                                                               tmp_path: Path) -> None:
    """Recompressing rewrites every row version (new xmin) but not the rows: unproven, so not dropped; the next run
    exports it again and drops it."""
    table, info, s = snapshot_of_first(tsdb_dsn, schema, compressed=True)
    chunk = archiver._ident(info["chunk"]).as_string(None)
    before = rows_text(tsdb_dsn, chunk)
    sql_run(tsdb_dsn, "SELECT decompress_chunk(%s::regclass)", (chunk,))
    sql_run(tsdb_dsn, "SELECT compress_chunk(%s::regclass)", (chunk,))
    assert rows_text(tsdb_dsn, chunk) == before
    with connect(tsdb_dsn) as conn:
        with pytest.raises(archiver.Mismatch, match="chunk rewritten, e.g. recompressed"):
            archiver._drop(conn, table, s, LocalStore(tmp_path / "s"), object_key(s), 1, "x")
    assert info["chunk"] in chunks(tsdb_dsn, schema)
    results = archiver.archive(tsdb_dsn, table.qualified, "10 days", LocalStore(tmp_path / "s"))
    assert info["chunk"] in [r.chunk for r in results if r.action == "archived"]
    assert info["chunk"] not in chunks(tsdb_dsn, schema)


CHANGES = {
    "update": ("UPDATE {rel} SET n = n + 1 WHERE ts = (SELECT min(ts) FROM {chunk})", (False, True)),
    "insert": ("INSERT INTO {rel} (ts, symbol) VALUES ({start}, 'late')", (False, True)),
    "delete": ("DELETE FROM {rel} WHERE ts = (SELECT min(ts) FROM {chunk})", (False, True)),
    # the same count: only the new row version tells
    "delete one, insert another": ("DELETE FROM {rel} WHERE ts = (SELECT min(ts) FROM {chunk}) AND symbol = 'AAPL'; "
                                   "INSERT INTO {rel} (ts, symbol) VALUES ({start}, 'other')", (False, True)),
    # no row is rewritten, yet every row now has another value: the columns tell
    "add a column with a default": ("ALTER TABLE {rel} ADD COLUMN venue text DEFAULT 'X'", (False,)),
}


@pytest.mark.parametrize("change,compressed", [(c, z) for c, (_, on) in CHANGES.items() for z in on],
                         ids=lambda v: v if isinstance(v, str) else ("compressed" if v else "plain"))
def test_archive_drop_refuses_a_chunk_changed_since_its_snapshot(tsdb_dsn: str, lifecycle_schema: None,
                                                                 schema: str, tmp_path: Path, change: str,
                                                                 compressed: bool) -> None:
    table, info, s = snapshot_of_first(tsdb_dsn, schema, compressed)
    rel = f'"{schema}".ticks'
    chunk = archiver._ident(info["chunk"]).as_string(None)
    before = rows_text(tsdb_dsn, chunk) if "column" not in change else None
    sql_run(tsdb_dsn, CHANGES[change][0].format(rel=rel, chunk=chunk,
                                                start=f"'{info['range_start'].isoformat()}'"))
    if before is not None:
        assert rows_text(tsdb_dsn, chunk) != before  # the change really changed the chunk's rows
    with connect(tsdb_dsn) as conn:
        with pytest.raises(archiver.Mismatch, match="changed since it was verified"):
            archiver._drop(conn, table, s, LocalStore(tmp_path / "s"), object_key(s), 1, "x")
    assert info["chunk"] in chunks(tsdb_dsn, schema)


def test_archive_run_hashes_no_row_without_read_back(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are counted, exported and proven untouched at the drop: hashing every row (as the keys once
    needed) would cost a scan per chunk beside the export; only `read_back` hashes."""
    make_ticks(tsdb_dsn, schema, compress=1)
    calls = hashes_during(monkeypatch)
    results = archiver.archive(tsdb_dsn, f"{schema}.ticks", "10 days", LocalStore(tmp_path / "s"))
    assert results and all(r.action == "archived" for r in results), results
    assert calls == []


def test_archive_written_since_tells_new_versions_from_old_ones_across_wraparound(tsdb_dsn: str) -> None:
    """The proof's predicate on xids around the snapshot's xmin, in 32-bit age arithmetic: a version frozen more
    than 2^31 transactions ago (its raw xmin kept) is old, never new; one 2^32 + k old reads as k, taken for new
    (the drop then waits for the next run: safe)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(tsdb_dsn) as conn:  # one transaction: age() counts from its own xid
        now = int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])  # type: ignore[index]
        snapshot_xmin = now - 100
        ages = {"new": 5, "at the snapshot's xmin": 100, "just before it": 101, "long ago": 2**31 - 10,
                "frozen 2^31 + 10 ago": 2**31 + 10, "frozen 2^32 + 3 ago": 2**32 + 3}
        conn.execute("CREATE TEMP TABLE versions (label text, x xid)")
        for label, age in ages.items():
            conn.execute("INSERT INTO versions VALUES (%s, %s::text::xid)", (label, str((now - age) % 2**32)))
        found = dict(conn.execute(sql.SQL("SELECT label, {} FROM versions").format(
            archiver.written_since(sql.Identifier("x"), snapshot_xmin))).fetchall())
        conn.rollback()
    assert found == {"new": True, "at the snapshot's xmin": True, "just before it": False, "long ago": False,
                     "frozen 2^31 + 10 ago": False, "frozen 2^32 + 3 ago": True}
