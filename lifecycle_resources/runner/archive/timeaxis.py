"""The time dimension of an archived hypertable: timestamps or integers, and how its chunks' bounds are recorded.

An integer time hypertable (bigint/int/smallint time column: seconds, milliseconds, nanoseconds, whatever the
column means) has integer chunk bounds. lifecycle.archives and lifecycle.archive_restores record bounds as
timestamptz (migration 008); an integer bound v is recorded as 'epoch' + v microseconds, which is exact and keeps
the order for -2*10^17 < v < 9*10^18 (every epoch in seconds up to nanoseconds); beyond that it is recorded as
-infinity / infinity (still ordered, so range lookups stay right). Everything the archive shows, returns or
writes into object keys and manifests is the integer itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.datetime import TimestamptzLoader

from ...errors import LifecycleError

INTEGER_TYPES = ("smallint", "integer", "bigint")
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")

Bound = datetime | int

# The encoding's exact range (timestamptz cannot go below 4713 BC).
_LOW, _HIGH = -200_000_000_000_000_000, 9_000_000_000_000_000_000


@dataclass(frozen=True)
class TimeAxis:
    column: str
    pg_type: str  # the time column's type, as format_type() names it

    @property
    def integer(self) -> bool:
        return self.pg_type in INTEGER_TYPES

    def recorded(self, value: sql.Composable) -> sql.Composable:
        """SQL for the recorded (timestamptz) form of a bound given as `value` (a placeholder or expression)."""
        if not self.integer:
            return value
        v = sql.SQL("({}::bigint)").format(value)
        return sql.SQL("CASE WHEN {v} <= {low} THEN '-infinity'::timestamptz WHEN {v} >= {high} THEN "
                       "'infinity'::timestamptz ELSE 'epoch'::timestamptz + ({v}::text || ' microseconds')::interval "
                       "END").format(v=v, low=sql.Literal(_LOW), high=sql.Literal(_HIGH))

    def decoded(self, recorded: sql.Composable) -> sql.Composable:
        """SQL for a recorded bound back in the time column's own terms (the integer, for integer time)."""
        if not self.integer:
            return recorded
        return sql.SQL("CASE WHEN isfinite({r}) THEN (extract(epoch FROM {r}) * 1000000)::bigint WHEN {r} > 'epoch' "
                       "THEN 9223372036854775807 ELSE -9223372036854775808 END").format(r=recorded)

    def parse(self, conn: psycopg.Connection, value: str | Bound, label: str) -> Bound:
        """A bound given by a person, parsed by PostgreSQL as the time column's kind of value."""
        kind = "bigint" if self.integer else "timestamptz"
        try:
            row = conn.execute(sql.SQL("SELECT %s::{}").format(sql.SQL(kind)), (value,)).fetchone()
        except (psycopg.DataError, psycopg.errors.InvalidTextRepresentation) as exc:
            example = "integers such as 1764000000 (the time column is an integer)" if self.integer else (
                "timestamps such as '2026-01-01' or '2026-01-01 12:00+00'")
            raise LifecycleError(f"{label} {value!r}: {exc.diag.message_primary}; expected {example}") from None
        assert row is not None
        return row[0]


def show(value: Bound | str) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if isinstance(value, datetime) else str(value)


def as_json(value: Bound) -> int | str:
    return value if isinstance(value, int) else value.isoformat()


class LenientTimestamptz(TimestamptzLoader):
    """A recorded integer bound past year 9999 (nanosecond epochs) cannot be a Python datetime: its text then."""

    def load(self, data: bytes | bytearray | memoryview) -> datetime | str:  # type: ignore[override]
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode()
