"""Holds: a (hypertable, from, to) range kept in the database. While a hold is active, neither the archiver nor
`lifecycle run` archives or drops a chunk overlapping it (lifecycle._chunk_held, migration 009), and a restore
into the hypertable itself is allowed for a range it covers. Released, never deleted: the record stays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from ...errors import LifecycleError
from ...identifiers import TableName
from .archiver import holds_installed, hypertable_label

__all__ = ["Hold", "add", "covering", "holds_installed", "listed", "release", "time_range"]


class Hold(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    hold_id: int
    hypertable: str
    range_from: datetime
    range_to: datetime
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


def time_range(conn: psycopg.Connection, start: str | datetime, end: str | datetime,
               what: str) -> tuple[datetime, datetime]:
    """Let PostgreSQL parse the bounds (every form it accepts); refuse an empty range."""
    try:
        row = conn.execute("SELECT %s::timestamptz, %s::timestamptz", (start, end)).fetchone()
    except psycopg.DataError as exc:
        raise LifecycleError(f"{what} range --from {start!r} --to {end!r}: {exc.diag.message_primary}; expected "
                             "timestamps such as '2026-01-01' or '2026-01-01 12:00+00'") from None
    assert row is not None
    if row[0] >= row[1]:
        raise LifecycleError(f"{what} range --from {start!r} --to {end!r}: --from must be before --to")
    return row[0], row[1]


def add(conn: psycopg.Connection, table: str, start: str | datetime, end: str | datetime,
        reason: str | None = None) -> Hold:
    _require(conn)
    name, _ = hypertable_label(conn, table)
    lo, hi = time_range(conn, start, end, "hold")
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("INSERT INTO lifecycle.archive_holds (hypertable, range_from, range_to, reason) "
                          "VALUES (%s, %s, %s, %s) RETURNING *", (name.qualified, lo, hi, reason)).fetchone()
    return Hold.model_validate(row)


def listed(conn: psycopg.Connection, table: str | None = None, *, include_released: bool = False) -> list[Hold]:
    _require(conn)
    label = TableName.parse(table).qualified if table else None
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM lifecycle.archive_holds WHERE (%(t)s::text IS NULL OR hypertable = %(t)s) "
                           "AND (%(all)s OR released_at IS NULL) ORDER BY hypertable, range_from, hold_id",
                           {"t": label, "all": include_released}).fetchall()
    return [Hold.model_validate(r) for r in rows]


def release(conn: psycopg.Connection, hold_id: int) -> Hold:
    _require(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("UPDATE lifecycle.archive_holds SET released_at = clock_timestamp() "
                          "WHERE hold_id = %s AND released_at IS NULL RETURNING *", (hold_id,)).fetchone()
        if row is None:
            known = cur.execute("SELECT * FROM lifecycle.archive_holds WHERE hold_id = %s", (hold_id,)).fetchone()
            if known is None:
                raise LifecycleError(f"no hold {hold_id}: `lifecycle hold list` shows the active ones")
            raise LifecycleError(f"{Hold.model_validate(known).describe()}: already released")
    return Hold.model_validate(row)


def covering(conn: psycopg.Connection, table: TableName, lo: datetime, hi: datetime) -> Hold | None:
    """An active hold of `table` covering [lo, hi) whole, None when there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM lifecycle.archive_holds WHERE hypertable = %s AND released_at IS NULL "
                          "AND range_from <= %s AND range_to >= %s ORDER BY hold_id LIMIT 1",
                          (table.qualified, lo, hi)).fetchone()
    return Hold.model_validate(row) if row else None


def as_rows(holds: list[Hold]) -> list[tuple[Any, ...]]:
    return [(h.hold_id, h.hypertable, f"{h.range_from:%Y-%m-%d %H:%M}", f"{h.range_to:%Y-%m-%d %H:%M}",
             h.reason or "", "active" if h.active else f"released {h.released_at:%Y-%m-%d %H:%M}") for h in holds]
