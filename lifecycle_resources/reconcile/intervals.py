"""Intervals as TimescaleDB applies them: one value type for declared and read windows, one exact parser of
PostgreSQL's interval output, and one batch parse of what users write: the common spellings locally, by rules
reproducing PostgreSQL's exactly (tests/test_intervals_local.py compares them with the server), the rest by
the server in one round trip.

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


# The spellings parsed here: PostgreSQL's unit words (datetime.c deltatktbl), integer amounts small enough that
# no field can overflow, each unit at most once (PostgreSQL refuses a repeated one), no 'ago', '@', fractions,
# commas or mixed forms: anything else goes to the server, which decides exactly as before.
_MONTHS = {"y": 12, "yr": 12, "yrs": 12, "year": 12, "years": 12,
           "mon": 1, "mons": 1, "month": 1, "months": 1}
_MICROS = {"w": 7 * DAY, "week": 7 * DAY, "weeks": 7 * DAY,
           "d": DAY, "day": DAY, "days": DAY,
           "h": 3600 * SECOND, "hr": 3600 * SECOND, "hrs": 3600 * SECOND, "hour": 3600 * SECOND,
           "hours": 3600 * SECOND,
           "m": 60 * SECOND, "min": 60 * SECOND, "mins": 60 * SECOND, "minute": 60 * SECOND,
           "minutes": 60 * SECOND,
           "s": SECOND, "sec": SECOND, "secs": SECOND, "second": SECOND, "seconds": SECOND,
           "ms": 1000, "msec": 1000, "msecs": 1000, "millisecond": 1000, "milliseconds": 1000,
           "us": 1, "usec": 1, "usecs": 1, "microsecond": 1, "microseconds": 1}
_UNIT_FIELD = {**{u: f"m{n}" for u, n in _MONTHS.items()}, **{u: f"u{n}" for u, n in _MICROS.items()}}
_AMOUNT = r"[+-]?\d{1,7}"
_VERBOSE_PART = re.compile(rf"({_AMOUNT})\s*([a-zA-Z]+)")
_VERBOSE = re.compile(rf"^{_VERBOSE_PART.pattern}(?:\s+{_VERBOSE_PART.pattern})*$")
_CLOCK = re.compile(r"^(\d{1,7}):([0-5]\d):([0-5]\d)$")
_SECONDS = re.compile(rf"^{_AMOUNT}$")
_ISO = re.compile(r"^P(?:(?P<w>\d{1,7})W|(?:(?P<y>\d{1,7})Y)?(?:(?P<mo>\d{1,7})M)?(?:(?P<d>\d{1,7})D)?"
                  r"(?:T(?=\d)(?:(?P<h>\d{1,7})H)?(?:(?P<mi>\d{1,7})M)?(?:(?P<s>\d{1,7})S)?)?)$")


def parse_local(text: str) -> Window | None:
    """The interval PostgreSQL reads from `text`, for the spellings reproduced exactly here; None otherwise."""
    if text != text.strip() or not text:
        return None
    if _SECONDS.match(text):  # a bare number is seconds
        return Window(0, int(text) * SECOND, text)
    clock = _CLOCK.match(text)
    if clock:
        h, m, sec = (int(g) for g in clock.groups())
        return Window(0, ((h * 60 + m) * 60 + sec) * SECOND, text)
    iso = _ISO.match(text)
    if iso:
        if not any(iso.groupdict().values()):
            return None
        g = {k: int(v or 0) for k, v in iso.groupdict().items()}
        micros = (g["w"] * 7 + g["d"]) * DAY + ((g["h"] * 60 + g["mi"]) * 60 + g["s"]) * SECOND
        return Window(12 * g["y"] + g["mo"], micros, text)
    if not _VERBOSE.match(text):
        return None
    months = micros = 0
    seen: set[str] = set()
    for amount, unit in _VERBOSE_PART.findall(text):
        field = _UNIT_FIELD.get(unit.lower())
        if field is None or field in seen:
            return None
        seen.add(field)
        if field.startswith("m"):
            months += int(amount) * _MONTHS[unit.lower()]
        else:
            micros += int(amount) * _MICROS[unit.lower()]
    return Window(months, micros, text)


def parse_many(conn: psycopg.Connection, texts: Sequence[str]) -> list[Window]:
    """Every spelling PostgreSQL accepts ('1d', 'P7D', '4 weeks'), as PostgreSQL reads it: locally where
    parse_local reproduces it, the rest by the server in one round trip (none when all are local).

    Raises NotAnInterval naming the first text that does not parse.
    """
    local = [parse_local(text) for text in texts]
    rest = [i for i, window in enumerate(local) if window is None]
    for i, window in zip(rest, parse_on_server(conn, [texts[i] for i in rest], rest)):
        local[i] = window
    return [w for w in local if w is not None]


def parse_on_server(conn: psycopg.Connection, texts: Sequence[str], indexes: Sequence[int] | None = None
                    ) -> list[Window]:
    """Let PostgreSQL parse the texts, all in one round trip; NotAnInterval names the first that does not
    parse (found one by one, on that path only) by its position in `indexes` (default: in `texts`)."""
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
                raise NotAnInterval(indexes[index] if indexes is not None else index,
                                    str(exc).splitlines()[0]) from None
        raise
    return [Window(w.months, w.micros, text) for w, text in
            zip((Window.from_output(r[0]) for r in rows), texts)]
