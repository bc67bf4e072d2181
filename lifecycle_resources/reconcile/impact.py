"""What a policy's next run will act on, stated at preview: for retention, the chunks it drops, their time
range, their rows and bytes; for compression, the chunks that become due and their size.

Never a scan of the table: chunks come from show_chunks and TimescaleDB's catalog, bytes from the relations'
sizes, rows
from statistics (lifecycle._estimated_rows when the lifecycle schema is installed, which also covers
never-analyzed and freshly compressed chunks; else TimescaleDB's approximate_row_count). Rows are therefore
estimates, and said to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from ..identifiers import TableName
from . import catalog
from .catalog import ServerInfo
from .intervals import Window


@dataclass(frozen=True)
class Impact:
    """The chunks a run acts on, out of all the table's chunks."""

    table: str
    window: str
    chunks: int
    rows: int             # an estimate
    bytes: int
    total_chunks: int
    total_rows: int       # an estimate
    total_bytes: int
    oldest: datetime | int | None   # an integer for integer time
    newest: datetime | int | None

    @property
    def fraction(self) -> float:
        """The share of the table the run acts on: by rows, or by bytes where statistics know no rows."""
        if self.total_rows > 0:
            return self.rows / self.total_rows
        return self.bytes / self.total_bytes if self.total_bytes > 0 else 0.0

    def _range(self) -> str:
        if self.oldest is None or self.newest is None:
            return ""
        if isinstance(self.oldest, datetime) and isinstance(self.newest, datetime):
            return f" ({self.oldest:%Y-%m-%d %H:%M} to {self.newest:%Y-%m-%d %H:%M})"
        return f" ({self.oldest} to {self.newest})"

    def drop_text(self) -> str:
        if self.chunks == 0:
            return f"impact: the next run drops nothing from {self.table} (no chunk older than {self.window})"
        return (f"impact: the next run drops {self.chunks} of {self.total_chunks} chunks of {self.table}"
                f"{self._range()}: ~{self.rows} of ~{self.total_rows} rows (estimate from statistics), "
                f"{_size(self.bytes)} of {_size(self.total_bytes)} ({100 * self.fraction:.1f}%)")

    def compress_text(self) -> str:
        if self.chunks == 0:
            return f"impact: no chunk of {self.table} becomes due for compression (none uncompressed older than " \
                   f"{self.window})"
        return (f"impact: {self.chunks} of {self.total_chunks} chunks of {self.table} become due for compression"
                f"{self._range()}: {_size(self.bytes)} of {_size(self.total_bytes)}, ~{self.rows} rows "
                "(estimate from statistics)")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _rows_estimator(conn: psycopg.Connection, info: ServerInfo) -> sql.Composable:
    def probe() -> bool:
        row = conn.execute("SELECT to_regprocedure('lifecycle._estimated_rows(regclass)') IS NOT NULL").fetchone()
        return bool(row and row[0])
    # Asked once per command once seen (catalog.present): the lifecycle schema is optional, and installed, not
    # dropped, while policies are planned; a check never creates it.
    if catalog.present(conn, "lifecycle._estimated_rows", probe, created_here=False):
        return sql.SQL("lifecycle._estimated_rows")
    return info.fn("approximate_row_count")


_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
_INTEGER_TYPES = {"smallint": "smallint", "integer": "integer", "bigint": "bigint"}

# Every chunk of the table with its size, estimated rows, range, whether the run acts on it.
# Every chunk of the table with its size, estimated rows, time range, and whether the run acts on it. From
# TimescaleDB's own catalog tables: its information views (chunks, chunks_detailed_size) cost 60-90 ms each
# per call on a database of a few thousand chunks, which a preview of a hundred policies would pay a hundred
# times. Bytes as chunks_detailed_size counts them: the chunk plus, when compressed, its compressed relation.
_QUERY = """
WITH acted AS (SELECT c::regclass AS c FROM {show_chunks}({table}::regclass, older_than => {window}) c),
     per AS MATERIALIZED (
         -- A chunk dropped (by a run, a retention job) while this snapshot lists it: pg_relation_size waits for
         -- the dropper's lock, then says NULL; the estimators would fail on the vanished relation.
         SELECT CASE WHEN pg_relation_size(k.oid) IS NOT NULL THEN {rows}(k.oid::regclass) END AS rows,
                pg_total_relation_size(k.oid) + coalesce(pg_total_relation_size(z.oid), 0) AS bytes,
                {range_start} AS range_start, {range_end} AS range_end,
                a.c IS NOT NULL AND {due} AS acted
           FROM _timescaledb_catalog.hypertable h
           JOIN _timescaledb_catalog.dimension d ON d.id = (
                SELECT min(o.id) FROM _timescaledb_catalog.dimension o
                 WHERE o.hypertable_id = h.id AND o.interval_length IS NOT NULL)
           JOIN _timescaledb_catalog.chunk ch ON ch.hypertable_id = h.id  -- a dropped chunk has no pg_class row
           JOIN _timescaledb_catalog.chunk_constraint con ON con.chunk_id = ch.id
           JOIN _timescaledb_catalog.dimension_slice ds ON ds.id = con.dimension_slice_id AND ds.dimension_id = d.id
           JOIN pg_namespace kn ON kn.nspname = ch.schema_name
           JOIN pg_class k ON k.relnamespace = kn.oid AND k.relname = ch.table_name
           LEFT JOIN _timescaledb_catalog.chunk cc ON cc.id = ch.compressed_chunk_id
           LEFT JOIN pg_namespace zn ON zn.nspname = cc.schema_name
           LEFT JOIN pg_class z ON z.relnamespace = zn.oid AND z.relname = cc.table_name
           LEFT JOIN acted a ON a.c = k.oid
          WHERE h.schema_name = {schema} AND h.table_name = {name})
SELECT count(*) FILTER (WHERE acted), coalesce(sum(rows) FILTER (WHERE acted), 0)::bigint,
       coalesce(sum(bytes) FILTER (WHERE acted), 0)::bigint, count(*), coalesce(sum(rows), 0)::bigint,
       coalesce(sum(bytes), 0)::bigint, min(range_start) FILTER (WHERE acted), max(range_end) FILTER (WHERE acted)
  FROM per
 WHERE bytes IS NOT NULL  -- not a chunk dropped meanwhile
"""


def dimension_read(table: TableName) -> catalog.Read:
    """The time dimension's type and integer_now, and whether the table has a chunk: _impact()'s first read, for
    catalog.bundle()."""
    return catalog.Read("impact dimension", table.qualified, sql.SQL(
        "SELECT d.column_type::regtype::text, d.integer_now_func_schema, d.integer_now_func, "
        "EXISTS (SELECT 1 FROM _timescaledb_catalog.chunk ch JOIN pg_namespace kn ON kn.nspname = ch.schema_name "
        "JOIN pg_class k ON k.relnamespace = kn.oid AND k.relname = ch.table_name WHERE ch.hypertable_id = h.id) "
        "FROM _timescaledb_catalog.dimension d JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id "
        "WHERE h.schema_name = %s AND h.table_name = %s ORDER BY d.id LIMIT 1"), (table.schema, table.name))


def _impact(conn: psycopg.Connection, info: ServerInfo, table: TableName, window: Window,
            compression: bool) -> Impact | None:
    # Whether it has a chunk at all comes with the dimension: without one, the impact is nothing, known without
    # the measuring query (a chunk without its relation, being dropped, is not counted there either).
    found = catalog.rows(conn, dimension_read(table))
    if not found:
        return None  # not a hypertable yet (created by this program)
    column_type, now_schema, now_func, any_chunk = found[0]
    if column_type in _TIME_TYPES:
        cutoff: sql.Composable = window.sql()  # show_chunks measures it back from now()
        ranges = [sql.SQL("to_timestamp(ds.{} / 1e6)").format(sql.Identifier(c)) for c in ("range_start", "range_end")]
    elif column_type in _INTEGER_TYPES and now_func:
        # Integer time: the policy cuts at integer_now() - window, in the column's own unit.
        cutoff = sql.SQL("({}() - {})::{}").format(sql.Identifier(now_schema, now_func), sql.Literal(window.micros),
                                                   sql.SQL(_INTEGER_TYPES[column_type]))
        ranges = [sql.SQL("ds.{}").format(sql.Identifier(c)) for c in ("range_start", "range_end")]
    else:
        return None  # integer time without integer_now: TimescaleDB refuses the policy itself
    if not any_chunk:
        return Impact(table.qualified, window.text or str(window), 0, 0, 0, 0, 0, 0, None, None)
    query = sql.SQL(_QUERY).format(
        show_chunks=info.fn("show_chunks"), table=sql.Literal(table.ident.as_string(conn)), window=cutoff,
        rows=_rows_estimator(conn, info), due=sql.SQL("cc.id IS NULL" if compression else "true"),
        schema=sql.Literal(table.schema), name=sql.Literal(table.name), range_start=ranges[0], range_end=ranges[1])
    row = conn.execute(query).fetchone()
    if row is None:
        return None
    chunks, rows, size, total_chunks, total_rows, total_bytes, oldest, newest = row
    return Impact(table.qualified, window.text or str(window), int(chunks), int(rows), int(size), int(total_chunks),
                  int(total_rows), int(total_bytes), oldest, newest)


def retention_impact(conn: psycopg.Connection, info: ServerInfo, table: TableName, window: Window) -> Impact | None:
    """What a retention run with `window` (drop_after) would drop now."""
    return _impact(conn, info, table, window, compression=False)


def compression_impact(conn: psycopg.Connection, info: ServerInfo, table: TableName,
                       window: Window) -> Impact | None:
    """The uncompressed chunks a compression run with `window` (compress_after) would compress now."""
    return _impact(conn, info, table, window, compression=True)


def changed(olds: dict, checked: dict) -> bool:
    """A policy created, adopted or given another window or table: its impact is stated (a policy that stays as
    it was goes on dropping what it always dropped, and is not re-judged at every preview)."""
    return (olds.get("window_value") != checked.get("window_value")
            or olds.get("hypertable") != checked.get("hypertable"))
