"""Inputs shared by the resources that act on a hypertable: the target, what else the program declares
for it, and how its time column reads intervals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from ..errors import InputError
from ..identifiers import TableName

if TYPE_CHECKING:
    import psycopg
    from . import catalog
    from .intervals import Window


class Peers(BaseModel):
    """What the same program declares for the same table, seen when this resource was declared."""

    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    time_column: str | None = None          # a Hypertable resource will make it a hypertable
    compression_settings: bool = False      # a CompressionSettings resource will enable compression
    compress_after: str | int | None = None
    drop_after: str | int | None = None
    integer_now: str | None = None          # the Hypertable resource sets this integer_now function
    chunk_interval: str | int | None = None  # the Hypertable resource's chunk interval, when declared
    promised: dict[str, str] | None = None  # a LifecycleSchema creates the table: its time column and type


class Target(BaseModel):
    """The hypertable a resource acts on, checked against the database (or the program's declarations)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    table: TableName
    time_column: str
    column_type: str
    compression_enabled: bool | None

    @property
    def integer_time(self) -> bool:
        from . import catalog
        return self.column_type in catalog.INTEGER_TYPES


def resolve_target(conn: psycopg.Connection, resource: str | None, field: str, hypertable: str,
                   peers: Peers) -> Target:
    return target_and_snapshot(conn, resource, field, hypertable, peers)[0]


def target_and_snapshot(conn: psycopg.Connection, resource: str | None, field: str, hypertable: str,
                        peers: Peers) -> tuple[Target, catalog.TableSnapshot | None]:
    """The target, and the table as read (None when the program's LifecycleSchema will create it)."""
    from . import catalog
    try:
        table = TableName.parse(hypertable)
    except ValueError as exc:
        raise InputError(resource, field, hypertable, str(exc), "'schema.table' or 'table'") from None
    snap = catalog.table_snapshot(conn, table)
    if snap is None:
        if peers.promised:
            # Created by the program's LifecycleSchema before this resource: check against what it will be.
            return Target(table=table, time_column=peers.promised["time_column"],
                          column_type=peers.promised["column_type"], compression_enabled=False), None
        raise InputError(resource, field, hypertable, "no such table", "an existing hypertable")
    if snap.time_dimension is not None:
        return Target(table=table, time_column=snap.time_dimension.column,
                      column_type=snap.time_dimension.column_type,
                      compression_enabled=snap.compression_enabled), snap
    if peers.time_column:
        column = snap.column(peers.time_column)
        if column is not None:
            return Target(table=table, time_column=column.name, column_type=column.type_name,
                          compression_enabled=False), snap
    raise InputError(resource, field, hypertable, "is a plain table, not a hypertable",
                     "a hypertable: declare a Hypertable resource for it first")


@dataclass(frozen=True)
class Spec:
    """One declared interval input: its value, and whether it follows the time column's unit (a policy window
    or chunk interval on integer time is an integer) and may be zero."""

    value: Any
    time_unit: bool = False
    allow_zero: bool = False


def windows(conn: psycopg.Connection, resource: str | None, target: Target, specs: dict[str, Spec]) -> dict[str, Window]:
    """Every interval input of a resource, parsed by the database in one round trip and checked."""
    from .intervals import NotAnInterval, Window, parse_many
    found: dict[str, Window] = {}
    texts: dict[str, str] = {}
    for field, spec in specs.items():
        if spec.time_unit and target.integer_time:
            try:
                found[field] = Window.of_integer(int(str(spec.value).strip()))
            except ValueError:
                raise InputError(resource, field, spec.value,
                                 f"{target.table} has integer time ({target.time_column})",
                                 "an integer in the time column's unit") from None
        elif isinstance(spec.value, (bool, int)):
            raise InputError(resource, field, spec.value,
                             f"{target.table}.{target.time_column} is {target.column_type}, not integer time: an "
                             "interval is needed" if spec.time_unit else "an interval is needed",
                             "e.g. '7 days', '12 hours', 'P1W'")
        else:
            texts[field] = str(spec.value)
    try:
        found.update(zip(texts, parse_many(conn, list(texts.values()))))
    except NotAnInterval as exc:
        field = list(texts)[exc.index]
        raise InputError(resource, field, specs[field].value, f"not an interval ({exc})",
                         "an interval such as '7 days', '12 hours', '1 week', '1 month', 'P7D'") from None
    for field, window in found.items():
        allow_zero = specs[field].allow_zero
        if window.months < 0 or window.micros < 0 or (window.span == 0 and not allow_zero):
            raise InputError(resource, field, specs[field].value,
                             "must not be negative" if allow_zero else "must be positive",
                             "zero or a positive interval" if allow_zero else "a positive interval")
    return {field: found[field] for field in specs}


def display(declared: Window | None, actual: Window) -> str:
    """Keep the user's spelling while the database agrees with it; show the database's when it does not."""
    if declared is not None and declared == actual and declared.text:
        return declared.text
    return actual.text


def schedule_start(conn: psycopg.Connection, resource: str | None, initial_start: str | None,
                   timezone: str | None) -> datetime | None:
    """A declared initial_start as the database reads it, and the timezone checked, at preview (one query)."""
    import psycopg
    if initial_start is None and timezone is None:
        return None
    try:
        with conn.transaction():
            row = conn.execute("SELECT now() AT TIME ZONE coalesce(%s, 'UTC'), %s::timestamptz",
                               (timezone, initial_start)).fetchone()
    except psycopg.errors.InvalidParameterValue as exc:  # time zone "x" not recognized
        raise InputError(resource, "timezone", timezone, str(exc).splitlines()[0],
                         "a time zone name such as 'Europe/Paris' or 'UTC'") from None
    except (psycopg.errors.InvalidDatetimeFormat, psycopg.errors.DatetimeFieldOverflow) as exc:
        raise InputError(resource, "initial_start", initial_start, str(exc).splitlines()[0],
                         "a timestamp with time zone such as '2026-01-01 02:00+00'") from None
    assert row is not None
    return row[1]
