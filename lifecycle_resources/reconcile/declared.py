"""Inputs shared by the resources that act on a hypertable: the target, what else the program declares
for it, and how its time column reads intervals."""

from __future__ import annotations

from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict

from . import catalog
from ..errors import InputError
from ..identifiers import TableName


class Peers(BaseModel):
    """What the same program declares for the same table, seen when this resource was declared."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    time_column: str | None = None          # a Hypertable resource will make it a hypertable
    compression_settings: bool = False      # a CompressionSettings resource will enable compression
    compress_after: str | int | None = None
    drop_after: str | int | None = None
    promised: dict[str, str] | None = None  # a LifecycleSchema creates the table: its time column and type


class Target(BaseModel):
    """The hypertable a resource acts on, checked against the database (or the program's declarations)."""

    model_config = ConfigDict(frozen=True)

    table: TableName
    time_column: str
    column_type: str
    compression_enabled: bool | None

    @property
    def integer_time(self) -> bool:
        return self.column_type in catalog.INTEGER_TYPES


def resolve_target(conn: psycopg.Connection, resource: str | None, field: str, hypertable: str,
                   peers: Peers) -> Target:
    try:
        table = TableName.parse(hypertable)
    except ValueError as exc:
        raise InputError(resource, field, hypertable, str(exc), "'schema.table' or 'table'") from None
    snap = catalog.table_snapshot(conn, table)
    if snap is None:
        if peers.promised:
            # Created by the program's LifecycleSchema before this resource: check against what it will be.
            return Target(table=table, time_column=peers.promised["time_column"],
                          column_type=peers.promised["column_type"], compression_enabled=False)
        raise InputError(resource, field, hypertable, "no such table", "an existing hypertable")
    if snap.time_dimension is not None:
        return Target(table=table, time_column=snap.time_dimension.column,
                      column_type=snap.time_dimension.column_type,
                      compression_enabled=catalog.compression_enabled(conn, table))
    if peers.time_column:
        column = snap.column(peers.time_column)
        if column is not None:
            return Target(table=table, time_column=column.name, column_type=column.type_name,
                          compression_enabled=False)
    raise InputError(resource, field, hypertable, "is a plain table, not a hypertable",
                     "a hypertable: declare a Hypertable resource for it first")


def normalise_window(conn: psycopg.Connection, resource: str | None, field: str, value: Any,
                     target: Target, *, allow_zero: bool = False) -> tuple[int, str]:
    """An interval (or an integer, for integer time) as (comparable value, display text)."""
    if target.integer_time:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise InputError(resource, field, value, f"{target.table} has integer time ({target.time_column})",
                             "an integer in the time column's unit") from None
        parsed = (number, str(number))
    else:
        if isinstance(value, bool) or isinstance(value, int):
            raise InputError(resource, field, value, "an interval is needed", "e.g. '7 days', '12 hours', 'P1W'")
        parsed = interval(conn, resource, field, value, allow_zero=allow_zero)
    if parsed[0] < 0 or (parsed[0] == 0 and not allow_zero):
        raise InputError(resource, field, value, "must be positive" if not allow_zero else "must not be negative",
                         "a positive interval" if not allow_zero else "zero or a positive interval")
    return parsed


def interval(conn: psycopg.Connection, resource: str | None, field: str, value: Any,
             *, allow_zero: bool = False) -> tuple[int, str]:
    try:
        parsed = catalog.parse_interval(conn, str(value))
    except ValueError as exc:
        raise InputError(resource, field, value, f"not an interval ({exc})",
                         "an interval such as '7 days', '12 hours', '1 week', 'P7D'") from None
    if parsed.micros < 0 or (parsed.micros == 0 and not allow_zero):
        raise InputError(resource, field, value, "must be positive" if not allow_zero else "must not be negative",
                         "a positive interval" if not allow_zero else "zero or a positive interval")
    return parsed.micros, str(value)


def display(declared_text: str | None, declared_value: Any, actual_value: Any, actual_text: str) -> str:
    """Keep the user's spelling while the database agrees with it; show the database's when it does not."""
    if declared_text is not None and declared_value == actual_value:
        return declared_text
    return actual_text
