"""Archive the expiring chunks of one hypertable, chunk by chunk, and drop each only once its rows are safe.

Per chunk (Thanos' order: data first, manifest last; pg_partman's: drop only after the dump succeeded):
1. snapshot (REPEATABLE READ): count the rows and export them to Parquet in that snapshot; the key follows from
   the count and the file's sha256. A manifest at that key means a complete object already holds these very
   bytes: it is verified and reused, never uploaded again.
2. upload (a partial object left by a crash is overwritten), verify (size, sha256, footer row count = the
   snapshot's count), then write the manifest (once), and record the slice `verified`.
3. drop, in one transaction under the table's lifecycle lock, the chunk locked: it must provably still hold the
   snapshot's rows (_untouched: the same columns and count, no row version the snapshot did not see); the drop
   and its record commit together.
Any failure records the slice `failed` with its error and drops nothing. A run after a crash at any step
converges: every step before the drop can be repeated, and the drop commits with its record or not at all.

Chunks overlap (pipeline.py): step 1 of chunk k+1 runs while steps 2-3 of chunk k run in a worker thread, never
more than one chunk ahead. Where the server takes a second connection, step 1 runs on a connection of its own and
steps 2-3 on the archive's (the drop's re-check included); on the embedded server (one client at a time) both
share the archive's connection under a lock, so only the client's work (upload, verification) overlaps.

LIFECYCLE_ARCHIVE_FAULT=<step> kills the process (SIGKILL) at that step: the fault-injection tests use it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.rows import dict_row

from ...db.connection import connect
from ...db.pool import is_embedded
from ...errors import LifecycleError
from ...identifiers import TableName
from ...reconcile.locks import lock_table
from . import export, refresh_guard
from ..progress import StepProgress
from .load import load_temp
from .pipeline import overlapped
from .plan import Snapshot, State, manifest, manifest_key, manifest_problems, object_key
from .store import ArchiveStore
from .timeaxis import INTEGER_TYPES, TIME_TYPES, Bound, TimeAxis, show
from .verify import object_problems
from .workdir import scratch, sweep

FAULT_ENV = "LIFECYCLE_ARCHIVE_FAULT"
STEPS = ("exported", "uploaded", "published", "verified", "dropping")


def fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class Mismatch(LifecycleError):
    """What was verified no longer matches: nothing is dropped."""


@dataclass
class SliceResult:
    chunk: str
    range_start: Bound
    range_end: Bound
    action: str            # archived | reused | would archive | failed
    state: str             # lifecycle.archives.state afterwards
    rows: int | None = None
    bytes: int | None = None
    location: str | None = None
    error: str | None = None

    def describe(self) -> str:
        span = f"{show(self.range_start)} .. {show(self.range_end)}"
        if self.error:
            return f"{self.chunk} ({span}): FAILED: {self.error}"
        rows = "" if self.rows is None else f", {self.rows} rows"
        return f"{self.chunk} ({span}): {self.action}{rows} -> {self.location} [{self.state}]"


@dataclass
class _Export:
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None
    manifest_raw: bytes | None = None
    columns: list[dict[str, str]] = field(default_factory=list)


def _settle(conn: psycopg.Connection) -> None:
    """Row text (hashed) must not depend on the session's settings."""
    conn.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
                 "SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3")


def time_axis(conn: psycopg.Connection, table: str) -> tuple[TableName, TimeAxis]:
    """The hypertable (as TimescaleDB names it) and its time dimension; refuses anything else."""
    try:
        name = TableName.parse(table)
    except ValueError as exc:
        raise LifecycleError(f"--table {table!r}: {exc}") from None
    row = conn.execute(
        "SELECT d.column_name, d.column_type::text FROM timescaledb_information.dimensions d "
        "WHERE d.hypertable_schema = %s AND d.hypertable_name = %s AND d.dimension_number = 1",
        (name.schema, name.name)).fetchone()
    if row is None:
        raise LifecycleError(f"table {name.qualified!r} is not a hypertable: only hypertables are archived")
    if row[1] not in TIME_TYPES + INTEGER_TYPES:
        raise LifecycleError(f"hypertable {name.qualified}: its time column {row[0]!r} is {row[1]}; archiving "
                             "supports timestamptz, timestamp, date and integer (smallint, integer, bigint) time "
                             "columns")
    return name, TimeAxis(row[0], row[1])


def hypertable_label(conn: psycopg.Connection, table: str) -> tuple[TableName, str]:
    """The hypertable (as TimescaleDB names it) and its time column; refuses anything else."""
    name, axis = time_axis(conn, table)
    return name, axis.column


def _ident(qualified: str) -> sql.Identifier:
    schema, _, name = qualified.partition(".")
    return sql.Identifier(schema, name)


def holds_installed(conn: psycopg.Connection) -> bool:
    """Holds (migration 009) exist in this database's lifecycle schema."""
    row = conn.execute("SELECT to_regprocedure('lifecycle._chunk_held(text,regclass)') IS NOT NULL").fetchone()
    return bool(row and row[0])


def lock_holds(conn: psycopg.Connection, table: TableName, *, exclusive: bool) -> None:
    """Until the transaction ends: adding a hold (exclusive) and a drop reading the holds (shared) exclude each
    other (migration 014's lifecycle._lock_holds, the same key). A statement of its own: in READ COMMITTED the
    holds read after it see a hold whose transaction it waited for."""
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(sql.SQL("SELECT {}(hashtext(%s))").format(sql.Identifier(lock)), (f"lifecycle-holds:{table.qualified}",))


@contextlib.contextmanager
def _no_integer_now(table: TableName) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        raise LifecycleError(f"{table.qualified}: {exc.diag.message_primary}; an integer --older-than is measured "
                             "back from it, as retention does (set one with set_integer_now_func)") from None


def expiring_chunks(conn: psycopg.Connection, table: TableName, older_than: str,
                    axis: TimeAxis | None = None) -> list[dict[str, Any]]:
    """The chunks of `table` entirely older than `older_than`: an interval back from now(), or for integer time
    an integer back from the table's integer_now function (as retention measures it); each with `held`: an
    active hold overlaps it (never archived)."""
    axis = axis or time_axis(conn, table.qualified)[1]
    if axis.integer:
        if not str(older_than).strip().lstrip("-").isdigit():
            raise LifecycleError(f"--older-than {older_than!r}: {table.qualified} has integer time ({axis.column} "
                                 f"is {axis.pg_type}): give an integer in the time column's units, e.g. 86400")
        cutoff = sql.SQL("(lifecycle._integer_now({t}::regclass) - {n}::bigint)::{type}").format(
            t=sql.Literal(table.ident.as_string(conn)), n=sql.Literal(int(older_than)), type=sql.SQL(axis.pg_type))
        bounds = sql.SQL("c.range_start_integer AS range_start, c.range_end_integer AS range_end")
    else:
        cutoff = sql.SQL("{}::interval").format(sql.Literal(older_than))
        bounds = sql.SQL("c.range_start, c.range_end")
    # Integer chunks are compared with holds since migration 013 (a hold on integer time needs it to be added).
    held = (sql.SQL("lifecycle._chunk_held({}, s)").format(sql.Literal(table.qualified))
            if holds_installed(conn) else sql.SQL("false"))
    with conn.cursor(row_factory=dict_row) as cur, _no_integer_now(table):
        return cur.execute(sql.SQL(
            "SELECT c.chunk_schema || '.' || c.chunk_name AS chunk, {bounds}, c.is_compressed, {held} AS held "
            "FROM show_chunks({t}::regclass, older_than => {cutoff}) s "
            "JOIN pg_class k ON k.oid = s JOIN pg_namespace n ON n.oid = k.relnamespace "
            "JOIN timescaledb_information.chunks c ON c.chunk_schema = n.nspname AND c.chunk_name = k.relname "
            "ORDER BY 2, c.chunk_name").format(bounds=bounds, held=held, t=sql.Literal(table.ident.as_string(conn)),
                                               cutoff=cutoff)).fetchall()


def _snapshot(conn: psycopg.Connection, table: TableName, chunk: dict[str, Any],
              cols: list[export.Column] | None = None) -> Snapshot:
    """The chunk's row count and what proves it untouched later, in the caller's snapshot. No hash of the rows:
    the drop proves the chunk untouched from its row versions, and the key follows from the exported file."""
    cols = cols or export.columns(conn, table.ident.as_string(conn))
    row = conn.execute(sql.SQL("SELECT count(*), pg_snapshot_xmin(pg_current_snapshot())::text FROM {}").format(
        _ident(chunk["chunk"]))).fetchone()
    assert row is not None
    return Snapshot(hypertable=table.qualified, chunk=chunk["chunk"], range_start=chunk["range_start"],
                    range_end=chunk["range_end"], row_count=int(row[0]), snapshot_xmin=int(row[1]),
                    columns=_signature(cols))


def _signature(cols: list[export.Column]) -> tuple[tuple[str, str], ...]:
    return tuple((c.name, c.pg_type) for c in cols)


def _untouched(conn: psycopg.Connection, table: TableName, s: Snapshot) -> bool:
    """True only if the chunk (locked by the caller against writers, or read in one snapshot) provably holds the
    snapshot's rows: the same columns, the same row count, and no row version, in the chunk or its compressed
    chunk, written by a transaction the snapshot did not see (every such xid is at or after the snapshot's xmin,
    so its age is at most the snapshot xmin's). An insert or update writes a new version, a delete lowers the
    count, a schema change alters the columns. False when it cannot be proven: a recompression, for instance,
    rewrites every version and no row; the chunk is then treated as changed (exported again by the next run)."""
    if s.snapshot_xmin is None or s.row_count is None:
        return False
    schema, _, name = s.chunk.partition(".")
    row = conn.execute(
        "SELECT k.schema_name, k.table_name FROM _timescaledb_catalog.chunk c "
        "JOIN _timescaledb_catalog.chunk k ON k.id = c.compressed_chunk_id "
        "WHERE c.schema_name = %s AND c.table_name = %s", (schema, name)).fetchone()
    # ONLY: TimescaleDB reads a compressed chunk's own heap then, not its decompressed rows (as for pg_dump).
    heaps = [_ident(s.chunk)] + ([sql.Identifier(row[0], row[1])] if row else [])
    written = sql.SQL(" OR ").join(
        sql.SQL("EXISTS (SELECT 1 FROM ONLY {} WHERE {})").format(h, written_since(sql.SQL("xmin"), s.snapshot_xmin))
        for h in heaps)
    found = conn.execute(sql.SQL("SELECT (SELECT count(*) FROM {}), {}").format(_ident(s.chunk), written)).fetchone()
    assert found is not None
    return (found[0] == s.row_count and not found[1]
            and _signature(export.columns(conn, table.ident.as_string(conn))) == s.columns)


def written_since(xmin: sql.Composable, snapshot_xmin: int) -> sql.Composed:
    """True for a row version a transaction the snapshot (of xmin `snapshot_xmin`, an xid8) did not see wrote: its
    xid is at or after the snapshot's xmin, so its age is at most that xmin's. age() counts in 32 bits: a version
    frozen more than 2^31 transactions ago shows a negative age, never taken for a new one (its raw xmin stays on
    the row once frozen); one 2^32 + k old shows k and may be taken for new, which only makes the drop wait for
    the next run."""
    return sql.SQL("age({}) BETWEEN 0 AND age({}::xid)").format(xmin, sql.Literal(str(snapshot_xmin % 2**32)))


def record(conn: psycopg.Connection, s: Snapshot, state: State, *, store: ArchiveStore | None = None,
           key: str | None = None, size: int | None = None, sha256: str | None = None,
           error: str | None = None) -> None:
    """The slice's current state (lifecycle.archives) and one history row (lifecycle.archive_metadata)."""
    params = {"ht": s.hypertable, "chunk": s.chunk, "start": s.range_start, "end": s.range_end,
              "state": state.value, "rows": s.row_count,
              "store": store.url if store else None, "key": key, "bytes": size, "sha": sha256, "error": error,
              "location": store.location(key) if store and key else None}
    axis = TimeAxis("", "bigint" if isinstance(s.range_start, int) else "timestamp with time zone")
    bounds = {"start": axis.recorded(sql.Placeholder("start")), "end": axis.recorded(sql.Placeholder("end"))}
    conn.execute(sql.SQL(
        "INSERT INTO lifecycle.archives AS a (hypertable, chunk_name, range_start, range_end, state, row_count, "
        "content_hash, store_url, object_key, bytes, sha256, error, dropped_at) VALUES (%(ht)s, %(chunk)s, "
        "{start}, {end}, %(state)s, %(rows)s, NULL, %(store)s, %(key)s, %(bytes)s, %(sha)s, %(error)s, "
        "CASE WHEN %(state)s = 'dropped' THEN clock_timestamp() END) "
        "ON CONFLICT (hypertable, chunk_name) DO UPDATE SET state = EXCLUDED.state, "
        "row_count = coalesce(EXCLUDED.row_count, a.row_count), "
        "content_hash = NULL, "  # the rows' hash that once named the objects: no longer computed
        "store_url = coalesce(EXCLUDED.store_url, a.store_url), object_key = coalesce(EXCLUDED.object_key, "
        "a.object_key), bytes = coalesce(EXCLUDED.bytes, a.bytes), sha256 = coalesce(EXCLUDED.sha256, a.sha256), "
        "error = EXCLUDED.error, dropped_at = EXCLUDED.dropped_at, updated_at = clock_timestamp()").format(**bounds),
        params)
    conn.execute(sql.SQL(
        "INSERT INTO lifecycle.archive_metadata (archived_at, hypertable, chunk_name, range_start, range_end, "
        "row_count, bytes, location, checksum, state, error, object_key) VALUES (clock_timestamp(), %(ht)s, "
        "%(chunk)s, {start}, {end}, %(rows)s, %(bytes)s, %(location)s, %(sha)s, %(state)s, %(error)s, "
        "%(key)s)").format(**bounds), params)


def _record_failure(conn: psycopg.Connection, s: Snapshot, store: ArchiveStore, key: str | None,
                    error: str) -> None:
    """Recorded when the connection still works (a cut connection is the next run's to recover from)."""
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        with conn.transaction():
            # A slice already dropped stays dropped: its rows are in the object, not in the table.
            row = conn.execute("SELECT state FROM lifecycle.archives WHERE hypertable = %s AND chunk_name = %s",
                               (s.hypertable, s.chunk)).fetchone()
            if row is None or row[0] != State.DROPPED:
                record(conn, s, State.FAILED, store=store, key=key, error=error)
    except psycopg.Error:
        pass


def _publish(conn: psycopg.Connection, table: TableName, store: ArchiveStore, s: Snapshot, key: str, ex: _Export,
             workdir: Path, read_back: bool,
             db: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext) -> tuple[int, str]:
    """Upload (or reuse) the object, verify it against the snapshot (with `read_back`: every row), write its
    manifest last. (size, sha256)."""
    if ex.manifest_raw is not None:  # a complete object for these very rows: reuse it
        problems = manifest_problems(ex.manifest_raw, s, key)
        body = {} if problems else json.loads(ex.manifest_raw)
        problems = problems or object_problems(store, key, size=body.get("bytes"), sha256=body.get("sha256"),
                                               rows=s.row_count, workdir=workdir)
        if problems:
            raise Mismatch("the published object does not match: " + "; ".join(problems))
        if read_back:
            with db():
                _read_back(conn, table, s, store, key, workdir)
        return int(body["bytes"]), str(body["sha256"])
    assert ex.path is not None and ex.size is not None and ex.sha256 is not None
    store.put_file(key, ex.path)
    fault("uploaded")
    problems = object_problems(store, key, size=ex.size, sha256=ex.sha256, rows=s.row_count, workdir=workdir)
    if problems:
        raise Mismatch("the uploaded object does not verify: " + "; ".join(problems))
    if read_back:  # before the manifest: an object that fails it stays partial and is rewritten next time
        with db():
            _read_back(conn, table, s, store, key, workdir)
    body = manifest(s, key=key, size=ex.size, sha256=ex.sha256, columns=ex.columns,
                    exported_at=datetime.now().astimezone())
    if not store.put_once(manifest_key(key), body):
        existing = store.read(manifest_key(key)) or b""
        problems = manifest_problems(existing, s, key)
        if problems:
            raise Mismatch("another manifest is published for this object: " + "; ".join(problems))
    fault("published")
    return ex.size, ex.sha256


def _read_back(conn: psycopg.Connection, table: TableName, s: Snapshot, store: ArchiveStore, key: str,
               workdir: Path) -> None:
    """Every row of the object, loaded back and hashed as the database hashes the chunk, in one snapshot in which
    the chunk provably still holds the exported rows: equal or Mismatch."""
    local = store.fetch(key, workdir)
    if local is None:
        raise Mismatch(f"{store.location(key)}: missing at the full read-back")
    cols = export.columns(conn, table.ident.as_string(conn))
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _settle(conn)
        if not _untouched(conn, table, s):
            raise Mismatch(f"chunk {s.chunk} changed since it was exported: not published, not dropped; the next "
                           "run archives its new content")
        chunk = export.content_hash(conn, _ident(s.chunk), cols)
        loaded = load_temp(conn, table.ident, [c.name for c in cols], local)
        back = export.content_hash(conn, loaded, cols)
    if back != chunk:
        raise Mismatch(f"{store.location(key)}: the full read-back differs from the chunk's rows "
                       f"({back[0]} rows read back, {chunk[0]} in the chunk, or their content "
                       "differs): not published, not dropped")


def _drop(conn: psycopg.Connection, table: TableName, s: Snapshot, store: ArchiveStore, key: str, size: int,
          sha: str) -> None:
    """Drop the chunk iff it still holds exactly the verified rows; its record commits with the drop."""
    with conn.transaction():
        lock_table(conn, table)
        _settle(conn)
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (_ident(s.chunk).as_string(conn),)).fetchone()
        if not exists or not exists[0]:
            raise Mismatch(f"chunk {s.chunk} no longer exists (dropped by someone else?): nothing dropped; its "
                           "object stays verified")
        # Locked before it is re-checked: a writer still open on the chunk would otherwise commit rows while the
        # drop waits for the lock it takes anyway, after a check that could not see them.
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_ident(s.chunk)))
        lock_holds(conn, table, exclusive=False)  # a hold being added commits before the holds are read
        if holds_installed(conn) and conn.execute("SELECT lifecycle._chunk_held(%s, %s::regclass)", (
                table.qualified, _ident(s.chunk).as_string(conn))).fetchone()[0]:  # type: ignore[index]
            raise Mismatch(f"chunk {s.chunk} came under a hold since it was verified: not dropped; its object stays "
                           "verified (the next run after the hold's release drops it)")
        refused = refresh_guard.chunk_refusal(conn, table, s.chunk, s.range_end)
        if refused:  # a refresh policy added or widened since the chunk was planned
            raise Mismatch(f"{refused} (seen at the drop: its object stays verified)")
        if not _untouched(conn, table, s):
            raise Mismatch(f"chunk {s.chunk} changed since it was verified (rows inserted, updated or deleted, its "
                           "columns altered, or the chunk rewritten, e.g. recompressed): not dropped; the next run "
                           "archives its new content")
        conn.execute("SELECT _timescaledb_functions.drop_chunk(%s::regclass)", (_ident(s.chunk).as_string(conn),))
        record(conn, s, State.DROPPED, store=store, key=key, size=size, sha256=sha)
        fault("dropping")


# What fails one chunk (recorded, nothing dropped) without stopping the run.
_FAILURES: tuple[type[BaseException], ...] = (LifecycleError, psycopg.Error, OSError, pa.ArrowException)


def _failed(conn: psycopg.Connection, s: Snapshot, store: ArchiveStore, key: str | None,
            exc: BaseException) -> SliceResult:
    error = str(exc).strip() or type(exc).__name__
    _record_failure(conn, s, store, key, error)
    return SliceResult(s.chunk, s.range_start, s.range_end, "failed", State.FAILED, s.row_count,
                       location=store.location(key) if key else None, error=error)


@dataclass
class _Exported:
    """A chunk exported and recorded `pending`: what its upload, verification and drop start from."""
    snapshot: Snapshot
    key: str
    export: _Export


def _export_chunk(conn: psycopg.Connection, table: TableName, chunk: dict[str, Any], store: ArchiveStore,
                  cols: list[export.Column], workdir: Path,
                  exporter: export.Exporter | None = None) -> _Exported | SliceResult:
    """Step 1 (snapshot and export) on `conn`: the chunk exported, or its failure (recorded)."""
    ex = _Export(columns=[{"name": c.name, "pg_type": c.pg_type} for c in cols])
    s = Snapshot(hypertable=table.qualified, chunk=chunk["chunk"], range_start=chunk["range_start"],
                 range_end=chunk["range_end"])
    key: str | None = None
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            _settle(conn)
            # The rows are exported while the same snapshot is counted (at once on a server that takes a second
            # connection); a manifest already published for the same bytes makes the upload unneeded.
            ex.path = workdir / "export.parquet"
            rows, ex.size, ex.sha256, counted = (exporter or export.Exporter()).export_chunk(
                conn, _ident(chunk["chunk"]), cols, ex.path, alongside=lambda: _snapshot(conn, table, chunk, cols))
            assert counted is not None
            s = counted.model_copy(update={"export_sha256": ex.sha256})
            key = object_key(s)
            ex.manifest_raw = store.read(manifest_key(key))
            record(conn, s, State.PENDING, store=store, key=key)
            if rows != s.row_count:  # one snapshot: this would be a bug, never a race
                raise Mismatch(f"exported {rows} rows of {s.chunk}, counted {s.row_count} in the same snapshot")
        fault("exported")
    except _FAILURES as exc:
        return _failed(conn, s, store, key, exc)
    return _Exported(s, key, ex)


def _finish_chunk(conn: psycopg.Connection, table: TableName, done: _Exported, store: ArchiveStore,
                  workdir: Path, read_back: bool,
                  db: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext) -> SliceResult:
    """Steps 2 and 3 (upload, verify, manifest, record, drop) on `conn`, the archive's connection; `db()` is held
    while `conn` is used (the export of the next chunk may share it: the embedded server)."""
    s, key, ex = done.snapshot, done.key, done.export
    try:
        size, sha = _publish(conn, table, store, s, key, ex, workdir, read_back, db)
        with db(), conn.transaction():
            record(conn, s, State.VERIFIED, store=store, key=key, size=size, sha256=sha)
        fault("verified")
        with db():
            _drop(conn, table, s, store, key, size, sha)
    except _FAILURES as exc:
        with db():
            return _failed(conn, s, store, key, exc)
    return SliceResult(s.chunk, s.range_start, s.range_end, "reused" if ex.manifest_raw else "archived",
                       State.DROPPED, s.row_count, size, store.location(key))


@contextlib.contextmanager
def _export_connection(conn: psycopg.Connection, dsn: str | None) -> Iterator[psycopg.Connection]:
    """The connection chunks are exported on: a second one where the server takes it (the next chunk's export
    then runs on the server while the archive's connection verifies and drops the last one), else `conn`."""
    if dsn is None or is_embedded(conn):
        yield conn
        return
    with connect(dsn) as second:
        yield second


def archive(dsn: str, table: str, older_than: str, store: ArchiveStore, *,
            read_back: bool = False, progress: StepProgress | None = None) -> list[SliceResult]:
    """Archive then drop every chunk of `table` older than `older_than`; one result per chunk (failures
    included: a failed chunk is recorded and left in place, the others go on). `read_back`: before each drop,
    load every row of the object back and compare it with the chunk (slower; catches a lossy export).
    `progress` hears of each chunk as it starts and ends (its result's describe())."""
    with connect(dsn) as conn:
        return archive_on(conn, table, older_than, store, read_back=read_back, progress=progress, dsn=dsn)


def archive_on(conn: psycopg.Connection, table: str, older_than: str, store: ArchiveStore, *,
               read_back: bool = False, progress: StepProgress | None = None,
               dsn: str | None = None) -> list[SliceResult]:
    """archive() on an open autocommit connection (the runner's, which may hold the table's lock already:
    advisory locks of one session nest). Chunks under an active hold are left alone and not listed. With `dsn`,
    rows are exported through a second connection of their own where the server takes one (ADBC)."""
    results: list[SliceResult] = []
    name, axis = time_axis(conn, table)
    lock = f"lifecycle:{name.qualified}"
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
    try:
        cols = export.columns(conn, name.ident.as_string(conn))
        chunks = [c for c in expiring_chunks(conn, name, older_than, axis) if not c["held"]]
        sweep()  # the export files of runs killed before they could remove them
        refreshes = refresh_guard.refreshes_over(conn, name, axis.integer)
        with export.Exporter(dsn) as exporter, _export_connection(conn, dsn) as exporting:
            # One connection for both stages (the embedded server): the upload and verification of chunk k,
            # client work, overlap the export of chunk k+1; its record and drop wait for the connection.
            shared = threading.Lock()
            db = (lambda: shared) if exporting is conn else contextlib.nullcontext

            def first(chunk: dict[str, Any]) -> SliceResult | Callable[[], SliceResult]:
                refused = refresh_guard.refusal(refreshes, chunk["chunk"], chunk["range_end"])
                if refused:  # nothing exported or recorded: the chunk stays as it is
                    return SliceResult(chunk["chunk"], chunk["range_start"], chunk["range_end"], "refused",
                                       State.FAILED, error=refused)
                # The export file lives from the export (this thread) to the end of the upload (the worker's).
                scratch_dir = contextlib.ExitStack()
                tmp = scratch_dir.enter_context(scratch("lifecycle-archive-"))
                try:
                    with db():
                        done = _export_chunk(exporting, name, chunk, store, cols, tmp, exporter)
                except BaseException:
                    scratch_dir.close()
                    raise
                if isinstance(done, SliceResult):
                    scratch_dir.close()
                    return done

                def second() -> SliceResult:
                    try:
                        return _finish_chunk(conn, name, done, store, tmp, read_back, db)
                    finally:
                        scratch_dir.close()
                return second

            results = overlapped(
                chunks, first,
                started=lambda i, c: progress(i, len(chunks), c["chunk"], None) if progress else None,
                finished=lambda i, c, r: progress(i, len(chunks), c["chunk"], r.describe()) if progress else None)
    finally:
        if not conn.closed:
            try:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
            except psycopg.Error:
                pass
    return results
