"""CompressionSettings: enables compression on a hypertable with its segment-by and order-by columns.

Changes in place (ALTER TABLE .. SET): segment_by, order_by; chunks already compressed keep the settings
they were compressed with, chunks compressed afterwards use the new ones.
Replaces: hypertable. Delete: disables compression when no chunk is compressed; otherwise leaves it
enabled (TimescaleDB cannot disable it while compressed chunks exist) and the data as it is.
"""

from __future__ import annotations

import re
import sys
from typing import Any, NamedTuple

import psycopg
import pulumi
from psycopg import sql
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult
from pydantic import BaseModel, ConfigDict, Field

from . import catalog, registry
from .declared import Peers, Target, resolve_target
from .errors import Deferred, InputError
from .hypertable import lock_table
from .identifiers import TableName
from .provider import LifecycleProvider, changed_fields, resource_options, secret, secret_input

_ITEM = re.compile(r'^\s*("(?:[^"]|"")+"|[^\s",]+)(?:\s+(ASC|DESC))?(?:\s+NULLS\s+(FIRST|LAST))?\s*$', re.I)


class OrderItem(NamedTuple):
    column: str
    descending: bool
    nulls_first: bool

    @classmethod
    def parse(cls, text: str) -> "OrderItem":
        m = _ITEM.match(text)
        if not m:
            raise ValueError(f"cannot read {text!r}")
        column = m.group(1)
        if column.startswith('"'):
            column = column[1:-1].replace('""', '"')
        descending = (m.group(2) or "ASC").upper() == "DESC"
        nulls = m.group(3)
        nulls_first = descending if nulls is None else nulls.upper() == "FIRST"
        return cls(column, descending, nulls_first)

    def render(self) -> str:
        """Fully spelled out, so two spellings of one ordering compare equal."""
        return (f"{self.column} {'DESC' if self.descending else 'ASC'} "
                f"NULLS {'FIRST' if self.nulls_first else 'LAST'}")

    def sql_text(self, conn: psycopg.Connection) -> str:
        return (f"{sql.Identifier(self.column).as_string(conn)} {'DESC' if self.descending else 'ASC'} "
                f"NULLS {'FIRST' if self.nulls_first else 'LAST'}")


def split_list(text: str | None) -> list[str]:
    """Split a catalog list such as `sym,"Name" DESC` on commas outside double quotes."""
    if not text:
        return []
    items, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    return [i for i in items if i]


def unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name


class CompressionState(BaseModel):
    """Compression settings, declared or read: order_by fully spelled out, time column included."""

    model_config = ConfigDict(frozen=True)

    hypertable: str
    enabled: bool
    segment_by: tuple[str, ...] | None   # None: never set (TimescaleDB chooses at first compression)
    order_by: tuple[str, ...] | None
    compressed_chunks: int = 0

    def compared(self) -> tuple[Any, ...]:
        return (self.enabled, self.segment_by, self.order_by)


def read_settings(conn: psycopg.Connection, info: catalog.ServerInfo, table: TableName) -> CompressionState | None:
    """One query; the catalog view differs by version (hypertable_compression_settings is 2.14+)."""
    if info.version_tuple >= (2, 14):
        query = """
        SELECT h.compression_enabled, s.segmentby, s.orderby,
               (SELECT count(*) FROM timescaledb_information.chunks c
                 WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name
                   AND c.is_compressed)
          FROM timescaledb_information.hypertables h
          LEFT JOIN timescaledb_information.hypertable_compression_settings s
            ON s.hypertable = format('%%I.%%I', h.hypertable_schema, h.hypertable_name)::regclass
         WHERE h.hypertable_schema = %s AND h.hypertable_name = %s"""
    else:
        query = """
        SELECT h.compression_enabled,
               (SELECT string_agg(quote_ident(attname), ',' ORDER BY segmentby_column_index)
                  FROM timescaledb_information.compression_settings s
                 WHERE s.hypertable_schema = h.hypertable_schema AND s.hypertable_name = h.hypertable_name
                   AND segmentby_column_index IS NOT NULL),
               (SELECT string_agg(quote_ident(attname) || CASE WHEN orderby_asc THEN '' ELSE ' DESC' END
                                  || CASE WHEN orderby_nullsfirst = orderby_asc
                                          THEN CASE WHEN orderby_nullsfirst THEN ' NULLS FIRST'
                                                    ELSE ' NULLS LAST' END ELSE '' END,
                                  ',' ORDER BY orderby_column_index)
                  FROM timescaledb_information.compression_settings s
                 WHERE s.hypertable_schema = h.hypertable_schema AND s.hypertable_name = h.hypertable_name
                   AND orderby_column_index IS NOT NULL),
               (SELECT count(*) FROM timescaledb_information.chunks c
                 WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name
                   AND c.is_compressed)
          FROM timescaledb_information.hypertables h
         WHERE h.hypertable_schema = %s AND h.hypertable_name = %s"""
    row = conn.execute(query, (table.schema, table.name)).fetchone()
    if row is None:
        return None
    enabled, segmentby, orderby, compressed = row
    return CompressionState(
        hypertable=table.qualified, enabled=bool(enabled),
        segment_by=None if segmentby is None else tuple(unquote(s) for s in split_list(segmentby)),
        order_by=None if orderby is None else tuple(OrderItem.parse(o).render() for o in split_list(orderby)),
        compressed_chunks=int(compressed or 0))


# --------------------------------------------------------------------------------------------------


class CompressionSettingsArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    hypertable: str
    segment_by: list[str] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list)
    resource_name: str | None = None
    peers: Peers = Field(default_factory=Peers)


def declared_state(args: CompressionSettingsArgs, target: Target, columns: list[str]) -> CompressionState:
    """Normalise what is declared the way TimescaleDB stores it (it appends the time column, descending)."""
    name = args.resource_name
    accepted = "columns of " + target.table.qualified + ": " + ", ".join(columns)
    seen: set[str] = set()
    for col in args.segment_by:
        if col not in columns:
            raise InputError(name, "segment_by", col, "no such column", accepted)
        if col in seen:
            raise InputError(name, "segment_by", col, "listed twice", "each column once")
        seen.add(col)
    if target.time_column in args.segment_by:
        raise InputError(name, "segment_by", target.time_column, "the time column cannot be a segment-by column",
                         "other columns (usually an id such as symbol)")
    items: list[OrderItem] = []
    for text in args.order_by:
        try:
            item = OrderItem.parse(text)
        except ValueError:
            raise InputError(name, "order_by", text, "not an ordering",
                             "'column', 'column ASC|DESC', optionally 'NULLS FIRST|LAST'") from None
        if item.column not in columns:
            raise InputError(name, "order_by", text, f"no such column {item.column!r}", accepted)
        if item.column in args.segment_by:
            raise InputError(name, "order_by", text, "a segment-by column cannot also order", "other columns")
        if any(i.column == item.column for i in items):
            raise InputError(name, "order_by", text, "column listed twice", "each column once")
        items.append(item)
    if not any(i.column == target.time_column for i in items):
        items.append(OrderItem(target.time_column, True, True))
    return CompressionState(hypertable=target.table.qualified, enabled=True, segment_by=tuple(args.segment_by),
                            order_by=tuple(i.render() for i in items))


def apply_settings(conn: psycopg.Connection, table: TableName, state: CompressionState) -> None:
    segment = ",".join(sql.Identifier(c).as_string(conn) for c in state.segment_by or ())
    order = ",".join(OrderItem.parse(o).sql_text(conn) for o in state.order_by or ())
    conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                         "timescaledb.compress_orderby = {})").format(
        table.ident, sql.Literal(segment), sql.Literal(order)))


class CompressionSettingsProvider(LifecycleProvider):
    kind = "CompressionSettings"

    def _declared(self, conn: psycopg.Connection, args: CompressionSettingsArgs) -> tuple[Target, CompressionState]:
        target = resolve_target(conn, args.resource_name, "hypertable", args.hypertable, args.peers)
        snap = catalog.table_snapshot(conn, target.table)
        if snap is None:  # promised by the program's LifecycleSchema: its columns are not known yet
            raise Deferred(f"{target.table} is created by the program's LifecycleSchema")
        return target, declared_state(args, target, [c.name for c in snap.columns])

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        args = CompressionSettingsArgs.model_validate({**news, "peers": news.get("peers") or {}})
        with self.session(news) as (conn, info):
            target, declared = self._declared(conn, args)
            actual = read_settings(conn, info, target.table)
        out: dict[str, Any] = {"hypertable": target.table.qualified, "segment_by_normalised": list(declared.segment_by or ()),
                               "order_by_normalised": list(declared.order_by or ()), "applies_to": None}
        if actual is not None and actual.enabled and actual.compressed_chunks and \
                (actual.segment_by, actual.order_by) != (declared.segment_by, declared.order_by):
            out["applies_to"] = (f"chunks compressed from now on; the {actual.compressed_chunks} chunks already "
                                 "compressed keep their current settings until recompressed")
        return out

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["hypertable"])
        changes = changed_fields(olds, news, ["segment_by_normalised", "order_by_normalised", "dsn"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=True)

    def _apply(self, props: dict[str, Any]) -> tuple[CompressionState, bool]:
        args = CompressionSettingsArgs.model_validate({**props, "peers": props.get("peers") or {}})
        with self.session(props) as (conn, info), conn.transaction():
            target, declared = self._declared(conn, args)
            lock_table(conn, target.table)
            actual = read_settings(conn, info, target.table)
            if actual is None or actual.compared() != declared.compared():
                apply_settings(conn, target.table, declared)
            after = read_settings(conn, info, target.table)
        assert after is not None
        return after, bool(actual and actual.enabled)

    def _outs(self, props: dict[str, Any], state: CompressionState, adopted: bool) -> dict[str, Any]:
        return {
            "hypertable": state.hypertable,
            "segment_by": props.get("segment_by") or [],
            "order_by": props.get("order_by") or [],
            "segment_by_normalised": list(state.segment_by or ()) if state.segment_by is not None else None,
            "order_by_normalised": list(state.order_by or ()) if state.order_by is not None else None,
            "enabled": state.enabled,
            "adopted": adopted,
            "resource_name": props.get("resource_name"),
            "peers": props.get("peers") or {},
            "config_source": props.get("config_source"),
            "dsn": secret(props.get("dsn")),
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        state, adopted = self._apply(props)
        return CreateResult(state.hypertable, self._outs(props, state, adopted))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        state, _ = self._apply(news)
        return UpdateResult(self._outs(news, state, bool(olds.get("adopted"))))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
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
                                       "order_by_normalised", "enabled", "resource_name", "peers",
                                       "config_source")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        table = TableName.parse(props["hypertable"])
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, table)
            state = read_settings(conn, info, table)
            if state is None or not state.enabled:
                return
            if state.compressed_chunks:
                print(f"CompressionSettings {props.get('resource_name')}: {table} keeps compression enabled: "
                      f"{state.compressed_chunks} chunks are compressed and TimescaleDB cannot disable compression "
                      "while they are; their data is left as it is", file=sys.stderr)
                return
            conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress = false)").format(table.ident))


class CompressionSettings(Resource, module="timescale", name="CompressionSettings"):
    """Compression enabled on a hypertable, with its segment-by and order-by columns."""

    hypertable: pulumi.Output[str]
    segment_by: pulumi.Output[list]
    order_by: pulumi.Output[list]
    segment_by_normalised: pulumi.Output[list]
    order_by_normalised: pulumi.Output[list]
    enabled: pulumi.Output[bool]
    adopted: pulumi.Output[bool]

    def __init__(self, resource_name: str, hypertable: Any, segment_by: list[str] | None = None,
                 order_by: list[str] | None = None, *, dsn: pulumi.Input[str] | None = None,
                 config_source: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        from .declared import depends_on_peers, peers_of, target_of

        table = target_of(hypertable)
        peers = peers_of(table)
        registry.declare_policy(self.__class__.__name__, resource_name, table, True)
        deps = depends_on_peers(table, "Hypertable")
        if isinstance(hypertable, pulumi.Resource):
            deps.append(hypertable)
        props = {
            "hypertable": table, "segment_by": list(segment_by or []), "order_by": list(order_by or []),
            "resource_name": resource_name, "peers": peers,
            "dsn": secret_input(dsn),
            "segment_by_normalised": None, "order_by_normalised": None, "enabled": None, "adopted": None,
            "applies_to": None, "config_source": config_source,
        }
        opts = resource_options(opts, depends_on=deps, delete_before_replace=True)
        super().__init__(CompressionSettingsProvider(), resource_name, props, opts)
        registry.attach(self.__class__.__name__, table, self)
