"""Hypertables: the state model shared by declared and read, the pure planner, and the executor."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from ..errors import InputError
from ..identifiers import TableName


class HypertableState(BaseModel):
    """A hypertable as the database holds it, compared field by field with what is declared."""

    model_config = ConfigDict(frozen=True)

    table: str
    time_column: str
    column_type: str
    chunk_interval: str
    chunk_interval_value: int  # microseconds for time columns, the integer itself for integer columns

    @classmethod
    def from_snapshot(cls, snap: catalog.TableSnapshot) -> "HypertableState | None":
        dim = snap.time_dimension
        if dim is None:
            return None
        return cls(table=snap.table.qualified, time_column=dim.column, column_type=dim.column_type,
                   chunk_interval=dim.interval_text, chunk_interval_value=dim.interval_value)


# --------------------------------------------------------------------------------------------------
# Operations: immutable data, one line each, no SQL.


@dataclass(frozen=True)
class CreateHypertable:
    table: TableName
    time_column: str
    column_type: str
    interval_value: int
    migrate_data: bool

    def describe(self) -> str:
        return f"create hypertable {self.table} on {self.time_column}"


@dataclass(frozen=True)
class SetChunkInterval:
    table: TableName
    column_type: str
    interval_value: int
    existing_value: int

    def describe(self) -> str:
        return f"set chunk interval of {self.table}: {self.existing_value} -> {self.interval_value} (new chunks only)"


@dataclass(frozen=True)
class RecreateOnTimeColumn:
    destructive: ClassVar[bool] = True  # shown as DESTRUCTIVE at preview

    table: TableName
    time_column: str
    existing_time_column: str
    column_type: str
    interval_value: int

    def describe(self) -> str:
        return (f"copy {self.table} into a new hypertable on {self.time_column} "
                f"(was {self.existing_time_column})")


Operation = CreateHypertable | SetChunkInterval | RecreateOnTimeColumn


def plan(declared: HypertableState, actual: HypertableState | None, *, migrate_data: bool = True,
         allow_time_column_change: bool = False) -> list[Operation]:
    """Pure: the operations that turn `actual` into `declared`."""
    table = TableName.parse(declared.table)
    if actual is None:
        return [CreateHypertable(table, declared.time_column, declared.column_type,
                                 declared.chunk_interval_value, migrate_data)]
    if actual.time_column != declared.time_column:
        if not allow_time_column_change:
            raise InputError(
                None, "time_column", declared.time_column,
                f"{table} is a hypertable on {actual.time_column!r}; changing its time column copies every row "
                "into a new hypertable",
                "the current column, or allow_time_column_change=True to opt in to the copy")
        return [RecreateOnTimeColumn(table, declared.time_column, actual.time_column, declared.column_type,
                                     declared.chunk_interval_value)]
    if actual.chunk_interval_value != declared.chunk_interval_value:
        return [SetChunkInterval(table, declared.column_type, declared.chunk_interval_value,
                                 actual.chunk_interval_value)]
    return []


# --------------------------------------------------------------------------------------------------
# Executor: one function per operation type.


def _interval_param(column_type: str, value: int) -> sql.Composable:
    if column_type in catalog.INTEGER_TYPES:
        return sql.SQL("{}::bigint").format(sql.Literal(value))
    return sql.SQL("make_interval(secs => {}::double precision / 1000000)").format(sql.Literal(value))


def _regclass(table: TableName) -> sql.Composable:
    return sql.SQL("format('%I.%I', {}::text, {}::text)::regclass").format(
        sql.Literal(table.schema), sql.Literal(table.name))


@functools.singledispatch
def execute(op: Any, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    raise TypeError(f"no executor for {op!r}")


@execute.register
def _(op: CreateHypertable, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, {}({}, {}), migrate_data => {})").format(
        info.fn("create_hypertable"), _regclass(op.table), info.fn("by_range"), sql.Literal(op.time_column),
        _interval_param(op.column_type, op.interval_value), sql.Literal(op.migrate_data)))


@execute.register
def _(op: SetChunkInterval, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, {})").format(
        info.fn("set_chunk_time_interval"), _regclass(op.table), _interval_param(op.column_type, op.interval_value)))


@execute.register
def _(op: RecreateOnTimeColumn, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    copy = TableName(op.table.schema, f"{op.table.name}__lifecycle_copy")
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
        copy.ident, op.table.ident))
    execute(CreateHypertable(copy, op.time_column, op.column_type, op.interval_value, True), conn, info)
    conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(copy.ident, op.table.ident))
    counts = conn.execute(sql.SQL("SELECT (SELECT count(*) FROM {}), (SELECT count(*) FROM {})").format(
        copy.ident, op.table.ident)).fetchone()
    assert counts is not None
    if counts[0] != counts[1]:
        raise RuntimeError(f"copy of {op.table} holds {counts[0]} rows, the original {counts[1]}: rolled back")
    conn.execute(sql.SQL("DROP TABLE {}").format(op.table.ident))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(copy.ident, sql.Identifier(op.table.name)))
