"""A chunk's rows, as one snapshot sees them, to a Parquet file: streamed in batches (bounded memory).

Rows are read with SELECT from the chunk (TimescaleDB decompresses compressed chunks for it; `COPY chunk TO`
would skip their rows), through a binary COPY of that SELECT. Types Arrow holds exactly are kept; any other
type travels as its PostgreSQL text form and is parsed back by PostgreSQL on restore."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from pydantic import BaseModel, ConfigDict

BATCH_ROWS = 65_536

# PostgreSQL type -> the Arrow type that holds it exactly. Anything else is exported as text.
_ARROW: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
    "real": pa.float32(), "double precision": pa.float64(), "text": pa.string(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"), "timestamp without time zone": pa.timestamp("us"),
    "date": pa.date32(), "bytea": pa.binary(),
}
_COPY_TYPE = {"boolean": "bool", "smallint": "int2", "integer": "int4", "bigint": "int8", "real": "float4",
              "double precision": "float8", "text": "text", "timestamp with time zone": "timestamptz",
              "timestamp without time zone": "timestamp", "date": "date", "bytea": "bytea"}


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

    def select(self) -> sql.Composable:
        ident = sql.Identifier(self.name)
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


def _batches(conn: psycopg.Connection, chunk_ident: sql.Composable, cols: list[Column]) -> Iterator[pa.RecordBatch]:
    schema = schema_of(cols)
    query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
        sql.SQL(", ").join(c.select() for c in cols), chunk_ident)
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(["text" if c.as_text else _COPY_TYPE[c.base] for c in cols])
        buffer: list[tuple[Any, ...]] = []
        for row in copy.rows():
            buffer.append(row)
            if len(buffer) >= BATCH_ROWS:
                yield _batch(buffer, schema)
                buffer = []
        if buffer:
            yield _batch(buffer, schema)


def _batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def export_chunk(conn: psycopg.Connection, chunk_ident: sql.Composable, cols: list[Column],
                 dest: Path) -> tuple[int, int, str]:
    """Write the chunk's rows (in the caller's snapshot) to `dest`; (rows, bytes, sha256) of the file."""
    rows = 0
    with pq.ParquetWriter(dest, schema_of(cols), compression="zstd", write_page_checksum=True) as writer:
        for batch in _batches(conn, chunk_ident, cols):
            writer.write_batch(batch)
            rows += batch.num_rows
    size, digest = file_digest(dest)
    return rows, size, digest


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
