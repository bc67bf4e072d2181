"""Reads what TimescaleDB actually holds, normalised to the form the declared models use.

Each reader is one query. A missing object reads as None ("gone"), never as an error.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from .intervals import Window
from ..errors import UnsupportedDatabase
from ..identifiers import TableName

MIN_VERSION = (2, 23, 0)  # the oldest tested: 2.23 (embedded) and 2.26 (native)
TIME_TYPES = frozenset({"timestamptz", "timestamp", "date"})
INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
UUID_TIME_SINCE = (2, 22, 0)  # a UUIDv7 column as the time dimension (intervals, read from its timestamp bits)


class ServerInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    timescaledb_version: str | None
    license: str | None
    extension_schema: str | None

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.timescaledb_version or "0")

    def fn(self, name: str) -> sql.Identifier:
        """A TimescaleDB function, qualified by the schema the extension lives in."""
        return sql.Identifier(self.extension_schema or "public", name)


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def server_info(conn: psycopg.Connection) -> ServerInfo:
    """What the server is. Also fixes the session's IntervalStyle, so that every interval the catalog prints
    in this session is in the one form intervals.Window.from_output parses (no extra round trip)."""
    row = conn.execute(
        """
        SELECT e.extversion, n.nspname, current_setting('timescaledb.license', true),
               set_config('IntervalStyle', 'postgres', false)
        FROM (SELECT 1) AS one
        LEFT JOIN pg_extension e ON e.extname = 'timescaledb'
        LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
        """
    ).fetchone()
    assert row is not None
    return ServerInfo(timescaledb_version=row[0], extension_schema=row[1], license=row[2])


def require_timescaledb(info: ServerInfo, feature: str = "this resource") -> None:
    """Refuse clearly on a server without TimescaleDB, on the Apache edition, or on a version too old."""
    if info.timescaledb_version is None:
        raise UnsupportedDatabase(
            "TimescaleDB is not installed in this database: run `CREATE EXTENSION timescaledb` "
            f"(TimescaleDB {'.'.join(map(str, MIN_VERSION))} or newer, Community edition)"
        )
    if info.version_tuple < MIN_VERSION:
        raise UnsupportedDatabase(
            f"TimescaleDB {info.timescaledb_version} is too old: {feature} needs "
            f"{'.'.join(map(str, MIN_VERSION))} or newer"
        )
    if (info.license or "").lower() == "apache":
        raise UnsupportedDatabase(
            "this TimescaleDB runs the Apache-licensed edition (timescaledb.license = 'apache'), which has no "
            f"compression, policies or continuous aggregates; {feature} needs the Community edition "
            "(timescaledb.license = 'timescale')"
        )


class Column(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type_name: str  # pg_type.typname, e.g. timestamptz, int8
    type_text: str  # format_type(), e.g. "timestamp with time zone"


class TimeDimension(BaseModel):
    model_config = ConfigDict(frozen=True)

    column: str
    column_type: str
    interval_value: int  # microseconds for time types, the raw integer for integer types
    interval_text: str


class TableSnapshot(BaseModel):
    """A table and, when it is one, its hypertable facts: all a hypertable operation needs, in one read."""

    model_config = ConfigDict(frozen=True)

    table: TableName
    relkind: str
    columns: tuple[Column, ...]
    time_dimension: TimeDimension | None

    @property
    def is_hypertable(self) -> bool:
        return self.time_dimension is not None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


_SNAPSHOT = """
SELECT c.relkind::text,
       (SELECT json_agg(json_build_array(a.attname, t.typname, format_type(a.atttypid, a.atttypmod))
                        ORDER BY a.attnum)
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_build_array(d.column_name, d.column_type::text, d.integer_interval, d.time_interval::text)
          FROM timescaledb_information.dimensions d
         WHERE d.hypertable_schema = n.nspname AND d.hypertable_name = c.relname
         ORDER BY d.dimension_number LIMIT 1)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""


def table_snapshot(conn: psycopg.Connection, table: TableName) -> TableSnapshot | None:
    row = conn.execute(_SNAPSHOT, (table.schema, table.name)).fetchone()
    if row is None:
        return None
    relkind, columns, dim = row
    time_dimension = None
    if dim is not None:
        col_type = _short_type(dim[1])
        stored = (Window.of_integer(int(dim[2])) if dim[2] is not None
                  else Window.from_output(dim[3]).as_chunk_interval())
        time_dimension = TimeDimension(
            column=dim[0], column_type=col_type, interval_value=stored.micros, interval_text=stored.text
        )
    return TableSnapshot(
        table=table,
        relkind=relkind,
        columns=tuple(Column(name=c[0], type_name=c[1], type_text=c[2]) for c in columns or ()),
        time_dimension=time_dimension,
    )


_TYPE_ALIASES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "bigint": "int8",
    "integer": "int4",
    "smallint": "int2",
}


def _short_type(text: str) -> str:
    return _TYPE_ALIASES.get(text, text)


def compression_enabled(conn: psycopg.Connection, table: TableName) -> bool:
    row = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = %s AND hypertable_name = %s", (table.schema, table.name)).fetchone()
    return bool(row and row[0])
