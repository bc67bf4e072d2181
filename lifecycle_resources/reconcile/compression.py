"""Compression settings: the model shared by declared and read state, the catalog reader (per version),
the normaliser of declared segment-by / order-by lists, and the statement that applies them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from . import catalog
from ..db import pool
from .declared import Peers, Target
from ..errors import InputError
from ..identifiers import TableName

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

    model_config = ConfigDict(defer_build=True, frozen=True)

    hypertable: str
    enabled: bool
    segment_by: tuple[str, ...] | None   # None: never set (TimescaleDB chooses at first compression)
    order_by: tuple[str, ...] | None
    compressed_chunks: int = 0

    def compared(self) -> tuple[Any, ...]:
        return (self.enabled, self.segment_by, self.order_by)


# From TimescaleDB's catalog tables, with the rules of its views (hypertables: not an internal compressed table
# nor an aggregate's materialisation; chunks: compressed when status bit 1 is set, dropped and OSM chunks not
# counted (2.26 has no `dropped` column: it deletes the row); hypertable_columnstore_settings: the segment-by names joined by commas, the order-by items quoted
# with their direction and non-default NULLS placement). The views joined took 22 ms for one table on the
# embedded server, this 4 ms. tests/test_catalog_reads.py compares the two on both servers.
_READ = sql.SQL("""
        SELECT h.table_name, h.compression_state = 1, array_to_string(s.segmentby, ','),
               (SELECT string_agg(format('%%I%%s%%s', u.col, CASE WHEN u.descending THEN ' DESC' ELSE '' END,
                                         CASE WHEN u.nulls_first AND NOT u.descending THEN ' NULLS FIRST'
                                              WHEN NOT u.nulls_first AND u.descending THEN ' NULLS LAST'
                                              ELSE '' END), ',')
                  FROM unnest(s.orderby, s.orderby_desc, s.orderby_nullsfirst) u(col, descending, nulls_first)),
               (SELECT count(*) FROM _timescaledb_catalog.chunk ch
                 WHERE ch.hypertable_id = h.id AND NOT ch.osm_chunk AND ch.status & 1 = 1
                   AND NOT coalesce((to_jsonb(ch) ->> 'dropped')::boolean, false))
          FROM _timescaledb_catalog.hypertable h
          LEFT JOIN _timescaledb_catalog.compression_settings s
            ON s.relid = format('%%I.%%I', h.schema_name, h.table_name)::regclass
         WHERE h.schema_name = %s AND h.compression_state <> 2
           AND NOT EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_agg ca WHERE ca.mat_hypertable_id = h.id)
           {one}""")


def settings_read(table: TableName) -> catalog.Read:
    """read_settings()'s query of one table, for catalog.bundle()."""
    return catalog.Read("compression", table.qualified, _READ.format(one=sql.SQL("AND h.table_name = %s")),
                        (table.schema, table.name))


def read_settings(conn: psycopg.Connection, info: catalog.ServerInfo, table: TableName) -> CompressionState | None:
    """One query on hypertable_columnstore_settings: the name TimescaleDB keeps (2.18 on); its
    hypertable_compression_settings alias is deprecated since 2.24. Every supported version has it.
    Outside a transaction, one query for the whole schema (catalog.per_schema)."""
    del info  # the supported versions (catalog.MIN_VERSION on) share this view

    def one() -> CompressionState | None:
        found = catalog.rows(conn, settings_read(table))
        return _state(table.schema, found[0]) if found else None

    def schema() -> dict[str, CompressionState]:
        return {row[0]: _state(table.schema, row) for row in conn.execute(_READ.format(one=sql.SQL("")),
                                                                          (table.schema,)).fetchall()}

    return catalog.per_schema(conn, "compression", table, one, schema)


def _state(schema: str, row: tuple[Any, ...]) -> CompressionState:
    name, enabled, segmentby, orderby, compressed = row
    return CompressionState(
        hypertable=TableName(schema=schema, name=name).qualified, enabled=bool(enabled),
        segment_by=None if segmentby is None else tuple(unquote(s) for s in split_list(segmentby)),
        order_by=None if orderby is None else tuple(OrderItem.parse(o).render() for o in split_list(orderby)),
        compressed_chunks=int(compressed or 0))


# --------------------------------------------------------------------------------------------------


class CompressionSettingsArgs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

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
    with pool.keeping_prepared(conn):
        conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                             "timescaledb.compress_orderby = {})").format(
            table.ident, sql.Literal(segment), sql.Literal(order)))


# --------------------------------------------------------------------------------------------------
# Operations: what applying the declared settings does, in one line each.


def _listed(items: tuple[str, ...] | None) -> str:
    return "[" + ", ".join(items or ()) + "]"


@dataclass(frozen=True)
class SetCompression:
    table: TableName
    declared: CompressionState
    existing: CompressionState | None

    def describe(self) -> str:
        want = f"segment_by {_listed(self.declared.segment_by)}, order_by {_listed(self.declared.order_by)}"
        old = self.existing
        if old is None or not old.enabled:
            return f"enable compression on {self.table} ({want})"
        changes = [f"{field} {_listed(getattr(old, field))} -> {_listed(getattr(self.declared, field))}"
                   for field in ("segment_by", "order_by") if getattr(old, field) != getattr(self.declared, field)]
        note = (f" (applies to chunks compressed from now on; the {old.compressed_chunks} chunks already "
                "compressed keep their current settings until recompressed)" if old.compressed_chunks else "")
        return f"set compression settings of {self.table}: {', '.join(changes)}{note}"


def plan_settings(declared: CompressionState, actual: CompressionState | None) -> list[SetCompression]:
    """Pure: nothing when the table already compresses as declared."""
    if actual is not None and actual.compared() == declared.compared():
        return []
    return [SetCompression(TableName.parse(declared.hypertable), declared, actual)]


def left_enabled(state: CompressionState) -> str | None:
    """What deleting the settings cannot undo, said before it happens."""
    if not state.enabled or not state.compressed_chunks:
        return None
    return (f"{state.hypertable} keeps compression enabled: {state.compressed_chunks} chunks are compressed and "
            "TimescaleDB cannot disable compression while they are; their data is left as it is")
