"""Holds: a (hypertable, from, to) range kept in the database. While a hold is active, neither the archiver nor
`lifecycle run` archives or drops a chunk overlapping it (lifecycle._chunk_held, migration 009), and a restore
into the hypertable itself is allowed for a range it covers. Released, never deleted: the record stays. Adding one
waits for the drops of that table in flight (archiver.lock_holds, migration 014), so none of them drops what it
covers once `add` has returned.

On an integer-time hypertable the bounds are integers in the time column's units, recorded in the timestamptz
columns as lifecycle.archives records integer bounds (timeaxis.TimeAxis.recorded; migration 013 lets
_chunk_held compare integer chunks) and shown as the integers again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from ...errors import LifecycleError
from ...identifiers import TableName
from .archiver import holds_installed, lock_holds, time_axis
from .timeaxis import Bound, TimeAxis, show

__all__ = ["Hold", "add", "bounds", "covering", "holds_installed", "listed", "release"]


class Hold(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    hold_id: int
    hypertable: str
    range_from: datetime | int   # an integer on an integer-time hypertable
    range_to: datetime | int
    reason: str | None = None
    created_at: datetime
    released_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def describe(self) -> str:
        state = "active" if self.active else f"released {self.released_at:%Y-%m-%d %H:%M}"
        why = f" ({self.reason})" if self.reason else ""
        return f"hold {self.hold_id} on {self.hypertable} [{self.range_from}, {self.range_to}){why}: {state}"


def _require(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT to_regclass('lifecycle.archive_holds') IS NOT NULL").fetchone()
    if not row or not row[0]:
        raise LifecycleError("holds need the lifecycle schema's migration 009 (lifecycle.archive_holds): run "
                             "`pulumi up` with LifecycleSchema declared")


def _require_integer_holds(conn: psycopg.Connection, table: TableName) -> None:
    """Without 013, _chunk_held never holds an integer chunk: such a hold would protect nothing."""
    row = conn.execute("SELECT to_regprocedure('lifecycle._integer_bound(bigint)') IS NOT NULL").fetchone()
    if not row or not row[0]:
        raise LifecycleError(f"a hold on {table.qualified} (integer time) needs the lifecycle schema's migration "
                             "013 (holds on integer time): run `pulumi up` with LifecycleSchema declared")


def bounds(conn: psycopg.Connection, axis: TimeAxis, start: str | Bound, end: str | Bound,
           what: str) -> tuple[Bound, Bound]:
    """Let PostgreSQL parse the bounds as the time column's kind of value (timestamps, or integers for integer
    time); refuse an empty range."""
    where = f"{what} range --from {start!r} --to {end!r}"
    lo = axis.parse(conn, start, f"{where}: --from")
    hi = axis.parse(conn, end, f"{where}: --to")
    if lo >= hi:  # type: ignore[operator]
        raise LifecycleError(f"{where}: --from must be before --to")
    return lo, hi


# Each hold with its bounds in its table's terms: integers (decoded from the recorded timestamps) on integer time.
_SELECT = sql.SQL(
    "SELECT h.hold_id, h.hypertable, h.reason, h.created_at, h.released_at, coalesce(i.integer_time, false) AS "
    "integer_time, CASE WHEN i.integer_time THEN NULL ELSE h.range_from END AS from_ts, CASE WHEN i.integer_time "
    "THEN NULL ELSE h.range_to END AS to_ts, CASE WHEN i.integer_time THEN {from_int} END AS from_int, "
    "CASE WHEN i.integer_time THEN {to_int} END AS to_int FROM lifecycle.archive_holds h "
    "LEFT JOIN LATERAL (SELECT bool_or(d.column_type::text IN ('smallint', 'integer', 'bigint')) AS integer_time "
    "FROM timescaledb_information.dimensions d WHERE d.hypertable_schema || '.' || d.hypertable_name = h.hypertable "
    "AND d.dimension_number = 1) i ON true ").format(
        from_int=TimeAxis("", "bigint").decoded(sql.SQL("h.range_from")),
        to_int=TimeAxis("", "bigint").decoded(sql.SQL("h.range_to")))


def _holds(conn: psycopg.Connection, where: sql.Composable, params: dict[str, Any]) -> list[Hold]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_SELECT + where, params).fetchall()
    return [Hold.model_validate({**r, "range_from": r["from_int"] if r["integer_time"] else r["from_ts"],
                                 "range_to": r["to_int"] if r["integer_time"] else r["to_ts"]}) for r in rows]


def add(conn: psycopg.Connection, table: str, start: str | Bound, end: str | Bound,
        reason: str | None = None) -> Hold:
    _require(conn)
    name, axis = time_axis(conn, table)
    if axis.integer:
        _require_integer_holds(conn, name)
    lo, hi = bounds(conn, axis, start, end, "hold")
    with conn.transaction():
        lock_holds(conn, name, exclusive=True)  # waits for the drops in flight: none drops what this holds after it
        row = conn.execute(sql.SQL("INSERT INTO lifecycle.archive_holds (hypertable, range_from, range_to, reason) "
                                   "VALUES (%(t)s, {lo}, {hi}, %(reason)s) RETURNING hold_id").format(
                                       lo=axis.recorded(sql.Placeholder("lo")),
                                       hi=axis.recorded(sql.Placeholder("hi"))),
                           {"t": name.qualified, "lo": lo, "hi": hi, "reason": reason}).fetchone()
    assert row is not None
    return _holds(conn, sql.SQL("WHERE h.hold_id = %(id)s"), {"id": row[0]})[0]


def listed(conn: psycopg.Connection, table: str | None = None, *, include_released: bool = False) -> list[Hold]:
    _require(conn)
    label = TableName.parse(table).qualified if table else None
    return _holds(conn, sql.SQL("WHERE (%(t)s::text IS NULL OR h.hypertable = %(t)s) AND (%(all)s OR h.released_at "
                                "IS NULL) ORDER BY h.hypertable, h.range_from, h.hold_id"),
                  {"t": label, "all": include_released})


def release(conn: psycopg.Connection, hold_id: int) -> Hold:
    _require(conn)
    row = conn.execute("UPDATE lifecycle.archive_holds SET released_at = clock_timestamp() "
                       "WHERE hold_id = %s AND released_at IS NULL RETURNING hold_id", (hold_id,)).fetchone()
    found = _holds(conn, sql.SQL("WHERE h.hold_id = %(id)s"), {"id": hold_id})
    if not found:
        raise LifecycleError(f"no hold {hold_id}: `lifecycle hold list` shows the active ones")
    if row is None:
        raise LifecycleError(f"{found[0].describe()}: already released")
    return found[0]


def covering(conn: psycopg.Connection, table: TableName, lo: Bound, hi: Bound,
             axis: TimeAxis | None = None) -> Hold | None:
    """An active hold of `table` covering [lo, hi) whole, None when there is none."""
    axis = axis or TimeAxis("", "bigint" if isinstance(lo, int) else "timestamp with time zone")
    found = _holds(conn, sql.SQL("WHERE h.hypertable = %(t)s AND h.released_at IS NULL AND h.range_from <= {lo} "
                                 "AND h.range_to >= {hi} ORDER BY h.hold_id LIMIT 1").format(
                                     lo=axis.recorded(sql.Placeholder("lo")), hi=axis.recorded(sql.Placeholder("hi"))),
                   {"t": table.qualified, "lo": lo, "hi": hi})
    return found[0] if found else None


def as_rows(holds: list[Hold]) -> list[tuple[Any, ...]]:
    return [(h.hold_id, h.hypertable, show(h.range_from), show(h.range_to), h.reason or "",
             "active" if h.active else f"released {h.released_at:%Y-%m-%d %H:%M}") for h in holds]
