"""What a policy's next run will act on, stated at preview: for retention, the chunks it drops, their time
range, their rows and bytes; for compression, the chunks that become due and their size.

Never a scan of the table: chunks come from show_chunks (the catalog), bytes from chunks_detailed_size, rows
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
    oldest: datetime | None
    newest: datetime | None

    @property
    def fraction(self) -> float:
        """The share of the table the run acts on: by rows, or by bytes where statistics know no rows."""
        if self.total_rows > 0:
            return self.rows / self.total_rows
        return self.bytes / self.total_bytes if self.total_bytes > 0 else 0.0

    def _range(self) -> str:
        if self.oldest is None or self.newest is None:
            return ""
        return f" ({self.oldest:%Y-%m-%d %H:%M} to {self.newest:%Y-%m-%d %H:%M})"

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
    row = conn.execute("SELECT to_regprocedure('lifecycle._estimated_rows(regclass)') IS NOT NULL").fetchone()
    if row and row[0]:
        return sql.SQL("lifecycle._estimated_rows")
    return info.fn("approximate_row_count")


_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")

# Every chunk of the table with its size, estimated rows, range, whether the run acts on it.
_QUERY = """
WITH acted AS (SELECT c::regclass AS c FROM {show_chunks}({table}::regclass, older_than => {window}) c),
     sized AS (SELECT format('%I.%I', d.chunk_schema, d.chunk_name)::regclass AS c, d.total_bytes
                 FROM {detailed_size}({table}::regclass) d)
SELECT count(*) FILTER (WHERE a.c IS NOT NULL AND {due}),
       coalesce(sum({rows}(s.c)) FILTER (WHERE a.c IS NOT NULL AND {due}), 0)::bigint,
       coalesce(sum(s.total_bytes) FILTER (WHERE a.c IS NOT NULL AND {due}), 0)::bigint,
       count(*),
       coalesce(sum({rows}(s.c)), 0)::bigint,
       coalesce(sum(s.total_bytes), 0)::bigint,
       min(ch.range_start) FILTER (WHERE a.c IS NOT NULL AND {due}),
       max(ch.range_end) FILTER (WHERE a.c IS NOT NULL AND {due})
  FROM sized s
  JOIN pg_class k ON k.oid = s.c
  JOIN pg_namespace kn ON kn.oid = k.relnamespace
  JOIN timescaledb_information.chunks ch ON ch.chunk_schema = kn.nspname AND ch.chunk_name = k.relname
  LEFT JOIN acted a ON a.c = s.c
"""


def _impact(conn: psycopg.Connection, info: ServerInfo, table: TableName, window: Window,
            compression: bool) -> Impact | None:
    kind = conn.execute("SELECT column_type::text FROM timescaledb_information.dimensions WHERE hypertable_schema = %s "
                        "AND hypertable_name = %s AND dimension_number = 1", (table.schema, table.name)).fetchone()
    if kind is None or window.integer or kind[0] not in _TIME_TYPES:
        return None  # not a hypertable yet (created by this program), or integer time (cut at integer_now())
    query = sql.SQL(_QUERY).format(
        show_chunks=info.fn("show_chunks"), detailed_size=info.fn("chunks_detailed_size"),
        table=sql.Literal(table.ident.as_string(conn)), window=window.sql(), rows=_rows_estimator(conn, info),
        due=sql.SQL("NOT ch.is_compressed" if compression else "true"))
    row = conn.execute(query).fetchone()
    if row is None:
        return None
    chunks, rows, size, total_chunks, total_rows, total_bytes, oldest, newest = row
    return Impact(table.qualified, window.text or str(window), int(chunks), int(rows), int(size), int(total_chunks),
                  int(total_rows), int(total_bytes), oldest, newest)


def retention_impact(conn: psycopg.Connection, info: ServerInfo, table: TableName, window: Window) -> Impact | None:
    """What a retention run with `window` (drop_after) would drop now; None for integer time."""
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
