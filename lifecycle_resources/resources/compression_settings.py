"""CompressionSettings: enables compression on a hypertable with its segment-by and order-by columns.

Changes in place (ALTER TABLE .. SET): segment_by, order_by; chunks already compressed keep the settings
they were compressed with, chunks compressed afterwards use the new ones.
Replaces: hypertable. Delete: disables compression when no chunk is compressed; otherwise leaves it
enabled (TimescaleDB cannot disable it while compressed chunks exist) and the data as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import Deferred
from ..identifiers import TableName
from .base import (INTERNAL, INTERNAL_KEYS, LifecycleProvider, changed_fields, described, internals, later, later_input,
                   resource_options, secret, secret_input)
from .output_tracking import untracked
from .output_types import typed_outputs

if TYPE_CHECKING:
    import psycopg
    from ..reconcile import catalog
    from ..reconcile.compression import CompressionSettingsArgs, CompressionState
    from ..reconcile.declared import Target
    from ..reconcile.ownership import ManagedObject


def _reads(conn: psycopg.Connection, hypertable: str) -> list[catalog.Read]:
    """The reads a plan makes of the table, in one statement (catalog.bundle): the table, its settings, the owner."""
    from ..reconcile import catalog, ownership
    from ..reconcile.compression import settings_read
    try:
        table = TableName.parse(hypertable)
    except ValueError:
        return []
    found = [catalog.snapshot_read(conn, table), settings_read(table),
             ownership.owner_read(conn, _object(table.qualified))]
    return [r for r in found if r is not None]


def _object(table: str) -> ManagedObject:
    from ..reconcile.ownership import ManagedObject
    return ManagedObject("compression_settings", TableName.parse(table).qualified)


def _what(table: str) -> str:
    return f"compression settings of {TableName.parse(table).qualified}"


class CompressionSettingsProvider(LifecycleProvider):
    kind = "CompressionSettings"
    internal_keys = INTERNAL_KEYS | {"segment_by_normalised", "order_by_normalised"}

    def _declared(self, conn: psycopg.Connection, args: CompressionSettingsArgs) -> tuple[Target, CompressionState]:
        from ..reconcile.compression import declared_state
        from ..reconcile.declared import target_and_snapshot
        target, snap = target_and_snapshot(conn, args.resource_name, "hypertable", args.hypertable, args.peers)
        if snap is None:  # promised by the program's LifecycleSchema: its columns are not known yet
            raise Deferred(f"{target.table} is created by the program's LifecycleSchema")
        return target, declared_state(args, target, [c.name for c in snap.columns])

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        from ..reconcile import catalog
        from ..reconcile.compression import CompressionSettingsArgs, left_enabled, plan_settings, read_settings
        from .compression_preview import worse_than_uncompressed
        args = CompressionSettingsArgs.model_validate({**news, "peers": news.get("peers") or {}})
        with self.session(news) as (conn, info):
            catalog.bundle(conn, lambda: _reads(conn, args.hypertable))
            target, declared = self._declared(conn, args)
            actual = read_settings(conn, info, target.table)
            claim = self.claim_for(conn, _object(target.table.qualified), _what(target.table.qualified),
                                   bool(actual and actual.enabled), news)
            changes = plan_settings(declared, actual)
            # Measured only when the settings are created or changed: a preview with no change stays fast.
            notice = worse_than_uncompressed(conn, target.table, declared, target.time_column,
                                             args.peers.chunk_interval) if changes else None
        if notice is not None:  # in full: the preview's display of planned_operations cuts long lines
            pulumi.log.warn(f"{self.kind} {args.resource_name}: {notice.message}")
        ops = described([*filter(None, [claim]), *changes, *filter(None, [notice])])
        # An input too, so the preview of a delete (which prints the last inputs) says what it will leave.
        return {"hypertable": target.table.qualified, "segment_by_normalised": list(declared.segment_by or ()),
                "order_by_normalised": list(declared.order_by or ()), "planned_operations": ops,
                "on_delete": left_enabled(actual) if actual else None}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["hypertable"])
        changes = changed_fields(olds, news, ["segment_by_normalised", "order_by_normalised", "dsn", "owner"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=True)

    def _apply(self, props: dict[str, Any]) -> tuple[CompressionState, bool, list[str]]:
        from ..reconcile import catalog, ownership
        from ..reconcile.compression import (CompressionSettingsArgs, apply_settings, plan_settings, read_settings,
                                             settings_read)
        from ..reconcile.locks import lock_table
        args = CompressionSettingsArgs.model_validate({**props, "peers": props.get("peers") or {}})
        with self.session(props) as (conn, info), conn.transaction():
            try:
                lock_table(conn, TableName.parse(args.hypertable))  # before the table is read: re-read under it
            except ValueError:
                pass  # refused by _declared, which names the field
            catalog.bundle(conn, _reads(conn, args.hypertable))
            target, declared = self._declared(conn, args)
            actual = read_settings(conn, info, target.table)
            obj = _object(target.table.qualified)
            claim = self.claim_for(conn, obj, _what(target.table.qualified), bool(actual and actual.enabled), props)
            ops = plan_settings(declared, actual)
            for op in ops:
                apply_settings(conn, op.table, op.declared)
            # The owner's record and the read-back, one statement (catalog.bundle's write)
            catalog.bundle(conn, [settings_read(target.table)],
                           ownership.claim_statement(conn, obj, ownership.Owner.from_props(props)))
            after = read_settings(conn, info, target.table)
        assert after is not None
        return after, bool(actual and actual.enabled), described([*filter(None, [claim]), *ops])

    def _outs(self, props: dict[str, Any], state: CompressionState, adopted: bool,
              operations: list[str] | None = None) -> dict[str, Any]:
        from ..reconcile.compression import left_enabled
        return {
            "hypertable": state.hypertable,
            "segment_by": props.get("segment_by") or [],
            "order_by": props.get("order_by") or [],
            "segment_by_normalised": list(state.segment_by or ()) if state.segment_by is not None else None,
            "order_by_normalised": list(state.order_by or ()) if state.order_by is not None else None,
            "enabled": state.enabled,
            "adopted": adopted,
            "adopt": bool(props.get("adopt")),
            "on_delete": left_enabled(state),
            "resource_name": props.get("resource_name"),
            "peers": props.get("peers") or {},
            "config_source": props.get("config_source"),
            "owner": props.get("owner"),
            "planned_operations": props.get("planned_operations") or [],
            "last_operations": operations if operations is not None else props.get("last_operations") or [],
            "dsn": secret(props.get("dsn")),
        }

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        state, adopted, ops = self._apply(props)
        return CreateResult(state.hypertable, self._outs(props, state, adopted, ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        state, _, ops = self._apply(news)
        return UpdateResult(self._outs(news, state, bool(olds.get("adopted")), ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..reconcile.compression import read_settings
        table = TableName.parse(props.get("hypertable") or id_)
        with self.session(props) as (conn, info):
            state = read_settings(conn, info, table)
        if state is None or not state.enabled:
            return ReadResult(None, {})
        outs = self._outs(props, state, bool(props.get("adopted")))
        same = (outs["segment_by_normalised"], outs["order_by_normalised"]) == (
            props.get("segment_by_normalised"), props.get("order_by_normalised"))
        if not same:
            # Show the database's own values where they differ from what was declared.
            outs["segment_by"] = list(state.segment_by or ())
            outs["order_by"] = list(state.order_by or ())
        inputs = {k: outs[k] for k in ("hypertable", "segment_by", "order_by", "segment_by_normalised",
                                       "order_by_normalised", "adopt", "on_delete", "resource_name",
                                       "peers", "config_source", "owner")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, _id: str, props: dict[str, Any]) -> None:
        """Disables compression unless another resource owns the settings now, or chunks are compressed."""
        from psycopg import sql
        from ..reconcile.compression import left_enabled, read_settings
        from ..reconcile.locks import lock_table
        table = TableName.parse(props["hypertable"])
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, table)
            if not self.let_go(conn, _object(table.qualified), props):
                return
            state = read_settings(conn, info, table)
            if state is None or not state.enabled:
                return
            kept = left_enabled(state)
            if kept:
                pulumi.log.warn(f"CompressionSettings {props.get('resource_name')}: {kept}")
                return
            conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress = false)").format(table.ident))


@typed_outputs
class CompressionSettings(Resource, module="timescale", name="CompressionSettings"):
    """Compression enabled on a hypertable, with its segment-by and order-by columns."""

    hypertable: pulumi.Output[str]
    segment_by: pulumi.Output[list]
    order_by: pulumi.Output[list]
    enabled: pulumi.Output[bool]
    adopted: pulumi.Output[bool]
    on_delete: pulumi.Output[str]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, hypertable: Any, segment_by: list[str] | None = None,
                 order_by: list[str] | None = None, *, adopt: bool = False, dsn: pulumi.Input[str] | None = None,
                 config_source: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        table = registry.target_of(hypertable)
        registry.declare_policy(self.__class__.__name__, resource_name, table, True)
        props = {
            "hypertable": table, "segment_by": list(segment_by or []), "order_by": list(order_by or []),
            "adopt": adopt, "dsn": secret_input(dsn), "enabled": None, "adopted": None, "on_delete": None,
            "planned_operations": None, "last_operations": None,
            INTERNAL: internals(self.__class__.__name__, resource_name,
                                peers=later_input(lambda: registry.peers_of(table)), config_source=config_source),
        }
        deps = later(lambda: registry.depends_on_peers(table, "Hypertable") + (
            [hypertable] if isinstance(hypertable, pulumi.Resource) else []))
        opts = resource_options(opts, depends_on=deps, delete_before_replace=True)
        super().__init__(CompressionSettingsProvider(), resource_name, props, opts)
        untracked(self)
        registry.attach(self.__class__.__name__, table, self)
