"""The one interval normaliser: PostgreSQL's output parsed exactly, windows compared as TimescaleDB applies
them (months apart from days), chunk intervals as TimescaleDB stores them."""

from __future__ import annotations

import pytest

from lifecycle_resources.reconcile.intervals import DAY, SECOND, Window

H = 3600 * SECOND


@pytest.mark.parametrize("text, months, micros", [
    ("1 mon", 1, 0),
    ("-1 mons", -1, 0),
    ("1 year 2 mons", 14, 0),
    ("30 days", 0, 30 * DAY),
    ("7 days", 0, 7 * DAY),
    ("168:00:00", 0, 168 * H),
    ("00:00:00", 0, 0),
    ("-00:00:00.5", 0, -SECOND // 2),
    ("1 day -01:00:00", 0, DAY - H),
    ("-1 years -2 mons +3 days -04:05:06.000007", -14, 3 * DAY - (4 * H + 5 * 60 * SECOND + 6 * SECOND + 7)),
    ("12:00:00.25", 0, 12 * H + SECOND // 4),
])
def test_window_parses_postgres_output_exactly(text: str, months: int, micros: int) -> None:
    window = Window.from_output(text)
    assert (window.months, window.micros) == (months, micros)


@pytest.mark.parametrize("text", ["P7D", "1 day 2", "", "@ 1 mon", "7 dayz"])
def test_window_refuses_other_output_styles(text: str) -> None:
    with pytest.raises(ValueError):
        Window.from_output(text)


def test_window_month_is_not_thirty_days_for_policies() -> None:
    assert Window.from_output("1 mon") != Window.from_output("30 days")


def test_window_week_day_hour_spellings_are_one_window() -> None:
    # PostgreSQL prints '1 week' as '7 days' and '168 hours' as '168:00:00'.
    assert Window.from_output("7 days") == Window.from_output("168:00:00")


def test_window_text_is_never_compared() -> None:
    assert Window(0, DAY, "1 day") == Window(0, DAY, "24 hours")


def test_window_chunk_interval_counts_a_month_as_thirty_days() -> None:
    assert Window.from_output("1 mon").as_chunk_interval() == Window.from_output("30 days")
    assert Window.from_output("1 mon 2 days 03:00:00").as_chunk_interval().micros == 32 * DAY + 3 * H


def test_window_key_round_trips_and_keeps_plain_integers() -> None:
    assert Window.from_output("7 days").key == 7 * DAY  # what earlier states recorded: no false change
    month = Window.from_output("1 mon 01:00:00")
    assert month.key == [1, H] and Window.from_key(month.key, "x") == month


def test_window_span_orders_as_postgres() -> None:
    assert Window.from_output("1 mon").span > Window.from_output("29 days").span


def test_window_sql_renders_exact_value() -> None:
    rendered = Window(2, 90 * SECOND + 7).sql().as_string(None)
    assert "months => 2" in rendered and "secs => 90" in rendered and "7::bigint" in rendered
    assert Window.of_integer(100).sql().as_string(None) == "100::bigint"
