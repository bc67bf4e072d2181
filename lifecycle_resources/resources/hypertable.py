"""Hypertable: turns an existing table into a hypertable and keeps its chunk interval as declared.

Delete releases management only: the table, its chunks and its rows stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult
from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import registry
from ..errors import InputError
from ..identifiers import TableName
from ..reconcile import catalog
from ..reconcile.declared import Spec, Target, windows
from ..reconcile.intervals import Window
from ..reconcile.hypertables import HypertableState, execute, plan, time_column_refusal
from ..reconcile.ownership import ManagedObject
from ..reconcile.locks import lock_table
from .base import (INTERNAL, LifecycleProvider, changed_fields, described, internals, later, resource_options,
                   secret, secret_input)
from .registry import depends_on_peers, peers_of

# --------------------------------------------------------------------------------------------------
# Model: one shape for what is declared and what is read.


class HypertableArgs(BaseModel):
    """Declared inputs, as the user writes them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    table: str
    time_column: str = Field(min_length=1)
    chunk_interval: str | int
    migrate_data: bool = True
    allow_time_column_change: bool = False  # accepted for old programs; a time column change is always refused
    adopt: bool = False
    resource_name: str | None = None

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return TableName.parse(value).qualified


# --------------------------------------------------------------------------------------------------
# Provider: the dynamic-provider adapter.


class HypertableProvider(LifecycleProvider):
    kind = "Hypertable"

    def _declared(self, conn: psycopg.Connection, info: catalog.ServerInfo, args: HypertableArgs,
                  snap: catalog.TableSnapshot | None) -> HypertableState:
        """Check the declared inputs against the table and normalise them into a state."""
        name = args.resource_name
        table = TableName.parse(args.table)
        if snap is None:
            raise InputError(name, "table", args.table, "no such table", "an existing table (create it first)")
        column = snap.column(args.time_column)
        if column is None:
            raise InputError(name, "time_column", args.time_column, f"{table} has no such column",
                             "one of " + ", ".join(c.name for c in snap.columns))
        uuid_ok = info.version_tuple >= catalog.UUID_TIME_SINCE
        if column.type_name not in catalog.TIME_TYPES | catalog.INTEGER_TYPES | ({"uuid"} if uuid_ok else set()):
            raise InputError(name, "time_column", args.time_column,
                             f"column is of type {column.type_text}",
                             "a timestamptz, timestamp, date, smallint, integer or bigint column, or a uuid "
                             "(UUIDv7) column on TimescaleDB 2.22 or newer")
        target = Target(table=table, time_column=column.name, column_type=column.type_name,
                        compression_enabled=None)
        stored = chunk_interval(conn, name, target, args.chunk_interval)
        return HypertableState(table=table.qualified, time_column=column.name, column_type=column.type_name,
                               chunk_interval=stored.text, chunk_interval_value=stored.micros)

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        args = HypertableArgs.model_validate(news)
        if olds.get("time_column") and olds.get("table") == args.table and olds["time_column"] != args.time_column:
            raise time_column_refusal(args.resource_name, TableName.parse(args.table), olds["time_column"],
                                      args.time_column)
        with self.session(news) as (conn, _info):
            snap = catalog.table_snapshot(conn, TableName.parse(args.table))
            promised = (news.get("peers") or {}).get("promised")
            if snap is None and promised:
                # Created by the program's LifecycleSchema first: check against what it will be.
                snap = catalog.TableSnapshot(
                    table=TableName.parse(args.table), relkind="r", time_dimension=None,
                    columns=(catalog.Column(name=promised["time_column"], type_name=promised["column_type"],
                                            type_text=promised["column_type"]),))
            declared = self._declared(conn, _info, args, snap)
            # What up will do, by the planner up runs: refused here when up would refuse it.
            actual = HypertableState.from_snapshot(snap) if snap is not None else None
            ops = self._plan(declared, actual, args)
            claim = self.claim_for(conn, _object(args.table), f"hypertable {args.table}", actual is not None, news)
        return {"table": declared.table, "chunk_interval_value": declared.chunk_interval_value,
                "column_type": declared.column_type, "planned_operations": described([*filter(None, [claim]), *ops])}

    @staticmethod
    def _plan(declared: HypertableState, actual: HypertableState | None, args: HypertableArgs) -> list[Any]:
        try:
            return plan(declared, actual, migrate_data=args.migrate_data, resource=args.resource_name)
        except InputError as exc:
            exc.resource = args.resource_name
            raise

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["table", "time_column"])
        changes = changed_fields(olds, news, ["chunk_interval_value", "dsn", "owner"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=False)

    def _apply(self, props: dict[str, Any]) -> tuple[HypertableState, bool, list[str]]:
        args = HypertableArgs.model_validate(props)
        table = TableName.parse(args.table)
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, table)
            snap = catalog.table_snapshot(conn, table)
            declared = self._declared(conn, info, args, snap)
            assert snap is not None
            actual = HypertableState.from_snapshot(snap)
            ops = self._plan(declared, actual, args)
            claim = self.claim_for(conn, _object(args.table), f"hypertable {args.table}", actual is not None, props)
            for op in ops:
                execute(op, conn, info)
            self.record_owner(conn, _object(args.table), props)
            after = catalog.table_snapshot(conn, table)
            state = HypertableState.from_snapshot(after) if after else None
            assert state is not None, f"{table} is not a hypertable after applying {ops}"
        adopted = actual is not None
        return state.model_copy(update={"chunk_interval": str(args.chunk_interval) if
                                        state.chunk_interval_value == declared.chunk_interval_value
                                        else state.chunk_interval}), adopted, described([*filter(None, [claim]), *ops])

    def _outs(self, props: dict[str, Any], state: HypertableState, adopted: bool,
              operations: list[str] | None = None) -> dict[str, Any]:
        return {
            **state.model_dump(),
            "migrate_data": props.get("migrate_data", True),
            "allow_time_column_change": props.get("allow_time_column_change", False),
            "adopt": bool(props.get("adopt")),
            "resource_name": props.get("resource_name"),
            "dsn": secret(props.get("dsn")),
            "adopted": adopted,
            "peers": props.get("peers") or {},
            "config_source": props.get("config_source"),
            "owner": props.get("owner"),
            "planned_operations": props.get("planned_operations") or [],
            "last_operations": operations if operations is not None else props.get("last_operations") or [],
        }

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        state, adopted, ops = self._apply(props)
        return CreateResult(state.table, self._outs(props, state, adopted, ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        state, _, ops = self._apply(news)
        return UpdateResult(self._outs(news, state, bool(olds.get("adopted")), ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        table = TableName.parse(props.get("table") or id_)
        with self.session(props) as (conn, _info):
            snap = catalog.table_snapshot(conn, table)
        state = HypertableState.from_snapshot(snap) if snap else None
        if state is None:
            return ReadResult(None, {})  # gone: the next up creates it again
        if state.chunk_interval_value == props.get("chunk_interval_value") and props.get("chunk_interval"):
            state = state.model_copy(update={"chunk_interval": props["chunk_interval"]})
        outs = self._outs(props, state, bool(props.get("adopted")))
        inputs = {k: outs[k] for k in ("table", "time_column", "chunk_interval", "chunk_interval_value",
                                       "column_type", "migrate_data", "allow_time_column_change",
                                       "adopt", "resource_name", "peers", "config_source", "owner")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, _id: str, props: dict[str, Any]) -> None:
        """Release management only: the table, its chunks and rows stay untouched; so does the ownership
        record when another resource owns the hypertable now."""
        with self.session(props) as (conn, _info), conn.transaction():
            self.let_go(conn, _object(props["table"]), props)


_MICROS = re.compile(r"^\s*[+-]?\d+\s*$")


def chunk_interval(conn: psycopg.Connection, resource: str | None, target: Target, value: str | int) -> Window:
    """The chunk interval as TimescaleDB stores it. On a time column it also takes an integer, in microseconds
    (create_hypertable(.., by_range(col, 2592000000000)) is 30 days), as TimescaleDB does."""
    if target.integer_time or not (isinstance(value, int) or _MICROS.match(str(value))):
        try:
            return windows(conn, resource, target, {"chunk_interval": Spec(value, time_unit=True)}
                           )["chunk_interval"].as_chunk_interval()
        except InputError as exc:
            if target.integer_time or not exc.problem.startswith("not an interval"):
                raise
            raise InputError(resource, "chunk_interval", value, exc.problem, exc.accepted + ", or an integer "
                             "number of microseconds (2592000000000 is 30 days)") from None
    micros = int(str(value))
    if micros <= 0:
        raise InputError(resource, "chunk_interval", value, "must be positive",
                         "a positive interval, or a positive integer number of microseconds")
    return Window(0, micros, str(value).strip())


def _object(table: str) -> ManagedObject:
    return ManagedObject("hypertable", TableName.parse(table).qualified)


# --------------------------------------------------------------------------------------------------
# Resource


class Hypertable(Resource, module="timescale", name="Hypertable"):
    """An existing table managed as a TimescaleDB hypertable.

    Changes in place: chunk_interval (set_chunk_time_interval; only new chunks use it).
    Replaces: table. A time_column change is refused at preview with the manual procedure (never copied).
    Delete: releases management; the table and its data stay.
    """

    table: pulumi.Output[str]
    time_column: pulumi.Output[str]
    column_type: pulumi.Output[str]
    chunk_interval: pulumi.Output[str]
    adopted: pulumi.Output[bool]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, table: pulumi.Input[str], time_column: pulumi.Input[str],
                 chunk_interval: pulumi.Input[str | int], *, migrate_data: bool = True,
                 allow_time_column_change: bool = False, adopt: bool = False, dsn: pulumi.Input[str] | None = None,
                 config_source: dict[str, str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "table": table, "time_column": time_column, "chunk_interval": chunk_interval,
            "migrate_data": migrate_data, "allow_time_column_change": allow_time_column_change, "adopt": adopt,
            "dsn": secret_input(dsn), "column_type": None, "adopted": None, "planned_operations": None,
            "last_operations": None,
            INTERNAL: internals("Hypertable", resource_name, peers=later(lambda: peers_of(table)),
                                config_source=config_source),
        }
        opts = resource_options(opts, depends_on=later(lambda: depends_on_peers(table)))
        registry.declare_policy("Hypertable", resource_name, table, time_column)
        super().__init__(HypertableProvider(), resource_name, props, opts)
        registry.attach("Hypertable", table, self)
        self.declared_table = table
