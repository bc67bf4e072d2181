"""Intervals as TimescaleDB applies them: one value type for declared and read windows, one exact parser of
PostgreSQL's interval output, and one batch parse of what users write.

A policy window is subtracted from now(): months are calendar months, so '1 month' and '30 days' are different
windows, while '7 days', '1 week' and '168 hours' are one. A chunk interval is stored by TimescaleDB in
microseconds, a month counted as 30 days (interval_to_usec), so there '1 month' and '30 days' are the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

SECOND = 1_000_000
DAY = 86_400 * SECOND
DAYS_PER_MONTH = 30  # PostgreSQL's interval ordering and TimescaleDB's chunk intervals both use it

# PostgreSQL's output with IntervalStyle = postgres (catalog.server_info sets it for every session), e.g.
# '1 year 2 mons', '-1 years -2 mons +3 days -04:05:06.000007', '168:00:00', '00:00:00'.
_OUTPUT = re.compile(
    r"^(?:(?P<years>[+-]?\d+) years? ?)?(?:(?P<mons>[+-]?\d+) mons? ?)?(?:(?P<days>[+-]?\d+) days? ?)?"
    r"(?:(?P<sign>[+-])?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d{1,6}))?)?$")


@dataclass(frozen=True)
class Window:
    """An interval as (months, microseconds, days counted as 24 hours), or an integer for integer time.

    Equal windows cut at the same point; `text` is how the user (or the catalog) wrote it, kept for display
    and never compared.
    """

    months: int
    micros: int  # for integer time: the integer itself, in the time column's unit
    text: str = field(default="", compare=False)
    integer: bool = field(default=False, compare=False)  # one field is always one kind: its table decides

    @classmethod
    def of_integer(cls, number: int) -> Window:
        return cls(0, number, str(number), integer=True)

    @classmethod
    def from_output(cls, text: str) -> Window:
        """Exactly what PostgreSQL printed (IntervalStyle postgres); ValueError for anything else."""
        match = _OUTPUT.match(text.strip())
        if not match or not text.strip():
            raise ValueError(f"{text!r} is not PostgreSQL's interval output (IntervalStyle must be 'postgres')")
        g = match.groupdict()
        months = 12 * int(g["years"] or 0) + int(g["mons"] or 0)
        time = (int(g["h"] or 0) * 3600 + int(g["m"] or 0) * 60 + int(g["s"] or 0)) * SECOND
        time += int((g["frac"] or "").ljust(6, "0") or 0)
        if g["sign"] == "-":
            time = -time
        return cls(months, int(g["days"] or 0) * DAY + time, text.strip())

    @classmethod
    def from_key(cls, key: int | Sequence[int], text: str) -> Window:
        """Back from `key` (for display only: whether it is an integer window is not recorded)."""
        if isinstance(key, (int, float)):
            return cls(0, int(key), text)
        months, micros = key
        return cls(int(months), int(micros), text)

    @property
    def key(self) -> int | list[int]:
        """A JSON value equal exactly when the windows are (a plain integer when there are no months)."""
        return self.micros if self.months == 0 else [self.months, self.micros]

    @property
    def span(self) -> int:
        """Microseconds as PostgreSQL orders intervals (a month as 30 days): for 'longer than' checks only."""
        return self.months * DAYS_PER_MONTH * DAY + self.micros

    def as_chunk_interval(self) -> Window:
        """The window as TimescaleDB stores a chunk interval: microseconds, a month counted as 30 days."""
        return Window(0, self.span, self.text, self.integer)

    def sql(self) -> sql.Composable:
        """The exact value as an SQL interval (or bigint for integer time)."""
        if self.integer:
            return sql.SQL("{}::bigint").format(sql.Literal(self.micros))
        seconds, micros = divmod(self.micros, SECOND)
        return sql.SQL("make_interval(months => {}, secs => {}) + {}::bigint * interval '1 microsecond'").format(
            sql.Literal(self.months), sql.Literal(seconds), sql.Literal(micros))

    def __str__(self) -> str:
        return self.text


class NotAnInterval(ValueError):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


_PARSE = "SELECT v::interval::text FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i"
_PARSE_ERRORS = (psycopg.errors.InvalidDatetimeFormat, psycopg.errors.DatetimeFieldOverflow,
                 psycopg.errors.IntervalFieldOverflow, psycopg.errors.SyntaxError,
                 psycopg.errors.InvalidParameterValue)


def parse_many(conn: psycopg.Connection, texts: Sequence[str]) -> list[Window]:
    """Let PostgreSQL parse every spelling it accepts ('1d', 'P7D', '4 weeks'), all in one round trip.

    Raises NotAnInterval naming the first text that does not parse (found one by one, on that path only).
    """
    if not texts:
        return []
    try:
        with conn.transaction():
            rows = conn.execute(_PARSE, (list(texts),)).fetchall()
    except _PARSE_ERRORS:
        for index, text in enumerate(texts):
            try:
                with conn.transaction():
                    conn.execute(_PARSE, ([text],))
            except _PARSE_ERRORS as exc:
                raise NotAnInterval(index, str(exc).splitlines()[0]) from None
        raise
    return [Window(w.months, w.micros, text) for w, text in
            zip((Window.from_output(r[0]) for r in rows), texts)]
