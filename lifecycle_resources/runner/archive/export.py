"""A chunk's rows, as one snapshot sees them, to a Parquet file: streamed in record batches (bounded memory),
with no Python work per row.

Rows are read with SELECT from the chunk (TimescaleDB decompresses compressed chunks for it; `COPY chunk TO`
would skip their rows). Types Arrow holds exactly are kept; any other type travels as its PostgreSQL text form
and is parsed back by PostgreSQL on restore.

Two readers, both parsing in C++ (pyarrow / ADBC), never in Python:
- a server that accepts a second connection: ADBC's PostgreSQL driver reads `COPY (SELECT ..) TO STDOUT (FORMAT
  BINARY)` straight into Arrow batches, on a connection of its own that imports the caller's snapshot
  (`pg_export_snapshot()` / `SET TRANSACTION SNAPSHOT`), so it sees exactly the rows the caller counted;
- the embedded server (one client at a time): `COPY (SELECT ..) TO STDOUT (FORMAT CSV)` on the caller's own
  connection, parsed by pyarrow's CSV reader (floats are printed shortest-exact, so they parse back bit for bit).
The Parquet file is written by a second thread while the next batch is read."""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from ...db.connection import scrub
from ...db.pool import is_embedded
from ...errors import LifecycleError

BATCH_ROWS = 65_536
CSV_BATCH_BYTES = 8 << 20
T = TypeVar("T")
# Session settings of every export: the text PostgreSQL prints for any value depends on nothing else, and the
# same rows come in the same order, so they export to the same bytes (the object's key follows from them): a scan
# from the first block (a synchronized scan of a large chunk starts where another scan is) and no parallel workers.
_SETTINGS = ("TimeZone = 'UTC'", "DateStyle = 'ISO, YMD'", "IntervalStyle = 'postgres'", "extra_float_digits = 3",
             "bytea_output = 'hex'", "synchronize_seqscans = off", "max_parallel_workers_per_gather = 0")
ZSTD_LEVEL = 1  # level 3 made files 3 % smaller and the export a third slower (scripts/bench_archive.py)

# PostgreSQL type -> the Arrow type that holds it exactly. Anything else is exported as text.
_ARROW: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
    "real": pa.float32(), "double precision": pa.float64(), "text": pa.string(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"), "timestamp without time zone": pa.timestamp("us"),
    "date": pa.date32(), "bytea": pa.binary(),
}
# What the old exporter (Python datetime) could hold, and restore (Python datetime) can load: outside this,
# refused. Also catches ADBC's silent wrap-around of 'infinity' and years past 294276.
_TIME_RANGE = {pa.timestamp("us", tz="UTC"): (-62135596800000000, 253402300799999999),
               pa.timestamp("us"): (-62135596800000000, 253402300799999999), pa.date32(): (-719162, 2932896)}


class Column(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    pg_type: str  # format_type() of the column, e.g. 'numeric(12,4)'

    @property
    def base(self) -> str:
        return self.pg_type.split("(", 1)[0]

    @property
    def as_text(self) -> bool:
        return self.base not in _ARROW

    @property
    def arrow(self) -> pa.DataType:
        return pa.string() if self.as_text else _ARROW[self.base]

    def select(self, alias: str | None = None) -> sql.Composable:
        ident = sql.Identifier(alias, self.name) if alias else sql.Identifier(self.name)
        return sql.SQL("{}::text").format(ident) if self.as_text else ident


def columns(conn: psycopg.Connection, relation: str) -> list[Column]:
    """The live columns of a table (schema-qualified, quoted as needed), in order."""
    rows = conn.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                        (relation,)).fetchall()
    return [Column(name=n, pg_type=t) for n, t in rows]


def schema_of(cols: list[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow) for c in cols],
                     metadata={b"lifecycle.pg_types": "\x1f".join(c.pg_type for c in cols).encode()})


def content_hash(conn: psycopg.Connection, relation: sql.Composable, cols: list[Column]) -> tuple[int, str]:
    """(rows, hash) of a relation's rows in the caller's snapshot: the sum of each row's hash, order-independent.
    hash_record_extended hashes the values with their types' own hash functions (3x cheaper than hashing each
    row's text); columns exported as text are hashed as that text, so every column type is hashable."""
    row = conn.execute(sql.SQL("SELECT count(*), coalesce(sum(hash_record_extended(ROW({}), 0)), 0)::text FROM {} x")
                       .format(sql.SQL(", ").join(c.select("x") for c in cols), relation)).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _query(relation: sql.Composable, cols: list[Column]) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(c.select() for c in cols), relation)


class _Adbc:
    """One ADBC connection for all the chunks of a run (opening one costs about 0.3 s: it reads pg_type); each
    chunk is read in a transaction of its own that imports the caller's snapshot."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: Any = None

    def begin(self, conn: psycopg.Connection, query: sql.Composed) -> Iterator[pa.RecordBatch]:
        """Arrow batches of `query` in `conn`'s snapshot (its transaction must be open). `conn` is used only
        before this returns: it is free for other work while the batches are read."""
        row = conn.execute("SELECT pg_export_snapshot(), pg_current_snapshot()::text").fetchone()
        assert row is not None
        statements = (sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(row[0])).as_string(conn),
                      query.as_string(conn))
        return self._batches(*statements, snapshot=row[1])

    def _batches(self, set_snapshot: str, query: str, *, snapshot: str) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc

        try:
            if self.conn is None:
                self.conn = adbc.connect(self.dsn)  # autocommit off: a transaction is open
            with self.conn.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute(set_snapshot)
                cur.execute("SELECT pg_current_snapshot()::text")
                if cur.fetchone()[0] != snapshot:  # never read rows the caller did not count
                    raise LifecycleError("the export connection did not take the archive's snapshot")
                for setting in _SETTINGS:  # the text of text-borne columns, as on the caller's connection
                    cur.execute(f"SET LOCAL {setting}")
                cur.execute(query)
                yield from cur.fetch_record_batch()
            # Its transaction's lock on the chunk would block the drop of this very chunk: end it now.
            self.conn.rollback()
        except adbc_driver_manager.Error as exc:  # its message may quote the connection string
            self.close()
            raise LifecycleError(f"reading the chunk (ADBC): {scrub(str(exc), self.dsn)}") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def _csv_batches(conn: psycopg.Connection, query: sql.Composed, cols: list[Column]) -> Iterator[pa.RecordBatch]:
    """Arrow batches parsed by pyarrow from a CSV COPY on `conn` itself (inside its transaction)."""
    conn.execute("; ".join(f"SET LOCAL {setting}" for setting in _SETTINGS))
    # bytea arrives as \x<hex> text, decoded after parsing; everything else parses to its final type.
    types = {c.name: pa.string() if c.arrow == pa.binary() else c.arrow for c in cols}
    names = [c.name for c in cols]
    parse = pa_csv.ParseOptions(newlines_in_values=True)
    convert = pa_csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                    quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"])

    def parsed(parts: list[bytes]) -> Iterator[pa.RecordBatch]:
        data = b"".join(parts)
        # One block for the whole buffer: a row longer than pyarrow's default block (1 MB) would not parse.
        read = pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1)
        table = pa_csv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert)
        for c in cols:
            if c.arrow == pa.binary():
                i = table.schema.get_field_index(c.name)
                values = [None if v is None else bytes.fromhex(v[2:]) for v in table.column(i).to_pylist()]
                table = table.set_column(i, c.name, pa.array(values, pa.binary()))
        yield from table.to_batches()

    copy_sql = sql.SQL("COPY ({}) TO STDOUT (FORMAT CSV)").format(query)
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        parts: list[bytes] = []
        size = 0
        while data := copy.read():  # one row per message: whole rows, never split
            parts.append(bytes(data))
            size += len(data)
            if size >= CSV_BATCH_BYTES:
                yield from parsed(parts)
                parts, size = [], 0
        if parts:
            yield from parsed(parts)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch in the archive's schema; times Python's datetime (and so restore) cannot hold are refused."""
    arrays = []
    for array, field in zip(batch.columns, schema):
        if array.type != field.type:
            array = array.cast(field.type)  # safe casts only: a lossy one raises
        bounds = _TIME_RANGE.get(field.type)
        if bounds and array.null_count < len(array):
            low, high = pc.min_max(array.cast(pa.int64() if field.type != pa.date32() else pa.int32())).values()
            if low.as_py() < bounds[0] or high.as_py() > bounds[1]:
                raise LifecycleError(f"column {field.name!r} holds a value outside years 1..9999 (infinity, or BC): "
                                     "the archive cannot hold it exactly; this chunk is not archived")
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write(dest: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    """Write the batches to `dest` in a second thread (pyarrow releases the GIL): reading the next batch and
    compressing the last one overlap. At most a few batches are in flight."""
    todo: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2)
    failed: list[BaseException] = []
    strings = [f.name for f in schema if f.type == pa.string()]

    def writer() -> None:
        try:
            with pq.ParquetWriter(dest, schema, compression="zstd", compression_level=ZSTD_LEVEL,
                                  use_dictionary=strings, write_page_checksum=True) as out:
                while (batch := todo.get()) is not None:
                    out.write_batch(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
            failed.append(exc)
            while todo.get() is not None:  # drain: the reader must never block on a dead writer
                pass

    thread = threading.Thread(target=writer, name="parquet-writer", daemon=True)
    thread.start()
    rows = 0
    try:
        for batch in batches:
            todo.put(conform(batch, schema))
            rows += batch.num_rows
    finally:
        todo.put(None)
        thread.join()
    if failed:
        raise failed[0]
    return rows


class Exporter:
    """Exports the chunks of one run: `with Exporter(dsn) as ex: ex.export_chunk(...)`. With a DSN and a server
    that takes a second connection, ADBC reads the rows (one connection kept for the whole run); otherwise the
    CSV reader on the caller's connection."""

    def __init__(self, dsn: str | None = None) -> None:
        self._adbc = _Adbc(dsn) if dsn is not None else None

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *_: object) -> None:
        if self._adbc is not None:
            self._adbc.close()

    def export_chunk(self, conn: psycopg.Connection, chunk_ident: sql.Composable, cols: list[Column], dest: Path,
                     alongside: Callable[[], T] | None = None) -> tuple[int, int, str, T | None]:
        """Write the chunk's rows (in the caller's open transaction's snapshot) to `dest`; (rows, bytes, sha256)
        of the file, and what `alongside` returned: a query of the caller's on `conn` in the same snapshot, run
        while ADBC reads the rows on its own connection (one after the other on the embedded server)."""
        query = _query(chunk_ident, cols)
        schema = schema_of(cols)
        if self._adbc is not None and not is_embedded(conn):
            batches = self._adbc.begin(conn, query)
            with ThreadPoolExecutor(1, thread_name_prefix="archive-alongside") as pool:
                side = pool.submit(alongside) if alongside else None
                rows = _write(dest, schema, batches)
                result = side.result() if side else None
        else:
            result = alongside() if alongside else None
            rows = _write(dest, schema, _csv_batches(conn, query, cols))
        size, digest = file_digest(dest)
        return rows, size, digest, result


def file_digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def parquet_rows(path: Path) -> int:
    """The row count the Parquet footer declares."""
    return pq.ParquetFile(path).metadata.num_rows


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Every row of a Parquet object, batch by batch (page checksums verified)."""
    yield from pq.ParquetFile(path, page_checksum_verification=True).iter_batches(batch_size=BATCH_ROWS)
