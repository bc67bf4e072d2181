"""Hypertables: the state model shared by declared and read, the pure planner, and the executor."""

from __future__ import annotations

import functools
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

    model_config = ConfigDict(frozen=True)

    table: str
    time_column: str
    column_type: str
    chunk_interval: str
    chunk_interval_value: int  # as TimescaleDB stores it: microseconds (a month = 30 days), or the integer

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


Operation = CreateHypertable | SetChunkInterval


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
         resource: str | None = None) -> list[Operation]:
    """Pure: the operations that turn `actual` into `declared`; a time column change is refused."""
    table = TableName.parse(declared.table)
    if actual is None:
        return [CreateHypertable(table, declared.time_column, declared.column_type,
                                 declared.chunk_interval_value, migrate_data)]
    if actual.time_column != declared.time_column:
        raise time_column_refusal(resource, table, actual.time_column, declared.time_column)
    if actual.chunk_interval_value != declared.chunk_interval_value:
        return [SetChunkInterval(table, declared.column_type, declared.chunk_interval_value,
                                 actual.chunk_interval_value)]
    return []


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
    conn.execute(sql.SQL("SELECT {}({}, {}({}, {}), migrate_data => {})").format(
        info.fn("create_hypertable"), _regclass(op.table), info.fn("by_range"), sql.Literal(op.time_column),
        _interval_param(op.column_type, op.interval_value), sql.Literal(op.migrate_data)))


@execute.register
def _(op: SetChunkInterval, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("SELECT {}({}, {})").format(
        info.fn("set_chunk_time_interval"), _regclass(op.table), _interval_param(op.column_type, op.interval_value)))
