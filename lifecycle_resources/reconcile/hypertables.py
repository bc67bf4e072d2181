"""Hypertables: the state model shared by declared and read, the pure planner, and the executor."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from .intervals import Window
from ..errors import InputError
from ..identifiers import TableName


class HypertableState(BaseModel):
    """A hypertable as the database holds it, compared field by field with what is declared."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    table: str
    time_column: str
    column_type: str
    chunk_interval: str
    chunk_interval_value: int  # as TimescaleDB stores it: microseconds (a month = 30 days), or the integer
    # None in a declared state: not managed (TimescaleDB has no API to unset or remove either).
    integer_now: str | None = None       # schema.function
    integer_now_body: str | None = None  # its SQL body, when the resource creates the function
    space_column: str | None = None      # a hash (space) dimension
    number_partitions: int | None = None

    @classmethod
    def from_snapshot(cls, snap: catalog.TableSnapshot, extras: "Extras | None" = None) -> "HypertableState | None":
        dim = snap.time_dimension
        if dim is None:
            return None
        more = extras.model_dump() if extras is not None else {}
        return cls(table=snap.table.qualified, time_column=dim.column, column_type=dim.column_type,
                   chunk_interval=dim.interval_text, chunk_interval_value=dim.interval_value, **more)

    def managed(self, declared: Mapping[str, Any]) -> "HypertableState":
        """This (read) state showing only what `declared` (a state's fields, or recorded outputs) manages."""
        return self.model_copy(update={f: None for f in UNMANAGED_WHEN_NONE if declared.get(f) is None})


UNMANAGED_WHEN_NONE = ("integer_now", "integer_now_body", "space_column", "number_partitions")
# TimescaleDB's own chunk interval when none is given (create_hypertable without one), per time column type.
DEFAULT_CHUNK_INTERVAL = {"int2": 10_000, "int4": 100_000, "int8": 1_000_000}
DEFAULT_TIME_CHUNK_INTERVAL = "7 days"
SQL_TYPES = {"int2": "smallint", "int4": "integer", "int8": "bigint"}


class Extras(BaseModel):
    """What a hypertable has besides its time dimension, read from TimescaleDB's catalog."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    integer_now: str | None = None
    integer_now_body: str | None = None
    space_column: str | None = None
    number_partitions: int | None = None


_EXTRAS = sql.SQL("""
SELECT h.table_name, d.column_name, d.num_slices, d.interval_length IS NOT NULL,
       d.integer_now_func_schema || '.' || d.integer_now_func, p.prosrc
  FROM _timescaledb_catalog.dimension d
  JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id
  LEFT JOIN pg_proc p ON p.oid = to_regprocedure(  -- NULL when there is none (format's %%I refuses NULL)
        quote_ident(d.integer_now_func_schema) || '.' || quote_ident(d.integer_now_func) || '()')
 WHERE h.schema_name = %s {one}
 ORDER BY h.table_name, d.id
""")


def extras_read(table: TableName) -> catalog.Read:
    """read_extras()'s query of one table, for catalog.bundle()."""
    return catalog.Read("hypertable dimensions", table.qualified, _EXTRAS.format(one=sql.SQL("AND h.table_name = %s")),
                        (table.schema, table.name))


def read_extras(conn: psycopg.Connection, table: TableName) -> Extras:
    """The dimensions beyond the time column's interval; of the whole schema at once when reads are shared."""
    def one() -> Extras:
        return _extras(catalog.rows(conn, extras_read(table)))

    def schema() -> dict[str, Extras]:
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for row in conn.execute(_EXTRAS.format(one=sql.SQL("")), (table.schema,)).fetchall():
            by_table.setdefault(row[0], []).append(row)
        return {name: _extras(rows) for name, rows in by_table.items()}

    return catalog.per_schema(conn, "hypertable dimensions", table, one, schema) or Extras()


def _extras(rows: list[tuple[Any, ...]]) -> Extras:
    found: dict[str, Any] = {}
    for _table, column, slices, is_time, now_func, body in rows:
        if is_time and "integer_now" not in found:
            found.update(integer_now=now_func, integer_now_body=body.strip() if body is not None else None)
        elif slices is not None and "space_column" not in found:
            found.update(space_column=column, number_partitions=slices)
    return Extras(**found)


def unique_indexes_without(snap: catalog.TableSnapshot, columns: list[str]) -> list[str]:
    """Unique indexes (primary key included) of the table that lack one of `columns`: TimescaleDB refuses to make
    it a hypertable partitioned on those columns ('cannot create a unique index without the column'). Pure: the
    snapshot read them with the table."""
    return [name for name, indexed in snap.unique_indexes if not set(columns) <= set(indexed)]


def function_returns(conn: psycopg.Connection, function: TableName) -> str | None:
    """The return type (pg_type.typname) of function() with no arguments, None when there is none."""
    row = conn.execute("SELECT t.typname FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype "
                       "WHERE p.oid = to_regprocedure(format('%%I.%%I()', %s::text, %s::text))",
                       (function.schema, function.name)).fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------------------------------
# Operations: immutable data, one line each, no SQL.


@dataclass(frozen=True)
class CreateHypertable:
    table: TableName
    time_column: str
    column_type: str
    interval_value: int
    migrate_data: bool
    create_default_indexes: bool = True
    space_column: str | None = None  # created with the hypertable, as create_hypertable does (with its index)
    number_partitions: int | None = None

    def describe(self) -> str:
        space = (f" and hash {self.space_column} ({self.number_partitions} partitions)" if self.space_column else "")
        indexes = "" if self.create_default_indexes else ", without default indexes"
        return f"create hypertable {self.table} on {self.time_column}{space}{indexes}"


@dataclass(frozen=True)
class SetChunkInterval:
    table: TableName
    column_type: str
    interval_value: int
    existing_value: int

    def describe(self) -> str:
        return f"set chunk interval of {self.table}: {self.existing_value} -> {self.interval_value} (new chunks only)"


@dataclass(frozen=True)
class CreateIntegerNowFunction:
    function: TableName
    returns: str  # int2, int4, int8
    body: str
    existing_body: str | None

    def describe(self) -> str:
        verb = "create" if self.existing_body is None else "replace the body of"
        return f"{verb} function {self.function}() returning {SQL_TYPES[self.returns]}: {self.body}"


@dataclass(frozen=True)
class SetIntegerNow:
    table: TableName
    function: TableName
    existing: str | None

    def describe(self) -> str:
        return f"set integer_now of {self.table}: {self.existing or 'none'} -> {self.function}"


@dataclass(frozen=True)
class AddHashDimension:
    table: TableName
    column: str
    number_partitions: int

    def describe(self) -> str:
        return (f"add hash dimension {self.column} ({self.number_partitions} partitions) to {self.table} "
                "(chunks created from now on)")


@dataclass(frozen=True)
class SetNumberPartitions:
    table: TableName
    column: str
    number_partitions: int
    existing: int

    def describe(self) -> str:
        return (f"set number of partitions of {self.table}.{self.column}: {self.existing} -> "
                f"{self.number_partitions} (new chunks only)")


Operation = (CreateHypertable | SetChunkInterval | CreateIntegerNowFunction | SetIntegerNow | AddHashDimension
             | SetNumberPartitions)


def time_column_refusal(resource: str | None, table: TableName, current: str, wanted: str) -> InputError:
    """A hypertable's time column cannot change in place; a copy would lose its keys, indexes, grants, triggers,
    compression settings, policies and the rows written meanwhile. Say how to do it by hand instead."""
    t = table.qualified
    return InputError(
        resource, "time_column", wanted,
        f"{t} is a hypertable on {current!r}; TimescaleDB cannot change a hypertable's time column and this "
        "resource never copies a table (allow_time_column_change no longer copies). To move it by hand: "
        f"(1) create {t}_new with the same definition (pg_dump --schema-only -t {t}, renamed: columns, primary "
        f"key and indexes, constraints, grants, triggers); (2) make it a hypertable on {wanted!r} "
        "(create_hypertable) and set the same compression settings; (3) copy the rows in bounded batches by "
        f"time range (INSERT INTO {t}_new SELECT * FROM {t} WHERE {current} >= .. AND {current} < ..), one "
        f"transaction per batch; (4) in one short transaction, LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE, copy "
        f"the rows written since the last batch, rename {t} to {t}_old and {t}_new to {table.name}; "
        f"(5) declare time_column={wanted!r} here and run `pulumi up --refresh` (it adopts the new hypertable "
        f"and adds its policies); drop {t}_old once checked",
        f"the current column {current!r}")


def plan(declared: HypertableState, actual: HypertableState | None, *, migrate_data: bool = True,
         resource: str | None = None, create_default_indexes: bool = True) -> list[Operation]:
    """Pure: the operations that turn `actual` into `declared`; a time or space column change is refused."""
    table = TableName.parse(declared.table)
    ops: list[Operation] = []
    if actual is None:
        ops.append(CreateHypertable(table, declared.time_column, declared.column_type,
                                    declared.chunk_interval_value, migrate_data, create_default_indexes,
                                    declared.space_column, declared.number_partitions))
        actual = HypertableState(table=declared.table, time_column=declared.time_column,
                                 column_type=declared.column_type, chunk_interval="",
                                 chunk_interval_value=declared.chunk_interval_value,
                                 space_column=declared.space_column, number_partitions=declared.number_partitions)
    elif actual.time_column != declared.time_column:
        raise time_column_refusal(resource, table, actual.time_column, declared.time_column)
    elif actual.chunk_interval_value != declared.chunk_interval_value:
        ops.append(SetChunkInterval(table, declared.column_type, declared.chunk_interval_value,
                                    actual.chunk_interval_value))
    if declared.integer_now is not None:
        function = TableName.parse(declared.integer_now)
        if declared.integer_now_body is not None and declared.integer_now_body != actual.integer_now_body:
            ops.append(CreateIntegerNowFunction(function, declared.column_type, declared.integer_now_body,
                                                actual.integer_now_body if actual.integer_now else None))
        if declared.integer_now != actual.integer_now:
            ops.append(SetIntegerNow(table, function, actual.integer_now))
    if declared.space_column is not None:
        assert declared.number_partitions is not None
        if actual.space_column is None:
            ops.append(AddHashDimension(table, declared.space_column, declared.number_partitions))
        elif actual.space_column != declared.space_column:
            raise InputError(resource, "space_column", declared.space_column,
                             f"{table} is partitioned by hash on {actual.space_column!r}; TimescaleDB cannot remove "
                             "or change a dimension", f"the current column {actual.space_column!r}")
        elif actual.number_partitions != declared.number_partitions:
            assert actual.number_partitions is not None
            ops.append(SetNumberPartitions(table, declared.space_column, declared.number_partitions,
                                           actual.number_partitions))
    return ops


# --------------------------------------------------------------------------------------------------
# Executor: one function per operation type.


def _interval_param(column_type: str, value: int) -> sql.Composable:
    return Window(0, value, integer=column_type in catalog.INTEGER_TYPES).sql()


def _regclass(table: TableName) -> sql.Composable:
    return sql.SQL("format('%I.%I', {}::text, {}::text)::regclass").format(
        sql.Literal(table.schema), sql.Literal(table.name))


@functools.singledispatch
def execute(op: Any, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    raise TypeError(f"no executor for {op!r}")


@execute.register
def _(op: CreateHypertable, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    if op.space_column is not None:
        # The form that takes the space dimension too: it also creates the (space, time) default index, which
        # add_dimension afterwards would not.
        conn.execute(sql.SQL(
            "SELECT {}({}, time_column_name => {}, partitioning_column => {}, number_partitions => {}, "
            "chunk_time_interval => {}, migrate_data => {}, create_default_indexes => {})").format(
            info.fn("create_hypertable"), _regclass(op.table), sql.Literal(op.time_column),
            sql.Literal(op.space_column), sql.Literal(op.number_partitions),
            _interval_param(op.column_type, op.interval_value), sql.Literal(op.migrate_data),
            sql.Literal(op.create_default_indexes)))
        return
    conn.execute(sql.SQL("SELECT {}({}, {}({}, {}), migrate_data => {}, create_default_indexes => {})").format(
        info.fn("create_hypertable"), _regclass(op.table), info.fn("by_range"), sql.Literal(op.time_column),
        _interval_param(op.column_type, op.interval_value), sql.Literal(op.migrate_data),
        sql.Literal(op.create_default_indexes)))


@execute.register
def _(op: CreateIntegerNowFunction, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS {} LANGUAGE sql STABLE "
                         "SET search_path = pg_catalog, pg_temp AS {}").format(
        op.function.ident, sql.SQL(SQL_TYPES[op.returns]), sql.Literal(op.body)))


@execute.register
def _(op: SetIntegerNow, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, format('%I.%I()', {}::text, {}::text)::regprocedure::oid::regproc, "
                         "replace_if_exists => true)").format(
        info.fn("set_integer_now_func"), _regclass(op.table), sql.Literal(op.function.schema),
        sql.Literal(op.function.name)))


@execute.register
def _(op: AddHashDimension, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, {}({}, {}))").format(
        info.fn("add_dimension"), _regclass(op.table), info.fn("by_hash"), sql.Literal(op.column),
        sql.Literal(op.number_partitions)))


@execute.register
def _(op: SetNumberPartitions, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, {}::smallint, {}::name)").format(
        info.fn("set_number_partitions"), _regclass(op.table), sql.Literal(op.number_partitions),
        sql.Literal(op.column)))


@execute.register
def _(op: SetChunkInterval, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, {})").format(
        info.fn("set_chunk_time_interval"), _regclass(op.table), _interval_param(op.column_type, op.interval_value)))
