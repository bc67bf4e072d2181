"""Hypertable: turns an existing table into a hypertable and keeps its chunk interval as declared.

Delete releases management only: the table, its chunks and its rows stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import InputError
from ..identifiers import TableName
from .base import (INTERNAL, LifecycleProvider, changed_fields, described, internals, later, later_input,
                   resource_options, secret, secret_input)
from .output_tracking import untracked
from .output_types import typed_outputs
from .registry import depends_on_peers, peers_of

if TYPE_CHECKING:
    import psycopg
    from ..reconcile import catalog
    from ..reconcile.declared import Target
    from ..reconcile.hypertables import HypertableState
    from ..reconcile.intervals import Window
    from ..reconcile.ownership import ManagedObject
    from .args.hypertable import HypertableArgs


# --------------------------------------------------------------------------------------------------
# Provider: the dynamic-provider adapter.


class HypertableProvider(LifecycleProvider):
    kind = "Hypertable"

    def _declared(self, conn: psycopg.Connection, info: catalog.ServerInfo, args: HypertableArgs,
                  snap: catalog.TableSnapshot | None) -> HypertableState:
        """Check the declared inputs against the table and normalise them into a state."""
        from ..reconcile import catalog
        from ..reconcile.declared import Target
        from ..reconcile.hypertables import HypertableState, unique_indexes_without
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
        if args.space_column is not None and snap.column(args.space_column) is None:
            raise InputError(name, "space_column", args.space_column, f"{table} has no such column",
                             "one of " + ", ".join(c.name for c in snap.columns))
        if snap.time_dimension is None:
            partitioning = [column.name, *filter(None, [args.space_column])]
            blocking = unique_indexes_without(snap, partitioning)
            if blocking:
                raise InputError(name, "time_column", args.time_column,
                                 f"{table} has unique index {', '.join(blocking)} without "
                                 f"{' and '.join(partitioning)}: TimescaleDB refuses to make it a hypertable (every "
                                 "unique index and primary key must include the partitioning columns)",
                                 f"a table whose unique indexes include {' and '.join(partitioning)} (add it to "
                                 f"{blocking[0]}, or drop that index)")
        return HypertableState(table=table.qualified, time_column=column.name, column_type=column.type_name,
                               chunk_interval=stored.text, chunk_interval_value=stored.micros,
                               integer_now=integer_now(conn, args, target), integer_now_body=_body(args),
                               space_column=args.space_column, number_partitions=args.number_partitions)

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        from ..reconcile import catalog
        from ..reconcile.hypertables import UNMANAGED_WHEN_NONE, time_column_refusal
        from .args.hypertable import HypertableArgs
        args = HypertableArgs.model_validate(news)
        if olds.get("time_column") and olds.get("table") == args.table and olds["time_column"] != args.time_column:
            raise time_column_refusal(args.resource_name, TableName.parse(args.table), olds["time_column"],
                                      args.time_column)
        with self.session(news) as (conn, _info):
            catalog.bundle(conn, lambda: _reads(conn, TableName.parse(args.table)))
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
            actual = _actual(conn, snap)
            ops = self._plan(declared, actual, args)
            claim = self.claim_for(conn, _object(args.table), f"hypertable {args.table}", actual is not None, news)
        return {**declared.model_dump(include={"table", "chunk_interval_value", "column_type", *UNMANAGED_WHEN_NONE}),
                "planned_operations": described([*filter(None, [claim]), *ops])}

    @staticmethod
    def _plan(declared: HypertableState, actual: HypertableState | None,
              args: HypertableArgs) -> list[Any]:
        from ..reconcile.hypertables import plan
        try:
            return plan(declared, actual, migrate_data=args.migrate_data, resource=args.resource_name,
                        create_default_indexes=args.create_default_indexes)
        except InputError as exc:
            exc.resource = args.resource_name
            raise

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        from ..reconcile.hypertables import UNMANAGED_WHEN_NONE
        replaces = changed_fields(olds, news, ["table", "time_column"])
        changes = changed_fields(olds, news, ["chunk_interval_value", *UNMANAGED_WHEN_NONE, "dsn", "owner"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=False)

    def _apply(self, props: dict[str, Any]) -> tuple[HypertableState, bool, list[str]]:
        from ..reconcile import catalog, ownership
        from ..reconcile.hypertables import execute, extras_read
        from ..reconcile.locks import lock_table
        from .args.hypertable import HypertableArgs
        args = HypertableArgs.model_validate(props)
        table = TableName.parse(args.table)
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, table)
            catalog.bundle(conn, _reads(conn, table))
            snap = catalog.table_snapshot(conn, table)
            declared = self._declared(conn, info, args, snap)
            assert snap is not None
            actual = _actual(conn, snap)
            ops = self._plan(declared, actual, args)
            claim = self.claim_for(conn, _object(args.table), f"hypertable {args.table}", actual is not None, props)
            for op in ops:
                execute(op, conn, info)
            # The owner's record and the read-back (the table and its dimensions), one statement (catalog.bundle)
            catalog.bundle(conn, [catalog.snapshot_read(conn, table), extras_read(table)],
                           ownership.claim_statement(conn, _object(args.table), ownership.Owner.from_props(props)))
            after = _actual(conn, catalog.table_snapshot(conn, table))
            assert after is not None, f"{table} is not a hypertable after applying {ops}"
        state = after.managed(declared.model_dump())
        adopted = actual is not None
        shown = (str(args.chunk_interval) if args.chunk_interval is not None and
                 state.chunk_interval_value == declared.chunk_interval_value else state.chunk_interval)
        return (state.model_copy(update={"chunk_interval": shown}), adopted,
                described([*filter(None, [claim]), *ops]))

    def _outs(self, props: dict[str, Any], state: HypertableState, adopted: bool,
              operations: list[str] | None = None) -> dict[str, Any]:
        return {
            **state.model_dump(),
            "migrate_data": props.get("migrate_data", True),
            "create_default_indexes": props.get("create_default_indexes", True),
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
        from ..reconcile import catalog
        from ..reconcile.hypertables import UNMANAGED_WHEN_NONE
        table = TableName.parse(props.get("table") or id_)
        with self.session(props) as (conn, _info):
            state = _actual(conn, catalog.table_snapshot(conn, table))
        if state is None:
            return ReadResult(None, {})  # gone: the next up creates it again
        state = state.managed(props)
        if state.chunk_interval_value == props.get("chunk_interval_value") and props.get("chunk_interval"):
            state = state.model_copy(update={"chunk_interval": props["chunk_interval"]})
        outs = self._outs(props, state, bool(props.get("adopted")))
        inputs = {k: outs[k] for k in ("table", "time_column", "chunk_interval", "chunk_interval_value",
                                       "column_type", "migrate_data", "allow_time_column_change",
                                       *UNMANAGED_WHEN_NONE, "create_default_indexes",
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


def chunk_interval(conn: psycopg.Connection, resource: str | None, target: Target,
                   value: str | int | None) -> Window:
    """The chunk interval as TimescaleDB stores it. On a time column it also takes an integer, in microseconds
    (create_hypertable(.., by_range(col, 2592000000000)) is 30 days), as TimescaleDB does. None: its default."""
    from ..reconcile.declared import Spec, windows
    from ..reconcile.hypertables import DEFAULT_CHUNK_INTERVAL, DEFAULT_TIME_CHUNK_INTERVAL
    from ..reconcile.intervals import Window
    if value is None:
        value = DEFAULT_CHUNK_INTERVAL.get(target.column_type, DEFAULT_TIME_CHUNK_INTERVAL)
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


def _actual(conn: psycopg.Connection, snap: catalog.TableSnapshot | None) -> HypertableState | None:
    """The hypertable as TimescaleDB holds it (None: a plain table, or none)."""
    from ..reconcile.hypertables import HypertableState, read_extras
    if snap is None or snap.time_dimension is None:
        return None
    return HypertableState.from_snapshot(snap, read_extras(conn, snap.table))


def _body(args: HypertableArgs) -> str | None:
    return args.integer_now_body.strip() if args.integer_now_body is not None else None


def integer_now(conn: psycopg.Connection, args: HypertableArgs, target: Target) -> str | None:
    """The declared integer_now function, qualified, checked: integer time only, returning the column's type,
    existing unless this resource creates it."""
    from ..reconcile.hypertables import SQL_TYPES, function_returns
    if args.integer_now is None:
        return None
    name = args.resource_name
    if not target.integer_time:
        raise InputError(name, "integer_now", args.integer_now,
                         f"{target.table}.{target.time_column} is of type {target.column_type}, not an integer",
                         "integer_now only with a smallint, integer or bigint time column")
    try:
        function = TableName.parse(args.integer_now)
    except ValueError as exc:
        raise InputError(name, "integer_now", args.integer_now, str(exc), "'schema.function' or 'function'") from None
    returns = function_returns(conn, function)
    wanted = SQL_TYPES[target.column_type]
    if returns is None and args.integer_now_body is None:
        raise InputError(name, "integer_now", args.integer_now, "no such function (taking no argument)",
                         f"an existing function returning {wanted}, or IntegerNow(function=..., sql=...) to "
                         "create it")
    if returns is not None and returns != target.column_type:
        raise InputError(name, "integer_now", args.integer_now,
                         f"returns {SQL_TYPES.get(returns, returns)}, and {target.table}.{target.time_column} is "
                         f"{wanted}", f"a function returning {wanted} (set_integer_now_func refuses others)")
    return function.qualified


def _reads(conn: psycopg.Connection, table: TableName) -> list[catalog.Read]:
    """The reads a plan makes of the table, in one statement (catalog.bundle): the table, its dimensions beyond
    the time column's interval (read when it is a hypertable), the owner."""
    from ..reconcile import catalog, ownership
    from ..reconcile.hypertables import extras_read
    found = [catalog.snapshot_read(conn, table), extras_read(table), ownership.owner_read(conn, _object(table.qualified))]
    return [r for r in found if r is not None]


def _object(table: str) -> ManagedObject:
    from ..reconcile.ownership import ManagedObject
    return ManagedObject("hypertable", TableName.parse(table).qualified)


# --------------------------------------------------------------------------------------------------
# Resource


@dataclass(frozen=True)
class IntegerNow:
    """An integer_now function declared as code: the resource creates (or replaces) `function`() with `sql` as
    its body, returning the time column's type, and sets it as the hypertable's integer_now function."""

    function: str
    sql: str

    def as_input(self) -> dict[str, str]:
        return {"function": self.function, "sql": self.sql}


@typed_outputs
class Hypertable(Resource, module="timescale", name="Hypertable"):
    """An existing table managed as a TimescaleDB hypertable.

    Changes in place: chunk_interval (set_chunk_time_interval; only new chunks use it), integer_now
    (set_integer_now_func; an IntegerNow body by CREATE OR REPLACE FUNCTION), number_partitions
    (set_number_partitions), a hash dimension added (add_dimension; existing chunks keep their partitioning).
    Replaces: table. A time_column change is refused at preview with the manual procedure (never copied);
    so is a change of space_column (TimescaleDB cannot remove a dimension).
    create_default_indexes applies when the hypertable is created.
    Delete: releases management; the table, its data and the integer_now function stay.
    """

    table: pulumi.Output[str]
    time_column: pulumi.Output[str]
    column_type: pulumi.Output[str]
    chunk_interval: pulumi.Output[str]
    integer_now: pulumi.Output[str]
    space_column: pulumi.Output[str]
    number_partitions: pulumi.Output[int]
    adopted: pulumi.Output[bool]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, table: pulumi.Input[str], time_column: pulumi.Input[str],
                 chunk_interval: pulumi.Input[str | int] | None = None, *,
                 integer_now: pulumi.Input[str] | IntegerNow | None = None, space_column: str | None = None,
                 number_partitions: int | None = None, create_default_indexes: bool = True,
                 migrate_data: bool = True, allow_time_column_change: bool = False, adopt: bool = False,
                 dsn: pulumi.Input[str] | None = None, config_source: dict[str, str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        now = integer_now.as_input() if isinstance(integer_now, IntegerNow) else integer_now
        props = {
            "table": table, "time_column": time_column, "chunk_interval": chunk_interval, "integer_now": now,
            "integer_now_body": None, "space_column": space_column, "number_partitions": number_partitions,
            "create_default_indexes": create_default_indexes,
            "migrate_data": migrate_data, "allow_time_column_change": allow_time_column_change, "adopt": adopt,
            "dsn": secret_input(dsn), "column_type": None, "adopted": None, "planned_operations": None,
            "last_operations": None,
            INTERNAL: internals("Hypertable", resource_name, peers=later_input(lambda: peers_of(table)),
                                config_source=config_source),
        }
        opts = resource_options(opts, depends_on=later(lambda: depends_on_peers(table)))
        registry.declare_policy("Hypertable", resource_name, table, time_column)
        if isinstance(chunk_interval, (str, int)):
            registry.declare_policy(registry.CHUNK_INTERVAL, resource_name, table, chunk_interval)
        if now is not None:  # the policies on integer time need it: they see it at preview through the registry
            registry.declare_policy(registry.INTEGER_NOW, resource_name, table,
                                    now["function"] if isinstance(now, dict) else now)
        super().__init__(HypertableProvider(), resource_name, props, opts)
        untracked(self)
        registry.attach("Hypertable", table, self)
        self.declared_table = table


def __getattr__(name: str) -> Any:
    """HypertableArgs moved to args/hypertable.py (imported by the provider only); the old import path still works."""
    if name == "HypertableArgs":
        from .args import hypertable
        return getattr(hypertable, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
