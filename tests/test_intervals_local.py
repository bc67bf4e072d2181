"""Intervals parsed without a round trip read exactly as the server reads them; the rest still go to it."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from lifecycle_resources.reconcile import catalog
from lifecycle_resources.reconcile.intervals import NotAnInterval, Window, parse_local, parse_many, parse_on_server

pytestmark = pytest.mark.integration

UNITS = ["y", "yr", "yrs", "year", "years", "mon", "mons", "month", "months", "w", "week", "weeks", "d", "day",
         "days", "h", "hr", "hrs", "hour", "hours", "m", "min", "mins", "minute", "minutes", "s", "sec", "secs",
         "second", "seconds", "ms", "msec", "msecs", "millisecond", "milliseconds", "us", "usec", "usecs",
         "microsecond", "microseconds", "Days", "HOURS", "Mon"]

SPELLINGS = [
    *(f"{n} {u}" for n, u in itertools.product(["0", "1", "7", "-3", "+2", "9999999", "012"], UNITS)),
    *(f"{n}{u}" for n, u in itertools.product(["1", "12"], UNITS)),
    "1 year 2 months 3 weeks 4 days 5 hours 6 minutes 7 seconds 8 milliseconds 9 microseconds",
    "1 day 12 hours", "1 week 1 day", "1 week 7 days", "2 hours 30 minutes", "1 mon 1 m", "1y 1mon 1d 1h 1m 1s",
    "1 day   2 hours", "-1 day +2 hours", "0", "30", "-5", "3600", "00:00:00", "12:00:00", "168:00:00",
    "1:02:03", "P1D", "P7D", "P1W", "P4W", "P1M", "P1Y", "P1Y2M3D", "PT1H", "PT30M", "PT45S", "P1DT12H",
    "P2Y3M4DT5H6M7S", "PT0S", "P0D",
]

# Spellings the local parser must leave to the server (it accepts some of them, refuses others).
SERVER_ONLY = ["1.5 days", "1 day ago", "@ 1 day", "1 day 1 day", "1 day, 2 hours", "1 day 02:00:00", "12:00",
               " 1 day", "1 day ", "p1d", "P1W2D", "P", "PT", "P-1D", "P1.5D", "12345678 days", "1 fortnight",
               "1 millennium", "1 decade", "1 century", "1 dayz", "", "1 days 2", "1:60:00"]


@pytest.fixture(scope="module")
def server(tsdb_dsn: str) -> psycopg.Connection:
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        catalog.server_info(conn)  # IntervalStyle postgres, as every session of ours
        yield conn


def _server_reads(conn: psycopg.Connection, text: str) -> Window | None:
    try:
        return parse_on_server(conn, [text])[0]
    except NotAnInterval:
        return None


def test_intervals_local_parse_equals_server_parse(server: psycopg.Connection) -> None:
    differ = {}
    for text in SPELLINGS:
        local = parse_local(text)
        assert local is not None, f"{text!r} should be parsed locally"
        remote = _server_reads(server, text)
        if remote is None or (remote.months, remote.micros) != (local.months, local.micros):
            differ[text] = (local, remote)
    assert differ == {}


def test_intervals_local_leaves_other_spellings_to_server(server: psycopg.Connection) -> None:
    assert [t for t in SERVER_ONLY if parse_local(t) is not None] == []
    # and each reads on the server as it did before: accepted or refused by the server alone
    read = {t: _server_reads(server, t) for t in SERVER_ONLY}
    assert read["1.5 days"] == Window(0, 36 * 3_600_000_000) and read["1 dayz"] is None


def test_intervals_parse_many_keeps_order_and_names_bad_text(server: psycopg.Connection) -> None:
    got = parse_many(server, ["7 days", "1.5 days", "P1M"])
    assert [(w.months, w.micros, w.text) for w in got] == [(0, 7 * 86_400_000_000, "7 days"),
                                                           (0, 36 * 3_600_000_000, "1.5 days"),
                                                           (1, 0, "P1M")]
    with pytest.raises(NotAnInterval) as refused:
        parse_many(server, ["7 days", "1 week", "1 dayz", "2 days"])
    assert refused.value.index == 2


def test_intervals_parse_many_all_local_needs_no_server() -> None:
    no_server = None  # any use of it would fail
    assert [w.micros for w in parse_many(no_server, ["1 day", "PT1H"])] == [86_400_000_000, 3_600_000_000]
