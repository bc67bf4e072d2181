"""The archiver exports chunk k+1 while chunk k is uploaded, verified and dropped: the overlap keeps every
guarantee of one chunk (re-check before the drop, failures recorded and the others going on, states in order)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lifecycle_resources.runner.archive import archiver, export
from lifecycle_resources.runner.archive.pipeline import overlapped
from lifecycle_resources.runner.archive.store import LocalStore
from tests.archive_helpers import chunks, make_ticks, rows_text
from tests.conftest import sql_run

OLDER_THAN = "14 days"
WAIT = 120.0  # seconds a chunk's upload waits for the next chunk's export to start (a loaded machine)


class _Watch:
    """Which chunks' exports have started (the archiver's own Exporter, watched)."""

    def __init__(self) -> None:
        self.started: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def event(self, chunk: str) -> threading.Event:
        with self.lock:
            return self.started.setdefault(chunk, threading.Event())


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> _Watch:
    seen = _Watch()
    real = export.Exporter

    class Watched(real):  # type: ignore[misc, valid-type]
        def export_chunk(self, conn: psycopg.Connection, chunk_ident: Any, *args: Any, **kw: Any) -> Any:
            seen.event(chunk_ident.as_string(conn).replace('"', "")).set()
            return super().export_chunk(conn, chunk_ident, *args, **kw)

    monkeypatch.setattr(export, "Exporter", Watched)
    return seen


class _Store(LocalStore):
    """A local store that runs `on_upload(chunk)` before each data object's upload (in the archiver's worker)."""

    def __init__(self, root: Path, names: list[str], on_upload: Any) -> None:
        super().__init__(root)
        self.names, self.on_upload = names, on_upload

    def put_file(self, key: str, path: Path) -> None:
        [chunk] = [c for c in self.names if f"_{c.split('.')[1]}_" in key]
        self.on_upload(chunk)
        super().put_file(key, path)


def _history(dsn: str, chunk: str) -> list[str]:
    return [r[0] for r in sql_run(dsn, "SELECT state FROM lifecycle.archive_metadata WHERE chunk_name = %s "
                                       "ORDER BY archived_at", (chunk,))]


def _expiring(dsn: str, schema: str) -> list[str]:
    return [r[0] for r in sql_run(dsn, "SELECT chunk_schema || '.' || chunk_name FROM timescaledb_information.chunks "
                                       "WHERE hypertable_schema = %s AND range_end <= now() - %s::interval "
                                       "ORDER BY range_start", (schema, OLDER_THAN))]


def test_unit_overlapped_runs_second_stages_in_order_one_behind() -> None:
    log: list[str] = []
    gate = threading.Event()

    def first(n: int) -> Any:
        log.append(f"first {n}")
        if n == 2:
            gate.set()  # the second stage of 1 is waiting for this: they overlap
            return "two failed"

        def second() -> str:
            if n == 1:
                assert gate.wait(30), "the first stage of item 2 never ran while item 1's second stage ran"
            log.append(f"second {n}")
            return f"{n} done"
        return second

    assert overlapped([1, 2, 3], first) == ["1 done", "two failed", "3 done"]
    assert log.index("first 2") < log.index("second 1") < log.index("first 3")  # never two items ahead


@pytest.mark.integration
def test_archive_pipeline_failed_chunk_does_not_stop_the_next(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                              tmp_path: Path, watch: _Watch) -> None:
    """Chunk 0 is uploaded while chunk 1 exports; chunk 1's upload fails: it is recorded failed and left in place,
    and chunk 2 on is still archived and dropped, each through pending, verified, dropped."""
    make_ticks(tsdb_dsn, schema, compress=1)
    names = _expiring(tsdb_dsn, schema)
    assert len(names) >= 4
    kept = rows_text(tsdb_dsn, names[1])
    overlap: list[bool] = []

    def on_upload(chunk: str) -> None:
        if chunk == names[0]:
            overlap.append(watch.event(names[1]).wait(WAIT))
        if chunk == names[1]:
            raise OSError("no space left on device (test)")

    results = archiver.archive(tsdb_dsn, f"{schema}.ticks", OLDER_THAN, _Store(tmp_path / "s", names, on_upload))
    assert overlap == [True], "chunk 0 was not uploaded while chunk 1 was exported"
    assert [r.chunk for r in results] == names
    assert [r.action for r in results] == ["archived", "failed"] + ["archived"] * (len(names) - 2)
    assert "no space left on device (test)" in (results[1].error or "")
    assert [c for c in chunks(tsdb_dsn, schema) if c in names] == [names[1]]
    assert rows_text(tsdb_dsn, names[1]) == kept and kept
    assert _history(tsdb_dsn, names[1]) == ["pending", "failed"]
    for name in names[:1] + names[2:]:
        assert _history(tsdb_dsn, name) == ["pending", "verified", "dropped"], name


@pytest.mark.integration
@pytest.mark.native_only("the change comes from another client while the archive runs: the embedded server "
                         "serves one client at a time")
def test_archive_pipeline_chunk_changed_while_next_exports_is_not_dropped(tsdb_dsn: str, lifecycle_schema: None,
                                                                          schema: str, tmp_path: Path,
                                                                          watch: _Watch) -> None:
    """Rows of chunk 0 change after its export, while chunk 1 is exporting: chunk 0's drop re-checks its rows in
    its own transaction and refuses; chunk 1 on are archived and dropped."""
    make_ticks(tsdb_dsn, schema, compress=0)
    names = _expiring(tsdb_dsn, schema)
    overlap: list[bool] = []

    def on_upload(chunk: str) -> None:
        if chunk == names[0]:
            overlap.append(watch.event(names[1]).wait(WAIT))
            with psycopg.connect(tsdb_dsn, autocommit=True) as other:
                other.execute(f"UPDATE {names[0]} SET n = n + 1 WHERE ts = (SELECT min(ts) FROM {names[0]})")

    results = archiver.archive(tsdb_dsn, f"{schema}.ticks", OLDER_THAN, _Store(tmp_path / "s", names, on_upload))
    assert overlap == [True], "chunk 0 was not uploaded while chunk 1 was exported"
    assert results[0].action == "failed" and "changed since it was verified" in (results[0].error or "")
    assert [r.action for r in results[1:]] == ["archived"] * (len(names) - 1)
    assert [c for c in chunks(tsdb_dsn, schema) if c in names] == [names[0]]
    assert _history(tsdb_dsn, names[0]) == ["pending", "verified", "failed"]
    for name in names[1:]:
        assert _history(tsdb_dsn, name) == ["pending", "verified", "dropped"], name
    # The next run archives the chunk's new content under a new key.
    again = archiver.archive(tsdb_dsn, f"{schema}.ticks", OLDER_THAN, LocalStore(tmp_path / "s"))
    assert [(r.chunk, r.action) for r in again] == [(names[0], "archived")]
